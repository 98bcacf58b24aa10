package ledger

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, time.UTC) }

// art is an hour of a day in Buenos Aires.
func art(y int, m time.Month, d, h int) time.Time {
	return time.Date(y, m, d, h, 0, 0, 0, ArgentinaTime)
}

func TestPeriodEnd(t *testing.T) {
	tests := []struct {
		name     string
		anchor   time.Time
		interval Interval
		start    time.Time
		want     time.Time
	}{
		{"month", date(2026, 3, 15), Month, date(2026, 3, 15), date(2026, 4, 15)},
		{"31st to February", date(2026, 1, 31), Month, date(2026, 1, 31), date(2026, 2, 28)},
		{"back to the 31st", date(2026, 1, 31), Month, date(2026, 2, 28), date(2026, 3, 31)},
		{"31st to April", date(2026, 1, 31), Month, date(2026, 3, 31), date(2026, 4, 30)},
		{"leap February", date(2028, 1, 30), Month, date(2028, 1, 30), date(2028, 2, 29)},
		{"December to January", date(2026, 12, 5), Month, date(2026, 12, 5), date(2027, 1, 5)},
		{"leap day yearly", date(2028, 2, 29), Year, date(2028, 2, 29), date(2029, 2, 28)},
		{"leap day back", date(2028, 2, 29), Year, date(2031, 2, 28), date(2032, 2, 29)},
		{"week", date(2026, 12, 29), Week, date(2026, 12, 29), date(2027, 1, 5)},
		// 30 January, 22:00 in Buenos Aires: already the 31st in UTC. The day is Buenos Aires'.
		{"evening in Buenos Aires", art(2026, 1, 30, 22), Month, art(2026, 1, 30, 22), art(2026, 2, 28, 22)},
		{"evening, next month", art(2026, 1, 30, 22), Month, art(2026, 3, 30, 22), art(2026, 4, 30, 22)},
		{"evening, yearly", art(2027, 12, 31, 23), Year, art(2027, 12, 31, 23), art(2028, 12, 31, 23)},
	}
	for _, tt := range tests {
		got := periodEnd(tt.anchor, tt.interval, tt.start, ArgentinaTime)
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("%s: periodEnd = %s, want %s (in UTC)", tt.name, got, tt.want)
		}
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		m := e.addMethod(t, c.ID, card("4242424242424242"))
		start := e.clock.Now() // 31 January
		sub, first, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 150000, Currency: ARS, Interval: Month})
		if err != nil {
			t.Fatal(err)
		}
		if sub.Status != SubscriptionActive || !sub.CurrentPeriodStart.Equal(start) ||
			!sub.CurrentPeriodEnd.Equal(time.Date(2026, 2, 28, 15, 0, 0, 0, time.UTC)) {
			t.Fatalf("subscription = %+v", sub)
		}
		if first.Status != PaymentSucceeded || first.SubscriptionID != sub.ID || first.Amount != 150000 ||
			!first.PeriodStart.Equal(sub.CurrentPeriodStart) || !first.PeriodEnd.Equal(sub.CurrentPeriodEnd) ||
			first.PaymentMethodID != m.ID || first.Description != "Pro" {
			t.Fatalf("first payment = %+v", first)
		}

		// Nothing is due before the period ends.
		res, err := e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd.Add(-time.Millisecond))
		if err != nil || len(res.Payments) != 0 {
			t.Fatalf("early RenewDue = %+v, %v", res, err)
		}
		res, err = e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if err != nil || len(res.Payments) != 1 || len(res.Incomplete) != 0 {
			t.Fatalf("RenewDue = %+v, %v", res, err)
		}
		renewal := res.Payments[0]
		if renewal.Status != PaymentSucceeded || !renewal.PeriodStart.Equal(sub.CurrentPeriodEnd) ||
			!renewal.PeriodEnd.Equal(time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)) {
			t.Fatalf("renewal = %+v", renewal)
		}
		// Running it again for the same instant bills nothing more.
		res, _ = e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if len(res.Payments) != 0 {
			t.Fatalf("second RenewDue billed %d payments", len(res.Payments))
		}

		// Scheduled cancellation: still active, not renewed at the period end.
		canceled, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelAtPeriodEnd, "too expensive")
		if err != nil {
			t.Fatal(err)
		}
		if canceled.Status != SubscriptionActive || !canceled.CancelAtPeriodEnd || canceled.CancellationReason != "too expensive" {
			t.Fatalf("cancel at period end = %+v", canceled)
		}
		res, err = e.store.RenewDue(e.ctx, date(2026, 4, 1))
		if err != nil || len(res.Payments) != 0 || len(res.Canceled) != 1 {
			t.Fatalf("RenewDue at the end = %+v, %v", res, err)
		}
		ended := res.Canceled[0]
		if ended.Status != SubscriptionCanceled || !ended.CanceledAt.Equal(canceled.CurrentPeriodEnd) {
			t.Fatalf("ended subscription = %+v", ended)
		}
		if _, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelImmediately, ""); !errors.Is(err, ErrSubscriptionCanceled) {
			t.Fatalf("cancel twice: %v", err)
		}
		if res, _ := e.store.RenewDue(e.ctx, date(2027, 1, 1)); len(res.Payments)+len(res.Canceled) != 0 {
			t.Fatalf("canceled subscription renewed: %+v", res)
		}
		subs, err := e.store.ListSubscriptions(e.ctx, c.ID)
		if err != nil || len(subs) != 1 {
			t.Fatalf("ListSubscriptions = %+v %v", subs, err)
		}
	})
}

