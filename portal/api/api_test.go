package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

func TestAuthentication(t *testing.T) {
	f := newFixture(t, nil)
	f.api.keys.ttl = 0 // read the key on every request, to see rotation at once

	t.Run("missing, wrong or malformed keys are refused", func(t *testing.T) {
		for name, r := range map[string]req{
			"no header":    {key: "-"},
			"wrong key":    {key: testKey + "x"},
			"prefix only":  {key: testKey[:10]},
			"basic scheme": {key: "-", headers: map[string]string{"Authorization": "Basic " + testKey}},
			"empty bearer": {key: "-", headers: map[string]string{"Authorization": "Bearer "}},
		} {
			r.method, r.path = "GET", "/api/v1/customers"
			res := f.expect(r, http.StatusUnauthorized, CodeUnauthorized)
			if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate = %q", name, res.header.Get("WWW-Authenticate"))
			}
		}
		f.expect(req{method: "GET", path: "/api/v1/customers", headers: map[string]string{"Authorization": "bearer " + testKey}, key: "-"}, 200, "")
	})

	t.Run("a refused write writes nothing", func(t *testing.T) {
		f.expect(req{method: "POST", path: "/api/v1/customers", key: "wrong", body: map[string]any{"email": "intruder@example.com"}}, 401, CodeUnauthorized)
		var l listResponse[customerJSON]
		f.expect(req{method: "GET", path: "/api/v1/customers?email=intruder@example.com"}, 200, "").json(t, &l)
		if len(l.Data) != 0 {
			t.Fatalf("an unauthenticated request created %v", l.Data)
		}
	})

	t.Run("the document needs no key", func(t *testing.T) {
		res := f.expect(req{method: "GET", path: "/api/v1/openapi.json", key: "-"}, 200, "")
		if !strings.Contains(string(res.body), `"openapi": "3.1.0"`) {
			t.Fatalf("not the document: %.100s", res.body)
		}
	})

	t.Run("a rotated key applies without restart", func(t *testing.T) {
		const newKey = "pk_test_rotated_9876543210"
		sec := &corev1.Secret{}
		if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: keySecret}, sec); err != nil {
			t.Fatal(err)
		}
		sec.Data["key"] = []byte(newKey + "\n") // as `kubectl create secret --from-file` leaves it
		if err := k8s.Update(f.ctx, sec); err != nil {
			t.Fatal(err)
		}
		f.expect(req{method: "GET", path: "/api/v1/customers", key: newKey}, 200, "")
		f.expect(req{method: "GET", path: "/api/v1/customers"}, 401, CodeUnauthorized)
	})

	t.Run("the cached key is reused within its TTL", func(t *testing.T) {
		f.api.keys.ttl = time.Hour
		f.expect(req{method: "GET", path: "/api/v1/customers", key: "pk_test_rotated_9876543210"}, 200, "")
		sec := &corev1.Secret{}
		if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: keySecret}, sec); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Delete(f.ctx, sec); err != nil {
			t.Fatal(err)
		}
		f.expect(req{method: "GET", path: "/api/v1/customers", key: "pk_test_rotated_9876543210"}, 200, "")
		f.api.keys.ttl = 0
		f.expect(req{method: "GET", path: "/api/v1/customers", key: "pk_test_rotated_9876543210"}, 503, CodeMerchantAPIKeyUnavailable)
	})

	t.Run("a portal without merchantAPI has no API", func(t *testing.T) {
		f.patchPortal(func(p *billingv1alpha1.CustomerPortal) { p.Spec.MerchantAPI = nil },
			func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.MerchantAPI == nil })
		f.expect(req{method: "GET", path: "/api/v1/customers"}, 404, CodeMerchantAPIDisabled)
		f.expect(req{method: "GET", path: "/api/v1/openapi.json", key: "-"}, 200, "")
	})
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	f := newFixture(t, nil)
	f.expect(req{method: "GET", path: "/api/v1/invoices"}, 404, CodeRouteNotFound)
	res := f.expect(req{method: "DELETE", path: "/api/v1/payments/pay_1"}, 405, CodeMethodNotAllowed)
	if res.header.Get("Allow") != "GET" {
		t.Errorf("Allow = %q", res.header.Get("Allow"))
	}
	res = f.expect(req{method: "GET", path: "/api/v1/payments/pay_missing", headers: map[string]string{"Accept-Language": "es-AR,es;q=0.9,en;q=0.5"}}, 404, "not_found")
	if msg := res.err(t).Message; msg != "No existe el pago." {
		t.Errorf("Spanish message = %q", msg)
	}
	res = f.expect(req{method: "GET", path: "/api/v1/payments/pay_missing", headers: map[string]string{"Accept-Language": "en;q=0.9,es;q=0.2"}}, 404, "not_found")
	if msg := res.err(t).Message; msg != "The payment does not exist." {
		t.Errorf("English message = %q", msg)
	}
}

