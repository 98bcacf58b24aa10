package ledger

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// changeEnv is a customer with a card, on the plan "basic" ($ 2.500,00 a month, at most 10),
// with "pro" ($ 4.000,00) beside it, subscribed at testStart: the period is 31 January to 28
// February 2026, 28 days, in Buenos Aires.
type changeEnv struct {
	*env
	c   Customer
	sub Subscription
}

func newChangeEnv(t *testing.T, e *env, quantity int) changeEnv {
	t.Helper()
	c := e.customer(t, "change@example.com")
	e.addMethod(t, c.ID, card("4242424242424242"))
	e.plan(t, basicPlan("basic"))
	e.plan(t, NewPlan{ID: "pro", NameES: "Profesional", NameEN: "Professional", Amount: 400000, Currency: ARS, Interval: Month})
	sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, PlanID: "basic", Quantity: quantity})
	if err != nil {
		t.Fatal(err)
	}
	if days := sub.CurrentPeriodEnd.Sub(sub.CurrentPeriodStart) / (24 * time.Hour); days != 28 {
		t.Fatalf("the period is %d days", days)
	}
	return changeEnv{env: e, c: c, sub: sub}
}

func (ce changeEnv) change(t *testing.T, ch SubscriptionChange) SubscriptionChangeResult {
	t.Helper()
	if ch.Proration == "" {
		ch.Proration = ProrateCreate
	}
	if ch.Effective == "" {
		ch.Effective = EffectiveImmediately
	}
	res, err := ce.store.ChangeSubscription(ce.ctx, ce.c.ID, ce.sub.ID, ch)
	if err != nil {
		t.Fatalf("ChangeSubscription(%+v): %v", ch, err)
	}
	return res
}

func (ce changeEnv) balance(t *testing.T) int64 {
	t.Helper()
	b, err := ce.store.CreditBalance(ce.ctx, ce.c.ID, ARS)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (ce changeEnv) payments(t *testing.T) []Payment {
	t.Helper()
	pg, err := ce.store.ListPayments(ce.ctx, ListPaymentsParams{CustomerID: ce.c.ID})
	if err != nil {
		t.Fatal(err)
	}
	return pg.Items
}

const tenDays = 10 * 24 * time.Hour

func TestUpgradeChargesTheProrationOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.clock.Advance(tenDays)
		quote, err := e.store.QuoteSubscriptionChange(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "pro",
			Proration: ProrateCreate, Effective: EffectiveImmediately})
		if err != nil {
			t.Fatal(err)
		}
		// 150 000 × 18/28 = 96 428.57…
		if quote.Prorated != 96429 || quote.Charge != 96429 || quote.AmountDue != 96429 || quote.Credit != 0 ||
			quote.RemainingSeconds != 18*86400 || quote.PeriodSeconds != 28*86400 || quote.From.Amount != 250000 || quote.To.Amount != 400000 {
			t.Fatalf("quote %+v", quote)
		}
		if got, _ := e.store.GetSubscription(e.ctx, ce.sub.ID); got.PlanID != "basic" {
			t.Fatal("a quote changed the subscription")
		}
		before := len(ce.payments(t))
		res := ce.change(t, SubscriptionChange{PlanID: "pro"})
		if !res.Changed || res.Subscription.PlanID != "pro" || res.Subscription.Plan != "Profesional" || res.Subscription.PlanEN != "Professional" ||
			res.Subscription.Amount != 400000 || res.Subscription.ChangeRevision != 1 {
			t.Fatalf("after the change: %+v", res.Subscription)
		}
		p := res.Payment
		if p.Amount != 96429 || p.Status != PaymentSucceeded || p.SubscriptionID != ce.sub.ID || p.Description != "Básico → Profesional" ||
			p.IdempotencyKey != changeKey(ce.sub.ID, 0) || !p.PeriodStart.IsZero() {
			t.Fatalf("proration payment %+v", p)
		}
		// The same change again (a double-submitted confirm) changes and charges nothing.
		again := ce.change(t, SubscriptionChange{PlanID: "pro"})
		if again.Changed || again.Payment.ID != "" || again.Subscription.ChangeRevision != 1 {
			t.Fatalf("repeated change: %+v", again)
		}
		if n := len(ce.payments(t)); n != before+1 || e.proc.chargesFor(p.ID) != 1 {
			t.Fatalf("%d payments after the change (was %d), charged %d times", n, before, e.proc.chargesFor(p.ID))
		}
		// The next period is billed at the new price.
		renewed, err := e.store.RenewDue(e.ctx, res.Subscription.CurrentPeriodEnd)
		if err != nil || len(renewed.Payments) != 1 || renewed.Payments[0].Amount != 400000 || renewed.Payments[0].Description != "Profesional" {
			t.Fatalf("renewal %+v, %v", renewed.Payments, err)
		}
	})
}

