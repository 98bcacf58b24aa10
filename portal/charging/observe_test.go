package charging_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// TestObserverHearsEveryProcessorCall: each call to the processor is reported once, with its
// operation and an outcome from the fixed set the metrics are labelled with.
func TestObserverHearsEveryProcessorCall(t *testing.T) {
	ctx := context.Background()
	sb, err := sandbox.New([]byte("portero-charging-test-secret-0123456789"), func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		heard []string
	)
	mem := chargingtest.NewMemory()
	d, err := charging.New(charging.Options{Adapter: sb, Recorder: mem, Observer: func(op string, took time.Duration, outcome string) {
		if took < 0 {
			t.Errorf("%s took %s", op, took)
		}
		mu.Lock()
		heard = append(heard, op+" "+outcome)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(what string, want ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(heard) != len(want) {
			t.Fatalf("%s: heard %q, want %q", what, heard, want)
		}
		for i := range want {
			if heard[i] != want[i] {
				t.Fatalf("%s: heard %q, want %q", what, heard, want)
			}
		}
		heard = nil
	}
	cust := mem.AddCustomer("ana@example.com", "Ana")

	if _, err := d.AddCard(ctx, cust, payments.CardDetails{Number: "4242424242424241", ExpMonth: 12, ExpYear: testNow.Year() + 4, CVC: "123"}); err == nil {
		t.Fatal("a mistyped card was added")
	}
	expect("a mistyped card", "tokenize_card refused")

	// A payment waiting for a method is charged once the card is added.
	mem.CreatePayment(cust, 1500, "ARS", "Plan")
	if _, err := d.AddCard(ctx, cust, visa); err != nil {
		t.Fatal(err)
	}
	expect("a card that settles a payment", "tokenize_card ok", "ensure_customer ok", "charge succeeded")

	sb.InjectFault(sandbox.FaultDecline)
	_, a := mem.CreatePayment(cust, 2500, "ARS", "Extra")
	if _, err := d.Charge(ctx, *a); err != nil {
		t.Fatal(err)
	}
	expect("a declined charge", "charge failed")

	sb.InjectFault(sandbox.FaultServerError)
	_, a = mem.CreatePayment(cust, 3500, "ARS", "Extra 2")
	if r, err := d.Charge(ctx, *a); err != nil || !r.Unknown {
		t.Fatalf("a charge answered 5xx: %+v, %v", r, err)
	}
	expect("a charge answered 5xx", "charge unavailable")

	sb.InjectFault(sandbox.FaultTimeoutAfterCollect)
	_, a = mem.CreatePayment(cust, 4500, "ARS", "Extra 3")
	if r, err := d.Charge(ctx, *a); err != nil || !r.Unknown {
		t.Fatalf("a charge whose answer was lost: %+v, %v", r, err)
	}
	expect("a charge whose answer was lost", "charge unavailable")
	// The re-drive asks what became of both: the first never reached the processor, so it is
	// charged again with its key; the second had collected.
	mem.Advance(time.Hour)
	if n, err := d.Redrive(ctx, time.Minute); err != nil || n != 2 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	expect("the re-drive", "lookup_charge not_found", "charge succeeded", "lookup_charge succeeded")
}