// TestRefusedRequestsLoseNothing sends every kind of bad request a merchant's code can produce
// and checks each is refused with its status and code and that nothing was written.
func TestRefusedRequestsLoseNothing(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("refusals@example.com")
	good := map[string]any{"customer_id": c.ID, "amount": 1000, "currency": "ARS"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name        string
		body        any
		contentType string
		noKey       bool
		status      int
		code, field string
	}{
		{name: "malformed JSON", body: `{"customer_id": "` + c.ID + `", "amount": 1000,`, status: 400, code: CodeMalformedJSON},
		{name: "not JSON at all", body: `amount=1000`, status: 400, code: CodeMalformedJSON},
		{name: "empty body", body: ``, status: 400, code: CodeMalformedJSON},
		{name: "two JSON values", body: `{"customer_id":"` + c.ID + `","amount":1000,"currency":"ARS"} {}`, status: 400, code: CodeMalformedJSON},
		{name: "array instead of object", body: `[1,2]`, status: 400, code: CodeMalformedJSON},
		{name: "unknown field", body: with("amount_cents", 1000), status: 400, code: CodeUnknownField, field: "amount_cents"},
		{name: "negative amount", body: with("amount", -1000), status: 400, code: "invalid_amount", field: "amount"},
		{name: "zero amount", body: with("amount", 0), status: 400, code: "invalid_amount", field: "amount"},
		{name: "fractional amount", body: with("amount", 10.5), status: 400, code: "invalid_field", field: "amount"},
		{name: "amount as string", body: with("amount", "1000"), status: 400, code: "invalid_field", field: "amount"},
		{name: "unsupported currency", body: with("currency", "BTC"), status: 400, code: "unsupported_currency", field: "currency"},
		{name: "missing currency", body: with("currency", nil), status: 400, code: "unsupported_currency", field: "currency"},
		{name: "missing customer", body: with("customer_id", nil), status: 400, code: "required", field: "customer_id"},
		{name: "unknown customer", body: with("customer_id", "cus_nobody"), status: 404, code: "not_found"},
		{name: "form content type", body: good, contentType: "application/x-www-form-urlencoded", status: 415, code: CodeUnsupportedMediaType},
		{name: "oversized body", body: `{"customer_id":"` + c.ID + `","amount":1000,"currency":"ARS","description":"` + strings.Repeat("x", maxBodyBytes) + `"}`, status: 413, code: CodeRequestTooLarge},
		{name: "no key", body: good, noKey: true, status: 401, code: CodeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req{method: "POST", path: "/api/v1/payments", body: tc.body, contentType: tc.contentType,
				headers: map[string]string{"Idempotency-Key": newKey()}}
			if tc.noKey {
				r.key = "-"
			}
			res := f.expect(r, tc.status, tc.code)
			if e := res.err(t); e.Field != tc.field {
				t.Errorf("field = %q, want %q", e.Field, tc.field)
			}
			if got := f.payments(c.ID); len(got) != 0 {
				t.Fatalf("a refused request wrote a payment: %+v", got)
			}
		})
	}
	t.Run("missing Idempotency-Key", func(t *testing.T) {
		f.expect(req{method: "POST", path: "/api/v1/payments", body: good}, 400, CodeIdempotencyKeyRequired)
		f.expect(req{method: "POST", path: "/api/v1/payments", body: good, headers: map[string]string{"Idempotency-Key": "portero:reserved"}}, 400, "invalid_field")
		if got := f.payments(c.ID); len(got) != 0 {
			t.Fatalf("a refused request wrote a payment: %+v", got)
		}
	})
	t.Run("bad customers, methods and subscriptions", func(t *testing.T) {
		for _, tc := range []struct {
			path        string
			body        any
			code, field string
		}{
			{"/api/v1/customers", map[string]any{"email": "not-an-address"}, "invalid_field", "email"},
			{"/api/v1/customers", map[string]any{"email": "x@example.com", "nmae": "typo"}, CodeUnknownField, "nmae"},
			{"/api/v1/customers", map[string]any{"email": "x@example.com", "billing": map[string]any{"tax_id": "20-12345678-0", "tax_condition": "monotributista"}}, "invalid_cuit_check_digit", "billing.tax_id"},
			{"/api/v1/customers", map[string]any{"email": "x@example.com", "billing": map[string]any{"address": map[string]any{"street": "x"}}}, CodeUnknownField, "billing.address.street"},
			{"/api/v1/customers/" + c.ID + "/payment_methods", map[string]any{"type": "direct_debit", "account": "0110599552000000123450"}, "invalid_cbu_check_digit", "account"},
			{"/api/v1/customers/" + c.ID + "/payment_methods", map[string]any{"type": "card", "card": map[string]any{"number": "4242424242424241", "exp_month": 12, "exp_year": cardExpYear(), "cvc": "123"}}, "invalid_card_number", "card.number"},
			{"/api/v1/customers/" + c.ID + "/payment_methods", map[string]any{"type": "card", "card": map[string]any{"number": "4242424242424242", "exp_month": 1, "exp_year": time.Now().Year() - 1, "cvc": "123"}}, "expired_card", "card.exp_year"},
			{"/api/v1/customers/" + c.ID + "/payment_methods", map[string]any{"type": "card"}, "required", "card"},
			{"/api/v1/customers/" + c.ID + "/payment_methods", map[string]any{"type": "cvu", "account": "0000003110000000123456", "card": map[string]any{"number": "4242424242424242"}}, "invalid_field", "card"},
			{"/api/v1/customers/" + c.ID + "/payment_methods", map[string]any{"type": "crypto"}, "unsupported_payment_method", "type"},
			{"/api/v1/subscriptions", map[string]any{"customer_id": c.ID, "plan": "Pro", "amount": -5, "currency": "ARS", "interval": "month"}, "invalid_amount", "amount"},
			{"/api/v1/subscriptions", map[string]any{"customer_id": c.ID, "plan": "Pro", "amount": 500, "currency": "EUR", "interval": "month"}, "unsupported_currency", "currency"},
			{"/api/v1/subscriptions", map[string]any{"customer_id": c.ID, "plan": "Pro", "amount": 500, "currency": "ARS", "interval": "fortnight"}, "invalid_field", "interval"},
		} {
			res := f.do(req{method: "POST", path: tc.path, body: tc.body, headers: map[string]string{"Idempotency-Key": newKey()}})
			if res.status != 400 || res.err(t).Code != tc.code || res.err(t).Field != tc.field {
				t.Errorf("POST %s %v: %d %s, want 400 %s (%s)", tc.path, tc.body, res.status, res.body, tc.code, tc.field)
			}
		}
		var methods, subs listResponse[map[string]any]
		f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/payment_methods"}, 200, "").json(t, &methods)
		f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/subscriptions"}, 200, "").json(t, &subs)
		var customers listResponse[customerJSON]
		f.expect(req{method: "GET", path: "/api/v1/customers"}, 200, "").json(t, &customers)
		if len(methods.Data)+len(subs.Data) != 0 || len(customers.Data) != 1 {
			t.Fatalf("refused requests wrote: methods %v, subscriptions %v, customers %v", methods.Data, subs.Data, customers.Data)
		}
	})
	t.Run("bad query parameters", func(t *testing.T) {
		f.expect(req{method: "GET", path: "/api/v1/payments?customer=" + c.ID}, 400, CodeUnknownField)
		f.expect(req{method: "GET", path: "/api/v1/payments?limit=1000"}, 400, "invalid_field")
		f.expect(req{method: "GET", path: "/api/v1/payments?status=paid"}, 400, "invalid_field")
		f.expect(req{method: "GET", path: "/api/v1/payments?cursor=garbage!"}, 400, "invalid_field")
	})
}

