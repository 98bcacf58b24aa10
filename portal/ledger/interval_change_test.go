package ledger

import (
	"testing"
	"time"
)

// Changes to a plan of another interval start a new period (restart in proration.go).

// yearlyPlan is $ 25.000,00 a year.
func yearlyPlan(id string) NewPlan {
	return NewPlan{ID: id, NameES: "Anual", NameEN: "Yearly", Amount: 2500000, Currency: ARS, Interval: Year}
}

func TestRestartRule(t *testing.T) {
	start := time.Date(2026, time.February, 1, 3, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 0, 28)
	for _, c := range []struct {
		name                             string
		days                             int // into the period
		oldPrice, newPrice               int64
		b                                ProrationBehavior
		unused, prorated, charge, credit int64
	}{
		// 250 000 × 18/28 = 160 714.29 → 160 714 unused; the year costs 2 500 000.
		{"up, create", 10, 250000, 2500000, ProrateCreate, 160714, 2339286, 2339286, 0},
		{"up, always charge", 10, 250000, 2500000, ProrateAlwaysCharge, 160714, 2339286, 2339286, 0},
		{"up, none: the new period whole", 10, 250000, 2500000, ProrateNone, 0, 2500000, 2500000, 0},
		// 2 500 000 × 18/28 = 1 607 142.86 → 1 607 143 unused, more than a 250 000 period.
		{"down, create: the rest credited", 10, 2500000, 250000, ProrateCreate, 1607143, -1357143, 0, 1357143},
		{"down, always charge: nothing credited", 10, 2500000, 250000, ProrateAlwaysCharge, 1607143, -1357143, 0, 0},
		{"down, none", 10, 2500000, 250000, ProrateNone, 0, 250000, 250000, 0},
		// Half a centavo rounds away from zero: 1 × 14/28 = 0.5 → 1.
		{"half a centavo", 14, 1, 100, ProrateCreate, 1, 99, 99, 0},
		{"first second: all of the old period unused", 0, 250000, 2500000, ProrateCreate, 250000, 2250000, 2250000, 0},
		{"unused worth the new price: nothing either way", 14, 500000, 250000, ProrateCreate, 250000, 0, 0, 0},
	} {
		p := restart(start, end, start.AddDate(0, 0, c.days), c.oldPrice, c.newPrice, c.b)
		if p.Unused != c.unused || p.Prorated != c.prorated || p.Charge != c.charge || p.Credit != c.credit {
			t.Errorf("%s: unused %d prorated %d charge %d credit %d, want %d %d %d %d", c.name,
				p.Unused, p.Prorated, p.Charge, p.Credit, c.unused, c.prorated, c.charge, c.credit)
		}
	}
}

func TestMonthlyToYearlyAtOnceStartsAYear(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.plan(t, yearlyPlan("anual"))
		e.clock.Advance(tenDays)
		at := e.clock.Now().Truncate(time.Second)
		quote, err := e.store.QuoteSubscriptionChange(e.ctx, ce.c.ID, ce.sub.ID, SubscriptionChange{PlanID: "anual",
			Proration: ProrateCreate, Effective: EffectiveImmediately})
		if err != nil {
			t.Fatal(err)
		}
		wantEnd := time.Date(2027, time.February, 10, 15, 0, 0, 0, time.UTC)
		if !quote.IntervalChange || quote.Unused != 160714 || quote.Prorated != 2339286 || quote.Charge != 2339286 ||
			quote.Credit != 0 || quote.From.Interval != Month || quote.To.Interval != Year ||
			!quote.NewPeriodStart.Equal(at) || !quote.NewPeriodEnd.Equal(wantEnd) || !quote.EffectiveAt.Equal(at) {
			t.Fatalf("quote %+v", quote)
		}
		res := ce.change(t, SubscriptionChange{PlanID: "anual", At: quote.At, Revision: &quote.Revision, Prorated: &quote.Prorated})
		sub := res.Subscription
		if !res.Changed || sub.PlanID != "anual" || sub.Interval != Year || sub.Amount != 2500000 ||
			!sub.CurrentPeriodStart.Equal(at) || !sub.CurrentPeriodEnd.Equal(wantEnd) || !sub.BillingAnchor.Equal(at) {
			t.Fatalf("after the change: %+v", sub)
		}
		if p := res.Payment; p.Amount != 2339286 || p.Status != PaymentSucceeded || p.SubscriptionID != ce.sub.ID ||
			p.Description != "Básico → Anual" || e.proc.chargesFor(p.ID) != 1 {
			t.Fatalf("the change's payment %+v", p)
		}
		// Nothing is due until the new period ends; then the year is billed whole.
		if renewed, err := e.store.RenewDue(e.ctx, wantEnd.Add(-time.Second)); err != nil || len(renewed.Payments) != 0 {
			t.Fatalf("renewal before the year ends: %+v, %v", renewed.Payments, err)
		}
		renewed, err := e.store.RenewDue(e.ctx, wantEnd)
		if err != nil || len(renewed.Payments) != 1 || renewed.Payments[0].Amount != 2500000 {
			t.Fatalf("renewal: %+v, %v", renewed.Payments, err)
		}
		after, _ := e.store.GetSubscription(e.ctx, ce.sub.ID)
		if !after.CurrentPeriodStart.Equal(wantEnd) || !after.CurrentPeriodEnd.Equal(wantEnd.AddDate(1, 0, 0)) {
			t.Fatalf("second year [%s, %s)", after.CurrentPeriodStart, after.CurrentPeriodEnd)
		}
	})
}

