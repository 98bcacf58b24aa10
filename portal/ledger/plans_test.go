package ledger

import (
	"errors"
	"slices"
	"testing"
)

// catalogueTables are the merchant's catalogue: no customer owns their rows, so they carry no
// version triggers (TestVersionTriggersCoverEveryTable).
var catalogueTables = []string{"plans"}

// creditTables belong to a customer and carry the version triggers; TestCreditRowsChangeTheCustomerVersion
// writes them by hand.
var creditTables = []string{"credit_transactions"}

// planStoreMethods are the Store's plan methods for TestEveryWriteChangesTheCustomerVersion: the
// catalogue's (no customer's data), reads, and ChangeSubscription, whose version change
// TestChangeSubscriptionChangesTheCustomerVersion proves.
var planStoreMethods = []string{"CreatePlan", "GetPlan", "GetPlans", "ListPlans", "ArchivePlan",
	"QuoteSubscriptionChange", "CreditBalance", "ChangeSubscription"}

func basicPlan(id string) NewPlan {
	return NewPlan{ID: id, NameES: "Básico", NameEN: "Basic", Amount: 250000, Currency: ARS, Interval: Month, MaxQuantity: 10}
}

func (e *env) plan(t testing.TB, in NewPlan) Plan {
	t.Helper()
	p, _, err := e.store.CreatePlan(e.ctx, in)
	if err != nil {
		t.Fatalf("CreatePlan(%s): %v", in.ID, err)
	}
	return p
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if CodeOf(err) != code {
		t.Fatalf("error %v (code %q), want code %q", err, CodeOf(err), code)
	}
}

func TestPlanCatalogue(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		p, created, err := e.store.CreatePlan(e.ctx, basicPlan("basic-monthly"))
		if err != nil || !created {
			t.Fatalf("CreatePlan = %+v, %v, %v", p, created, err)
		}
		if p.Name("es") != "Básico" || p.Name("en") != "Basic" || p.Amount != 250000 || p.MaxQuantity != 10 || p.Archived() ||
			!p.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("plan %+v", p)
		}
		// The same plan again (a set-up script run twice) is the same plan; other fields are
		// a conflict: plans are not edited.
		again, created, err := e.store.CreatePlan(e.ctx, basicPlan("basic-monthly"))
		if err != nil || created || again != p {
			t.Fatalf("CreatePlan again = %+v, %v, %v", again, created, err)
		}
		dearer := basicPlan("basic-monthly")
		dearer.Amount++
		_, _, err = e.store.CreatePlan(e.ctx, dearer)
		wantCode(t, err, CodePlanExists)

		for _, bad := range []struct {
			field string
			code  string
			edit  func(*NewPlan)
		}{
			{"id", CodeRequired, func(p *NewPlan) { p.ID = "" }},
			{"id", CodeInvalidField, func(p *NewPlan) { p.ID = "-starts-with-a-dash" }},
			{"id", CodeInvalidField, func(p *NewPlan) { p.ID = "has space" }},
			{"id", CodeInvalidField, func(p *NewPlan) { p.ID = "ñandú" }},
			{"name.es", CodeRequired, func(p *NewPlan) { p.NameES = " " }},
			{"name.en", CodeInvalidField, func(p *NewPlan) { p.NameEN = "two\nlines" }},
			{"amount", CodeInvalidAmount, func(p *NewPlan) { p.Amount = 0 }},
			{"currency", CodeUnsupportedCurrency, func(p *NewPlan) { p.Currency = "EUR" }},
			{"interval", CodeInvalidField, func(p *NewPlan) { p.Interval = "day" }},
			{"max_quantity", CodeInvalidField, func(p *NewPlan) { p.MaxQuantity = -1 }},
			{"max_quantity", CodeInvalidField, func(p *NewPlan) { p.MaxQuantity = MaxPlanQuantity + 1 }},
		} {
			in := basicPlan("other")
			bad.edit(&in)
			_, _, err := e.store.CreatePlan(e.ctx, in)
			var le *Error
			if !errors.As(err, &le) || le.Code != bad.code || (le.Field != bad.field && bad.code != CodeUnsupportedCurrency) {
				t.Errorf("%s: %v, want %s on %s", bad.field, err, bad.code, bad.field)
			}
		}
		if _, err := e.store.GetPlan(e.ctx, "other"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a refused plan was stored: %v", err)
		}

		e.clock.Advance(1000)
		pro := e.plan(t, NewPlan{ID: "pro-monthly", NameES: "Pro", NameEN: "Pro", Amount: 400000, Currency: ARS, Interval: Month})
		e.clock.Advance(1000)
		e.plan(t, NewPlan{ID: "usd", NameES: "Dólares", NameEN: "Dollars", Amount: 900, Currency: USD, Interval: Month})
		archived, err := e.store.ArchivePlan(e.ctx, "usd")
		if err != nil || !archived.Archived() {
			t.Fatalf("ArchivePlan = %+v, %v", archived, err)
		}
		e.clock.Advance(1000)
		if again, err := e.store.ArchivePlan(e.ctx, "usd"); err != nil || !again.ArchivedAt.Equal(archived.ArchivedAt) {
			t.Fatalf("archiving again moved the date: %+v, %v", again, err)
		}
		if _, err := e.store.ArchivePlan(e.ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ArchivePlan(nope) = %v", err)
		}

		ids := func(pg Page[Plan]) []string {
			var out []string
			for _, p := range pg.Items {
				out = append(out, p.ID)
			}
			return out
		}
		all, err := e.store.ListPlans(e.ctx, ListPlansParams{})
		if err != nil || !slices.Equal(ids(all), []string{"usd", "pro-monthly", "basic-monthly"}) {
			t.Fatalf("ListPlans = %v, %v", ids(all), err)
		}
		active := false
		list, err := e.store.ListPlans(e.ctx, ListPlansParams{Archived: &active, Limit: 1})
		if err != nil || !slices.Equal(ids(list), []string{"pro-monthly"}) || list.NextCursor == "" {
			t.Fatalf("active plans, first page = %v (%q), %v", ids(list), list.NextCursor, err)
		}
		list, err = e.store.ListPlans(e.ctx, ListPlansParams{Archived: &active, Limit: 1, Cursor: list.NextCursor})
		if err != nil || !slices.Equal(ids(list), []string{"basic-monthly"}) || list.NextCursor != "" {
			t.Fatalf("active plans, second page = %v (%q), %v", ids(list), list.NextCursor, err)
		}
		got, err := e.store.GetPlans(e.ctx, []string{"pro-monthly", "usd", "missing"})
		if err != nil || len(got) != 2 || got["pro-monthly"] != pro || !got["usd"].Archived() {
			t.Fatalf("GetPlans = %+v, %v", got, err)
		}
	})
}

