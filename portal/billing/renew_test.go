package billing

import (
	"errors"
	"testing"
	"time"

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
