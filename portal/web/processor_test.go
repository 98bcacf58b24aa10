package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/payments/stripe/stripemock"
)

// stripePortal is a fixture whose processor is Stripe (stripe-mock at apiBase), cards only.
func stripePortal(t *testing.T, apiBase string) *fixture {
	t.Helper()
	name := "stripe-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 60 {
		name = name[:60]
	}
	name = strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name), "-")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		StringData: map[string]string{"secret_key": "sk_test_portero", "webhook_secret": "whsec_portero_test", "api_base": apiBase}}
	if err := k8s.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sec) })
	return newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card"}}
		s.Processor = &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorStripe,
			SecretRef: &billingv1alpha1.LocalObjectReference{Name: name}}
	}))
}

// On a Stripe portal the card is typed on Stripe's page only: no page holds a card field,
// "add a card" (and "pay with a new card") answers 303 off the portal, card fields posted by
// hand are refused unread with a page that says why (es/en), and a set-up the customer did not
// finish adds nothing.
func TestStripePortalTakesNoCardDetails(t *testing.T) {
	sm := stripemock.Start(t)
	f := stripePortal(t, sm.URL)
	c := f.customer("ana@example.com", "Ana")
	b := f.browser()
	b.signIn(c)

	cardFields := []string{`name="number"`, `name="cvc"`, `autocomplete="cc-number"`, `autocomplete="cc-csc"`}
	for _, path := range []string{"/", "/methods", "/methods/new"} {
		r := okPage(t, b.get(path))
		wantNoBody(t, r, cardFields...)
	}
	wantBody(t, b.get("/methods/new"), `href="/methods/new?type=card"`)

	offPortal := func(t *testing.T, r *response) {
		t.Helper()
		wantStatus(t, r, http.StatusSeeOther)
		u, err := url.Parse(r.location())
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Host == b.host {
			t.Fatalf("redirected to %q, want Stripe's page (https, off the portal)", r.location())
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", r.Header.Get("Cache-Control"))
		}
	}
	offPortal(t, b.get("/methods/new?type=card"))
	offPortal(t, b.get("/methods/new?type=card&preferred=1"))
	if ms := f.methods(c); len(ms) != 0 {
		t.Fatalf("a started set-up recorded %d methods", len(ms))
	}
	pc, err := f.ledger.Customer(f.ctx, payments.ProcessorStripe, c.ID)
	if err != nil || !strings.HasPrefix(pc.ProcessorCustomer, "cus_") {
		t.Fatalf("Stripe customer = %+v, %v: want one created and kept", pc, err)
	}

	// A payment waiting for a card: paying it with a new card goes to Stripe too.
	p := f.charge(c, 150000, "Plan Pro")
	if p.Status != ledger.PaymentIncomplete {
		t.Fatalf("payment %s, want incomplete", p.Status)
	}
	r := okPage(t, b.get("/payments/"+p.ID))
	wantNoBody(t, r, cardFields...)
	wantBody(t, r, `href="/payments/`+p.ID+`/pay?type=card"`)
	offPortal(t, b.get("/payments/"+p.ID+"/pay?type=card"))

	// Card fields posted by hand: refused unread, in the customer's language.
	b.get("/methods")
	for _, lang := range []struct{ code, want string }{
		{"es", "Este portal no recibe datos de tarjeta"},
		{"en", "This portal does not take card details"},
	} {
		b.get("/methods?lang=" + lang.code)
		b.get("/methods")
		r := b.submit("/methods", cardForm("4242 4242 4242 4242", leakCVC))
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, lang.want)
		wantNoBody(t, r, "4242")
	}
	r = b.submit("/payments/"+p.ID+"/pay", cardForm("4242 4242 4242 4242", leakCVC))
	wantStatus(t, r, http.StatusBadRequest)
	if ms := f.methods(c); len(ms) != 0 {
		t.Fatalf("posted card fields added %d methods", len(ms))
	}
	if strings.Contains(f.logs.String(), "4242424242424242") || strings.Contains(f.logs.String(), "4242 4242") {
		t.Fatal("a posted card number reached the logs")
	}

	// stripe-mock's session is never completed: coming back with it adds nothing, and says so.
	b.get("/methods?lang=es")
	r = b.get("/methods/return?" + payments.SetupReferenceParam + "=cs_test_unfinished")
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, (&payments.Error{Code: payments.CodeSetupIncomplete}).Message("es"))
	if ms := f.methods(c); len(ms) != 0 {
		t.Fatalf("an unfinished set-up added %d methods", len(ms))
	}
}

