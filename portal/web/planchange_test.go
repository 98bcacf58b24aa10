package web

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// withPlanChanges lets customers change plans among basic and pro (and names plans that must
// never be offered: one in dollars, one archived, one that does not exist), and quantities.
func withPlanChanges() fixtureOption {
	return withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Permissions.UpdateSubscriptions = ptr.To(true)
		s.SubscriptionUpdate = billingv1alpha1.SubscriptionUpdate{Enabled: true, Quantity: true,
			Plans: []string{"basic", "pro", "dollars", "old", "missing"}}
	})
}

// planChangeSetup makes the catalogue (basic $ 2.500, pro $ 4.000, at most 10; "secret" exists
// but the portal does not list it) and a customer with a card on basic, ten days into the period.
func (f *fixture) planChangeSetup(email string) (ledger.Customer, ledger.Subscription) {
	f.t.Helper()
	for _, p := range []ledger.NewPlan{
		{ID: "basic", NameES: "Básico", NameEN: "Basic", Amount: 250000, Currency: ledger.ARS, Interval: ledger.Month, MaxQuantity: 10},
		{ID: "pro", NameES: "Profesional", NameEN: "Professional", Amount: 400000, Currency: ledger.ARS, Interval: ledger.Month, MaxQuantity: 10},
		{ID: "dollars", NameES: "Dólares", NameEN: "Dollars", Amount: 900, Currency: ledger.USD, Interval: ledger.Month},
		{ID: "old", NameES: "Viejo", NameEN: "Old", Amount: 100, Currency: ledger.ARS, Interval: ledger.Month},
		{ID: "secret", NameES: "Secreto", NameEN: "Secret", Amount: 1, Currency: ledger.ARS, Interval: ledger.Month},
	} {
		if _, _, err := f.ledger.CreatePlan(f.ctx, p); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := f.ledger.ArchivePlan(f.ctx, "old"); err != nil {
		f.t.Fatal(err)
	}
	c := f.customer(email, "Plan Changer")
	f.addMethod(c, cardInput("4242424242424242"))
	s, _, err := f.ledger.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, PlanID: "basic"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.clock.Step(10 * 24 * time.Hour)
	return c, s
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// confirmForm is the review page's confirmation form, as a browser would send it (CSRF aside).
func confirmForm(t *testing.T, r *response) url.Values {
	t.Helper()
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(r.Body, -1) {
		if m[1] != "csrf" {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
	}
	if form.Get("plan") == "" || form.Get("at") == "" {
		t.Fatalf("no confirmation form on the page:\n%s", r.Body)
	}
	return form
}

func (f *fixture) subPayments(subID string) []ledger.Payment {
	f.t.Helper()
	page, err := f.ledger.ListPayments(f.ctx, ledger.ListPaymentsParams{SubscriptionID: subID})
	if err != nil {
		f.t.Fatal(err)
	}
	return page.Items
}

func TestPlanChangeJourney(t *testing.T) {
	f := newFixture(t, withPlanChanges())
	c, sub := f.planChangeSetup("changer@example.com")
	b := f.browser()
	b.signIn(c)
	base := "/subscriptions/" + sub.ID

	r := b.get(base)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `href="`+base+`/change"`, "Cambiar de plan")

	// The choice: the listed plans of the subscription's currency that are not archived.
	r = b.get(base + "/change")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `value="basic" checked`, "tu plan actual", `value="pro"`, "Profesional", "$ 4.000,00 por mes", `name="quantity"`)
	wantNoBody(t, r, `value="dollars"`, `value="old"`, `value="secret"`, `value="missing"`)

	// The review shows the exact amount before anything happens.
	quote, err := f.ledger.QuoteSubscriptionChange(f.ctx, c.ID, sub.ID, ledger.SubscriptionChange{PlanID: "pro",
		Proration: ledger.ProrateCreate, Effective: ledger.EffectiveImmediately})
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's clock is the real date: the period is whatever month this is.
	if want := ledger.Prorate(150000, quote.RemainingSeconds, quote.PeriodSeconds); quote.AmountDue != want || want <= 0 {
		t.Fatalf("quote %+v, want %d due", quote, want)
	}
	due := formatMoney("es", quote.AmountDue, ledger.ARS)
	r = b.get(base + "/change/review?plan=pro")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Hoy se cobran "+due+" por lo que queda del período", "Básico", "Profesional", "Confirmar el cambio")
	if got := f.sub(sub.ID); got.PlanID != "basic" || len(f.subPayments(sub.ID)) != 1 {
		t.Fatal("the review changed something")
	}
	form := confirmForm(t, r)

	// Confirmed a few minutes later: charged what was shown.
	f.clock.Step(3 * time.Minute)
	wantRedirect(t, b.submit(base+"/change", form), base)
	got := f.sub(sub.ID)
	if got.PlanID != "pro" || got.Amount != 400000 {
		t.Fatalf("after the change: %+v", got)
	}
	pays := f.subPayments(sub.ID)
	if len(pays) != 2 || pays[0].Amount != quote.AmountDue || pays[0].Status != ledger.PaymentSucceeded {
		t.Fatalf("payments %+v", pays)
	}
	r = b.get(base)
	wantBody(t, r, "Listo, cambiaste tu plan.", "Profesional", "$ 4.000,00", "Básico → Profesional", due)

	// The same confirmation again (a double click, a reload): no second charge.
	wantRedirect(t, b.submit(base+"/change", form), base)
	if n := len(f.subPayments(sub.ID)); n != 2 {
		t.Fatalf("%d payments after a second confirmation", n)
	}

	// A downgrade shows the credit, and the subscription page the balance.
	r = b.get(base + "/change/review?plan=basic&quantity=1")
	wantStatus(t, r, http.StatusOK)
	q2, err := f.ledger.QuoteSubscriptionChange(f.ctx, c.ID, sub.ID, ledger.SubscriptionChange{PlanID: "basic", Quantity: 1,
		Proration: ledger.ProrateCreate, Effective: ledger.EffectiveImmediately})
	if err != nil || q2.Credit <= 0 {
		t.Fatalf("quote %+v, %v", q2, err)
	}
	credit := formatMoney("es", q2.Credit, ledger.ARS)
	wantBody(t, r, "Se acreditan "+credit+" a tu saldo a favor")
	wantRedirect(t, b.submit(base+"/change", confirmForm(t, r)), base)
	wantBody(t, b.get(base), "Saldo a favor", credit)
	if n := len(f.subPayments(sub.ID)); n != 2 {
		t.Fatalf("a credit made a payment: %d", n)
	}

	t.Run("in English", func(t *testing.T) {
		r := b.get(base + "/change?lang=en")
		r = b.get(base + "/change")
		wantBody(t, r, "Professional", "ARS 4,000.00 per month", "Review the change")
		r = b.get(base + "/change/review?plan=pro")
		wantBody(t, r, "is charged today for the rest of the period")
		b.get("/?lang=es")
	})
}

// What the pages do not offer is refused on the server too.
func TestPlanChangeRefusesWhatTheRulesDoNotAllow(t *testing.T) {
	f := newFixture(t, withPlanChanges())
	c, sub := f.planChangeSetup("strict@example.com")
	stranger, theirs := f.customer("other@example.com", "Other"), ledger.Subscription{}
	theirs, _, err := f.ledger.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: stranger.ID, PlanID: "basic"})
	if err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.signIn(c)
	base := "/subscriptions/" + sub.ID
	r := b.get(base + "/change/review?plan=pro")
	good := confirmForm(t, r)
	with := func(k, v string) url.Values {
		out := cloneForm(good)
		out.Set(k, v)
		return out
	}
	unchanged := func(what string) {
		t.Helper()
		if got := f.sub(sub.ID); got.PlanID != "basic" || got.Quantity != 1 || got.ChangeRevision != 0 {
			t.Fatalf("%s changed the subscription: %+v", what, got)
		}
		if n := len(f.subPayments(sub.ID)); n != 1 {
			t.Fatalf("%s made a payment", what)
		}
	}
	for _, c := range []struct {
		name string
		form url.Values
		code int
	}{
		{"a plan the portal does not list", with("plan", "secret"), http.StatusUnprocessableEntity},
		{"a plan in another currency", with("plan", "dollars"), http.StatusUnprocessableEntity},
		{"an archived plan", with("plan", "old"), http.StatusUnprocessableEntity},
		{"a plan that does not exist", with("plan", "missing"), http.StatusUnprocessableEntity},
		{"a quantity above the maximum", with("quantity", "11"), http.StatusUnprocessableEntity},
		{"a quantity that is not a number", with("quantity", "2x"), http.StatusUnprocessableEntity},
		{"an amount other than the one shown", with("prorated", "1"), http.StatusConflict},
		{"a quote from the future", with("at", strconv.FormatInt(f.clock.Now().Add(time.Hour).Unix(), 10)), http.StatusConflict},
		{"a stale quote", with("at", strconv.FormatInt(f.clock.Now().Add(-ledger.QuoteValidity-time.Minute).Unix(), 10)), http.StatusConflict},
	} {
		b.get(base + "/change")
		r := b.submit(base+"/change", c.form)
		wantStatus(t, r, c.code)
		unchanged(c.name)
	}
	// A quote that no longer holds is shown again, up to date, with a confirmation of its own.
	b.get(base + "/change")
	r = b.submit(base+"/change", with("prorated", "1"))
	wantBody(t, r, "El importe se actualizó", "Confirmar el cambio")

	b.get(base + "/change")
	wantStatus(t, b.forge(base+"/change", good), http.StatusForbidden)
	unchanged("a form without the CSRF token")
	wantStatus(t, b.get("/subscriptions/"+theirs.ID+"/change"), http.StatusNotFound)
	wantStatus(t, b.get("/subscriptions/"+theirs.ID+"/change/review?plan=pro"), http.StatusNotFound)
	b.get(base + "/change")
	wantStatus(t, b.submit("/subscriptions/"+theirs.ID+"/change", good), http.StatusNotFound)

	// Quantities only when the rules allow them.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.SubscriptionUpdate.Quantity = false })
	r = b.get(base + "/change")
	wantNoBody(t, r, `name="quantity"`)
	b.get(base + "/change")
	wantStatus(t, b.submit(base+"/change", with("quantity", "2")), http.StatusUnprocessableEntity)
	unchanged("a quantity change the rules do not allow")

	// Without the permission, or with changes switched off, the pages are gone, applied live.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdateSubscriptions = ptr.To(false) })
	wantNoBody(t, b.get(base), "/change")
	wantStatus(t, b.get(base+"/change"), http.StatusForbidden)
	wantStatus(t, b.get(base+"/change/review?plan=pro"), http.StatusForbidden)
	b.get(base)
	wantStatus(t, b.submit(base+"/change", good), http.StatusForbidden)
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Permissions.UpdateSubscriptions = ptr.To(true)
		s.SubscriptionUpdate.Enabled = false
	})
	wantStatus(t, b.get(base+"/change"), http.StatusForbidden)
	unchanged("a request with changes switched off")
}

