package stripe_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	stripelib "github.com/stripe/stripe-go/v84"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/processortest"
	"github.com/portero-dev/portero/portal/payments/stripe"
)

// envFor is a contract environment over the replaying fake, for Stripe's own behaviours.
func envFor(t *testing.T, opts ...func(*stripe.Options)) (*processortest.Env, *fakeStripe) {
	t.Helper()
	f := newFake(t, false)
	o := stripe.Options{SecretKey: testSecretKey, WebhookSecret: testWebhookSecret, APIBase: f.URL(),
		MaxNetworkRetries: stripelib.Int64(0)}
	for _, fn := range opts {
		fn(&o)
	}
	a, err := stripe.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mem := chargingtest.NewMemory()
	d, err := charging.New(charging.Options{Adapter: a, Recorder: mem, CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &processortest.Env{P: processor{f: f, a: a}, Recorder: mem, Driver: d,
		Customer: mem.AddCustomer("ana@example.com", "Ana Pérez")}, f
}

func find(reqs []recorded, method, path string) []recorded {
	var out []recorded
	for _, r := range reqs {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// TestAgainstStripeMock makes every call the adapter makes against stripe-mock itself, which
// refuses requests its copy of Stripe's OpenAPI spec does not allow, and checks what was sent.
func TestAgainstStripeMock(t *testing.T) {
	ctx := context.Background()
	f := newFake(t, true)
	a := newAdapter(t, f.URL())

	cus, err := a.EnsureCustomer(ctx, payments.CustomerRequest{ID: "cus_portero1", Email: "ana@example.com", Name: "Ana", Locale: "es-AR"})
	if err != nil || !strings.HasPrefix(cus, "cus_") {
		t.Fatalf("EnsureCustomer = %q, %v", cus, err)
	}
	r := find(f.Requests(), "POST", "/v1/customers")[0]
	if r.Header.Get("Idempotency-Key") != "portero:customer:cus_portero1" || r.Form.Get("metadata[portero_customer]") != "cus_portero1" ||
		r.Form.Get("preferred_locales[0]") != "es" || r.Form.Get("email") != "ana@example.com" {
		t.Fatalf("create customer sent %v %v", r.Header, r.Form)
	}

	s, err := a.StartSetup(ctx, payments.SetupRequest{Customer: cus, PorteroCustomer: "cus_portero1",
		ReturnURL: "https://portal.example/m/return?x=1#top", CancelURL: "https://portal.example/m", Locale: "en", MethodType: payments.MethodCard})
	if err != nil || !strings.HasPrefix(s.RedirectURL, "https://checkout.stripe.com/") || !strings.HasPrefix(s.Reference, "cs_") {
		t.Fatalf("StartSetup = %+v, %v", s, err)
	}
	r = find(f.Requests(), "POST", "/v1/checkout/sessions")[0]
	for k, want := range map[string]string{
		"mode": "setup", "customer": cus, "success_url": "https://portal.example/m/return?x=1&setup_ref={CHECKOUT_SESSION_ID}#top",
		"cancel_url": "https://portal.example/m", "payment_method_types[0]": "card", "locale": "en",
		"client_reference_id": "cus_portero1", "setup_intent_data[metadata][portero_customer]": "cus_portero1",
	} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("checkout session %s = %q, want %q", k, got, want)
		}
	}
	// stripe-mock's session is open, in payment mode, of no customer: not a finished set-up.
	if _, err := a.CompleteSetup(ctx, payments.SetupCompletion{Reference: s.Reference, Customer: cus}); payments.CodeOf(err) != payments.CodeSetupIncomplete {
		t.Fatalf("CompleteSetup of an open session: %v", err)
	}

	m, err := a.AttachMethod(ctx, payments.AttachRequest{Customer: cus, MethodID: "pm_card_visa"})
	// The expiry is whatever stripe-mock's fixture holds: ask stripe-mock itself.
	month, year := fixtureExpiry(t, mockURL, "pm_card_visa")
	want := payments.Method{Type: payments.MethodCard, ProcessorID: "pm_card_visa", Brand: payments.BrandVisa, Last4: "4242", ExpMonth: month, ExpYear: year}
	if err != nil || m != want {
		t.Fatalf("AttachMethod = %+v, %v; want %+v", m, err, want)
	}
	if r := find(f.Requests(), "POST", "/v1/payment_methods/pm_card_visa/attach"); len(r) != 1 || r[0].Form.Get("customer") != cus {
		t.Fatalf("attach requests %+v", r)
	}

	res, err := a.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_1/1", Amount: 150000, Currency: "ARS",
		Description: "Plan Pro", Method: payments.MethodRef{Type: payments.MethodCard, Token: m.ProcessorID}, Customer: cus})
	// stripe-mock's PaymentIntent is always requires_payment_method: read as a refusal.
	if err != nil || res.Status != payments.ChargeFailed || !strings.HasPrefix(res.Reference, "pi_") {
		t.Fatalf("Charge = %+v, %v", res, err)
	}
	r = find(f.Requests(), "POST", "/v1/payment_intents")[0]
	if r.Header.Get("Idempotency-Key") != "pay_1/1" {
		t.Errorf("Idempotency-Key = %q", r.Header.Get("Idempotency-Key"))
	}
	for k, want := range map[string]string{"amount": "150000", "currency": "ars", "confirm": "true", "off_session": "true",
		"customer": cus, "payment_method": "pm_card_visa", "payment_method_types[0]": "card",
		"metadata[portero_attempt]": "pay_1/1", "description": "Plan Pro"} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("payment intent %s = %q, want %q", k, got, want)
		}
	}
	if _, err := a.LookupCharge(ctx, payments.ChargeRequest{Reference: res.Reference}); err != nil {
		t.Fatalf("LookupCharge by reference: %v", err)
	}
	if _, err := a.LookupCharge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_1/1", Customer: cus}); !errors.Is(err, payments.ErrNoSuchCharge) {
		t.Fatalf("LookupCharge by key among stripe-mock's fixtures: %v", err)
	}
	if r := find(f.Requests(), "GET", "/v1/payment_intents"); len(r) != 1 || r[0].Query.Get("customer") != cus {
		t.Fatalf("list requests %+v", r)
	}
	if _, err := a.Authenticate(ctx, payments.ActionRequest{Reference: res.Reference, Customer: cus,
		Method: payments.MethodRef{Type: payments.MethodCard, Token: m.ProcessorID}, ReturnURL: "https://portal.example/p/return"}); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if r := find(f.Requests(), "POST", "/v1/payment_intents/"+res.Reference+"/confirm"); len(r) != 1 ||
		r[0].Form.Get("return_url") != "https://portal.example/p/return" || r[0].Form.Get("off_session") != "false" {
		t.Fatalf("confirm requests %+v", r)
	}
	if err := a.Detach(ctx, payments.DetachRequest{Customer: cus, MethodID: m.ProcessorID}); err != nil {
		t.Fatalf("Detach: %v", err)
	}

	for _, r := range f.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+testSecretKey || r.Header.Get("Stripe-Version") != stripelib.APIVersion {
			t.Errorf("%s %s sent Authorization/Stripe-Version %q/%q", r.Method, r.Path, r.Header.Get("Authorization"), r.Header.Get("Stripe-Version"))
		}
	}
}