// TestCancelImmediatelyClosesUnpaidPayments: a subscription canceled at once does not owe the
// periods it did not pay. Its incomplete and failed payments are closed (failed,
// subscription_canceled): a method added later does not charge them, they cannot be retried,
// and they are not listed as due. Payments of other subscriptions, and a cancellation at the
// period end, are left alone.
func TestCancelImmediatelyClosesUnpaidPayments(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		mk := func(plan string) (Subscription, Payment) {
			t.Helper()
			sub, first, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: plan,
				Amount: 150000, Currency: ARS, Interval: Month})
			if err != nil || first.Status != PaymentIncomplete {
				t.Fatalf("subscription %s: %+v, %+v, %v", plan, sub, first, err)
			}
			return sub, first
		}
		gone, unpaid := mk("Gone")
		_, owed := mk("Kept")
		later, laterOwed := mk("Later")

		if _, err := e.store.CancelSubscription(e.ctx, c.ID, later.ID, CancelAtPeriodEnd, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.CancelSubscription(e.ctx, c.ID, gone.ID, CancelImmediately, "moving"); err != nil {
			t.Fatal(err)
		}
		closed, err := e.store.GetPayment(e.ctx, unpaid.ID)
		if err != nil || closed.Status != PaymentFailed || closed.FailureCode != payments.CodeSubscriptionCanceled || !closed.Closed() || closed.Due() {
			t.Fatalf("unpaid payment of the canceled subscription = %+v, %v", closed, err)
		}
		due, err := e.store.ListPaymentSummaries(e.ctx, ListPaymentsParams{CustomerID: c.ID, Due: true})
		if err != nil || len(due.Items) != 2 || slices.ContainsFunc(due.Items, func(p Payment) bool { return p.ID == unpaid.ID }) {
			t.Fatalf("due = %+v, %v", due.Items, err)
		}
		if _, err := e.store.RetryPayment(e.ctx, c.ID, unpaid.ID); !errors.Is(err, ErrPaymentState) {
			t.Fatalf("retrying a closed payment: %v", err)
		}

		// The customer adds a method: what is owed is charged, the closed payment is not.
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodWallet, Wallet: "mp"})
		for _, p := range []Payment{owed, laterOwed} {
			if got, _ := e.store.GetPayment(e.ctx, p.ID); got.Status != PaymentSucceeded {
				t.Errorf("payment of a live subscription = %s", got.Status)
			}
		}
		if n, err := e.store.SettleStranded(e.ctx); err != nil || n != 0 {
			t.Fatalf("SettleStranded = %d, %v", n, err)
		}
		if got, _ := e.store.GetPayment(e.ctx, unpaid.ID); !got.Closed() || e.proc.chargesFor(unpaid.ID) != 0 {
			t.Fatalf("closed payment = %+v, charged %d times", got, e.proc.chargesFor(unpaid.ID))
		}
	})
}