// An unreachable processor shows the customer a retryable error and writes nothing half-done;
// so does a processor whose Secret the portal cannot read.
func TestUnreachableProcessorIsRetryable(t *testing.T) {
	f := stripePortal(t, "http://127.0.0.1:1") // nothing listens there
	c := f.customer("ana@example.com", "Ana")
	b := f.browser()
	b.signIn(c)
	for _, path := range []string{"/methods/new?type=card", "/payments/" + f.charge(c, 1000, "x").ID + "/pay?type=card"} {
		r := b.get(path)
		wantStatus(t, r, http.StatusServiceUnavailable)
		wantBody(t, r, "No pudimos comunicarnos con el procesador de pagos y no se guardó nada")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", path)
		}
	}
	if pc, err := f.ledger.Customer(f.ctx, payments.ProcessorStripe, c.ID); err != nil || pc.ProcessorCustomer != "" {
		t.Fatalf("processor customer = %+v, %v: nothing must be stored", pc, err)
	}
	if ms := f.methods(c); len(ms) != 0 {
		t.Fatalf("%d methods", len(ms))
	}

	// The Secret gone (the operator reports Stalled): the same answer, once the cached one ages.
	var sec corev1.Secret
	ref := f.portal.Spec.Processor.SecretRef.Name
	if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: testNamespace, Name: ref}, &sec); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(f.ctx, &sec); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Minute)
	r := b.get("/methods/new?type=card")
	wantStatus(t, r, http.StatusServiceUnavailable)
	wantNoBody(t, r, "sk_test_portero")
	if strings.Contains(f.logs.String(), "sk_test_portero") || strings.Contains(f.logs.String(), "whsec_portero_test") {
		t.Fatal("a processor credential reached the logs")
	}
}

// A charge the bank wants authenticated waits for the customer: the payment page offers a link
// to the bank, the customer comes back, and the payment succeeds — once, however often the
// return page is loaded.
func TestAuthenticationRequiredIsCompletedByTheCustomerOnce(t *testing.T) {
	f := newFixture(t)
	c := f.customer("ana@example.com", "Ana")
	f.addMethod(c, cardInput("4242424242424242"))
	d, err := f.procs.Driver(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb := d.Adapter().(*sandbox.Adapter)
	sb.InjectFault(sandbox.FaultRequiresAction)
	p, claim, err := f.ledger.Store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 99000,
		Currency: ledger.ARS, Description: "Plan Pro", Processor: d.Adapter().Type()})
	if err != nil || claim == nil {
		t.Fatalf("create payment: %v (claim %v)", err, claim)
	}
	if res, err := d.Charge(f.ctx, *claim); err != nil || res.Status != charging.AttemptRequiresAction {
		t.Fatalf("charge = %+v, %v", res, err)
	}
	if got := f.payment(p.ID); got.Status != ledger.PaymentRequiresAction || !got.Due() {
		t.Fatalf("payment %s (due %v), want requires_action and due", got.Status, got.Due())
	}

	b := f.browser()
	b.signIn(c)
	r := okPage(t, b.get("/payments/"+p.ID))
	wantBody(t, r, "Tu banco pide que confirmes este pago", `href="/payments/`+p.ID+`/authenticate"`, "Falta confirmarlo")
	before := sb.Collected()

	r = b.get("/payments/" + p.ID + "/authenticate")
	wantStatus(t, r, http.StatusSeeOther)
	back, err := url.Parse(r.location())
	if err != nil || back.Path != "/payments/"+p.ID+"/authenticated" {
		t.Fatalf("the sandbox's bank sends the customer to %q", r.location())
	}
	for i := 0; i < 2; i++ { // the return page, then a reload
		wantRedirect(t, b.get(back.RequestURI()), "/payments/"+p.ID)
	}
	got := f.payment(p.ID)
	if got.Status != ledger.PaymentSucceeded || len(got.Attempts) != 1 || got.Attempts[0].Outcome != ledger.PaymentSucceeded {
		t.Fatalf("payment after authentication = %s with %d attempts", got.Status, len(got.Attempts))
	}
	if n := sb.Collected() - before; n != 1 {
		t.Fatalf("money moved %d times, want once", n)
	}
	wantBody(t, b.get("/payments/"+p.ID), "¡Listo! El pago se aprobó.")
	// Nothing left to authenticate: the link leads back to the payment.
	wantRedirect(t, b.get("/payments/"+p.ID+"/authenticate"), "/payments/"+p.ID)
}