func TestFailureCodes(t *testing.T) {
	for _, tt := range []struct{ code, decline, want string }{
		{"card_declined", "generic_decline", payments.CodeCardDeclined},
		{"card_declined", "insufficient_funds", payments.CodeInsufficientFunds},
		{"card_declined", "lost_card", payments.CodeCardDeclined},
		{"card_declined", "stolen_card", payments.CodeCardDeclined},
		{"card_declined", "fraudulent", payments.CodeCardDeclined},
		{"card_declined", "do_not_honor", payments.CodeCardDeclined},
		{"card_declined", "card_velocity_exceeded", payments.CodeCardLimitExceeded},
		{"card_declined", "try_again_later", payments.CodeProcessingError},
		{"expired_card", "", payments.CodeExpiredCard},
		{"incorrect_cvc", "", payments.CodeIncorrectCVC},
		{"card_declined", "incorrect_cvc", payments.CodeIncorrectCVC},
		{"incorrect_number", "", payments.CodeInvalidCardNumber},
		{"processing_error", "", payments.CodeProcessingError},
		{"authentication_required", "authentication_required", payments.CodeAuthenticationRequired},
		{"card_declined", "authentication_required", payments.CodeAuthenticationRequired},
		{"payment_intent_authentication_failure", "", payments.CodeAuthenticationFailed},
		{"amount_too_small", "", payments.CodeInvalidAmount},
		{"", "", payments.CodeCardDeclined},
	} {
		if got := stripe.FailureCode(tt.code, tt.decline); got != tt.want {
			t.Errorf("FailureCode(%q, %q) = %q, want %q", tt.code, tt.decline, got, tt.want)
		}
		e := &payments.Error{Code: tt.want}
		if e.Message("es") == e.Message("en") {
			t.Errorf("%s has no Spanish message of its own", tt.want)
		}
	}
}

