package mercadopago_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/mercadopago/mpfake"
)

// env is one customer of a portal on Mercado Pago, over the in-memory recorder.
type env struct {
	f    *mpfake.Fake
	a    *mercadopago.Adapter
	mem  *chargingtest.Memory
	d    *charging.Driver
	cust string
	logs *bytes.Buffer
}

func newEnv(t *testing.T, o mpfake.Options, mutate ...func(*mercadopago.Options)) *env {
	t.Helper()
	f := newFake(t, o)
	logs := &bytes.Buffer{}
	mutate = append(mutate, func(o *mercadopago.Options) {
		o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a := newAdapter(t, f, mutate...)
	mem := chargingtest.NewMemory()
	d, err := charging.New(charging.Options{Adapter: a, Recorder: mem, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &env{f: f, a: a, mem: mem, d: d, cust: mem.AddCustomer("ana@example.com", "Ana Pérez"), logs: logs}
}

// addCard saves a card typed in Mercado Pago's fields, the way the add-card page does.
func (e *env) addCard(t *testing.T, c mpfake.TestCard) charging.MethodAdded {
	t.Helper()
	ctx := context.Background()
	s, err := e.d.StartSetup(ctx, e.cust, charging.SetupInput{ReturnURL: "https://portal.example/payment-methods/return", CancelURL: "https://portal.example/payment-methods"})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(s.RedirectURL); u.Query().Get(mercadopago.FieldsParam) == "" {
		t.Fatalf("set-up URL %s is not the fields page", s.RedirectURL)
	}
	tok, err := e.f.CardToken(c)
	if err != nil {
		t.Fatal(err)
	}
	added, err := e.d.CompleteSetup(ctx, e.cust, tok)
	if err != nil {
		t.Fatalf("CompleteSetup: %v", err)
	}
	return added
}

func (e *env) pay(t *testing.T, amount int64) (string, charging.Result) {
	t.Helper()
	id, a := e.mem.CreatePayment(e.cust, amount, "ARS", "Plan Pro — marzo")
	if a == nil {
		t.Fatal("no method to charge")
	}
	r, err := e.d.Charge(context.Background(), *a)
	if err != nil {
		t.Fatal(err)
	}
	return id, r
}

// The request a saved-card charge makes, field by field, as Mercado Pago's reference and
// Automatic Payments guide describe it.
func TestMercadoPagoChargeRequestShapes(t *testing.T) {
	e := newEnv(t, mpfake.Options{})
	noViolations(t, e.f)
	added := e.addCard(t, mpfake.TestCard{Number: mpfake.Visa})
	if m := added.Method; m.Brand != payments.BrandVisa || m.Last4 != "3704" || m.ExpMonth != 11 {
		t.Fatalf("saved card %+v", m)
	}
	id, r := e.pay(t, 1234567)
	if r.Status != charging.AttemptSucceeded {
		t.Fatalf("charge = %+v", r)
	}
	key := id + "/1"
	var token, pay *mpfake.Request
	for _, req := range e.f.Requests() {
		switch {
		case req.Method == "POST" && req.Path == "/v1/card_tokens" && req.Query == "":
			token = &req
		case req.Method == "POST" && req.Path == "/v1/payments":
			pay = &req
		}
	}
	if token == nil || pay == nil {
		t.Fatalf("no card token or payment request: %+v", e.f.Requests())
	}
	if len(token.Body) != 1 || token.Body["card_id"] != added.Method.ProcessorID {
		t.Errorf("card token request %v: want the saved card's id and no security code", token.Body)
	}
	if token.IdempotencyKey != key+"/token" {
		t.Errorf("card token key %q", token.IdempotencyKey)
	}
	b := pay.Body
	payer, _ := b["payer"].(map[string]any)
	meta, _ := b["metadata"].(map[string]any)
	checks := map[string]bool{
		"X-Idempotency-Key is the attempt key":   pay.IdempotencyKey == key,
		"external_reference is the payment id":   b["external_reference"] == id,
		"metadata carries the attempt key":       meta["portero_attempt"] == key,
		"amount in pesos":                        b["transaction_amount"] == 12345.67,
		"one installment":                        b["installments"] == float64(1),
		"the card's payment method":              b["payment_method_id"] == "visa",
		"payer is the Mercado Pago customer":     payer["type"] == "customer" && payer["id"] != nil && payer["id"] != "",
		"the issuer may ask for a challenge":     b["three_d_secure_mode"] == "optional",
		"a fresh token, not the saved card's id": b["token"] != added.Method.ProcessorID && b["token"] != nil,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s: payment request %v", what, b)
		}
	}
}

// Mercado Pago's test cardholder names make the issuer answer; each answer is a stable code
// with Spanish and English messages a customer understands.
func TestMercadoPagoDeclinesHaveStableCodes(t *testing.T) {
	cases := map[string]string{
		mpfake.Declined:          payments.CodeCardDeclined,
		mpfake.CallForAuthorize:  payments.CodeCardDeclined,
		mpfake.InsufficientFunds: payments.CodeInsufficientFunds,
		mpfake.BadSecurityCode:   payments.CodeIncorrectCVC,
		mpfake.BadExpiry:         payments.CodeInvalidToken,
		mpfake.FormError:         payments.CodeInvalidPaymentMethod,
	}
	fallback := (&payments.Error{Code: "no_such_code"}).Message("en")
	for holder, code := range cases {
		t.Run(holder, func(t *testing.T) {
			e := newEnv(t, mpfake.Options{})
			e.addCard(t, mpfake.TestCard{Number: mpfake.Mastercard, Holder: holder})
			id, r := e.pay(t, 150000)
			if r.Status != charging.AttemptFailed || r.Failure == nil || r.Failure.Code != code {
				t.Fatalf("charge = %+v, want failed with %s", r, code)
			}
			if p := e.mem.Payment(id); p.FailureCode != code {
				t.Fatalf("recorded %q", p.FailureCode)
			}
			es, en := r.Failure.Message("es"), r.Failure.Message("en")
			if es == en || en == fallback {
				t.Fatalf("messages es=%q en=%q", es, en)
			}
			if e.f.Collected() != 0 {
				t.Fatal("a declined charge moved money")
			}
		})
	}
}

func TestMercadoPagoFailureCodes(t *testing.T) {
	for detail, want := range map[string]string{
		"cc_rejected_other_reason":             payments.CodeCardDeclined,
		"cc_rejected_high_risk":                payments.CodeCardDeclined,
		"cc_rejected_blacklist":                payments.CodeCardDeclined,
		"cc_rejected_card_disabled":            payments.CodeCardDeclined,
		"cc_rejected_insufficient_amount":      payments.CodeInsufficientFunds,
		"cc_rejected_bad_filled_security_code": payments.CodeIncorrectCVC,
		"cc_rejected_bad_filled_card_number":   payments.CodeInvalidCardNumber,
		"cc_rejected_bad_filled_date":          payments.CodeInvalidToken,
		"cc_rejected_max_attempts":             payments.CodeCardLimitExceeded,
		"cc_rejected_card_type_not_allowed":    payments.CodeUnsupportedMethod,
		"cc_rejected_3ds_challenge":            payments.CodeAuthenticationFailed,
		"cc_rejected_card_error":               payments.CodeProcessingError,
		"something_new":                        payments.CodeCardDeclined,
	} {
		if got := mercadopago.FailureCode(detail); got != want {
			t.Errorf("FailureCode(%s) = %s, want %s", detail, got, want)
		}
	}
}

// An application Mercado Pago has not enabled for automatic payments cannot charge a saved card
// without its security code: the charge fails without moving money, and the merchant reads
// why in the log.
func TestMercadoPagoWithoutAutomaticPayments(t *testing.T) {
	e := newEnv(t, mpfake.Options{NoAutomaticPayments: true})
	e.addCard(t, mpfake.TestCard{Number: mpfake.Mastercard})
	_, r := e.pay(t, 150000)
	if r.Status != charging.AttemptFailed || r.Failure == nil || r.Failure.Code != payments.CodeProcessingError {
		t.Fatalf("charge = %+v", r)
	}
	if !strings.Contains(e.logs.String(), "not enabled for automatic payments") {
		t.Fatalf("the log does not say what to enable:\n%s", e.logs)
	}
	if e.f.Collected() != 0 {
		t.Fatal("money moved")
	}
}

// Wallet: the payment waits for the customer, who pays with their Mercado Pago account money
// on Mercado Pago's page and comes back; it is recorded once.
func TestMercadoPagoWalletPaysOnCheckoutPro(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, mpfake.Options{})
	noViolations(t, e.f)
	if _, _, err := e.mem.AddMethod(ctx, e.cust, "", payments.Method{Type: payments.MethodWallet}); err != nil {
		t.Fatal(err)
	}
	id, r := e.pay(t, 250000)
	if r.Status != charging.AttemptRequiresAction || r.Reference == "" {
		t.Fatalf("wallet charge = %+v, want it waiting for the customer", r)
	}
	back := "https://portal.example/payments/" + id + "/return"
	redirect, _, err := e.d.Authenticate(ctx, e.cust, id, back)
	if err != nil || !strings.HasPrefix(redirect, e.f.URL()+"/checkout/") {
		t.Fatalf("Authenticate = %q, %v: want Mercado Pago's checkout", redirect, err)
	}
	if _, err := e.f.Pay(redirect, "card"); err == nil {
		t.Fatal("a wallet checkout took a card")
	}
	landing, err := e.f.Pay(redirect, "account_money")
	if err != nil || !strings.HasPrefix(landing, back+"?") {
		t.Fatalf("the customer came back to %q, %v", landing, err)
	}
	res, err := e.d.FinishAuthentication(ctx, e.cust, id)
	if err != nil || res.Status != charging.AttemptSucceeded || !res.Recorded {
		t.Fatalf("FinishAuthentication = %+v, %v", res, err)
	}
	pid := e.f.PaymentsFor("portero_attempt", id+"/1")
	n := e.f.PaymentNotification(pid[0], "payment.created")
	if _, err := e.d.HandleWebhook(ctx, n.Header, n.Body); err != nil {
		t.Fatal(err)
	}
	if p := e.mem.Payment(id); p.Status != charging.AttemptSucceeded || len(p.Transitions) != 2 || e.f.Collected() != 1 {
		t.Fatalf("%v, collected %d", p, e.f.Collected())
	}
}

// QR: a pending payment gets Mercado Pago's dynamic QR (its qr_data) and settles once when
// Mercado Pago notifies that it was paid.
func TestMercadoPagoQRSettlesOnNotification(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, mpfake.Options{})
	noViolations(t, e.f)
	if _, _, err := e.mem.AddMethod(ctx, e.cust, "", payments.Method{Type: payments.MethodQR}); err != nil {
		t.Fatal(err)
	}
	id, r := e.pay(t, 99990)
	if r.Status != charging.AttemptPending || !strings.HasPrefix(r.Instructions, "000201") || !strings.HasPrefix(r.Reference, "ORD") {
		t.Fatalf("QR charge = %+v, want pending with the QR's EMVCo data", r)
	}
	var order *mpfake.Request
	for _, req := range e.f.Requests() {
		if req.Method == "POST" && req.Path == "/v1/orders" {
			order = &req
		}
	}
	qr, _ := order.Body["config"].(map[string]any)["qr"].(map[string]any)
	if order.IdempotencyKey != id+"/1" || order.Body["total_amount"] != "999.90" || order.Body["external_reference"] != id ||
		qr["mode"] != "dynamic" || qr["external_pos_id"] != mpfake.DefaultPOS {
		t.Fatalf("order request %+v", order)
	}
	if err := e.f.ScanAndPay(r.Reference); err != nil {
		t.Fatal(err)
	}
	n := e.f.OrderNotification(r.Reference, "order.processed")
	for i := 0; i < 2; i++ {
		if _, err := e.d.HandleWebhook(ctx, n.Header, n.Body); err != nil {
			t.Fatal(err)
		}
	}
	if p := e.mem.Payment(id); p.Status != charging.AttemptSucceeded || len(p.Transitions) != 2 || e.f.Collected() != 1 {
		t.Fatalf("%v, collected %d", p, e.f.Collected())
	}

	// Without a point of sale in the Secret there is no QR to show.
	e2 := newEnv(t, mpfake.Options{}, func(o *mercadopago.Options) { o.QRPOS = "" })
	if _, _, err := e2.mem.AddMethod(ctx, e2.cust, "", payments.Method{Type: payments.MethodQR}); err != nil {
		t.Fatal(err)
	}
	if _, r := e2.pay(t, 99990); r.Status != charging.AttemptFailed || r.Failure.Code != payments.CodeUnsupportedMethod {
		t.Fatalf("QR without a point of sale = %+v", r)
	}
}

// One Mercado Pago customer per Portero customer, however many replicas create it; Mercado
// Pago's refusal of a second customer with the same email is met by adopting the first.
func TestMercadoPagoCustomerCreatedOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, mpfake.Options{})
	req := payments.CustomerRequest{ID: "cus_1", Email: "ana@example.com", Name: "Ana Pérez"}
	first, err := e.a.EnsureCustomer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.a.EnsureCustomer(ctx, req)
	if err != nil || again != first {
		t.Fatalf("second replica got %q, %v; want %q", again, err, first)
	}
	if _, err := e.a.EnsureCustomer(ctx, payments.CustomerRequest{ID: "cus_1"}); err == nil {
		t.Fatal("a customer without an email was sent to Mercado Pago")
	}
}