func TestDowngradeCreditIsConsumedByTheNextCharges(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 4) // 4 × basic = $ 10.000,00
		e.clock.Advance(tenDays)
		res := ce.change(t, SubscriptionChange{Quantity: 1})
		// −750 000 × 18/28 = −482 142.86 → a credit of 482 143.
		if res.Quote.Prorated != -482143 || res.Quote.Credit != 482143 || res.Payment.ID != "" || res.CreditBalance != 482143 {
			t.Fatalf("downgrade: %+v", res)
		}
		if res.Subscription.Quantity != 1 || res.Subscription.Amount != 250000 {
			t.Fatalf("subscription %+v", res.Subscription)
		}
		// The balance covers the next period whole: no payment, the balance goes down.
		end := res.Subscription.CurrentPeriodEnd
		renewed, err := e.store.RenewDue(e.ctx, end)
		if err != nil || len(renewed.Payments) != 0 {
			t.Fatalf("first renewal: %+v, %v", renewed.Payments, err)
		}
		if b := ce.balance(t); b != 232143 {
			t.Fatalf("balance after a covered period: %d", b)
		}
		sub, _ := e.store.GetSubscription(e.ctx, ce.sub.ID)
		if sub.Status != SubscriptionActive || !sub.CurrentPeriodStart.Equal(end) {
			t.Fatalf("after a covered period: %+v", sub)
		}
		// The next one in part: 250 000 − 232 143 charged to the card.
		renewed, err = e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if err != nil || len(renewed.Payments) != 1 {
			t.Fatalf("second renewal: %+v, %v", renewed.Payments, err)
		}
		if p := renewed.Payments[0]; p.Amount != 17857 || p.CreditApplied != 232143 || p.Status != PaymentSucceeded {
			t.Fatalf("second renewal payment %+v", p)
		}
		if b := ce.balance(t); b != 0 {
			t.Fatalf("balance after it: %d", b)
		}
	})
}

func TestUpgradeChargePaidFromTheBalanceFirst(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 2)
		e.clock.Advance(tenDays)
		ce.change(t, SubscriptionChange{Quantity: 1}) // credit 250 000 × 18/28 = 160 714
		if b := ce.balance(t); b != 160714 {
			t.Fatalf("balance %d", b)
		}
		e.clock.Advance(24 * time.Hour)
		// Back to 3 units, 17 days left: 500 000 × 17/28 = 303 571.43 → 303 571, of which the
		// balance pays 160 714.
		res := ce.change(t, SubscriptionChange{Quantity: 3})
		q := res.Quote
		if q.Charge != 303571 || q.CreditApplied != 160714 || q.AmountDue != 142857 {
			t.Fatalf("quote %+v", q)
		}
		if p := res.Payment; p.Amount != 142857 || p.CreditApplied != 160714 || p.Status != PaymentSucceeded {
			t.Fatalf("payment %+v", p)
		}
		if res.CreditBalance != 0 {
			t.Fatalf("balance %d", res.CreditBalance)
		}
		// A charge the balance covers whole is no payment at all.
		e.clock.Advance(24 * time.Hour)
		ce.change(t, SubscriptionChange{Quantity: 1}) // credit 500 000 × 16/28 = 285 714
		before := len(ce.payments(t))
		res = ce.change(t, SubscriptionChange{Quantity: 2}) // charge 250 000 × 16/28 = 142 857
		if res.Quote.Charge != 142857 || res.Quote.AmountDue != 0 || res.Payment.ID != "" || res.CreditBalance != 285714-142857 {
			t.Fatalf("covered change %+v", res)
		}
		if len(ce.payments(t)) != before {
			t.Fatal("a covered charge made a payment")
		}
	})
}