func TestCustomers(t *testing.T) {
	f := newFixture(t, nil)
	var c customerJSON
	f.expect(req{method: "POST", path: "/api/v1/customers", body: map[string]any{
		"email": " Jane@Example.com ", "name": "Jane",
		"billing": map[string]any{"legal_name": "Jane SRL", "tax_id": "30-71234567-1", "tax_condition": "responsable_inscripto",
			"address": map[string]any{"line1": "Av. Corrientes 1234", "city": "CABA"}},
	}}, 201, "").json(t, &c)
	if c.Email != "jane@example.com" || c.Billing.TaxID != "30712345671" || c.Billing.Address.Country != "AR" {
		t.Fatalf("created %+v", c)
	}
	var got customerJSON
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID}, 200, "").json(t, &got)
	if got.ID != c.ID || got.Billing.LegalName != "Jane SRL" {
		t.Fatalf("got %+v", got)
	}
	f.expect(req{method: "PATCH", path: "/api/v1/customers/" + c.ID, body: map[string]any{"name": "Jane Doe"}}, 200, "").json(t, &got)
	if got.Name != "Jane Doe" || got.Email != "jane@example.com" || got.Billing.LegalName != "Jane SRL" {
		t.Fatalf("a partial update changed other fields: %+v", got)
	}
	f.expect(req{method: "PATCH", path: "/api/v1/customers/cus_missing", body: map[string]any{"name": "x"}}, 404, "not_found")

	for i := range 4 {
		f.customer(fmt.Sprintf("page%d@example.com", i))
	}
	f.customer("jane@example.com") // a second account with the same address
	var byEmail listResponse[customerJSON]
	f.expect(req{method: "GET", path: "/api/v1/customers?email=JANE@example.com"}, 200, "").json(t, &byEmail)
	if len(byEmail.Data) != 2 || byEmail.NextCursor != "" {
		t.Fatalf("by email: %+v", byEmail)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		var page listResponse[customerJSON]
		f.expect(req{method: "GET", path: "/api/v1/customers?limit=2&cursor=" + cursor}, 200, "").json(t, &page)
		for _, x := range page.Data {
			if seen[x.ID] {
				t.Fatalf("%s on two pages", x.ID)
			}
			seen[x.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			if pages != 2 {
				t.Errorf("6 customers in pages of 2 took %d pages", pages+1)
			}
			break
		}
	}
	if len(seen) != 6 {
		t.Fatalf("paging saw %d customers, want 6", len(seen))
	}
}