// A card of another Mercado Pago customer cannot be adopted, and removing a card deletes it
// at Mercado Pago.
func TestMercadoPagoAttachAndDetach(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, mpfake.Options{})
	added := e.addCard(t, mpfake.TestCard{Number: mpfake.Mastercard})
	owner := e.f.CardCustomer(added.Method.ProcessorID)
	other, err := e.a.EnsureCustomer(ctx, payments.CustomerRequest{ID: "cus_x", Email: "bruno@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.AttachMethod(ctx, payments.AttachRequest{Customer: other, MethodID: added.Method.ProcessorID}); payments.CodeOf(err) != payments.CodeInvalidPaymentMethod {
		t.Fatalf("adopting another customer's card: %v", err)
	}
	if m, err := e.a.AttachMethod(ctx, payments.AttachRequest{Customer: owner, MethodID: added.Method.ProcessorID}); err != nil || m != added.Method {
		t.Fatalf("adopting the customer's own card = %+v, %v", m, err)
	}
	if err := e.d.RemoveMethod(ctx, e.cust, added.MethodID); err != nil {
		t.Fatal(err)
	}
	if cards := e.f.Cards(owner); len(cards) != 0 || len(e.mem.Methods(e.cust)) != 0 {
		t.Fatalf("cards left at Mercado Pago %v, in Portero %v", cards, e.mem.Methods(e.cust))
	}
	if err := e.a.Detach(ctx, payments.DetachRequest{Customer: owner, MethodID: added.Method.ProcessorID}); err != nil {
		t.Fatalf("detaching a card already gone: %v", err)
	}
}

