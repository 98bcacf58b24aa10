package charging_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/payments/stripe"
)

var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

var visa = payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: testNow.Year() + 4, CVC: "123"}

type fixture struct {
	sb   *sandbox.Adapter
	mem  *chargingtest.Memory
	d    *charging.Driver
	cust string
}

func newFixture(t *testing.T, rec func(*chargingtest.Memory) charging.Recorder) *fixture {
	t.Helper()
	sb, err := sandbox.New([]byte("portero-charging-test-secret-0123456789"), func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	mem := chargingtest.NewMemory()
	var r charging.Recorder = mem
	if rec != nil {
		r = rec(mem)
	}
	d, err := charging.New(charging.Options{Adapter: sb, Recorder: r})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{sb: sb, mem: mem, d: d, cust: mem.AddCustomer("ana@example.com", "Ana")}
}

func TestNewNeedsAdapterAndRecorder(t *testing.T) {
	if _, err := charging.New(charging.Options{}); err == nil {
		t.Fatal("New without an adapter and a recorder succeeded")
	}
}

func TestHostedAndTypedEntryAreExclusive(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, err := f.d.StartSetup(ctx, f.cust, charging.SetupInput{ReturnURL: "https://p.example/r", CancelURL: "https://p.example/c"}); !errors.Is(err, payments.ErrUnsupported) {
		t.Fatalf("StartSetup on the sandbox: %v, want ErrUnsupported", err)
	}
	st, err := stripe.New(stripe.Options{SecretKey: "sk_test_x", WebhookSecret: "whsec_x", APIBase: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := charging.New(charging.Options{Adapter: st, Recorder: f.mem})
	if err != nil {
		t.Fatal(err)
	}
	// On a processor that hosts card entry, the portal never takes a card number.
	if _, err := d.AddCard(ctx, f.cust, visa); !errors.Is(err, payments.ErrUnsupported) {
		t.Fatalf("AddCard on Stripe: %v, want ErrUnsupported", err)
	}
	if _, err := d.CompleteSetup(ctx, f.cust, "cs_test_x"); payments.CodeOf(err) != payments.CodeSetupIncomplete {
		t.Fatalf("CompleteSetup for a customer who never started one: %v", err)
	}
}

func TestAddCardSettlesIncompletePaymentsOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	var ids []string
	for i := 0; i < 3; i++ {
		id, a := f.mem.CreatePayment(f.cust, 1000+int64(i), "ARS", "Plan")
		if a != nil {
			t.Fatal("charged without a method")
		}
		ids = append(ids, id)
	}
	added, err := f.d.AddCard(ctx, f.cust, visa)
	if err != nil || !added.Added || added.Method.Fingerprint == "" || len(added.Settled) != 3 {
		t.Fatalf("AddCard = %+v, %v: want the card and three settled payments", added, err)
	}
	for _, id := range ids {
		if p := f.mem.Payment(id); p.Status != charging.AttemptSucceeded || len(p.Attempts) != 1 {
			t.Fatalf("%v", p)
		}
	}
	// Sweepers racing after the fact find nothing left to charge.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rs, err := f.d.SettleIncomplete(ctx, f.cust); err != nil || len(rs) != 0 {
				t.Errorf("SettleIncomplete = %+v, %v", rs, err)
			}
		}()
	}
	wg.Wait()
	if n := f.sb.Collected(); n != 3 {
		t.Fatalf("collected %d times, want 3", n)
	}
	if _, err := f.d.AddCard(ctx, f.cust, payments.CardDetails{Number: "4242424242424241", ExpMonth: 12, ExpYear: testNow.Year() + 4, CVC: "123"}); payments.CodeOf(err) != payments.CodeInvalidCardNumber {
		t.Fatalf("a mistyped card: %v", err)
	}
	if _, err := f.d.AddCard(ctx, "cus_nobody", visa); !errors.Is(err, charging.ErrNotFound) {
		t.Fatalf("an unknown customer: %v", err)
	}
}

func TestSandboxTestMethodsAttach(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	added, err := f.d.AttachProcessorMethod(ctx, f.cust, "pm_card_chargeDeclinedInsufficientFunds")
	if err != nil || added.Method.Last4 != "9995" {
		t.Fatalf("AttachProcessorMethod = %+v, %v", added, err)
	}
	_, a := f.mem.CreatePayment(f.cust, 1000, "ARS", "Plan")
	r, err := f.d.Charge(ctx, *a)
	if err != nil || r.Failure == nil || r.Failure.Code != payments.CodeInsufficientFunds {
		t.Fatalf("Charge = %+v, %v", r, err)
	}
	if _, err := f.d.AttachProcessorMethod(ctx, f.cust, "pm_card_unknown"); payments.CodeOf(err) != payments.CodeInvalidPaymentMethod {
		t.Fatalf("unknown test method: %v", err)
	}
}

func TestConfirmPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, _, err := f.mem.AddMethod(ctx, f.cust, sandbox.Type, payments.Method{Type: payments.MethodBankTransfer}); err != nil {
		t.Fatal(err)
	}
	id, a := f.mem.CreatePayment(f.cust, 50000, "ARS", "Factura 12")
	r, err := f.d.Charge(ctx, *a)
	if err != nil || r.Status != charging.AttemptPending || !strings.Contains(r.Instructions, "CVU") {
		t.Fatalf("Charge = %+v, %v: want pending with transfer instructions", r, err)
	}
	if r, err := f.d.ConfirmPending(ctx, id); err != nil || r.Status != charging.AttemptSucceeded || !r.Recorded {
		t.Fatalf("ConfirmPending = %+v, %v", r, err)
	}
	if r, err := f.d.ConfirmPending(ctx, id); err != nil || r.Recorded || r.Status != charging.AttemptSucceeded {
		t.Fatalf("ConfirmPending again = %+v, %v", r, err)
	}
	if f.sb.Collected() != 1 {
		t.Fatalf("collected %d", f.sb.Collected())
	}
	// A card payment that failed does not wait for a confirmation.
	f2 := newFixture(t, nil)
	if _, err := f2.d.AddCard(ctx, f2.cust, visa); err != nil {
		t.Fatal(err)
	}
	f2.sb.InjectFault(sandbox.FaultDecline)
	id2, a2 := f2.mem.CreatePayment(f2.cust, 100, "ARS", "x")
	if _, err := f2.d.Charge(ctx, *a2); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.d.ConfirmPending(ctx, id2); !errors.Is(err, charging.ErrNotWaiting) {
		t.Fatalf("ConfirmPending of a failed payment: %v", err)
	}
}

func TestRemoveMethodDetachesAtTheProcessor(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	added, err := f.d.AddCard(ctx, f.cust, visa)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.d.RemoveMethod(ctx, f.cust, added.MethodID); err != nil {
		t.Fatal(err)
	}
	if len(f.mem.Methods(f.cust)) != 0 {
		t.Fatal("method still listed")
	}
	// The token is dead at the processor too.
	res, err := f.sb.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "k", Amount: 100, Currency: "ARS",
		Method: payments.MethodRef{Type: payments.MethodCard, Token: added.Method.ProcessorID}})
	if err != nil || res.Status != payments.ChargeFailed {
		t.Fatalf("charging a detached card = %+v, %v", res, err)
	}
	if err := f.d.RemoveMethod(ctx, f.cust, added.MethodID); !errors.Is(err, charging.ErrNotFound) {
		t.Fatalf("removing it again: %v", err)
	}
}

// flakyRecorder fails RemoveProcessorMethod until fixed.
type flakyRecorder struct {
	*chargingtest.Memory
	mu     sync.Mutex
	broken bool
}

func (r *flakyRecorder) RemoveProcessorMethod(ctx context.Context, p payments.ProcessorType, id string) (string, bool, error) {
	r.mu.Lock()
	broken := r.broken
	r.mu.Unlock()
	if broken {
		return "", false, errors.New("database is locked")
	}
	return r.Memory.RemoveProcessorMethod(ctx, p, id)
}