func TestCancelImmediatelyAndResume(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodWallet, Wallet: "mp"})
		sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 1000, Currency: USD, Interval: Year})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, "Whenever", ""); CodeOf(err) != CodeInvalidField {
			t.Fatalf("bad mode: %v", err)
		}
		s2, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelAtPeriodEnd, "moving")
		if err != nil || !s2.CancelAtPeriodEnd {
			t.Fatalf("%+v %v", s2, err)
		}
		s2, err = e.store.ResumeSubscription(e.ctx, c.ID, sub.ID)
		if err != nil || s2.CancelAtPeriodEnd || s2.CancellationReason != "" {
			t.Fatalf("resume: %+v %v", s2, err)
		}
		other := e.customer(t, "o@example.com")
		if _, err := e.store.CancelSubscription(e.ctx, other.ID, sub.ID, CancelImmediately, ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cancel by another customer: %v", err)
		}
		if _, err := e.store.GetSubscriptionForCustomer(e.ctx, other.ID, sub.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get by another customer: %v", err)
		}
		e.clock.Advance(time.Hour)
		s2, err = e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelImmediately, "fraud")
		if err != nil || s2.Status != SubscriptionCanceled || !s2.CanceledAt.Equal(e.clock.Now()) || s2.CancellationReason != "fraud" {
			t.Fatalf("cancel immediately: %+v %v", s2, err)
		}
		if _, err := e.store.ResumeSubscription(e.ctx, c.ID, sub.ID); !errors.Is(err, ErrSubscriptionCanceled) {
			t.Fatalf("resume canceled: %v", err)
		}
		if _, err := e.store.SetSubscriptionPaymentMethod(e.ctx, c.ID, sub.ID, ""); !errors.Is(err, ErrSubscriptionCanceled) {
			t.Fatalf("pin on canceled: %v", err)
		}
	})
}

func TestSubscriptionWithoutMethodIsPastDueUntilPaid(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		sub, first, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Basic",
			Amount: 5000, Currency: ARS, Interval: Month})
		if err != nil {
			t.Fatal(err)
		}
		if first.Status != PaymentIncomplete || sub.Status != SubscriptionPastDue {
			t.Fatalf("first %s, subscription %s", first.Status, sub.Status)
		}
		res, err := e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if err != nil || len(res.Incomplete) != 1 || res.Incomplete[0].Status != PaymentIncomplete {
			t.Fatalf("RenewDue = %+v, %v", res, err)
		}
		if hooks := e.incompleteHooks(); len(hooks) != 2 {
			t.Fatalf("%d incomplete hooks, want 2", len(hooks))
		}
		// The customer follows the e-mailed link and adds a method: both periods get paid.
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodDirectDebit, Account: "0110599552000000123456"})
		for _, id := range []string{first.ID, res.Incomplete[0].ID} {
			if p, _ := e.store.GetPayment(e.ctx, id); p.Status != PaymentSucceeded {
				t.Fatalf("payment %s: %s", id, p.Status)
			}
		}
		if got, _ := e.store.GetSubscription(e.ctx, sub.ID); got.Status != SubscriptionActive {
			t.Fatalf("subscription %s after paying", got.Status)
		}
	})
}

