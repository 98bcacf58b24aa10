// Package processortest is the processor contract suite: one table of behaviours that every
// payments.Adapter passes, driven the way Portero drives processors (portal/charging, over an
// in-memory recorder). Each adapter's tests call Run with a Harness that plays the processor's
// side: the customer on its hosted pages, its faults, its webhooks.
package processortest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
)

// Fault is a processor misbehaviour a Processor can show on the next charge.
type Fault int

// Faults every processor must survive.
const (
	// Decline: the next charge is declined by the card's issuer (card_declined).
	Decline Fault = iota + 1
	// RequiresAction: the issuer wants the customer to authenticate the next charge (SCA).
	RequiresAction
	// TimeoutAfterCollect: the next charge collects, and its answer never arrives.
	TimeoutAfterCollect
	// ServerError: the next charge fails with a 5xx before anything is collected.
	ServerError
)

// Processor is one behaviour's processor: a fresh adapter and the processor's side of it.
type Processor interface {
	// Adapter is the adapter under test.
	Adapter() payments.Adapter
	// TestCard is a card that succeeds, for adapters whose cards the portal's own form takes.
	TestCard() payments.CardDetails
	// CompleteHostedSetup plays the customer on the processor's set-up page (adapters with
	// hosted set-up): a card that succeeds is entered and the URL the processor sends the
	// customer back to is returned.
	CompleteHostedSetup(t *testing.T, s payments.SetupSession) string
	// NextCharge makes the processor answer the next charge with f.
	NextCharge(t *testing.T, f Fault)
	// CustomerAuthenticates plays the customer on the processor's authentication page.
	CustomerAuthenticates(t *testing.T, redirectURL string)
	// Collected tells how many charges moved money at the processor since it started, whatever
	// their keys: the contract's "never charged twice" is counted here, not per key.
	Collected(t *testing.T) int
	// RemoveAtProcessor removes a method at the processor (the customer asked their bank, say)
	// and returns the signed webhook the processor sends about it.
	RemoveAtProcessor(t *testing.T, m payments.Method) (http.Header, []byte)
	// ChargeEvent returns the signed webhook the processor sends about the charge made with
	// this idempotency key, of the given type.
	ChargeEvent(t *testing.T, typ payments.EventType, key string) (http.Header, []byte)
}

// Harness starts a fresh Processor for one behaviour; it stops with the test.
type Harness func(t *testing.T) Processor

// Behaviour is one entry of the contract.
type Behaviour struct {
	Name string
	Run  func(t *testing.T, e *Env)
}

// Env is what a behaviour runs against.
type Env struct {
	P        Processor
	Recorder *chargingtest.Memory
	Driver   *charging.Driver
	Customer string
}

// Behaviours returns the contract, in order.
func Behaviours() []Behaviour {
	return []Behaviour{
		{"CardSetUpGivesReusableMethod", cardSetUpGivesReusableMethod},
		{"OffSessionChargeSucceeds", offSessionChargeSucceeds},
		{"DeclineHasStableCodeAndMessages", declineHasStableCode},
		{"AuthenticationRequiredWaitsForCustomerThenSucceedsOnce", authenticationSucceedsOnce},
		{"AuthenticatedChargeSettledByWebhookOnce", authenticationSettledByWebhook},
		{"TimeoutAfterCollectIsRedrivenWithSameKeyNeverTwice", timeoutAfterCollect},
		{"ServerErrorIsRedrivenWithSameKeyNeverTwice", serverError},
		{"UnknownOutcomeSettledByWebhook", unknownOutcomeSettledByWebhook},
		{"MethodRemovedAtProcessorIsRemoved", methodRemovedAtProcessor},
		{"WebhookWithBadSignatureIsRefused", badSignatureRefused},
	}
}

