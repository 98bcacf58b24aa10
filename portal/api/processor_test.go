package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/stripe/stripemock"
)

// withStripe makes the portal charge through Stripe at apiBase (stripe-mock), cards only.
func withStripe(t testing.TB, apiBase string) func(*billingv1alpha1.CustomerPortal) {
	return func(p *billingv1alpha1.CustomerPortal) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: "acme-stripe"},
			StringData: map[string]string{"secret_key": "sk_test_PorteroApi", "webhook_secret": "whsec_portero_api", "api_base": apiBase}}
		if err := k8s.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true}
		p.Spec.Processor = &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorStripe,
			SecretRef: &billingv1alpha1.LocalObjectReference{Name: "acme-stripe"}}
	}
}

// On a Stripe portal the merchant API takes a card as a processor_payment_method and refuses
// raw card details unread (400 raw_card_not_accepted); the other types are not this portal's.
func TestStripePortalRefusesRawCards(t *testing.T) {
	sm := stripemock.Start(t)
	f := newFixture(t, withStripe(t, sm.URL))
	c := f.customer("ana@example.com")
	path := "/api/v1/customers/" + c.ID + "/payment_methods"
	res := f.expect(req{method: "POST", path: path, body: map[string]any{"type": "card",
		"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}}},
		http.StatusBadRequest, CodeRawCardNotAccepted)
	if e := res.err(t); e.Field != "card" || !strings.Contains(e.Message, "processor_payment_method") {
		t.Errorf("refusal = %+v: want field card and a message saying what to send instead", e)
	}
	// Even an invalid number is refused for what it is, not checked: it is never read.
	f.expect(req{method: "POST", path: path, body: map[string]any{"type": "card", "card": map[string]any{"number": "x"}}},
		http.StatusBadRequest, CodeRawCardNotAccepted)
	f.expect(req{method: "POST", path: path, body: map[string]any{"type": "direct_debit", "account": "0110599552000000123456"}},
		http.StatusUnprocessableEntity, CodeMethodTypeNotAllowed)
	f.expect(req{method: "POST", path: path, body: map[string]any{"type": "card", "processor_payment_method": "pm_1", "card": map[string]any{"number": "4242424242424242"}}},
		http.StatusBadRequest, "invalid_field")
	var list struct{ Data []paymentMethodJSON }
	f.expect(req{method: "GET", path: path}, http.StatusOK, "").json(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("refused requests added %d methods", len(list.Data))
	}
	// A card created at Stripe (here, stripe-mock's) is adopted: attached to the customer's
	// Stripe customer, which is created for it.
	var m paymentMethodJSON
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.logs.String())
		}
	})
	f.expect(req{method: "POST", path: path, body: map[string]any{"type": "card", "processor_payment_method": "pm_1Qx2Ab3Cd4Ef5Gh6"}},
		http.StatusCreated, "").json(t, &m)
	if m.Type != "card" || m.Card == nil || len(m.Card.Last4) != 4 || m.Card.Fingerprint != "" {
		t.Fatalf("adopted card = %+v: want brand, last 4 and expiry, nothing more", m)
	}
	if pc, err := f.store.Customer(f.ctx, payments.ProcessorStripe, c.ID); err != nil || !strings.HasPrefix(pc.ProcessorCustomer, "cus_") {
		t.Fatalf("Stripe customer = %+v, %v", pc, err)
	}
	if strings.Contains(f.logs.String(), "4242424242424242") || strings.Contains(f.bodies.String(), "4242424242424242") {
		t.Fatal("a raw card number reached the logs or a response")
	}
	if strings.Contains(f.logs.String(), "sk_test_PorteroApi") || strings.Contains(f.bodies.String(), "sk_test_PorteroApi") {
		t.Fatal("the processor's secret key reached the logs or a response")
	}
}

// A card created at the processor is adopted for the customer: on the sandbox with Stripe's
// test names (pm_card_visa), and a pending payment is confirmed through the driver. A portal
// whose processor cannot be reached refuses with 503 processor_unavailable and records nothing.
func TestProcessorPaymentMethod(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("ana@example.com")
	path := "/api/v1/customers/" + c.ID + "/payment_methods"
	var m paymentMethodJSON
	f.expect(req{method: "POST", path: path, body: map[string]any{"type": "card", "processor_payment_method": "pm_card_visa"}},
		http.StatusCreated, "").json(t, &m)
	if m.Type != "card" || m.Card == nil || m.Card.Last4 != "4242" || m.Card.Brand != "visa" {
		t.Fatalf("adopted method = %+v", m)
	}
	f.expect(req{method: "POST", path: path, body: map[string]any{"type": "card", "processor_payment_method": "pm_unknown"}},
		http.StatusBadRequest, payments.CodeInvalidPaymentMethod)
}

func TestUnreachableProcessorRecordsNothing(t *testing.T) {
	f := newFixture(t, withStripe(t, "http://127.0.0.1:1"))
	c := f.customer("ana@example.com")
	res := f.expect(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods",
		body: map[string]any{"type": "card", "processor_payment_method": "pm_1"}}, http.StatusServiceUnavailable, payments.CodeProcessorUnavailable)
	if res.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	var list struct{ Data []paymentMethodJSON }
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/payment_methods"}, http.StatusOK, "").json(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("%d methods recorded", len(list.Data))
	}
	if pc, err := f.store.Customer(f.ctx, payments.ProcessorStripe, c.ID); err != nil || pc.ProcessorCustomer != "" {
		t.Fatalf("processor customer = %+v, %v: nothing must be stored", pc, err)
	}
}
