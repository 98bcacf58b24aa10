package api

import (
	"math/big"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

func (f *fixture) createPlan(id string, amount int64, currency string, maxQty int) planJSON {
	f.t.Helper()
	var p planJSON
	f.expect(req{method: "POST", path: "/api/v1/plans", body: map[string]any{"id": id, "name": map[string]any{"es": "Plan " + id, "en": id + " plan"},
		"amount": amount, "currency": currency, "interval": "month", "max_quantity": maxQty}}, 201, "").json(f.t, &p)
	return p
}

func TestPlansAPI(t *testing.T) {
	f := newFixture(t, nil)
	body := map[string]any{"id": "pro-monthly", "name": map[string]any{"es": "Profesional", "en": "Professional"},
		"amount": 400000, "currency": "ars", "interval": "month", "max_quantity": 5}
	res := f.expect(req{method: "POST", path: "/api/v1/plans", body: body}, 201, "")
	f.checker.validate(t, "Plan", res.body)
	var p planJSON
	res.json(t, &p)
	if p.ID != "pro-monthly" || p.Name.ES != "Profesional" || p.Currency != "ARS" || p.MaxQuantity != 5 || p.Archived {
		t.Fatalf("created %+v", p)
	}
	// Again, the same: 200 with it. Other fields: 409.
	f.expect(req{method: "POST", path: "/api/v1/plans", body: body}, 200, "")
	body["amount"] = 450000
	if e := f.expect(req{method: "POST", path: "/api/v1/plans", body: body, headers: map[string]string{"Accept-Language": "es"}}, 409, ledger.CodePlanExists).err(t); e.Field != "id" || e.Message == "" {
		t.Fatalf("conflict %+v", e)
	}
	for _, bad := range []struct {
		body  map[string]any
		code  string
		field string
	}{
		{map[string]any{"id": "x y", "name": map[string]any{"es": "a", "en": "b"}, "amount": 1, "currency": "ARS", "interval": "month"}, ledger.CodeInvalidField, "id"},
		{map[string]any{"id": "x", "name": map[string]any{"es": "a"}, "amount": 1, "currency": "ARS", "interval": "month"}, ledger.CodeRequired, "name.en"},
		{map[string]any{"id": "x", "name": map[string]any{"es": "a", "en": "b"}, "amount": -1, "currency": "ARS", "interval": "month"}, ledger.CodeInvalidAmount, "amount"},
		{map[string]any{"id": "x", "name": map[string]any{"es": "a", "en": "b"}, "amount": 1, "currency": "ARS", "interval": "daily"}, ledger.CodeInvalidField, "interval"},
		{map[string]any{"id": "x", "name": map[string]any{"es": "a", "en": "b", "fr": "c"}, "amount": 1, "currency": "ARS", "interval": "month"}, CodeUnknownField, "name.fr"},
	} {
		if e := f.expect(req{method: "POST", path: "/api/v1/plans", body: bad.body}, 400, bad.code).err(t); e.Field != bad.field {
			t.Errorf("%v: field %q, want %q", bad.body, e.Field, bad.field)
		}
	}
	f.expect(req{method: "GET", path: "/api/v1/plans/x"}, 404, ledger.CodeNotFound)
	f.createPlan("legacy", 100, "ARS", 0)
	res = f.expect(req{method: "POST", path: "/api/v1/plans/legacy/archive"}, 200, "")
	f.checker.validate(t, "Plan", res.body)
	p = planJSON{}
	res.json(t, &p)
	if !p.Archived || p.ArchivedAt == nil || p.MaxQuantity != 0 {
		t.Fatalf("archived %+v", p)
	}
	var list listResponse[planJSON]
	res = f.expect(req{method: "GET", path: "/api/v1/plans?archived=false"}, 200, "")
	f.checker.validate(t, "PlanList", res.body)
	res.json(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != "pro-monthly" {
		t.Fatalf("active plans %+v", list.Data)
	}
	f.expect(req{method: "GET", path: "/api/v1/plans?archived=maybe"}, 400, ledger.CodeInvalidField)
	res = f.expect(req{method: "GET", path: "/api/v1/plans/legacy"}, 200, "")
	res.json(t, &p)
	if !p.Archived {
		t.Fatal("GET lost the archive")
	}
}

// subscribeOnPlan starts a subscription on plan for quantity units whose period began ten days
// ago (start_at), so a change now falls in the middle of it.
func (f *fixture) subscribeOnPlan(customerID, plan string, quantity int) subscriptionJSON {
	f.t.Helper()
	var s subscriptionJSON
	res := f.expect(req{method: "POST", path: "/api/v1/subscriptions", headers: map[string]string{"Idempotency-Key": newKey()},
		body: map[string]any{"customer_id": customerID, "plan_id": plan, "quantity": quantity,
			"start_at": time.Now().Add(-10 * 24 * time.Hour).UTC().Format(time.RFC3339)}}, 201, "")
	f.checker.validate(f.t, "Subscription", res.body)
	res.json(f.t, &s)
	return s
}

// prorated is the documented rule, worked out from the answer's own seconds with big numbers.
func prorated(t *testing.T, c changeJSON) int64 {
	t.Helper()
	num := new(big.Rat).SetFrac(big.NewInt((c.To.Amount-c.From.Amount)*1), big.NewInt(1))
	num.Mul(num, big.NewRat(c.RemainingSeconds, c.PeriodSeconds))
	// Half away from zero.
	abs := new(big.Rat).Abs(num)
	floor := new(big.Int).Quo(abs.Num(), abs.Denom())
	if new(big.Rat).Sub(abs, new(big.Rat).SetInt(floor)).Cmp(big.NewRat(1, 2)) >= 0 {
		floor.Add(floor, big.NewInt(1))
	}
	if num.Sign() < 0 {
		floor.Neg(floor)
	}
	return floor.Int64()
}

func TestUpdateSubscriptionAPI(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("upgrade@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	f.createPlan("basic", 250000, "ARS", 10)
	f.createPlan("pro", 400000, "ARS", 10)
	f.createPlan("dollars", 900, "USD", 0)
	f.createPlan("gone", 100, "ARS", 0)
	f.expect(req{method: "POST", path: "/api/v1/plans/gone/archive"}, 200, "")
	sub := f.subscribeOnPlan(c.ID, "basic", 2)
	if sub.PlanID != "basic" || sub.Quantity != 2 || sub.Amount != 500000 || sub.Plan != "Plan basic" {
		t.Fatalf("subscription %+v", sub)
	}
	update := func(body map[string]any, status int, code string) subscriptionUpdateJSON {
		t.Helper()
		res := f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/update", body: body}, status, code)
		var out subscriptionUpdateJSON
		if status == 200 {
			f.checker.validate(t, "SubscriptionUpdate", res.body)
			res.json(t, &out)
		}
		return out
	}

	// The preview says what the change costs; the change charges exactly the documented rule.
	preview := update(map[string]any{"plan_id": "pro", "preview": true}, 200, "")
	if preview.Changed || preview.Payment != nil || preview.Subscription.PlanID != "basic" || preview.Change.To.Amount != 800000 ||
		preview.Change.ProrationBehavior != "create_prorations" || preview.Change.Effective != "immediately" {
		t.Fatalf("preview %+v", preview)
	}
	if got := prorated(t, preview.Change); preview.Change.Prorated != got || got <= 0 || preview.Change.AmountDue != got {
		t.Fatalf("preview prorated %d, the rule gives %d: %+v", preview.Change.Prorated, got, preview.Change)
	}
	done := update(map[string]any{"plan_id": "pro"}, 200, "")
	if !done.Changed || done.Subscription.PlanID != "pro" || done.Subscription.Amount != 800000 || done.Payment == nil {
		t.Fatalf("change %+v", done)
	}
	if want := prorated(t, done.Change); done.Payment.Amount != want || done.Payment.Status != "succeeded" || f.proc.chargesFor(done.Payment.ID) != 1 {
		t.Fatalf("payment %+v, want amount %d", done.Payment, want)
	}
	// The same request again (a retry) changes and charges nothing.
	before := len(f.payments(c.ID))
	if again := update(map[string]any{"plan_id": "pro"}, 200, ""); again.Changed || again.Payment != nil {
		t.Fatalf("retry %+v", again)
	}
	if n := len(f.payments(c.ID)); n != before {
		t.Fatalf("a retry made a payment: %d → %d", before, n)
	}
	// A decrease is credited to the balance, not charged.
	down := update(map[string]any{"quantity": 1}, 200, "")
	if !down.Changed || down.Payment != nil || down.Change.Credit <= 0 || down.CreditBalance != down.Change.Credit ||
		down.Change.Prorated != -down.Change.Credit || down.Subscription.Quantity != 1 {
		t.Fatalf("decrease %+v", down)
	}
	// Scheduled for the period's end: nothing billed now, the subscription shows it.
	later := update(map[string]any{"plan_id": "basic", "quantity": 3, "effective": "at_period_end"}, 200, "")
	if !later.Changed || later.Payment != nil || later.Subscription.PendingChange == nil || later.Subscription.PendingChange.PlanID != "basic" ||
		later.Subscription.PendingChange.Quantity != 3 || !later.Subscription.PendingChange.EffectiveAt.Equal(later.Subscription.CurrentPeriodEnd) {
		t.Fatalf("scheduled %+v", later)
	}

	update(map[string]any{}, 400, ledger.CodeRequired)
	update(map[string]any{"plan_id": "dollars"}, 400, ledger.CodePlanCurrencyMismatch)
	update(map[string]any{"plan_id": "gone"}, 409, ledger.CodePlanArchived)
	update(map[string]any{"plan_id": "nope"}, 404, ledger.CodeNotFound)
	update(map[string]any{"quantity": 11}, 400, ledger.CodeQuantityAboveMaximum)
	update(map[string]any{"plan_id": "pro", "proration_behavior": "sometimes"}, 400, ledger.CodeInvalidField)
	update(map[string]any{"plan_id": "pro", "effective": "tomorrow"}, 400, ledger.CodeInvalidField)
	update(map[string]any{"plan_id": "pro", "extra": 1}, 400, CodeUnknownField)
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/sub_nope/update", body: map[string]any{"plan_id": "pro"}}, 404, ledger.CodeNotFound)
	// A plan_id with a free-text amount is ambiguous.
	f.expect(req{method: "POST", path: "/api/v1/subscriptions", headers: map[string]string{"Idempotency-Key": newKey()},
		body: map[string]any{"customer_id": c.ID, "plan_id": "basic", "amount": 100}}, 400, ledger.CodeInvalidField)

	// The change wrote no event of its own: only its charge's payment events.
	events, err := f.store.ListEvents(f.ctx, ledger.ListEventsParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events.Items {
		switch ev.Type {
		case ledger.EventSubscriptionCreated, ledger.EventPaymentCreated, ledger.EventPaymentSucceeded,
			ledger.EventCustomerCreated, ledger.EventPaymentMethodAdded, ledger.EventPaymentMethodPreferredChanged:
		default:
			t.Errorf("unexpected event %s", ev.Type)
		}
	}
}

// Without a behaviour in the request, the portal's rules decide, as for customers' own changes.
func TestUpdateSubscriptionFollowsThePortalsRules(t *testing.T) {
	f := newFixture(t, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.SubscriptionUpdate = billingv1alpha1.SubscriptionUpdate{Proration: billingv1alpha1.ProrationNone}
	})
	c := f.customer("rules@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	f.createPlan("basic", 250000, "ARS", 0)
	f.createPlan("pro", 400000, "ARS", 0)
	sub := f.subscribeOnPlan(c.ID, "basic", 1)
	var out subscriptionUpdateJSON
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/update", body: map[string]any{"plan_id": "pro"}}, 200, "").json(t, &out)
	if !out.Changed || out.Payment != nil || out.Change.ProrationBehavior != "none" || out.Change.Charge != 0 {
		t.Fatalf("with proration None: %+v", out)
	}
	f.patchPortal(func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.SubscriptionUpdate.Effective = billingv1alpha1.UpdateAtPeriodEnd
	}, func(p *billingv1alpha1.CustomerPortal) bool {
		return p.Spec.SubscriptionUpdate.Effective == billingv1alpha1.UpdateAtPeriodEnd
	})
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/update", body: map[string]any{"plan_id": "basic"}}, 200, "").json(t, &out)
	if out.Change.Effective != "at_period_end" || out.Subscription.PendingChange == nil || out.Subscription.PlanID != "pro" {
		t.Fatalf("with effective AtPeriodEnd: %+v", out)
	}
}

// A portal session may deep-link the plan change of one of its customer's subscriptions.
func TestSessionFlowUpdateSubscription(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("link@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	f.createPlan("basic", 250000, "ARS", 0)
	sub := f.subscribeOnPlan(c.ID, "basic", 1)
	other := f.customer("other@example.com")
	var s sessionJSON
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID,
		"flow": map[string]any{"type": "update_subscription", "subscription_id": sub.ID}}}, 201, "").json(t, &s)
	if s.Flow == nil || s.Flow.Type != "update_subscription" || s.Flow.SubscriptionID != sub.ID {
		t.Fatalf("session flow %+v", s.Flow)
	}
	if e := f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID,
		"flow": map[string]any{"type": "update_subscription"}}}, 400, ledger.CodeRequired).err(t); e.Field != "flow.subscription_id" {
		t.Fatalf("without its subscription: %+v", e)
	}
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": other.ID,
		"flow": map[string]any{"type": "update_subscription", "subscription_id": sub.ID}}}, 404, ledger.CodeNotFound)
}