func TestPlanChangeAtPeriodEnd(t *testing.T) {
	f := newFixture(t, withPlanChanges(), withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.SubscriptionUpdate.Effective = billingv1alpha1.UpdateAtPeriodEnd
	}))
	c, sub := f.planChangeSetup("later@example.com")
	b := f.browser()
	b.signIn(c)
	base := "/subscriptions/" + sub.ID
	r := b.get(base + "/change/review?plan=pro")
	wantBody(t, r, "El cambio se aplica el "+formatDate("es", sub.CurrentPeriodEnd), "Hoy no se cobra nada.")
	wantRedirect(t, b.submit(base+"/change", confirmForm(t, r)), base)
	got := f.sub(sub.ID)
	if got.PlanID != "basic" || got.Pending == nil || got.Pending.PlanID != "pro" || len(f.subPayments(sub.ID)) != 1 {
		t.Fatalf("scheduled: %+v", got)
	}
	wantBody(t, b.get(base), "se aplica el cambio de plan que elegiste")
}

func TestUpdateSubscriptionDeepLink(t *testing.T) {
	f := newFixture(t, withPlanChanges())
	c, sub := f.planChangeSetup("link@example.com")
	flow := &billingv1alpha1.Flow{Type: billingv1alpha1.FlowUpdateSubscription, SubscriptionID: sub.ID}
	_, tok := f.session("change", billingv1alpha1.CustomerReference{ID: c.ID}, flow, time.Hour)
	b := f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/subscriptions/"+sub.ID+"/change")
	wantStatus(t, b.get("/subscriptions/"+sub.ID+"/change"), http.StatusOK)

	p := f.rules.Portal(f.ctx).DeepCopy()
	p.Spec.Permissions.UpdateSubscriptions = ptr.To(false)
	ps := &billingv1alpha1.PortalSession{}
	ps.Spec.Flow = flow
	if got := flowTarget(p, ps); got != "/subscriptions/"+sub.ID {
		t.Fatalf("without the permission the link leads to %s", got)
	}
}