func TestPaymentMethods(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("methods@example.com")
	card := f.addCard(c.ID, "4242 4242 4242 4242", "123")
	if card.Card == nil || card.Card.Last4 != "4242" || card.Card.Brand != "visa" || card.Position != 0 || card.Summary != "Visa •••• 4242" {
		t.Fatalf("card: %+v", card)
	}
	cbu := f.addMethod(c.ID, map[string]any{"type": "direct_debit", "account": "0110599552000000123456"})
	if cbu.MaskedAccount == "" || strings.Contains(cbu.MaskedAccount, "01105995") || cbu.Position != 1 {
		t.Fatalf("cbu: %+v", cbu)
	}
	f.addMethod(c.ID, map[string]any{"type": "wallet", "wallet": "MercadoPago"})
	var list listResponse[paymentMethodJSON]
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/payment_methods"}, 200, "").json(t, &list)
	if len(list.Data) != 3 || list.Data[0].ID != card.ID || list.Data[2].Wallet != "mercadopago" {
		t.Fatalf("list: %+v", list.Data)
	}

	// A card the processor refuses when saved answers 402 with the processor's reason.
	res := f.expect(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods", body: map[string]any{
		"type": "card", "card": map[string]any{"number": "4000000000000127", "exp_month": 12, "exp_year": cardExpYear(), "cvc": "123"}}},
		http.StatusPaymentRequired, "incorrect_cvc")
	if res.err(t).Field != "card.cvc" {
		t.Errorf("field = %q", res.err(t).Field)
	}
	f.expect(req{method: "POST", path: "/api/v1/customers/cus_missing/payment_methods", body: map[string]any{"type": "qr"}}, 404, "not_found")
	f.expect(req{method: "GET", path: "/api/v1/customers/cus_missing/payment_methods"}, 404, "not_found")

	// The portal's allowed list applies to the merchant too, live.
	f.patchPortal(func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"bank_transfer", "direct_debit"}}
	}, func(p *billingv1alpha1.CustomerPortal) bool { return !p.Spec.PaymentMethods.Allows("card") })
	res = f.expect(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods", body: map[string]any{
		"type": "card", "card": map[string]any{"number": "5555555555554444", "exp_month": 12, "exp_year": cardExpYear(), "cvc": "123"}}},
		http.StatusUnprocessableEntity, CodeMethodTypeNotAllowed)
	if !strings.Contains(res.err(t).Message, "direct_debit, bank_transfer") {
		t.Errorf("message does not say what is accepted: %s", res.err(t).Message)
	}
	f.addMethod(c.ID, map[string]any{"type": "bank_transfer"})
}