func TestWebhookHandler(t *testing.T) {
	var flaky *flakyRecorder
	f := newFixture(t, func(m *chargingtest.Memory) charging.Recorder {
		flaky = &flakyRecorder{Memory: m, broken: true}
		return flaky
	})
	added, err := f.d.AddCard(context.Background(), f.cust, visa)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.d.WebhookHandler())
	defer srv.Close()
	post := func(h http.Header, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	h, b := f.sb.DetachAtProcessor(added.Method.ProcessorID)
	if code := post(http.Header{}, string(b)); code != http.StatusBadRequest {
		t.Fatalf("unsigned: %d", code)
	}
	if code := post(h, strings.Repeat(" ", charging.MaxWebhookBody+1)); code != http.StatusBadRequest {
		t.Fatalf("oversized: %d", code)
	}
	if resp, err := http.Get(srv.URL); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp, err)
	}
	// The store fails: 500, so the processor delivers again; nothing is marked handled.
	if code := post(h, string(b)); code != http.StatusInternalServerError {
		t.Fatalf("with the store failing: %d", code)
	}
	if f.mem.Events() != 0 || len(f.mem.Methods(f.cust)) != 1 {
		t.Fatal("a failed event was marked or half-applied")
	}
	flaky.mu.Lock()
	flaky.broken = false
	flaky.mu.Unlock()
	for i := 0; i < 2; i++ {
		if code := post(h, string(b)); code != http.StatusOK {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	if f.mem.Events() != 1 || len(f.mem.Methods(f.cust)) != 0 {
		t.Fatalf("events %d, methods %+v", f.mem.Events(), f.mem.Methods(f.cust))
	}
	// An event about a charge Portero never made is acknowledged and changes nothing.
	h2, b2 := f.sb.SignEvent(payments.Event{Type: payments.EventChargeSucceeded, Reference: "ch_elsewhere", IdempotencyKey: "pay_x/1"})
	if code := post(h2, string(b2)); code != http.StatusOK {
		t.Fatalf("foreign charge event: %d", code)
	}
}

func TestChargeRecordsEvenIfTheCallerLeaves(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.d.AddCard(context.Background(), f.cust, visa); err != nil {
		t.Fatal(err)
	}
	id, a := f.mem.CreatePayment(f.cust, 100, "ARS", "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the customer closed the tab right after the claim
	r, err := f.d.Charge(ctx, *a)
	if err != nil || r.Status != charging.AttemptSucceeded || f.mem.Payment(id).Status != charging.AttemptSucceeded {
		t.Fatalf("Charge = %+v, %v; %v", r, err, f.mem.Payment(id))
	}
}

func TestAllowedTransitions(t *testing.T) {
	const (
		proc = charging.AttemptProcessing
		act  = charging.AttemptRequiresAction
		pend = charging.AttemptPending
		ok   = charging.AttemptSucceeded
		fail = charging.AttemptFailed
	)
	for _, tt := range []struct {
		from, to charging.AttemptStatus
		want     bool
	}{
		{proc, ok, true}, {proc, fail, true}, {proc, pend, true}, {proc, act, true}, {proc, proc, false},
		{act, ok, true}, {act, fail, true}, {act, pend, true}, {act, act, false}, {act, proc, false},
		{pend, ok, true}, {pend, fail, true}, {pend, act, false}, {pend, pend, false},
		{ok, fail, false}, {ok, ok, false}, {fail, ok, false}, {fail, proc, false},
		{chargingtest.PaymentIncomplete, ok, false},
	} {
		if got := chargingtest.Allowed(tt.from, tt.to); got != tt.want {
			t.Errorf("Allowed(%s → %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

// TestSwitchedProcessorLeavesTheOldOnesAlone: after a portal moves from Stripe to the sandbox,
// a Stripe card is not handed to the sandbox, a Stripe attempt whose outcome was lost is not
// re-driven through it, and the customer's Stripe id is not taken for the sandbox's.
func TestSwitchedProcessorLeavesTheOldOnesAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if _, err := f.mem.SetProcessorCustomer(ctx, stripe.Type, f.cust, "cus_StripeOne"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.mem.AddMethod(ctx, f.cust, stripe.Type, payments.Method{Type: payments.MethodCard, ProcessorID: "pm_stripe"}); err != nil {
		t.Fatal(err)
	}
	// A Stripe attempt left processing when the switch happened.
	id, a := f.mem.CreatePayment(f.cust, 100, "ARS", "x")
	if a == nil || a.Processor != stripe.Type {
		t.Fatalf("attempt %+v", a)
	}
	f.mem.Advance(time.Hour)
	if n, err := f.d.Redrive(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	if p := f.mem.Payment(id); p.Status != charging.AttemptProcessing || f.sb.Collected() != 0 {
		t.Fatalf("%v, collected %d: the sandbox charged a Stripe attempt", p, f.sb.Collected())
	}
	// An incomplete payment waits for a method the sandbox can charge.
	f2 := newFixture(t, nil)
	if _, _, err := f2.mem.AddMethod(ctx, f2.cust, stripe.Type, payments.Method{Type: payments.MethodCard, ProcessorID: "pm_stripe"}); err != nil {
		t.Fatal(err)
	}
	f2.mem.RemoveMethod(ctx, f2.cust, f2.mem.Methods(f2.cust)[0].ID)
	pid, _ := f2.mem.CreatePayment(f2.cust, 100, "ARS", "x")
	if _, _, err := f2.mem.AddMethod(ctx, f2.cust, stripe.Type, payments.Method{Type: payments.MethodCard, ProcessorID: "pm_stripe2"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := f2.d.SettleIncomplete(ctx, f2.cust); err != nil || len(rs) != 0 {
		t.Fatalf("SettleIncomplete with only a Stripe card = %+v, %v", rs, err)
	}
	added, err := f2.d.AddCard(ctx, f2.cust, visa)
	if err != nil || len(added.Settled) != 1 || f2.mem.Payment(pid).Status != charging.AttemptSucceeded {
		t.Fatalf("AddCard = %+v, %v", added, err)
	}
	sbID, _ := f2.mem.Customer(ctx, sandbox.Type, f2.cust)
	stID, _ := f2.mem.Customer(ctx, stripe.Type, f2.cust)
	if sbID.ProcessorCustomer == "" || stID.ProcessorCustomer != "" {
		t.Fatalf("processor customer ids: sandbox %q, stripe %q", sbID.ProcessorCustomer, stID.ProcessorCustomer)
	}
}