func TestYearlyToMonthlyCreditsTheUnusedYear(t *testing.T) {
	for _, c := range []struct {
		b              ProrationBehavior
		credit, charge int64
	}{
		// 2 500 000 × 355/365 = 2 431 506.85 → 2 431 507 unused; less the month's 250 000.
		{ProrateCreate, 2181507, 0},
		{ProrateAlwaysCharge, 0, 0},
		{ProrateNone, 0, 250000},
	} {
		t.Run(string(c.b), func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, e *env) {
				cu := e.customer(t, "yearly@example.com")
				e.addMethod(t, cu.ID, card("4242424242424242"))
				e.plan(t, basicPlan("basic"))
				e.plan(t, yearlyPlan("anual"))
				sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: cu.ID, PlanID: "anual"})
				if err != nil {
					t.Fatal(err)
				}
				e.clock.Advance(tenDays)
				at := e.clock.Now().Truncate(time.Second)
				res, err := e.store.ChangeSubscription(e.ctx, cu.ID, sub.ID, SubscriptionChange{PlanID: "basic",
					Proration: c.b, Effective: EffectiveImmediately, Processor: "sandbox"})
				if err != nil {
					t.Fatal(err)
				}
				q := res.Quote
				if q.RemainingSeconds != 355*86400 || q.PeriodSeconds != 365*86400 || q.Credit != c.credit || q.Charge != c.charge {
					t.Fatalf("quote %+v", q)
				}
				if res.CreditBalance != c.credit || (c.charge == 0) != (res.Payment.ID == "") {
					t.Fatalf("balance %d, payment %+v", res.CreditBalance, res.Payment)
				}
				s := res.Subscription
				// The anchor is the change: months end on the 10th (of the billing zone).
				if s.Interval != Month || !s.CurrentPeriodStart.Equal(at) || !s.CurrentPeriodEnd.Equal(at.AddDate(0, 1, 0)) {
					t.Fatalf("after the change: %+v", s)
				}
				if c.b != ProrateCreate {
					return
				}
				// The credit pays the next months whole: no payment at the renewal.
				renewed, err := e.store.RenewDue(e.ctx, s.CurrentPeriodEnd)
				if err != nil || len(renewed.Payments) != 0 {
					t.Fatalf("renewal: %+v, %v", renewed.Payments, err)
				}
				if b, _ := e.store.CreditBalance(e.ctx, cu.ID, ARS); b != c.credit-250000 {
					t.Fatalf("balance after a month: %d", b)
				}
			})
		})
	}
}

func TestIntervalChangeAtPeriodEnd(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.plan(t, yearlyPlan("anual"))
		e.clock.Advance(tenDays)
		res := ce.change(t, SubscriptionChange{PlanID: "anual", Effective: EffectiveAtPeriodEnd})
		q := res.Quote
		// The period ends on 28 February; the year keeps the anchor's day, clamped: 28 February 2027.
		periodEnd := ce.sub.CurrentPeriodEnd
		if !res.Changed || !q.IntervalChange || q.Charge != 0 || q.Credit != 0 || !q.NewPeriodStart.Equal(periodEnd) ||
			!q.NewPeriodEnd.Equal(periodEnd.AddDate(1, 0, 0)) || res.Payment.ID != "" {
			t.Fatalf("scheduled: %+v", res)
		}
		if s := res.Subscription; s.Interval != Month || s.PlanID != "basic" || s.Pending == nil || s.Pending.PlanID != "anual" {
			t.Fatalf("scheduled subscription %+v", s)
		}
		renewed, err := e.store.RenewDue(e.ctx, periodEnd)
		if err != nil || len(renewed.Payments) != 1 || renewed.Payments[0].Amount != 2500000 || renewed.Payments[0].Description != "Anual" {
			t.Fatalf("renewal: %+v, %v", renewed.Payments, err)
		}
		after, _ := e.store.GetSubscription(e.ctx, ce.sub.ID)
		if after.Interval != Year || after.PlanID != "anual" || after.Pending != nil ||
			!after.CurrentPeriodStart.Equal(periodEnd) || !after.CurrentPeriodEnd.Equal(q.NewPeriodEnd) {
			t.Fatalf("after the renewal: %+v", after)
		}
		if p := renewed.Payments[0]; !p.PeriodStart.Equal(periodEnd) || !p.PeriodEnd.Equal(q.NewPeriodEnd) {
			t.Fatalf("the renewal bills [%s, %s)", p.PeriodStart, p.PeriodEnd)
		}
	})
}