// A token that is not one, or that Mercado Pago does not know, saves nothing.
func TestMercadoPagoSetupWithBadTokenSavesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, mpfake.Options{})
	if _, err := e.d.StartSetup(ctx, e.cust, charging.SetupInput{ReturnURL: "https://portal.example/r", CancelURL: "https://portal.example/c"}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "not-a-token", strings.Repeat("ab", 16), "4509953566233704"} {
		if _, err := e.d.CompleteSetup(ctx, e.cust, tok); payments.CodeOf(err) != payments.CodeSetupIncomplete {
			t.Errorf("token %q: %v, want %s", tok, err, payments.CodeSetupIncomplete)
		}
	}
	if len(e.mem.Methods(e.cust)) != 0 {
		t.Fatal("a method was added")
	}
}

// A notification_url in the Secret goes on what Portero creates, asking for webhooks only:
// Mercado Pago's IPN notifications to the same URL would be unsigned.
func TestMercadoPagoNotificationURL(t *testing.T) {
	e := newEnv(t, mpfake.Options{}, func(o *mercadopago.Options) { o.NotificationURL = "https://billing.acme.example/webhooks/mercadopago" })
	e.addCard(t, mpfake.TestCard{Number: mpfake.Mastercard})
	e.pay(t, 150000)
	for _, req := range e.f.Requests() {
		if req.Path == "/v1/payments" && req.Method == "POST" {
			if got := req.Body["notification_url"]; got != "https://billing.acme.example/webhooks/mercadopago?source_news=webhooks" {
				t.Fatalf("notification_url = %v", got)
			}
			return
		}
	}
	t.Fatal("no payment request")
}