// A plan of another interval is offered too; choosing it starts a new period, and the review
// says what the new period costs less what is left of the current one.
func TestPlanChangeToAnotherInterval(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Permissions.UpdateSubscriptions = ptr.To(true)
		s.SubscriptionUpdate = billingv1alpha1.SubscriptionUpdate{Enabled: true, Plans: []string{"basic", "pro", "anual"}}
	}))
	c, sub := f.planChangeSetup("yearly@example.com")
	if _, _, err := f.ledger.CreatePlan(f.ctx, ledger.NewPlan{ID: "anual", NameES: "Anual", NameEN: "Yearly", Amount: 2500000,
		Currency: ledger.ARS, Interval: ledger.Year}); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.signIn(c)
	base := "/subscriptions/" + sub.ID
	r := b.get(base + "/change")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `value="anual"`, "$ 25.000,00 por año", "el período de facturación empieza de nuevo")

	quote, err := f.ledger.QuoteSubscriptionChange(f.ctx, c.ID, sub.ID, ledger.SubscriptionChange{PlanID: "anual",
		Proration: ledger.ProrateCreate, Effective: ledger.EffectiveImmediately})
	if err != nil || !quote.IntervalChange || quote.Unused <= 0 || quote.AmountDue != 2500000-quote.Unused {
		t.Fatalf("quote %+v, %v", quote, err)
	}
	due, unused := formatMoney("es", quote.AmountDue, ledger.ARS), formatMoney("es", quote.Unused, ledger.ARS)
	next := formatDate("es", quote.NewPeriodEnd)
	r = b.get(base + "/change/review?plan=anual")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Hoy se cobran "+due+" por el primer período del plan nuevo, hasta el "+next,
		"Lo que queda sin usar de tu plan actual ("+unused+") se descuenta del precio del plan nuevo ($ 25.000,00)",
		"el próximo cobro es el "+next+", de $ 25.000,00 por año", "$ 2.500,00 por mes")
	wantRedirect(t, b.submit(base+"/change", confirmForm(t, r)), base)
	got := f.sub(sub.ID)
	if got.PlanID != "anual" || got.Interval != ledger.Year || !got.CurrentPeriodEnd.Equal(quote.NewPeriodEnd) {
		t.Fatalf("after the change: %+v", got)
	}
	if pays := f.subPayments(sub.ID); len(pays) != 2 || pays[0].Amount != quote.AmountDue || pays[0].Status != ledger.PaymentSucceeded {
		t.Fatalf("payments %+v", pays)
	}
	wantBody(t, b.get(base), "Anual", "por año")

	// Back to monthly, in English: the unused year is worth more than a month, so it is credited.
	b.get(base + "/change/review?plan=basic&lang=en") // sets the language and comes back without it
	r = b.get(base + "/change/review?plan=basic")
	wantStatus(t, r, http.StatusOK)
	q2, err := f.ledger.QuoteSubscriptionChange(f.ctx, c.ID, sub.ID, ledger.SubscriptionChange{PlanID: "basic",
		Proration: ledger.ProrateCreate, Effective: ledger.EffectiveImmediately})
	if err != nil || q2.Credit != q2.Unused-250000 || q2.Credit <= 0 {
		t.Fatalf("quote %+v, %v", q2, err)
	}
	wantBody(t, r, formatMoney("en", q2.Credit, ledger.ARS)+" is credited to your balance",
		"the period starts again today: the next charge is on "+formatDate("en", q2.NewPeriodEnd))

	// With AlwaysCharge nothing is credited, and the review says what is given up.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.SubscriptionUpdate.Proration = billingv1alpha1.ProrationAlwaysCharge
	})
	r = b.get(base + "/change/review?plan=basic")
	wantBody(t, r, "Nothing is charged or credited today.", "the difference ("+formatMoney("en", q2.Credit, ledger.ARS)+") is not credited")
	// At the period's end, the choice says a new period starts then.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.SubscriptionUpdate.Effective = billingv1alpha1.UpdateAtPeriodEnd
	})
	wantBody(t, b.get(base+"/change"), "a new period at that interval starts when this one ends")
}