// The customer is charged what they were shown: the quote's instant goes with the
// confirmation, within QuoteValidity; a stale or outdated quote is refused.
func TestConfirmedQuoteIsChargedAsShown(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.clock.Advance(tenDays + 1234*time.Millisecond)
		ask := SubscriptionChange{PlanID: "pro", Proration: ProrateCreate, Effective: EffectiveImmediately}
		quote, err := e.store.QuoteSubscriptionChange(e.ctx, ce.c.ID, ce.sub.ID, ask)
		if err != nil {
			t.Fatal(err)
		}
		if !quote.At.Equal(e.clock.Now().Truncate(time.Second)) {
			t.Fatalf("quote at %v", quote.At)
		}
		e.clock.Advance(QuoteValidity + time.Second)
		confirm := ask
		confirm.At, confirm.Revision, confirm.Prorated = quote.At, &quote.Revision, &quote.Prorated
		_, err = e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, confirm)
		wantCode(t, err, CodeSubscriptionChanged)

		e.clock.Set(quote.At.Add(QuoteValidity - time.Second)) // 15 minutes less a second later
		res, err := e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, confirm)
		if err != nil || res.Payment.Amount != quote.AmountDue || res.Quote.Prorated != quote.Prorated {
			t.Fatalf("confirmed %+v (quoted %+v), %v", res.Payment, quote, err)
		}
		// A second confirmation of the same quote is the same change: nothing more.
		again, err := e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, confirm)
		if err != nil || again.Changed || again.Payment.ID != "" {
			t.Fatalf("second confirmation %+v, %v", again, err)
		}
		// A quote made before another change is refused, not applied on top of it.
		_, err = e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "basic", Quantity: 2,
			Proration: ProrateCreate, Effective: EffectiveImmediately, Revision: &quote.Revision})
		wantCode(t, err, CodeSubscriptionChanged)
		// So is one whose amount no longer holds (the portal's proration rule changed).
		rev := int64(1)
		zero := int64(0)
		_, err = e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "basic",
			Proration: ProrateCreate, Effective: EffectiveImmediately, Revision: &rev, Prorated: &zero, At: e.clock.Now()})
		wantCode(t, err, CodeSubscriptionChanged)
	})
}

// Confirmations racing (a double click, two tabs, two replicas) make one change and one charge.
func TestConcurrentConfirmationsChargeOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.clock.Advance(tenDays)
		rev := int64(0)
		replica := e.open(t)
		var wg sync.WaitGroup
		results := make([]SubscriptionChangeResult, 8)
		errs := make([]error, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := e.store
				if i%2 == 1 {
					s = replica
				}
				results[i], errs[i] = s.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "pro",
					Proration: ProrateCreate, Effective: EffectiveImmediately, Revision: &rev, At: e.clock.Now()})
			}()
		}
		wg.Wait()
		changed := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("confirmation %d: %v", i, errs[i])
			}
			if r.Changed {
				changed++
				if e.proc.chargesFor(r.Payment.ID) != 1 {
					t.Fatalf("charged %d times", e.proc.chargesFor(r.Payment.ID))
				}
			}
		}
		if changed != 1 {
			t.Fatalf("%d confirmations changed the subscription", changed)
		}
		n := 0
		for _, p := range ce.payments(t) {
			if p.IdempotencyKey == changeKey(ce.sub.ID, 0) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d proration payments", n)
		}
	})
}