func TestSubscriptions(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("subs@example.com")
	card := f.addCard(c.ID, "4242424242424242", "123")
	var sub subscriptionJSON
	f.expect(req{method: "POST", path: "/api/v1/subscriptions", headers: map[string]string{"Idempotency-Key": newKey()}, body: map[string]any{
		"customer_id": c.ID, "plan": "Pro", "amount": 250000, "currency": "ars", "interval": "month", "payment_method_id": card.ID}},
		201, "").json(t, &sub)
	if sub.Status != "active" || sub.Currency != "ARS" || sub.InitialPayment == nil || sub.InitialPayment.Status != "succeeded" ||
		sub.PaymentMethodID != card.ID || !sub.CurrentPeriodEnd.After(sub.CurrentPeriodStart) {
		t.Fatalf("subscription: %+v", sub)
	}
	var got subscriptionJSON
	f.expect(req{method: "GET", path: "/api/v1/subscriptions/" + sub.ID}, 200, "").json(t, &got)
	if got.ID != sub.ID || got.InitialPayment != nil {
		t.Fatalf("get: %+v", got)
	}
	f.expect(req{method: "GET", path: "/api/v1/subscriptions/sub_missing"}, 404, "not_found")

	// Without a body the portal's cancellation.mode (AtPeriodEnd by default) applies.
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/cancel"}, 200, "").json(t, &got)
	if got.Status != "active" || !got.CancelAtPeriodEnd {
		t.Fatalf("default cancel: %+v", got)
	}
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/cancel", body: map[string]any{"mode": "immediately", "reason": "too expensive"}}, 200, "").json(t, &got)
	if got.Status != "canceled" || got.CanceledAt == nil || got.CancellationReason != "too expensive" {
		t.Fatalf("immediate cancel: %+v", got)
	}
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/cancel"}, 409, "subscription_canceled")
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + sub.ID + "/cancel", body: map[string]any{"mode": "whenever"}}, 400, "invalid_field")

	// A portal that cancels immediately makes that the default here too.
	f.patchPortal(func(p *billingv1alpha1.CustomerPortal) { p.Spec.Cancellation.Mode = billingv1alpha1.CancelImmediately },
		func(p *billingv1alpha1.CustomerPortal) bool {
			return p.Spec.Cancellation.Mode == billingv1alpha1.CancelImmediately
		})
	var second subscriptionJSON
	f.expect(req{method: "POST", path: "/api/v1/subscriptions", headers: map[string]string{"Idempotency-Key": newKey()}, body: map[string]any{
		"customer_id": c.ID, "plan": "Basic", "amount": 1000, "currency": "ARS", "interval": "week", "no_initial_payment": true}},
		201, "").json(t, &second)
	if second.InitialPayment != nil {
		t.Fatalf("no_initial_payment billed: %+v", second.InitialPayment)
	}
	f.expect(req{method: "POST", path: "/api/v1/subscriptions/" + second.ID + "/cancel", body: map[string]any{}}, 200, "").json(t, &got)
	if got.Status != "canceled" {
		t.Fatalf("portal default Immediately not applied: %+v", got)
	}
	var list listResponse[subscriptionJSON]
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/subscriptions"}, 200, "").json(t, &list)
	if len(list.Data) != 2 || list.Data[0].ID != second.ID {
		t.Fatalf("list: %+v", list.Data)
	}
}

func TestPaymentIdempotency(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("idem@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	body := map[string]any{"customer_id": c.ID, "amount": 1500, "currency": "ARS", "description": "Order 1"}
	key := map[string]string{"Idempotency-Key": "order-1"}

	var first, again paymentJSON
	res := f.expect(req{method: "POST", path: "/api/v1/payments", body: body, headers: key}, 201, "")
	res.json(t, &first)
	if first.Status != "succeeded" || len(first.Attempts) != 1 || res.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %+v %v", first, res.header)
	}
	res = f.expect(req{method: "POST", path: "/api/v1/payments", body: body, headers: key}, 200, "")
	res.json(t, &again)
	if again.ID != first.ID || res.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %+v %v", again, res.header)
	}
	changed := map[string]any{"customer_id": c.ID, "amount": 1600, "currency": "ARS", "description": "Order 1"}
	res = f.expect(req{method: "POST", path: "/api/v1/payments", body: changed, headers: key}, 409, CodeIdempotencyConflict)
	if res.err(t).Field != "Idempotency-Key" {
		t.Errorf("field = %q", res.err(t).Field)
	}

	// A replay older than the look-back window is still recognised (by creation time).
	f.clock.mu.Lock()
	f.clock.pinned = time.Now().Add(48 * time.Hour)
	f.clock.mu.Unlock()
	res = f.expect(req{method: "POST", path: "/api/v1/payments", body: body, headers: key}, 200, "")
	if res.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("old replay not marked: %v", res.header)
	}
	f.clock.mu.Lock()
	f.clock.pinned = time.Time{}
	f.clock.mu.Unlock()

	// Ten concurrent retries of a new request: one creates, nine replay, one charge.
	key2 := map[string]string{"Idempotency-Key": "order-2"}
	body2 := map[string]any{"customer_id": c.ID, "amount": 2500, "currency": "ARS", "description": "Order 2"}
	var wg sync.WaitGroup
	results := make([]response, 10)
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = f.send(req{method: "POST", path: "/api/v1/payments", body: body2, headers: key2})
		})
	}
	wg.Wait()
	failIfAny(t, errs)
	created, replayed := 0, 0
	ids := map[string]bool{}
	for _, r := range results {
		var p paymentJSON
		r.json(t, &p)
		ids[p.ID] = true
		switch {
		case r.status == 201:
			created++
		case r.status == 200 && r.header.Get("Idempotent-Replayed") == "true":
			replayed++
		default:
			t.Errorf("unexpected answer %d %s", r.status, r.body)
		}
	}
	if created != 1 || replayed != 9 || len(ids) != 1 {
		t.Fatalf("created %d, replayed %d, payments %v", created, replayed, ids)
	}
	for id := range ids {
		if n := f.proc.chargesFor(id); n != 1 {
			t.Fatalf("payment charged %d times", n)
		}
	}
	if n := f.proc.chargesFor(first.ID); n != 1 {
		t.Fatalf("first payment charged %d times", n)
	}
	if got := f.payments(c.ID); len(got) != 2 {
		t.Fatalf("%d payments, want 2", len(got))
	}
}