// A plan of another interval: the change starts a new period, and the answer says so.
func TestUpdateSubscriptionToAnotherInterval(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("yearly@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	f.createPlan("basic", 250000, "ARS", 0)
	f.expect(req{method: "POST", path: "/api/v1/plans", body: map[string]any{"id": "anual", "name": map[string]any{"es": "Anual", "en": "Yearly"},
		"amount": 2500000, "currency": "ARS", "interval": "year"}}, 201, "")
	sub := f.subscribeOnPlan(c.ID, "basic", 1)
	path := "/api/v1/subscriptions/" + sub.ID + "/update"
	res := f.expect(req{method: "POST", path: path, body: map[string]any{"plan_id": "anual", "preview": true}}, 200, "")
	f.checker.validate(t, "SubscriptionUpdate", res.body)
	var preview subscriptionUpdateJSON
	res.json(t, &preview)
	ch := preview.Change
	unused := prorated(t, changeJSON{To: changeLineJSON{Amount: ch.From.Amount * 2}, From: ch.From, RemainingSeconds: ch.RemainingSeconds, PeriodSeconds: ch.PeriodSeconds})
	if !ch.IntervalChange || ch.From.Interval != "month" || ch.To.Interval != "year" || ch.Unused != unused ||
		ch.Prorated != 2500000-unused || ch.AmountDue != ch.Prorated || ch.NewPeriodStart == nil || ch.NewPeriodEnd == nil ||
		!ch.NewPeriodEnd.Equal(ch.NewPeriodStart.AddDate(1, 0, 0)) {
		t.Fatalf("preview %+v", ch)
	}
	res = f.expect(req{method: "POST", path: path, body: map[string]any{"plan_id": "anual"}}, 200, "")
	f.checker.validate(t, "SubscriptionUpdate", res.body)
	var done subscriptionUpdateJSON
	res.json(t, &done)
	if !done.Changed || done.Subscription.Interval != "year" || done.Payment == nil || done.Payment.Amount != done.Change.AmountDue ||
		!done.Subscription.CurrentPeriodEnd.Equal(*done.Change.NewPeriodEnd) {
		t.Fatalf("change %+v", done)
	}
	// The same request again changes and charges nothing.
	res = f.expect(req{method: "POST", path: path, body: map[string]any{"plan_id": "anual"}}, 200, "")
	f.checker.validate(t, "SubscriptionUpdate", res.body)
	var again subscriptionUpdateJSON
	res.json(t, &again)
	if again.Changed || again.Payment != nil {
		t.Fatalf("retry %+v", again)
	}
}