// Run runs every behaviour against processors from h, each as a subtest.
func Run(t *testing.T, h Harness) {
	for _, b := range Behaviours() {
		t.Run(b.Name, func(t *testing.T) {
			p := h(t)
			mem := chargingtest.NewMemory()
			d, err := charging.New(charging.Options{Adapter: p.Adapter(), Recorder: mem, CallTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			b.Run(t, &Env{P: p, Recorder: mem, Driver: d, Customer: mem.AddCustomer("ana@example.com", "Ana Pérez")})
		})
	}
}

const (
	returnURL = "https://portal.example/payment-methods/return?from=setup"
	cancelURL = "https://portal.example/payment-methods"
	authURL   = "https://portal.example/payments/return"
)

// SetUpCard gives the env's customer a card the way the adapter takes cards.
func SetUpCard(t *testing.T, e *Env) charging.MethodAdded {
	t.Helper()
	ctx := context.Background()
	if !e.P.Adapter().Capabilities().HostedSetup {
		added, err := e.Driver.AddCard(ctx, e.Customer, e.P.TestCard())
		if err != nil {
			t.Fatalf("AddCard: %v", err)
		}
		return added
	}
	s, err := e.Driver.StartSetup(ctx, e.Customer, charging.SetupInput{ReturnURL: returnURL, CancelURL: cancelURL, Locale: "es"})
	if err != nil {
		t.Fatalf("StartSetup: %v", err)
	}
	if u, err := url.Parse(s.RedirectURL); err != nil || !u.IsAbs() || s.Reference == "" {
		t.Fatalf("StartSetup = %+v: want an absolute redirect URL and a reference", s)
	}
	if len(e.Recorder.Methods(e.Customer)) != 0 {
		t.Fatal("a started set-up must record nothing")
	}
	landing, err := url.Parse(e.P.CompleteHostedSetup(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(landing.String(), "https://portal.example/payment-methods/return?") || landing.Query().Get("from") != "setup" {
		t.Fatalf("the customer came back to %s, want the return URL with its own query kept", landing)
	}
	ref := landing.Query().Get(payments.SetupReferenceParam)
	if ref == "" {
		t.Fatalf("the return URL %s carries no %s", landing, payments.SetupReferenceParam)
	}
	added, err := e.Driver.CompleteSetup(ctx, e.Customer, ref)
	if err != nil {
		t.Fatalf("CompleteSetup: %v", err)
	}
	// A reload of the return page (or the webhook after it) adds nothing.
	again, err := e.Driver.CompleteSetup(ctx, e.Customer, ref)
	if err != nil || again.Added || again.MethodID != added.MethodID {
		t.Fatalf("CompleteSetup again = %+v, %v: want the same method, not added again", again, err)
	}
	return added
}

// Pay creates a payment for the env's customer and charges its first attempt.
func Pay(t *testing.T, e *Env, amount int64) (string, charging.Attempt, charging.Result) {
	t.Helper()
	id, a := e.Recorder.CreatePayment(e.Customer, amount, "ARS", "Plan Pro — marzo")
	if a == nil {
		t.Fatal("the customer has no method to charge")
	}
	r, err := e.Driver.Charge(context.Background(), *a)
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	return id, *a, r
}

func wantStatus(t *testing.T, e *Env, paymentID string, want charging.AttemptStatus) chargingtest.Payment {
	t.Helper()
	p := e.Recorder.Payment(paymentID)
	if p.Status != want {
		t.Fatalf("%v: want %s", p, want)
	}
	return p
}

func wantCollected(t *testing.T, e *Env, want int) {
	t.Helper()
	if n := e.P.Collected(t); n != want {
		t.Fatalf("money moved %d times at the processor, want %d", n, want)
	}
}

func cardSetUpGivesReusableMethod(t *testing.T, e *Env) {
	added := SetUpCard(t, e)
	m := added.Method
	if !added.Added || m.Type != payments.MethodCard || m.ProcessorID == "" {
		t.Fatalf("set-up gave %+v: want a new card with a processor handle", added)
	}
	if m.Brand == "" || len(m.Last4) != 4 || strings.Trim(m.Last4, "0123456789") != "" ||
		m.ExpMonth < 1 || m.ExpMonth > 12 || m.ExpYear < 2000 {
		t.Fatalf("card %+v: want brand, last 4 digits and expiry", m)
	}
	if e.P.Adapter().Capabilities().HostedSetup && m.Fingerprint != "" {
		t.Fatalf("a hosted set-up stored more than brand, last 4 and expiry: %+v", m)
	}
	stored := e.Recorder.Methods(e.Customer)
	if len(stored) != 1 || stored[0].Method != m || stored[0].Processor != e.P.Adapter().Type() {
		t.Fatalf("stored methods = %+v, want exactly the set-up card", stored)
	}
	// Reusable: charged twice, off-session, with no customer present.
	for i := 0; i < 2; i++ {
		id, _, r := Pay(t, e, 150000+int64(i))
		if r.Status != charging.AttemptSucceeded || r.Reference == "" {
			t.Fatalf("charge %d = %+v, want succeeded with a reference", i, r)
		}
		wantStatus(t, e, id, charging.AttemptSucceeded)
		wantCollected(t, e, i+1)
	}
}

func offSessionChargeSucceeds(t *testing.T, e *Env) {
	SetUpCard(t, e)
	id, a, r := Pay(t, e, 990000)
	if r.Status != charging.AttemptSucceeded || !r.Recorded || r.Failure != nil || r.Reference == "" {
		t.Fatalf("charge = %+v, want recorded success with a reference", r)
	}
	p := wantStatus(t, e, id, charging.AttemptSucceeded)
	if p.Attempts[0].Reference != r.Reference {
		t.Fatalf("recorded reference %q, processor's %q", p.Attempts[0].Reference, r.Reference)
	}
	wantCollected(t, e, 1)
	// The same attempt charged again (a retry by a confused caller) is the same charge.
	again, err := e.Driver.Charge(context.Background(), a)
	if err != nil || again.Recorded || again.Status != charging.AttemptSucceeded {
		t.Fatalf("charging the attempt again = %+v, %v: want the recorded success untouched", again, err)
	}
	wantCollected(t, e, 1)
}

func declineHasStableCode(t *testing.T, e *Env) {
	SetUpCard(t, e)
	e.P.NextCharge(t, Decline)
	id, _, r := Pay(t, e, 150000)
	if r.Status != charging.AttemptFailed || r.Failure == nil || r.Failure.Code != payments.CodeCardDeclined {
		t.Fatalf("declined charge = %+v, want failed with %s", r, payments.CodeCardDeclined)
	}
	p := wantStatus(t, e, id, charging.AttemptFailed)
	if p.FailureCode != payments.CodeCardDeclined {
		t.Fatalf("recorded failure %q", p.FailureCode)
	}
	es, en := r.Failure.Message("es"), r.Failure.Message("en")
	fallback := (&payments.Error{Code: "no_such_code"}).Message("en")
	if es == en || en == fallback || !strings.Contains(es, "rechaz") {
		t.Fatalf("messages es=%q en=%q: want the decline's own Spanish and English", es, en)
	}
	wantCollected(t, e, 0)
}

// requireAction charges into an authentication request and checks the payment waits.
func requireAction(t *testing.T, e *Env) (string, charging.Attempt) {
	t.Helper()
	SetUpCard(t, e)
	e.P.NextCharge(t, RequiresAction)
	id, a, r := Pay(t, e, 150000)
	if r.Status != charging.AttemptRequiresAction || r.Reference == "" {
		t.Fatalf("charge = %+v, want requires_action with a reference", r)
	}
	wantStatus(t, e, id, charging.AttemptRequiresAction)
	wantCollected(t, e, 0)
	// It waits for the customer: a sweep of unknown outcomes leaves it alone.
	e.Recorder.Advance(time.Hour)
	if n, err := e.Driver.Redrive(context.Background(), time.Minute); err != nil || n != 0 {
		t.Fatalf("Redrive = %d, %v: a payment waiting for the customer is not re-driven", n, err)
	}
	return id, a
}

func authenticationSucceedsOnce(t *testing.T, e *Env) {
	ctx := context.Background()
	id, a := requireAction(t, e)
	redirect, _, err := e.Driver.Authenticate(ctx, e.Customer, id, authURL)
	if err != nil || redirect == "" {
		t.Fatalf("Authenticate = %q, %v: want a page for the customer", redirect, err)
	}
	if _, _, err := e.Driver.Authenticate(ctx, "cus_someone_else", id, authURL); !errors.Is(err, charging.ErrNotFound) {
		t.Fatalf("another customer authenticating the payment: %v, want not found", err)
	}
	e.P.CustomerAuthenticates(t, redirect)
	r, err := e.Driver.FinishAuthentication(ctx, e.Customer, id)
	if err != nil || r.Status != charging.AttemptSucceeded || !r.Recorded {
		t.Fatalf("FinishAuthentication = %+v, %v: want the success recorded", r, err)
	}
	// A reload of the return page, then the processor's webhook: nothing more.
	if r, err := e.Driver.FinishAuthentication(ctx, e.Customer, id); err != nil || r.Recorded || r.Status != charging.AttemptSucceeded {
		t.Fatalf("FinishAuthentication again = %+v, %v", r, err)
	}
	h, b := e.P.ChargeEvent(t, payments.EventChargeSucceeded, a.IdempotencyKey())
	if _, err := e.Driver.HandleWebhook(ctx, h, b); err != nil {
		t.Fatalf("HandleWebhook: %v", err)
	}
	if _, _, err := e.Driver.Authenticate(ctx, e.Customer, id, authURL); !errors.Is(err, charging.ErrNotWaiting) {
		t.Fatalf("authenticating a paid payment: %v, want ErrNotWaiting", err)
	}
	p := wantStatus(t, e, id, charging.AttemptSucceeded)
	if len(p.Transitions) != 2 || len(p.Attempts) != 1 {
		t.Fatalf("%v: want requires_action then succeeded, on one attempt", p)
	}
	wantCollected(t, e, 1)
}

func authenticationSettledByWebhook(t *testing.T, e *Env) {
	ctx := context.Background()
	id, a := requireAction(t, e)
	redirect, _, err := e.Driver.Authenticate(ctx, e.Customer, id, authURL)
	if err != nil {
		t.Fatal(err)
	}
	// The customer authenticates and closes the tab: only the webhook says so.
	e.P.CustomerAuthenticates(t, redirect)
	h, b := e.P.ChargeEvent(t, payments.EventChargeSucceeded, a.IdempotencyKey())
	for i := 0; i < 2; i++ { // delivered twice
		if _, err := e.Driver.HandleWebhook(ctx, h, b); err != nil {
			t.Fatalf("HandleWebhook: %v", err)
		}
	}
	wantStatus(t, e, id, charging.AttemptSucceeded)
	if r, err := e.Driver.FinishAuthentication(ctx, e.Customer, id); err != nil || r.Recorded {
		t.Fatalf("a late return = %+v, %v: want nothing recorded", r, err)
	}
	if p := e.Recorder.Payment(id); len(p.Transitions) != 2 {
		t.Fatalf("%v: recorded more than once", p)
	}
	wantCollected(t, e, 1)
}

// lostAnswer charges into fault f and checks the outcome is left unknown.
func lostAnswer(t *testing.T, e *Env, f Fault) (string, charging.Attempt) {
	t.Helper()
	SetUpCard(t, e)
	e.P.NextCharge(t, f)
	id, a, r := Pay(t, e, 150000)
	if !r.Unknown || r.Status != charging.AttemptProcessing {
		t.Fatalf("charge = %+v: want an unknown outcome left processing", r)
	}
	wantStatus(t, e, id, charging.AttemptProcessing)
	return id, a
}

func redriveOnce(t *testing.T, e *Env, id string, a charging.Attempt) {
	t.Helper()
	ctx := context.Background()
	// Not before the call timeout: a charge still in flight is left alone.
	if n, err := e.Driver.Redrive(ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("Redrive of a fresh attempt = %d, %v", n, err)
	}
	e.Recorder.Advance(2 * time.Minute)
	if n, err := e.Driver.Redrive(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v: want the attempt re-driven", n, err)
	}
	p := wantStatus(t, e, id, charging.AttemptSucceeded)
	if len(p.Attempts) != 1 || p.Attempts[0].IdempotencyKey() != a.IdempotencyKey() {
		t.Fatalf("%v: want the same attempt, same key", p)
	}
	wantCollected(t, e, 1)
	e.Recorder.Advance(2 * time.Minute)
	if n, err := e.Driver.Redrive(ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("Redrive after settling = %d, %v", n, err)
	}
}

func timeoutAfterCollect(t *testing.T, e *Env) {
	id, a := lostAnswer(t, e, TimeoutAfterCollect)
	wantCollected(t, e, 1) // the money moved; only the answer was lost
	redriveOnce(t, e, id, a)
}

func serverError(t *testing.T, e *Env) {
	id, a := lostAnswer(t, e, ServerError)
	wantCollected(t, e, 0)
	redriveOnce(t, e, id, a)
}

func unknownOutcomeSettledByWebhook(t *testing.T, e *Env) {
	ctx := context.Background()
	id, a := lostAnswer(t, e, TimeoutAfterCollect)
	h, b := e.P.ChargeEvent(t, payments.EventChargeSucceeded, a.IdempotencyKey())
	if _, err := e.Driver.HandleWebhook(ctx, h, b); err != nil {
		t.Fatalf("HandleWebhook: %v", err)
	}
	p := wantStatus(t, e, id, charging.AttemptSucceeded)
	if p.Attempts[0].Reference == "" {
		t.Fatalf("%v: the webhook's reference was not recorded", p)
	}
	e.Recorder.Advance(2 * time.Minute)
	if n, err := e.Driver.Redrive(ctx, time.Minute); err != nil || n != 0 {
		t.Fatalf("Redrive after the webhook settled it = %d, %v", n, err)
	}
	wantCollected(t, e, 1)
}

func methodRemovedAtProcessor(t *testing.T, e *Env) {
	ctx := context.Background()
	added := SetUpCard(t, e)
	h, b := e.P.RemoveAtProcessor(t, added.Method)
	for i := 0; i < 2; i++ { // delivered twice
		ev, err := e.Driver.HandleWebhook(ctx, h, b)
		if err != nil || ev.Type != payments.EventMethodDetached || ev.MethodID != added.Method.ProcessorID || ev.ID == "" {
			t.Fatalf("HandleWebhook = %+v, %v: want the method's detachment", ev, err)
		}
	}
	if ms := e.Recorder.Methods(e.Customer); len(ms) != 0 {
		t.Fatalf("methods after removal at the processor = %+v, want none", ms)
	}
	if n := e.Recorder.Events(); n != 1 {
		t.Fatalf("%d events recorded, want the one", n)
	}
	// Without a method the next payment waits for one instead of charging a dead method.
	if _, a := e.Recorder.CreatePayment(e.Customer, 150000, "ARS", "Plan Pro"); a != nil {
		t.Fatal("a payment was charged to a removed method")
	}
}

func badSignatureRefused(t *testing.T, e *Env) {
	ctx := context.Background()
	added := SetUpCard(t, e)
	h, b := e.P.RemoveAtProcessor(t, added.Method)
	tampered := []byte(strings.Replace(string(b), added.Method.ProcessorID, added.Method.ProcessorID+"x", 1))
	if _, err := e.Driver.HandleWebhook(ctx, h, tampered); !errors.Is(err, payments.ErrWebhookSignature) {
		t.Fatalf("tampered body: %v, want ErrWebhookSignature", err)
	}
	if _, err := e.Driver.HandleWebhook(ctx, http.Header{}, b); !errors.Is(err, payments.ErrWebhookSignature) {
		t.Fatalf("unsigned body: %v, want ErrWebhookSignature", err)
	}
	if ms := e.Recorder.Methods(e.Customer); len(ms) != 1 || e.Recorder.Events() != 0 {
		t.Fatalf("a refused webhook changed something: methods %+v, events %d", ms, e.Recorder.Events())
	}
}