// TestSubscriptionIdempotency: creating a subscription charges, so it takes an Idempotency-Key as
// payments do: a retry returns the original subscription and initial payment and charges once,
// even when retries race on two replicas; the same key with another body is refused.
func TestSubscriptionIdempotency(t *testing.T) {
	for _, engine := range []ledger.Engine{ledger.SQLite, ledger.Postgres} {
		t.Run(string(engine), func(t *testing.T) { testSubscriptionIdempotency(t, newFixtureOn(t, engine, nil)) })
	}
}

func testSubscriptionIdempotency(t *testing.T, f *fixture) {
	c := f.customer("sub-idem@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	subscriptions := func() []subscriptionJSON {
		var l listResponse[subscriptionJSON]
		f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/subscriptions"}, 200, "").json(t, &l)
		return l.Data
	}
	body := map[string]any{"customer_id": c.ID, "plan": "Pro", "amount": 250000, "currency": "ARS", "interval": "month"}
	key := map[string]string{"Idempotency-Key": "signup-1"}

	res := f.expect(req{method: "POST", path: "/api/v1/subscriptions", body: body}, 400, CodeIdempotencyKeyRequired)
	if e := res.err(t); e.Field != "Idempotency-Key" {
		t.Errorf("field = %q", e.Field)
	}
	res = f.expect(req{method: "POST", path: "/api/v1/subscriptions", body: body, headers: map[string]string{"Idempotency-Key": "portero:reserved"}}, 400, "invalid_field")
	if e := res.err(t); e.Field != "Idempotency-Key" {
		t.Errorf("field = %q", e.Field)
	}
	if s, p := subscriptions(), f.payments(c.ID); len(s)+len(p) != 0 {
		t.Fatalf("a refused request wrote: subscriptions %+v, payments %+v", s, p)
	}

	var first, again subscriptionJSON
	res = f.expect(req{method: "POST", path: "/api/v1/subscriptions", body: body, headers: key}, 201, "")
	res.json(t, &first)
	if first.InitialPayment == nil || first.InitialPayment.Status != "succeeded" || res.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %+v %v", first, res.header)
	}
	res = f.expect(req{method: "POST", path: "/api/v1/subscriptions", body: body, headers: key}, 200, "")
	res.json(t, &again)
	if again.ID != first.ID || again.InitialPayment == nil || again.InitialPayment.ID != first.InitialPayment.ID ||
		again.InitialPayment.Status != "succeeded" || res.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %+v %v", again, res.header)
	}
	changed := map[string]any{"customer_id": c.ID, "plan": "Pro", "amount": 260000, "currency": "ARS", "interval": "month"}
	res = f.expect(req{method: "POST", path: "/api/v1/subscriptions", body: changed,
		headers: map[string]string{"Idempotency-Key": "signup-1", "Accept-Language": "es"}}, 409, CodeIdempotencyConflict)
	if e := res.err(t); e.Field != "Idempotency-Key" || !strings.Contains(e.Message, "otra suscripción") {
		t.Errorf("conflict: %+v", e)
	}
	if n := f.proc.chargesFor(first.InitialPayment.ID); n != 1 {
		t.Fatalf("initial payment charged %d times", n)
	}
	if s, p := subscriptions(), f.payments(c.ID); len(s) != 1 || len(p) != 1 {
		t.Fatalf("%d subscriptions and %d payments, want 1 and 1", len(s), len(p))
	}

	// Ten concurrent retries of a new request, half of them through a second API on the same
	// ledger (a replica: its own in-process lock), make one subscription and one charge.
	replica := *f
	replica.server = httptest.NewServer(newAPI(Deps{Store: f.store, Rules: f.rules, Processors: f.processors()}))
	t.Cleanup(replica.server.Close)
	key2 := map[string]string{"Idempotency-Key": "signup-2"}
	body2 := map[string]any{"customer_id": c.ID, "plan": "Extra", "amount": 99000, "currency": "ARS", "interval": "year"}
	results := make([]response, 10)
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i := range results {
		target := f
		if i%2 == 1 {
			target = &replica
		}
		wg.Go(func() {
			results[i], errs[i] = target.send(req{method: "POST", path: "/api/v1/subscriptions", body: body2, headers: key2})
		})
	}
	wg.Wait()
	failIfAny(t, errs)
	created, replayed := 0, 0
	ids, payments := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		var s subscriptionJSON
		r.json(t, &s)
		ids[s.ID] = true
		if s.InitialPayment != nil {
			payments[s.InitialPayment.ID] = true
		}
		switch {
		case r.status == 201:
			created++
		case r.status == 200 && r.header.Get("Idempotent-Replayed") == "true":
			replayed++
		default:
			t.Errorf("unexpected answer %d %s", r.status, r.body)
		}
	}
	if created != 1 || replayed != 9 || len(ids) != 1 || len(payments) != 1 {
		t.Fatalf("created %d, replayed %d, subscriptions %v, initial payments %v", created, replayed, ids, payments)
	}
	for id := range payments {
		if n := f.proc.chargesFor(id); n != 1 {
			t.Fatalf("initial payment charged %d times", n)
		}
	}
	if s, p := subscriptions(), f.payments(c.ID); len(s) != 2 || len(p) != 2 {
		t.Fatalf("%d subscriptions and %d payments, want 2 and 2", len(s), len(p))
	}
}