func TestChangeAtPeriodEnd(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.clock.Advance(tenDays)
		res := ce.change(t, SubscriptionChange{PlanID: "pro", Quantity: 2, Effective: EffectiveAtPeriodEnd})
		q := res.Quote
		if !res.Changed || q.Charge != 0 || q.Credit != 0 || res.Payment.ID != "" || !q.EffectiveAt.Equal(ce.sub.CurrentPeriodEnd) {
			t.Fatalf("scheduled %+v", res)
		}
		sub := res.Subscription
		if sub.PlanID != "basic" || sub.Amount != 250000 || sub.Pending == nil || *sub.Pending != (PendingChange{PlanID: "pro", Quantity: 2}) {
			t.Fatalf("scheduled subscription %+v", sub)
		}
		if again := ce.change(t, SubscriptionChange{PlanID: "pro", Quantity: 2, Effective: EffectiveAtPeriodEnd}); again.Changed {
			t.Fatal("scheduling the same change again changed something")
		}
		// Back to what it is clears the schedule; scheduling again sets it.
		if cleared := ce.change(t, SubscriptionChange{PlanID: "basic", Quantity: 1, Effective: EffectiveAtPeriodEnd}); !cleared.Changed || cleared.Subscription.Pending != nil {
			t.Fatalf("clearing %+v", cleared.Subscription)
		}
		ce.change(t, SubscriptionChange{PlanID: "pro", Quantity: 2, Effective: EffectiveAtPeriodEnd})
		renewed, err := e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if err != nil || len(renewed.Payments) != 1 || renewed.Payments[0].Amount != 800000 || renewed.Payments[0].Description != "Profesional × 2" {
			t.Fatalf("renewal %+v, %v", renewed.Payments, err)
		}
		after, _ := e.store.GetSubscription(e.ctx, ce.sub.ID)
		if after.PlanID != "pro" || after.Quantity != 2 || after.Amount != 800000 || after.Pending != nil {
			t.Fatalf("after the renewal %+v", after)
		}
	})
}

func TestChangeRefusals(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.plan(t, NewPlan{ID: "usd", NameES: "Dólar", NameEN: "Dollar", Amount: 900, Currency: USD, Interval: Month})
		e.plan(t, NewPlan{ID: "yearly", NameES: "Anual", NameEN: "Yearly", Amount: 2500000, Currency: ARS, Interval: Year})
		e.plan(t, NewPlan{ID: "old", NameES: "Viejo", NameEN: "Old", Amount: 100, Currency: ARS, Interval: Month})
		if _, err := e.store.ArchivePlan(e.ctx, "old"); err != nil {
			t.Fatal(err)
		}
		free, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: ce.c.ID, Plan: "Libre", Amount: 1000, Currency: ARS, Interval: Month})
		if err != nil {
			t.Fatal(err)
		}
		now := ChangeEffective(EffectiveImmediately)
		for _, c := range []struct {
			name  string
			subID string
			ch    SubscriptionChange
			code  string
		}{
			{"another currency", ce.sub.ID, SubscriptionChange{PlanID: "usd"}, CodePlanCurrencyMismatch},
			{"an archived plan", ce.sub.ID, SubscriptionChange{PlanID: "old"}, CodePlanArchived},
			{"an unknown plan", ce.sub.ID, SubscriptionChange{PlanID: "nope"}, CodeNotFound},
			{"above the maximum", ce.sub.ID, SubscriptionChange{Quantity: 11}, CodeQuantityAboveMaximum},
			{"a negative quantity", ce.sub.ID, SubscriptionChange{Quantity: -1}, CodeInvalidField},
			{"quantity without a plan", free.ID, SubscriptionChange{Quantity: 2}, CodeRequired},
			{"a made-up behaviour", ce.sub.ID, SubscriptionChange{PlanID: "pro", Proration: "sometimes"}, CodeInvalidField},
			{"a made-up effect", ce.sub.ID, SubscriptionChange{PlanID: "pro", Effective: "tomorrow"}, CodeInvalidField},
			{"another customer's subscription", "sub_nope", SubscriptionChange{PlanID: "pro"}, CodeNotFound},
		} {
			if c.ch.Proration == "" {
				c.ch.Proration = ProrateCreate
			}
			if c.ch.Effective == "" {
				c.ch.Effective = now
			}
			_, err := e.store.ChangeSubscription(e.ctx, ce.c.ID, c.subID, c.ch)
			if CodeOf(err) != c.code {
				t.Errorf("%s: %v, want %s", c.name, err, c.code)
			}
		}
		// A free-text subscription may move onto a plan.
		res, err := e.store.ChangeSubscription(e.ctx, ce.c.ID, free.ID, SubscriptionChange{PlanID: "basic", Proration: ProrateNone, Effective: now})
		if err != nil || res.Subscription.PlanID != "basic" || res.Subscription.Amount != 250000 || res.Payment.ID != "" {
			t.Fatalf("free-text onto a plan: %+v, %v", res, err)
		}
		// The period is over and not renewed yet: no change until it is.
		e.clock.Set(ce.sub.CurrentPeriodEnd)
		_, err = e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "pro", Proration: ProrateCreate, Effective: now})
		wantCode(t, err, CodePeriodEnded)
		if _, err := e.store.CancelSubscription(e.ctx, ce.c.ID, ce.sub.ID, CancelImmediately, ""); err != nil {
			t.Fatal(err)
		}
		_, err = e.store.ChangeSubscription(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "pro", Proration: ProrateCreate, Effective: now})
		if !errors.Is(err, ErrSubscriptionCanceled) {
			t.Fatalf("canceled: %v", err)
		}
		// The refusals changed nothing and charged nothing.
		if got, _ := e.store.GetSubscription(e.ctx, ce.sub.ID); got.PlanID != "basic" || got.ChangeRevision != 0 {
			t.Fatalf("after refusals %+v", got)
		}
	})
}

