package billing

import (
	"context"
	"errors"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-dev/portero/portal/ledger"
)

// TestRenewalOnFakeClockMakesOnePaymentPerPeriod drives the renewal ticker with a fake clock:
// ticks inside a period bill nothing, the tick after a period ends bills that period once, and a
// clock that jumps over several periods (the portal was down) bills each of them once.
func TestRenewalOnFakeClockMakesOnePaymentPerPeriod(t *testing.T) {
	f := newFixture(t)
	c := f.customer("renew@example.com")
	f.addCard(c.ID)
	sub, first, err := f.store.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Pro",
		Amount: 250000, Currency: ledger.ARS, Interval: ledger.Month})
	if err != nil || first.Status != ledger.PaymentSucceeded {
		t.Fatalf("subscription: %v %+v", err, first)
	}
	f.run(f.loops, f.store)

	periodStarts := func() map[time.Time]int {
		m := map[time.Time]int{}
		for _, p := range f.payments(c.ID) {
			m[p.PeriodStart]++
		}
		return m
	}
	for i := 1; i <= 3; i++ { // ticks within the first period
		f.tick(f.loops, start.Add(time.Duration(i)*time.Minute))
	}
	if n := len(f.payments(c.ID)); n != 1 {
		t.Fatalf("%d payments inside the first period, want 1", n)
	}

	feb28 := time.Date(2026, time.February, 28, 15, 0, 0, 0, time.UTC) // Jan 31 + 1 month, clamped
	f.tick(f.loops, feb28.Add(time.Second))
	f.tick(f.loops, feb28.Add(2*time.Minute))
	f.tick(f.loops, feb28.Add(3*time.Minute))
	got := periodStarts()
	if len(got) != 2 || got[feb28] != 1 {
		t.Fatalf("after the first period ended: %v, want one payment for the period starting %s", got, feb28)
	}

	// Down for two months: both missed periods are billed, once each, on the next tick.
	mar31 := time.Date(2026, time.March, 31, 15, 0, 0, 0, time.UTC)
	apr30 := time.Date(2026, time.April, 30, 15, 0, 0, 0, time.UTC)
	f.tick(f.loops, apr30.Add(time.Hour))
	f.tick(f.loops, apr30.Add(time.Hour+time.Minute))
	got = periodStarts()
	if len(got) != 4 || got[mar31] != 1 || got[apr30] != 1 {
		t.Fatalf("after catching up: %v", got)
	}
	for _, p := range f.payments(c.ID) {
		if p.Status != ledger.PaymentSucceeded || p.SubscriptionID != sub.ID {
			t.Errorf("payment %s: %s", p.ID, p.Status)
		}
		if n := f.proc.chargesFor(p.ID); n != 1 {
			t.Errorf("payment %s charged %d times", p.ID, n)
		}
	}
	cur, err := f.store.GetSubscription(f.ctx, sub.ID)
	if err != nil || !cur.CurrentPeriodStart.Equal(apr30) {
		t.Fatalf("subscription period: %v %+v", err, cur)
	}

	// A second replica renewing on the same ledger bills nothing twice.
	replica := f.newLoops()
	f.run(replica, f.openStore(replica.Hooks()))
	may31 := time.Date(2026, time.May, 31, 15, 0, 0, 0, time.UTC)
	f.tick(f.loops, may31.Add(time.Minute)) // both replicas' tickers fire on this step
	eventually(t, "replica's pass done", func() error {
		if testutil.ToFloat64(replica.metrics.renewalRuns.WithLabelValues("ok")) < 2 {
			return errors.New("not yet")
		}
		return nil
	})
	if got = periodStarts(); len(got) != 5 || got[may31] != 1 {
		t.Fatalf("with two replicas: %v", got)
	}
}

// hungCreates is an API server that accepts connections and never answers a create.
type hungCreates struct {
	client.Client
	started chan<- struct{}
	release <-chan struct{}
}

func (h hungCreates) Create(context.Context, client.Object, ...client.CreateOption) error {
	select {
	case h.started <- struct{}{}:
	default:
	}
	<-h.release
	return errors.New("released")
}

// TestRenewalsDoNotWaitForCompletionLinks: a completion link is a create on the API server,
// which may hang; renewals (money) must go on meanwhile.
func TestRenewalsDoNotWaitForCompletionLinks(t *testing.T) {
	f := newFixture(t)
	c := f.customer("renew@example.com")
	f.addCard(c.ID)
	if _, first, err := f.store.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Pro",
		Amount: 250000, Currency: ledger.ARS, Interval: ledger.Month}); err != nil || first.Status != ledger.PaymentSucceeded {
		t.Fatalf("subscription: %v %+v", err, first)
	}
	stuck := f.customer("stuck-link@example.com")
	if p, err := f.store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: stuck.ID, Amount: 900, Currency: ledger.ARS}); err != nil || p.Status != ledger.PaymentIncomplete {
		t.Fatalf("payment: %v %+v", err, p)
	}
	started, release := make(chan struct{}, 1), make(chan struct{})
	f.rules.Client = hungCreates{Client: f.rules.Client, started: started, release: release}

	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.loops.Run(ctx, f.store.Store, f.rules, f.store.Processors()) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Cleanup(func() { close(release) }) // first: the hung create returns, then Run stops
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no completion link was attempted")
	}

	// The start-up renewal pass runs beside the hung link; tick only once it is done, so the
	// pass tick waits for is the one after the clock moved.
	eventually(t, "start-up renewal pass done", func() error {
		if testutil.ToFloat64(f.loops.metrics.renewalRuns.WithLabelValues("ok")) < 1 {
			return errors.New("not yet")
		}
		return nil
	})
	feb28 := time.Date(2026, time.February, 28, 15, 0, 0, 0, time.UTC)
	f.tick(f.loops, feb28.Add(time.Second))
	renewed := false
	for _, p := range f.payments(c.ID) {
		renewed = renewed || p.PeriodStart.Equal(feb28) && p.Status == ledger.PaymentSucceeded
	}
	if !renewed {
		t.Fatal("the period ending Feb 28 was not renewed while a completion link hung")
	}
}