func TestPaymentsListConfirmAndDeclines(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("pay@example.com")
	f.addMethod(c.ID, map[string]any{"type": "bank_transfer"})
	pending := f.pay(c.ID, 1000)
	if pending.Status != "pending" || pending.Instructions == "" || pending.ProcessorReference == "" {
		t.Fatalf("transfer payment: %+v", pending)
	}
	var confirmed paymentJSON
	f.expect(req{method: "POST", path: "/api/v1/payments/" + pending.ID + "/confirm"}, 200, "").json(t, &confirmed)
	if confirmed.Status != "succeeded" {
		t.Fatalf("confirmed: %+v", confirmed)
	}
	f.expect(req{method: "POST", path: "/api/v1/payments/" + pending.ID + "/confirm"}, 200, "") // idempotent
	f.expect(req{method: "POST", path: "/api/v1/payments/pay_missing/confirm"}, 404, "not_found")

	// A declined card: the payment exists, failed, with a reason in the caller's language.
	d := f.customer("declined@example.com")
	f.addCard(d.ID, "4000000000000002", "123")
	var declined paymentJSON
	f.expect(req{method: "POST", path: "/api/v1/payments", headers: map[string]string{"Idempotency-Key": newKey(), "Accept-Language": "es"},
		body: map[string]any{"customer_id": d.ID, "amount": 1000, "currency": "ARS"}}, 201, "").json(t, &declined)
	if declined.Status != "failed" || declined.FailureCode != "card_declined" || !strings.Contains(declined.FailureMessage, "rechazada") {
		t.Fatalf("declined: %+v", declined)
	}
	f.expect(req{method: "POST", path: "/api/v1/payments/" + declined.ID + "/confirm"}, 409, "payment_state")

	// Incomplete without a method; listing filters and pages.
	e := f.customer("nomethod@example.com")
	for range 3 {
		if p := f.pay(e.ID, 700); p.Status != "incomplete" {
			t.Fatalf("payment without a method: %+v", p)
		}
	}
	var l listResponse[paymentJSON]
	f.expect(req{method: "GET", path: "/api/v1/payments?status=incomplete&limit=2"}, 200, "").json(t, &l)
	if len(l.Data) != 2 || l.NextCursor == "" || l.Data[0].Attempts != nil {
		t.Fatalf("page 1: %+v", l)
	}
	var l2 listResponse[paymentJSON]
	f.expect(req{method: "GET", path: "/api/v1/payments?status=incomplete&limit=2&cursor=" + l.NextCursor}, 200, "").json(t, &l2)
	if len(l2.Data) != 1 || l2.NextCursor != "" || l2.Data[0].ID == l.Data[0].ID || l2.Data[0].ID == l.Data[1].ID {
		t.Fatalf("page 2: %+v", l2)
	}
	var got paymentJSON
	f.expect(req{method: "GET", path: "/api/v1/payments/" + declined.ID}, 200, "").json(t, &got)
	if len(got.Attempts) != 1 || got.Attempts[0].FailureCode != "card_declined" {
		t.Fatalf("attempts: %+v", got.Attempts)
	}
}