func TestFailedRenewalMarksPastDue(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 1000, Currency: ARS, Interval: Week})
		if err != nil {
			t.Fatal(err)
		}
		broke := e.addMethod(t, c.ID, card("4000000000009995"))
		if _, err := e.store.MakePreferred(e.ctx, c.ID, broke.ID); err != nil {
			t.Fatal(err)
		}
		res, err := e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if err != nil || len(res.Payments) != 1 || res.Payments[0].Status != PaymentFailed {
			t.Fatalf("RenewDue = %+v %v", res, err)
		}
		if got, _ := e.store.GetSubscription(e.ctx, sub.ID); got.Status != SubscriptionPastDue {
			t.Fatalf("status after failed renewal: %s", got.Status)
		}
		// The old period's payment succeeding does not matter; this period's does.
		methods := mustMethods(t, e, c.ID)
		if _, err := e.store.MakePreferred(e.ctx, c.ID, methods[1].ID); err != nil {
			t.Fatal(err)
		}
		if p, err := e.store.RetryPayment(e.ctx, c.ID, res.Payments[0].ID); err != nil || p.Status != PaymentSucceeded {
			t.Fatalf("retry: %+v %v", p, err)
		}
		if got, _ := e.store.GetSubscription(e.ctx, sub.ID); got.Status != SubscriptionActive {
			t.Fatalf("status after paying: %s", got.Status)
		}
	})
}

func TestPinnedMethod(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		preferred := e.addMethod(t, c.ID, card("4242424242424242"))
		cbu := e.addMethod(t, c.ID, methodIn{Type: payments.MethodDirectDebit, Account: "2850590940090418135201"})
		sub, first, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 1000, Currency: ARS, Interval: Month, PaymentMethodID: cbu.ID})
		if err != nil {
			t.Fatal(err)
		}
		if first.PaymentMethodID != cbu.ID || sub.PaymentMethodID != cbu.ID {
			t.Fatalf("pinned method not charged: %s", first.PaymentMethodID)
		}
		// One-off payments on the subscription use the pin too; others the preferred method.
		p, _ := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 10, Currency: ARS, SubscriptionID: sub.ID})
		if p.PaymentMethodID != cbu.ID {
			t.Fatalf("subscription one-off charged %s", p.PaymentMethodID)
		}
		if p := e.pay(t, c.ID, 10); p.PaymentMethodID != preferred.ID {
			t.Fatalf("plain payment charged %s", p.PaymentMethodID)
		}
		sub, err = e.store.SetSubscriptionPaymentMethod(e.ctx, c.ID, sub.ID, "")
		if err != nil || sub.PaymentMethodID != "" {
			t.Fatalf("unpin: %+v %v", sub, err)
		}
		res, _ := e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
		if len(res.Payments) != 1 || res.Payments[0].PaymentMethodID != preferred.ID {
			t.Fatalf("unpinned renewal: %+v", res.Payments)
		}
		other := e.customer(t, "o@example.com")
		foreign := e.addMethod(t, other.ID, methodIn{Type: payments.MethodQR})
		if _, err := e.store.SetSubscriptionPaymentMethod(e.ctx, c.ID, sub.ID, foreign.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pin foreign method: %v", err)
		}
		if _, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "X",
			Amount: 1, Currency: ARS, Interval: Month, PaymentMethodID: foreign.ID}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("create with foreign pin: %v", err)
		}
	})
}

func TestRenewDueCatchesUpAndImports(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodWallet, Wallet: "mp"})
		// Imported with its current period already paid: no payment at creation.
		start := date(2025, 11, 30)
		sub, p, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Legacy",
			Amount: 700, Currency: ARS, Interval: Month, StartAt: start, NoInitialPayment: true})
		if err != nil || p.ID != "" {
			t.Fatalf("import: %+v %+v %v", sub, p, err)
		}
		// The portal was down for months: one payment per missed period, anchored on the 30th.
		res, err := e.store.RenewDue(e.ctx, date(2026, 3, 1))
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Time{date(2025, 12, 30), date(2026, 1, 30), date(2026, 2, 28)}
		if len(res.Payments) != len(want) {
			t.Fatalf("%d renewals, want %d", len(res.Payments), len(want))
		}
		for i, p := range res.Payments {
			if !p.PeriodStart.Equal(want[i]) || p.Status != PaymentSucceeded {
				t.Errorf("renewal %d: %s %s", i, p.PeriodStart, p.Status)
			}
		}
		got, _ := e.store.GetSubscription(e.ctx, sub.ID)
		if !got.CurrentPeriodEnd.Equal(date(2026, 3, 30)) {
			t.Fatalf("period end = %s", got.CurrentPeriodEnd)
		}
	})
}