// TestDeclineReplayedKeepsReference: a card error's PaymentIntent is the attempt's reference,
// so a later webhook about it finds the attempt.
func TestDeclineReplayedKeepsReference(t *testing.T) {
	e, f := envFor(t)
	processortest.SetUpCard(t, e)
	f.inject(faultDecline)
	id, a, r := processortest.Pay(t, e, 150000)
	if r.Status != charging.AttemptFailed || !strings.HasPrefix(r.Reference, "pi_") {
		t.Fatalf("declined charge = %+v", r)
	}
	if p := e.Recorder.Payment(id); p.Attempts[0].Reference != r.Reference {
		t.Fatalf("%v: reference not recorded", p)
	}
	// The payment_failed webhook that follows changes nothing.
	h, b := e.P.ChargeEvent(t, payments.EventChargeFailed, a.IdempotencyKey())
	if _, err := e.Driver.HandleWebhook(context.Background(), h, b); err != nil {
		t.Fatal(err)
	}
	if p := e.Recorder.Payment(id); len(p.Transitions) != 1 || p.FailureCode != payments.CodeCardDeclined {
		t.Fatalf("%v", p)
	}
}

// TestSaved500ReplayedStaysUnknown: Stripe saves a 500 from inside its endpoint under the key
// and answers the key with it for 24 hours. The attempt stays unknown — re-driven, never
// charged with another key — until Stripe answers otherwise.
func TestSaved500ReplayedStaysUnknown(t *testing.T) {
	ctx := context.Background()
	e, f := envFor(t)
	processortest.SetUpCard(t, e)
	f.inject(faultSaved500)
	id, a, r := processortest.Pay(t, e, 150000)
	if !r.Unknown {
		t.Fatalf("charge = %+v, want unknown", r)
	}
	for i := 0; i < 2; i++ {
		e.Recorder.Advance(2 * time.Minute)
		if n, err := e.Driver.Redrive(ctx, time.Minute); err != nil || n != 1 {
			t.Fatalf("Redrive = %d, %v", n, err)
		}
		if p := e.Recorder.Payment(id); p.Status != charging.AttemptProcessing {
			t.Fatalf("%v: want still processing", p)
		}
	}
	for _, r := range find(f.Requests(), "POST", "/v1/payment_intents") {
		if k := r.Header.Get("Idempotency-Key"); k != a.IdempotencyKey() {
			t.Fatalf("a re-drive used key %q, want %q", k, a.IdempotencyKey())
		}
	}
	if f.Collected() != 0 {
		t.Fatal("money moved")
	}
}

// TestLibraryRetryReplayedKey: with the library's retries on (as in production), a charge whose
// answer is lost once is retried with the same key and answered with the first PaymentIntent.
func TestLibraryRetryReplayedKey(t *testing.T) {
	e, f := envFor(t, func(o *stripe.Options) { o.MaxNetworkRetries = stripelib.Int64(2) })
	processortest.SetUpCard(t, e)
	f.inject(faultTimeoutAfterCollect)
	f.mu.Lock()
	f.healAfterCut = true
	f.mu.Unlock()
	id, a, r := processortest.Pay(t, e, 150000)
	if r.Status != charging.AttemptSucceeded {
		t.Fatalf("charge = %+v, want succeeded by the retry", r)
	}
	posts := find(f.Requests(), "POST", "/v1/payment_intents")
	if len(posts) < 2 {
		t.Fatalf("%d charge requests, want the lost one and its retry", len(posts))
	}
	for _, p := range posts {
		if p.Header.Get("Idempotency-Key") != a.IdempotencyKey() {
			t.Fatalf("retry with key %q", p.Header.Get("Idempotency-Key"))
		}
	}
	if f.Collected() != 1 || e.Recorder.Payment(id).Status != charging.AttemptSucceeded {
		t.Fatalf("collected %d, %v", f.Collected(), e.Recorder.Payment(id))
	}
}

