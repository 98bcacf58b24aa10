package ledger

import (
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// settleRace has 50 goroutines add a method to a customer with 3 incomplete payments, spread
// over the given stores, and checks each payment was charged exactly once.
func settleRace(t *testing.T, e *env, stores []*flow) {
	t.Helper()
	c := e.customer(t, "race@example.com")
	var pending []Payment
	for i := 0; i < 3; i++ {
		e.clock.Advance(time.Second)
		p := e.pay(t, c.ID, int64(1000*(i+1)))
		if p.Status != PaymentIncomplete {
			t.Fatalf("setup payment %d: %s", i, p.Status)
		}
		pending = append(pending, p)
	}
	const workers = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // release all at once for the most contention
			s := stores[i%len(stores)]
			if _, err := s.AddPaymentMethod(e.ctx, c.ID, card("4242424242424242")); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AddPaymentMethod: %v", err)
	}
	for _, p := range pending {
		got, err := e.store.GetPayment(e.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != PaymentSucceeded || len(got.Attempts) != 1 {
			t.Errorf("payment %s: status %s, %d attempts", p.ID, got.Status, len(got.Attempts))
		}
		if n := e.proc.chargesFor(p.ID); n != 1 {
			t.Errorf("payment %s charged %d times", p.ID, n)
		}
	}
	ms := mustMethods(t, e, c.ID)
	if len(ms) != workers {
		t.Fatalf("%d methods stored, want %d", len(ms), workers)
	}
	assertPositions(t, ms)
}

func TestConcurrentAddMethodSettlesEachPaymentOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		settleRace(t, e, []*flow{e.store})
	})
}

// TestTwoReplicasSettleEachPaymentOnce runs the race across two separate Stores on the same
// database, as two portal replicas would (on SQLite: two processes sharing the file).
func TestTwoReplicasSettleEachPaymentOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		settleRace(t, e, []*flow{e.store, e.open(t)})
	})
}

// TestConcurrentPaymentAndMethod races "create payment" against "add first method": whatever
// the interleaving, the payment must not stay incomplete next to a usable method.
func TestConcurrentPaymentAndMethod(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		replica := e.open(t)
		for i := 0; i < 10; i++ {
			c := e.customer(t, "pm@example.com")
			var wg sync.WaitGroup
			var p Payment
			var perr, merr error
			wg.Add(2)
			go func() {
				defer wg.Done()
				p, perr = e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS})
			}()
			go func() {
				defer wg.Done()
				_, merr = replica.AddPaymentMethod(e.ctx, c.ID, methodIn{Type: payments.MethodWallet, Wallet: "mp"})
			}()
			wg.Wait()
			if perr != nil || merr != nil {
				t.Fatalf("round %d: %v / %v", i, perr, merr)
			}
			got, _ := e.store.GetPayment(e.ctx, p.ID)
			if got.Status != PaymentSucceeded || e.proc.chargesFor(p.ID) != 1 {
				t.Fatalf("round %d: payment %s, charged %d times", i, got.Status, e.proc.chargesFor(p.ID))
			}
		}
	})
}

func TestConcurrentRenewDueBillsOncePerPeriod(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		replica := e.open(t)
		var subs []Subscription
		for i := 0; i < 5; i++ {
			c := e.customer(t, "r@example.com")
			e.addMethod(t, c.ID, card("4242424242424242"))
			sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
				Amount: 1000, Currency: ARS, Interval: Week})
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
		}
		// Three weeks later, four replicas' schedulers fire at once.
		e.clock.Advance(21*24*time.Hour + time.Minute)
		now := e.clock.Now()
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := e.store
				if i%2 == 1 {
					s = replica
				}
				if _, err := s.RenewDue(e.ctx, now); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for _, sub := range subs {
			page, err := e.store.ListPayments(e.ctx, ListPaymentsParams{SubscriptionID: sub.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			// The initial period plus three renewals, each its own period, each charged once.
			if len(page.Items) != 4 {
				t.Fatalf("subscription %s has %d payments, want 4", sub.ID, len(page.Items))
			}
			periods := map[time.Time]bool{}
			for _, p := range page.Items {
				if periods[p.PeriodStart] {
					t.Fatalf("period %s billed twice", p.PeriodStart)
				}
				periods[p.PeriodStart] = true
				if p.Status != PaymentSucceeded || e.proc.chargesFor(p.ID) != 1 {
					t.Fatalf("payment %s: %s, charged %d times", p.ID, p.Status, e.proc.chargesFor(p.ID))
				}
			}
			got, _ := e.store.GetSubscription(e.ctx, sub.ID)
			if want := sub.CurrentPeriodStart.AddDate(0, 0, 28); !got.CurrentPeriodEnd.Equal(want) {
				t.Fatalf("period end %s, want %s", got.CurrentPeriodEnd, want)
			}
		}
	})
}