// A change records no merchant event of its own; its charge records the payment's.
func TestChangeEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		before, err := e.store.ListEvents(e.ctx, ListEventsParams{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(tenDays)
		ce.change(t, SubscriptionChange{PlanID: "pro"})
		ce.change(t, SubscriptionChange{PlanID: "basic"}) // a credit: no event
		after, err := e.store.ListEvents(e.ctx, ListEventsParams{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ev := range after.Items[len(before.Items):] {
			types = append(types, ev.Type)
		}
		if len(types) != 2 || types[0] != EventPaymentCreated || types[1] != EventPaymentSucceeded {
			t.Fatalf("events of the changes: %v", types)
		}
	})
}

// A subscription canceled at once gives back the credit its unpaid period payment had taken.
func TestCancelGivesBackTheCreditOfAnUnpaidPayment(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 2)
		e.clock.Advance(tenDays)
		ce.change(t, SubscriptionChange{Quantity: 1}) // credit 160 714
		// The card now declines: the next period's payment takes the credit and fails for the rest.
		declining := e.addMethod(t, ce.c.ID, card("4000000000000002"))
		if _, err := e.store.MakePreferred(e.ctx, ce.c.ID, declining.ID); err != nil {
			t.Fatal(err)
		}
		renewed, err := e.store.RenewDue(e.ctx, ce.sub.CurrentPeriodEnd)
		if err != nil || len(renewed.Payments) != 1 || renewed.Payments[0].Status != PaymentFailed || renewed.Payments[0].CreditApplied != 160714 {
			t.Fatalf("renewal %+v, %v", renewed.Payments, err)
		}
		if b := ce.balance(t); b != 0 {
			t.Fatalf("balance %d", b)
		}
		if _, err := e.store.CancelSubscription(e.ctx, ce.c.ID, ce.sub.ID, CancelImmediately, ""); err != nil {
			t.Fatal(err)
		}
		if b := ce.balance(t); b != 160714 {
			t.Fatalf("balance after the cancellation %d, want the credit back", b)
		}
	})
}

func TestChangeSubscriptionChangesTheCustomerVersion(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 2)
		e.clock.Advance(tenDays)
		for _, ch := range []SubscriptionChange{
			{Quantity: 1},   // a credit only
			{PlanID: "pro"}, // a charge
			{PlanID: "basic", Effective: EffectiveAtPeriodEnd}, // a schedule
		} {
			before, _ := e.store.GetCustomer(e.ctx, ce.c.ID)
			ce.change(t, ch)
			after, _ := e.store.GetCustomer(e.ctx, ce.c.ID)
			if after.Version <= before.Version {
				t.Errorf("%+v left the version at %d", ch, after.Version)
			}
		}
	})
}

// The credit rows' triggers work for writes that bypass the store too.
func TestCreditRowsChangeTheCustomerVersion(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 2)
		e.clock.Advance(tenDays)
		ce.change(t, SubscriptionChange{Quantity: 1})
		version := func() int64 {
			c, err := e.store.GetCustomer(e.ctx, ce.c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return c.Version
		}
		for _, stmt := range []string{"UPDATE credit_transactions SET description = description || 'x'", "DELETE FROM credit_transactions"} {
			before := version()
			if _, err := e.store.db.ExecContext(e.ctx, stmt); err != nil {
				t.Fatal(err)
			}
			if version() <= before {
				t.Errorf("%s left the version", stmt)
			}
		}
	})
}