func TestSubscriptionOnAPlan(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "plan@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		e.plan(t, basicPlan("basic"))
		sub, first, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, PlanID: "basic", Quantity: 3})
		if err != nil {
			t.Fatal(err)
		}
		if sub.PlanID != "basic" || sub.Plan != "Básico" || sub.PlanName("en") != "Basic" || sub.Quantity != 3 ||
			sub.Amount != 750000 || sub.Currency != ARS || sub.Interval != Month || sub.Pending != nil {
			t.Fatalf("subscription %+v", sub)
		}
		if first.Amount != 750000 || first.Description != "Básico × 3" || first.Status != PaymentSucceeded {
			t.Fatalf("first payment %+v", first)
		}
		// The free-text plan keeps working, quantity 1.
		free, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "A medida", Amount: 1000,
			Currency: ARS, Interval: Month})
		if err != nil || free.PlanID != "" || free.Quantity != 1 || free.PlanName("en") != "A medida" {
			t.Fatalf("free-text subscription %+v, %v", free, err)
		}
		summaries, err := e.store.ListSubscriptionSummaries(e.ctx, c.ID)
		if err != nil || len(summaries) != 2 {
			t.Fatalf("summaries %+v, %v", summaries, err)
		}
		for _, got := range summaries {
			if got.ID == sub.ID && (got.PlanID != "basic" || got.Quantity != 3 || got.PlanEN != "Basic") {
				t.Fatalf("summary %+v", got)
			}
		}

		for _, bad := range []struct {
			name string
			in   NewSubscription
			code string
		}{
			{"amount with a plan", NewSubscription{CustomerID: c.ID, PlanID: "basic", Amount: 5}, CodeInvalidField},
			{"currency with a plan", NewSubscription{CustomerID: c.ID, PlanID: "basic", Currency: ARS}, CodeInvalidField},
			{"quantity above the maximum", NewSubscription{CustomerID: c.ID, PlanID: "basic", Quantity: 11}, CodeQuantityAboveMaximum},
			{"negative quantity", NewSubscription{CustomerID: c.ID, PlanID: "basic", Quantity: -1}, CodeInvalidField},
			{"unknown plan", NewSubscription{CustomerID: c.ID, PlanID: "nope"}, CodeNotFound},
			{"quantity without a plan", NewSubscription{CustomerID: c.ID, Plan: "X", Amount: 1, Currency: ARS, Interval: Month, Quantity: 2}, CodeInvalidField},
		} {
			_, _, err := e.store.CreateSubscription(e.ctx, bad.in)
			if CodeOf(err) != bad.code {
				t.Errorf("%s: %v, want %s", bad.name, err, bad.code)
			}
		}
		if _, err := e.store.ArchivePlan(e.ctx, "basic"); err != nil {
			t.Fatal(err)
		}
		_, _, err = e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, PlanID: "basic"})
		wantCode(t, err, CodePlanArchived)
		// Subscriptions on an archived plan keep it.
		if got, err := e.store.GetSubscription(e.ctx, sub.ID); err != nil || got.PlanID != "basic" || got.Amount != 750000 {
			t.Fatalf("after archiving: %+v, %v", got, err)
		}
	})
}

// A retried creation with the same key and plan finds the subscription it made.
func TestSubscriptionOnAPlanIsIdempotent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "idem@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		e.plan(t, basicPlan("basic"))
		in := NewSubscription{CustomerID: c.ID, PlanID: "basic", Quantity: 2, IdempotencyKey: "k1"}
		first, err := e.store.CreateSubscriptionIdempotent(e.ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.store.CreateSubscriptionIdempotent(e.ctx, in)
		if err != nil || !again.Replayed || again.Subscription.ID != first.Subscription.ID || again.InitialPayment.ID != first.InitialPayment.ID {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		in.Quantity = 3
		_, err = e.store.CreateSubscriptionIdempotent(e.ctx, in)
		wantCode(t, err, CodeIdempotencyConflict)
		if n := e.proc.chargesFor(first.InitialPayment.ID); n != 1 {
			t.Fatalf("charged %d times", n)
		}
	})
}
