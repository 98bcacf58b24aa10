package api

import (
	"fmt"
	"strings"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// A customer cannot add a 51st payment method: the portal's paymentMethods.maxPerCustomer
// (default 50) is a rule of the portal, answered 422 with a stable code, and applied live.
func TestPaymentMethodCapPerCustomer(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("many@example.com")
	path := "/api/v1/customers/" + c.ID + "/payment_methods"
	for i := 0; i < billingv1alpha1.DefaultMaxPaymentMethodsPerCustomer; i++ {
		f.addMethod(c.ID, map[string]any{"type": "bank_transfer"})
	}
	add := req{method: "POST", path: path, body: map[string]any{"type": "card", "card": map[string]any{
		"number": "4242424242424242", "exp_month": 12, "exp_year": cardExpYear(), "cvc": "123"}}}
	e := f.expect(add, 422, "payment_method_limit_reached").err(t)
	if !strings.Contains(e.Message, "50") {
		t.Errorf("message %q does not say the cap", e.Message)
	}
	add.headers = map[string]string{"Accept-Language": "es-AR"}
	if e := f.expect(add, 422, "payment_method_limit_reached").err(t); !strings.Contains(e.Message, "Ya hay 50 medios de pago") {
		t.Errorf("Spanish message %q", e.Message)
	}
	add.headers = nil
	var list listResponse[paymentMethodJSON]
	f.expect(req{method: "GET", path: path}, 200, "").json(t, &list)
	if len(list.Data) != 50 {
		t.Fatalf("%d methods after the refusal, want 50", len(list.Data))
	}
	if strings.Contains(f.bodies.String(), "4242424242424242") {
		t.Fatal("the card number is in a response")
	}

	// Raised on the live portal: the next add goes through, with no restart.
	f.patchPortal(func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true, MaxPerCustomer: 51}
	}, func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.PaymentMethods.Max() == 51 })
	f.expect(add, 201, "")
	f.expect(add, 422, "payment_method_limit_reached")

	// Lowered below what the customer has: nothing is removed, nothing more is added.
	f.patchPortal(func(p *billingv1alpha1.CustomerPortal) { p.Spec.PaymentMethods.MaxPerCustomer = 10 },
		func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.PaymentMethods.Max() == 10 })
	if e := f.expect(add, 422, "payment_method_limit_reached").err(t); !strings.Contains(e.Message, fmt.Sprint(10)) {
		t.Errorf("message %q does not say the lowered cap", e.Message)
	}
	f.expect(req{method: "GET", path: path}, 200, "").json(t, &list)
	if len(list.Data) != 51 {
		t.Fatalf("%d methods after lowering the cap, want the 51 saved", len(list.Data))
	}
}