func TestMercadoPagoConfigurationErrorsNameTheKey(t *testing.T) {
	good := map[string][]byte{"access_token": []byte("TEST-secret-token-value"), "public_key": []byte("TEST-pk-value"), "webhook_secret": []byte("hook-secret-value")}
	for _, c := range []struct {
		key, value, want string
	}{
		{"access_token", "", `no "access_token"`},
		{"access_token", "sk_live_secret-token-value", `"access_token" must be an access token`},
		{"public_key", "", `no "public_key"`},
		{"webhook_secret", "", `no "webhook_secret"`},
		{"api_base", "ftp://user:secret-token-value@example", `"api_base" must be an http(s) URL`},
		{"notification_url", "/webhooks/mercadopago", `"notification_url" must be an absolute`},
		{"api_base", "http://api.example.com", `"api_base" may use http only for loopback`},
	} {
		s := map[string][]byte{}
		for k, v := range good {
			s[k] = v
		}
		s[c.key] = []byte(c.value)
		_, err := mercadopago.Factory(payments.Config{Secret: s})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: %v, want %q", c.key, c.value, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "secret-token-value") || (c.value != "" && strings.Contains(err.Error(), c.value)) {
			t.Errorf("the error shows a value: %v", err)
		}
	}
	if _, err := mercadopago.Factory(payments.Config{Secret: good}); err != nil {
		t.Fatal(err)
	}
}