func TestCreateSubscriptionValidation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		tests := []struct {
			in   NewSubscription
			code string
		}{
			{NewSubscription{CustomerID: c.ID, Amount: 1, Currency: ARS, Interval: Month}, CodeRequired},
			{NewSubscription{CustomerID: c.ID, Plan: "P", Amount: -1, Currency: ARS, Interval: Month}, CodeInvalidAmount},
			{NewSubscription{CustomerID: c.ID, Plan: "P", Amount: 1, Currency: "BRL", Interval: Month}, CodeUnsupportedCurrency},
			{NewSubscription{CustomerID: c.ID, Plan: "P", Amount: 1, Currency: ARS, Interval: "day"}, CodeInvalidField},
			{NewSubscription{CustomerID: "cus_missing", Plan: "P", Amount: 1, Currency: ARS, Interval: Month}, CodeNotFound},
		}
		for _, tt := range tests {
			if _, _, err := e.store.CreateSubscription(e.ctx, tt.in); CodeOf(err) != tt.code {
				t.Errorf("%+v: %v, want %s", tt.in, err, tt.code)
			}
		}
	})
}

// TestSubscriptionIdempotency: a retried creation returns the original subscription and its
// initial payment and charges nothing more; the same key for another request is refused.
func TestSubscriptionIdempotency(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		in := NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 150000, Currency: ARS, Interval: Month,
			IdempotencyKey: "signup-1"}
		first, err := e.store.CreateSubscriptionIdempotent(e.ctx, in)
		if err != nil || first.Replayed || first.InitialPayment.Status != PaymentSucceeded {
			t.Fatalf("first: %+v %v", first, err)
		}
		// A day later, and with the currency spelled differently, it is still the same request:
		// a start_at left out is not "now".
		e.clock.Advance(24 * time.Hour)
		retry := in
		retry.Currency = "ars"
		again, err := e.store.CreateSubscriptionIdempotent(e.ctx, retry)
		if err != nil || !again.Replayed || again.Subscription.ID != first.Subscription.ID ||
			again.InitialPayment.ID != first.InitialPayment.ID || len(again.InitialPayment.Attempts) != 1 {
			t.Fatalf("retry: %+v %v", again, err)
		}
		if n := e.proc.chargesFor(first.InitialPayment.ID); n != 1 {
			t.Fatalf("initial payment charged %d times", n)
		}
		// CreateSubscription honours the key too.
		sub, p, err := e.store.CreateSubscription(e.ctx, in)
		if err != nil || sub.ID != first.Subscription.ID || p.ID != first.InitialPayment.ID {
			t.Fatalf("CreateSubscription retry: %s %s %v", sub.ID, p.ID, err)
		}

		for name, change := range map[string]func(*NewSubscription){
			"amount":             func(n *NewSubscription) { n.Amount++ },
			"plan":               func(n *NewSubscription) { n.Plan = "Basic" },
			"interval":           func(n *NewSubscription) { n.Interval = Year },
			"start_at":           func(n *NewSubscription) { n.StartAt = e.clock.Now() },
			"no_initial_payment": func(n *NewSubscription) { n.NoInitialPayment = true },
		} {
			changed := in
			change(&changed)
			_, err := e.store.CreateSubscriptionIdempotent(e.ctx, changed)
			var le *Error
			if !errors.Is(err, ErrIdempotencyConflict) || !errors.As(err, &le) || le.Field != "idempotency_key" ||
				le.Message("es") != "Esta clave de idempotencia ya se usó para otra suscripción; usá una clave nueva para una suscripción nueva." {
				t.Errorf("same key, other %s: %v", name, err)
			}
		}
		subs, err := e.store.ListSubscriptions(e.ctx, c.ID)
		if err != nil || len(subs) != 1 {
			t.Fatalf("%d subscriptions stored, want 1 (%v)", len(subs), err)
		}
		page, err := e.store.ListPayments(e.ctx, ListPaymentsParams{CustomerID: c.ID})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("%d payments stored, want 1 (%v)", len(page.Items), err)
		}

		// Keys are scoped per customer, and apart from payment keys.
		other := e.customer(t, "o@example.com")
		theirs := in
		theirs.CustomerID = other.ID
		if got, err := e.store.CreateSubscriptionIdempotent(e.ctx, theirs); err != nil || got.Replayed || got.Subscription.ID == first.Subscription.ID {
			t.Fatalf("other customer's subscription: %+v %v", got, err)
		}
		if got, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS, IdempotencyKey: in.IdempotencyKey}); err != nil || got.SubscriptionID != "" {
			t.Fatalf("payment with a subscription's key: %+v %v", got, err)
		}

		// A replay of a creation without an initial payment has none either.
		imported := NewSubscription{CustomerID: c.ID, Plan: "Legacy", Amount: 990, Currency: ARS, Interval: Week,
			NoInitialPayment: true, IdempotencyKey: "import-1"}
		made, err := e.store.CreateSubscriptionIdempotent(e.ctx, imported)
		if err != nil || made.InitialPayment.ID != "" {
			t.Fatalf("import: %+v %v", made, err)
		}
		replayed, err := e.store.CreateSubscriptionIdempotent(e.ctx, imported)
		if err != nil || !replayed.Replayed || replayed.Subscription.ID != made.Subscription.ID || replayed.InitialPayment.ID != "" {
			t.Fatalf("import replay: %+v %v", replayed, err)
		}

		for _, key := range []string{"a b", "portero:sub:x", strings.Repeat("k", 256)} {
			bad := in
			bad.IdempotencyKey = key
			if _, err := e.store.CreateSubscriptionIdempotent(e.ctx, bad); CodeOf(err) != CodeInvalidField {
				t.Errorf("key %q: %v", key, err)
			}
		}
	})
}