// TestHostedSetupReplayedIsTheCustomersOnly: a set-up reference of another customer adds
// nothing, by the return page or by webhook.
func TestHostedSetupReplayedIsTheCustomersOnly(t *testing.T) {
	ctx := context.Background()
	e, f := envFor(t)
	s, err := e.Driver.StartSetup(ctx, e.Customer, charging.SetupInput{ReturnURL: "https://portal.example/r", CancelURL: "https://portal.example/c"})
	if err != nil {
		t.Fatal(err)
	}
	f.completeSession(s.Reference)
	mallory := e.Recorder.AddCustomer("mallory@example.com", "Mallory")
	if _, err := e.Driver.StartSetup(ctx, mallory, charging.SetupInput{ReturnURL: "https://portal.example/r", CancelURL: "https://portal.example/c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Driver.CompleteSetup(ctx, mallory, s.Reference); payments.CodeOf(err) != payments.CodeSetupIncomplete {
		t.Fatalf("another customer completing the set-up: %v", err)
	}
	if len(e.Recorder.Methods(mallory)) != 0 {
		t.Fatal("the card went to another customer")
	}
	// The customer closed the tab at Stripe: the webhook adds the card.
	f.mu.Lock()
	obj := f.renderSession(f.sessions[s.Reference], nil)
	f.mu.Unlock()
	h, b := f.event("checkout.session.completed", obj, time.Now())
	if _, err := e.Driver.HandleWebhook(ctx, h, b); err != nil {
		t.Fatal(err)
	}
	ms := e.Recorder.Methods(e.Customer)
	if len(ms) != 1 || ms[0].Last4 != "4242" {
		t.Fatalf("methods after the webhook: %+v", ms)
	}
	// Coming back afterwards adds nothing more.
	if added, err := e.Driver.CompleteSetup(ctx, e.Customer, s.Reference); err != nil || added.Added {
		t.Fatalf("CompleteSetup after the webhook = %+v, %v", added, err)
	}
}

// TestAttachProcessorMethodReplayed: the merchant API's {"type":"card","processor_payment_method":"pm_…"}.
func TestAttachProcessorMethodReplayed(t *testing.T) {
	ctx := context.Background()
	e, f := envFor(t)
	pm := f.addCard("mastercard", "4444")
	added, err := e.Driver.AttachProcessorMethod(ctx, e.Customer, pm)
	want := payments.Method{Type: payments.MethodCard, ProcessorID: pm, Brand: payments.BrandMastercard, Last4: "4444", ExpMonth: 7, ExpYear: cardExpYear()}
	if err != nil || !added.Added || added.Method != want {
		t.Fatalf("AttachProcessorMethod = %+v, %v", added, err)
	}
	if again, err := e.Driver.AttachProcessorMethod(ctx, e.Customer, pm); err != nil || again.Added {
		t.Fatalf("attaching again = %+v, %v", again, err)
	}
	other := e.Recorder.AddCustomer("b@example.com", "B")
	if _, err := e.Driver.AttachProcessorMethod(ctx, other, pm); payments.CodeOf(err) != payments.CodePaymentMethodInUse {
		t.Fatalf("another customer's method: %v", err)
	}
	for _, bad := range []string{"tok_visa", "pm_nope", "", "pm_ spaces"} {
		if _, err := e.Driver.AttachProcessorMethod(ctx, other, bad); payments.CodeOf(err) != payments.CodeInvalidPaymentMethod {
			t.Fatalf("AttachProcessorMethod(%q): %v", bad, err)
		}
	}
	// It is charged off-session like a card set up on Stripe's page.
	if _, _, r := processortest.Pay(t, e, 5000); r.Status != charging.AttemptSucceeded {
		t.Fatalf("charge = %+v", r)
	}
}

// TestRemoveMethodReplayedDetachesAtStripe: the customer removes a card in the portal.
func TestRemoveMethodReplayedDetachesAtStripe(t *testing.T) {
	ctx := context.Background()
	e, f := envFor(t)
	added := processortest.SetUpCard(t, e)
	if err := e.Driver.RemoveMethod(ctx, e.Customer, added.MethodID); err != nil {
		t.Fatal(err)
	}
	if len(e.Recorder.Methods(e.Customer)) != 0 || len(find(f.Requests(), "POST", "/v1/payment_methods/"+added.Method.ProcessorID+"/detach")) != 1 {
		t.Fatal("the method was not detached at Stripe and removed")
	}
	f.mu.Lock()
	owner := f.pms[added.Method.ProcessorID].customer
	f.mu.Unlock()
	if owner != "" {
		t.Fatal("still attached at Stripe")
	}
}

// TestAuthenticateReplayedTwiceIsOneChallenge: a customer clicking twice gets the same 3-D
// Secure page; Stripe confirms once.
func TestAuthenticateReplayedTwiceIsOneChallenge(t *testing.T) {
	ctx := context.Background()
	e, f := envFor(t)
	processortest.SetUpCard(t, e)
	f.inject(faultRequiresAction)
	id, _, _ := processortest.Pay(t, e, 150000)
	first, _, err := e.Driver.Authenticate(ctx, e.Customer, id, "https://portal.example/p")
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := e.Driver.Authenticate(ctx, e.Customer, id, "https://portal.example/p")
	if err != nil || second != first {
		t.Fatalf("second Authenticate = %q, %v; want %q", second, err, first)
	}
	f.mu.Lock()
	var piID string
	for k := range f.pis {
		piID = k
	}
	f.mu.Unlock()
	if n := len(find(f.Requests(), "POST", "/v1/payment_intents/"+piID+"/confirm")); n != 1 {
		t.Fatalf("%d confirmations, want 1", n)
	}
}

// closedURL is an http URL nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// TestUnreachableStripeIsRetryableAndChangesNothing: with Stripe unreachable every step fails
// with a retryable error and leaves Portero as it was.
func TestUnreachableStripeIsRetryableAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	a := newAdapter(t, closedURL(t))
	mem := chargingtest.NewMemory()
	d, err := charging.New(charging.Options{Adapter: a, Recorder: mem})
	if err != nil {
		t.Fatal(err)
	}
	cust := mem.AddCustomer("ana@example.com", "Ana")
	if _, err := d.StartSetup(ctx, cust, charging.SetupInput{ReturnURL: "https://p.example/r", CancelURL: "https://p.example/c"}); !payments.IsUnavailable(err) {
		t.Fatalf("StartSetup: %v, want unavailable", err)
	}
	if _, err := d.AttachProcessorMethod(ctx, cust, "pm_card_visa"); !payments.IsUnavailable(err) {
		t.Fatalf("AttachProcessorMethod: %v, want unavailable", err)
	}
	if c, _ := mem.Customer(ctx, stripe.Type, cust); c.ProcessorCustomer != "" || len(mem.Methods(cust)) != 0 {
		t.Fatalf("something was recorded: %+v %+v", c, mem.Methods(cust))
	}
	// A customer and a card recorded earlier, then Stripe goes away.
	if _, err := mem.SetProcessorCustomer(ctx, stripe.Type, cust, "cus_earlier"); err != nil {
		t.Fatal(err)
	}
	mid, _, _ := mem.AddMethod(ctx, cust, stripe.Type, payments.Method{Type: payments.MethodCard, ProcessorID: "pm_earlier", Brand: payments.BrandVisa, Last4: "4242", ExpMonth: 1, ExpYear: cardExpYear()})
	if err := d.RemoveMethod(ctx, cust, mid); !payments.IsUnavailable(err) || len(mem.Methods(cust)) != 1 {
		t.Fatalf("RemoveMethod: %v (methods %d), want unavailable and the method kept", err, len(mem.Methods(cust)))
	}
	id, att := mem.CreatePayment(cust, 150000, "ARS", "Plan")
	r, err := d.Charge(ctx, *att)
	if err != nil || !r.Unknown || mem.Payment(id).Status != charging.AttemptProcessing {
		t.Fatalf("Charge = %+v, %v: want unknown, left processing", r, err)
	}
	if _, err := a.EnsureCustomer(ctx, payments.CustomerRequest{ID: "x"}); !payments.IsUnavailable(err) {
		t.Fatalf("EnsureCustomer: %v", err)
	}
	// The message a customer would see says to retry and that nothing happened.
	if m := (&payments.Error{Code: payments.CodeProcessorUnavailable}).Message("es"); !strings.Contains(m, "no se cobró") {
		t.Fatalf("message %q", m)
	}
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	const key, whsec = "sk_test_Secret123", "whsec_Secret456"
	for _, tt := range []struct {
		name   string
		secret map[string][]byte
		names  string
	}{
		{"no key", map[string][]byte{"webhook_secret": []byte(whsec)}, "secret_key"},
		{"publishable key", map[string][]byte{"secret_key": []byte("pk_test_Secret123"), "webhook_secret": []byte(whsec)}, "secret_key"},
		{"no webhook secret", map[string][]byte{"secret_key": []byte(key)}, "webhook_secret"},
		{"bad webhook secret", map[string][]byte{"secret_key": []byte(key), "webhook_secret": []byte("Secret456")}, "webhook_secret"},
		{"bad api_base", map[string][]byte{"secret_key": []byte(key), "webhook_secret": []byte(whsec), "api_base": []byte("ftp://x")}, "api_base"},
		{"api_base with credentials", map[string][]byte{"secret_key": []byte(key), "webhook_secret": []byte(whsec), "api_base": []byte("https://u:p@x")}, "api_base"},
		{"plain-http api_base off the machine", map[string][]byte{"secret_key": []byte(key), "webhook_secret": []byte(whsec), "api_base": []byte("http://api.example.com")}, "api_base"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := stripe.Factory(payments.Config{Secret: tt.secret})
			if err == nil || a != nil {
				t.Fatalf("Factory = %v, %v: want an error", a, err)
			}
			if !strings.Contains(err.Error(), tt.names) || strings.Contains(err.Error(), "Secret123") || strings.Contains(err.Error(), "Secret456") {
				t.Fatalf("error %q: want it to name %s and not show a value", err, tt.names)
			}
		})
	}
	for _, base := range []string{"http://127.0.0.1:12111", "http://localhost:12111", "http://[::1]:12111",
		"http://stripe-mock.payments.svc:12111", "http://egress.payments.svc.cluster.local", "https://proxy.example.com"} {
		if _, err := stripe.Factory(payments.Config{Secret: map[string][]byte{"secret_key": []byte(key), "webhook_secret": []byte(whsec), "api_base": []byte(base)}}); err != nil {
			t.Errorf("api_base %s refused: %v", base, err)
		}
	}
	a, err := stripe.Factory(payments.Config{Secret: map[string][]byte{"secret_key": []byte(key), "webhook_secret": []byte(whsec)}})
	if err != nil || a.Type() != stripe.Type || !a.Capabilities().HostedSetup || !a.Capabilities().Takes(payments.MethodCard) || a.Capabilities().Takes(payments.MethodCVU) {
		t.Fatalf("Factory = %v, %v", a, err)
	}
}

var _ = http.StatusOK

// fixtureExpiry reads a PaymentMethod's card expiry from the Stripe API at base (stripe-mock's
// fixture).
func fixtureExpiry(t *testing.T, base, id string) (month, year int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/payment_methods/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk_test_fixture")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pm struct {
		Card struct {
			ExpMonth int `json:"exp_month"`
			ExpYear  int `json:"exp_year"`
		} `json:"card"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&pm); err != nil || pm.Card.ExpYear == 0 {
		t.Fatalf("stripe-mock's %s: %v (%+v)", id, err, pm)
	}
	return pm.Card.ExpMonth, pm.Card.ExpYear
}