// TestConcurrentAddMethodSettlesEachPaymentOnce is the issue's concurrency test: 50 parallel "add
// method" requests for a customer with 3 incomplete payments settle each payment exactly once.
func TestConcurrentAddMethodSettlesEachPaymentOnce(t *testing.T) {
	for _, engine := range []ledger.Engine{ledger.SQLite, ledger.Postgres} {
		t.Run(string(engine), func(t *testing.T) { testConcurrentAddMethod(t, newFixtureOn(t, engine, nil)) })
	}
}

func testConcurrentAddMethod(t *testing.T, f *fixture) {
	c := f.customer("race@example.com")
	var incomplete []paymentJSON
	for range 3 {
		p := f.pay(c.ID, 1200)
		if p.Status != "incomplete" {
			t.Fatalf("payment: %+v", p)
		}
		incomplete = append(incomplete, p)
	}
	cards := []string{"4242424242424242", "5555555555554444", "4000056655665556", "2223003122003222"}
	var wg sync.WaitGroup
	results := make([]response, 50)
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = f.send(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods", body: map[string]any{
				"type": "card", "card": map[string]any{"number": cards[i%len(cards)], "exp_month": 12, "exp_year": cardExpYear(), "cvc": "123"}}})
		})
	}
	wg.Wait()
	failIfAny(t, errs)
	for i, r := range results {
		if r.status != 201 {
			t.Fatalf("request %d: status %d: %s", i, r.status, r.body)
		}
	}
	for _, p := range incomplete {
		var got paymentJSON
		f.expect(req{method: "GET", path: "/api/v1/payments/" + p.ID}, 200, "").json(t, &got)
		if got.Status != "succeeded" || len(got.Attempts) != 1 {
			t.Errorf("payment %s: status %s, %d attempts", p.ID, got.Status, len(got.Attempts))
		}
		if n := f.proc.chargesFor(p.ID); n != 1 {
			t.Errorf("payment %s charged %d times", p.ID, n)
		}
	}
	var methods listResponse[paymentMethodJSON]
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/payment_methods"}, 200, "").json(t, &methods)
	if len(methods.Data) != 50 {
		t.Fatalf("%d methods, want 50", len(methods.Data))
	}
	for i, m := range methods.Data {
		if m.Position != i {
			t.Fatalf("positions are not 0..49: %d at %d", m.Position, i)
		}
	}
}

// failIfAny fails the test with every error its worker goroutines returned: they may not call
// t.Fatal themselves (it would end the goroutine, not the test).
func failIfAny(t *testing.T, errs []error) {
	t.Helper()
	var failed bool
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			failed = true
		}
	}
	if failed {
		t.FailNow()
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("metrics@example.com")
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID}, 200, "")
	f.expect(req{method: "GET", path: "/api/v1/customers/cus_nope"}, 404, "not_found")
	f.expect(req{method: "GET", path: "/api/v1/nope"}, 404, CodeRouteNotFound)

	counts := map[string]float64{}
	var histograms int
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "portero_merchant_api_requests_total":
				counts[label(m, "route")+" "+label(m, "code")] = m.GetCounter().GetValue()
			case "portero_merchant_api_request_duration_seconds":
				histograms += int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for k, want := range map[string]float64{
		"POST /api/v1/customers 201":     1,
		"GET /api/v1/customers/{id} 200": 1,
		"GET /api/v1/customers/{id} 404": 1,
		"unmatched 404":                  1,
	} {
		if counts[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, counts[k], want, counts)
		}
	}
	if histograms != 4 {
		t.Errorf("latency samples = %d, want 4", histograms)
	}
	logs := f.logs.String()
	for _, want := range []string{`"route":"GET /api/v1/customers/{id}"`, `"status":404`, `"customer":"` + c.ID + `"`, `"duration":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, testKey) {
		t.Error("the API key was logged")
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