// TestSubscriptionIdempotencyUnderConcurrency: ten identical requests at once, spread over two
// replicas, make one subscription and one charge.
func TestSubscriptionIdempotencyUnderConcurrency(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		stores := []*flow{e.store, e.open(t)}
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		in := NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 500, Currency: ARS, Interval: Month,
			IdempotencyKey: "double-click"}
		results := make([]SubscriptionCreation, 10)
		errs := make([]error, 10)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-start
				results[i], errs[i] = stores[i%len(stores)].CreateSubscriptionIdempotent(e.ctx, in)
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for i, r := range results {
			if errs[i] != nil || r.Subscription.ID != results[0].Subscription.ID || r.InitialPayment.ID != results[0].InitialPayment.ID {
				t.Fatalf("request %d: %s/%s %v (first %s/%s)", i, r.Subscription.ID, r.InitialPayment.ID, errs[i],
					results[0].Subscription.ID, results[0].InitialPayment.ID)
			}
			if !r.Replayed {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d requests report creating the subscription, want 1", created)
		}
		if n := e.proc.chargesFor(results[0].InitialPayment.ID); n != 1 {
			t.Fatalf("charged %d times", n)
		}
		if subs, _ := e.store.ListSubscriptions(e.ctx, c.ID); len(subs) != 1 {
			t.Fatalf("%d subscriptions stored", len(subs))
		}
		if page, _ := e.store.ListPayments(e.ctx, ListPaymentsParams{CustomerID: c.ID}); len(page.Items) != 1 {
			t.Fatalf("%d payments stored", len(page.Items))
		}
	})
}