// The change's charge is the new period's payment: declined, the subscription is past due; and a
// past-due period, unpaid, is worth nothing to take off a later change.
func TestIntervalChangeChargeIsTheNewPeriodsPayment(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ce := newChangeEnv(t, e, 1)
		e.plan(t, yearlyPlan("anual"))
		declining := e.addMethod(t, ce.c.ID, card("4000000000000002"))
		if _, err := e.store.MakePreferred(e.ctx, ce.c.ID, declining.ID); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(tenDays)
		res := ce.change(t, SubscriptionChange{PlanID: "anual"})
		p := res.Payment
		if p.Status != PaymentFailed || !p.PeriodStart.Equal(res.Quote.NewPeriodStart) || !p.PeriodEnd.Equal(res.Quote.NewPeriodEnd) {
			t.Fatalf("the change's payment %+v", p)
		}
		sub, _ := e.store.GetSubscription(e.ctx, ce.sub.ID)
		if sub.Status != SubscriptionPastDue {
			t.Fatalf("a declined change left the subscription %s", sub.Status)
		}
		// Back to monthly an hour later: the unpaid year gives nothing back.
		e.clock.Advance(time.Hour)
		back := ce.change(t, SubscriptionChange{PlanID: "basic"})
		if q := back.Quote; !q.PeriodUnpaid || q.Unused != 0 || q.Credit != 0 || q.Charge != 250000 || back.CreditBalance != 0 {
			t.Fatalf("back to monthly from an unpaid year: %+v, balance %d", q, back.CreditBalance)
		}
		// Paid with a card that works, the subscription is in good standing again.
		good := e.addMethod(t, ce.c.ID, card("5555555555554444"))
		if _, err := e.store.MakePreferred(e.ctx, ce.c.ID, good.ID); err != nil {
			t.Fatal(err)
		}
		if paid, err := e.store.RetryPayment(e.ctx, ce.c.ID, back.Payment.ID); err != nil || paid.Status != PaymentSucceeded {
			t.Fatalf("paying the new month: %+v, %v", paid, err)
		}
		if sub, _ := e.store.GetSubscription(e.ctx, ce.sub.ID); sub.Status != SubscriptionActive {
			t.Fatalf("after paying the new period: %s", sub.Status)
		}
	})
}

// A weekly subscription moving to a monthly plan at the period's end: the month is anchored at
// its own start, not on the day the subscription first began.
func TestWeeklyToMonthlyAtPeriodEndIsAMonth(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		cu := e.customer(t, "weekly@example.com")
		e.addMethod(t, cu.ID, card("4242424242424242"))
		e.plan(t, basicPlan("basic"))
		e.plan(t, NewPlan{ID: "semanal", NameES: "Semanal", NameEN: "Weekly", Amount: 70000, Currency: ARS, Interval: Week})
		sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: cu.ID, PlanID: "semanal"})
		if err != nil {
			t.Fatal(err)
		}
		// testStart is 31 January: the first week ends on 7 February, the anchor's day is the 31st.
		res, err := e.store.ChangeSubscription(e.ctx, cu.ID, sub.ID, SubscriptionChange{PlanID: "basic",
			Proration: ProrateCreate, Effective: EffectiveAtPeriodEnd})
		if err != nil {
			t.Fatal(err)
		}
		end := sub.CurrentPeriodEnd
		if want := end.AddDate(0, 1, 0); !res.Quote.NewPeriodEnd.Equal(want) {
			t.Fatalf("the new period would end %s, want %s (a month after %s)", res.Quote.NewPeriodEnd, want, end)
		}
		if _, err := e.store.RenewDue(e.ctx, end); err != nil {
			t.Fatal(err)
		}
		after, _ := e.store.GetSubscription(e.ctx, sub.ID)
		if after.Interval != Month || !after.CurrentPeriodEnd.Equal(end.AddDate(0, 1, 0)) || !after.BillingAnchor.Equal(end) {
			t.Fatalf("after the renewal: %+v", after)
		}
	})
}

// A retried creation still finds the initial payment after a change moved the billing anchor.
func TestSubscriptionReplayAfterAnIntervalChange(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "replay@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		e.plan(t, basicPlan("basic"))
		e.plan(t, yearlyPlan("anual"))
		in := NewSubscription{CustomerID: c.ID, PlanID: "basic", IdempotencyKey: "signup-yearly"}
		first, err := e.store.CreateSubscriptionIdempotent(e.ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.ChangeSubscription(e.ctx, c.ID, first.Subscription.ID, SubscriptionChange{PlanID: "anual",
			Proration: ProrateCreate, Effective: EffectiveAtPeriodEnd}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.RenewDue(e.ctx, first.Subscription.CurrentPeriodEnd); err != nil {
			t.Fatal(err)
		}
		again, err := e.store.CreateSubscriptionIdempotent(e.ctx, in)
		if err != nil || !again.Replayed || again.InitialPayment.ID != first.InitialPayment.ID {
			t.Fatalf("replay: %+v, %v; want the initial payment %s", again.InitialPayment, err, first.InitialPayment.ID)
		}
	})
}
