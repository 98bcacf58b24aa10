package web

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/mercadopago/mpfake"
)

// mpPortal is a fixture whose processor is Mercado Pago (the contract fake), taking card,
// wallet and qr; the fake signs with the fixture's clock.
func mpPortal(t *testing.T) (*fixture, *mpfake.Fake) {
	t.Helper()
	var f *fixture
	fake := mpfake.New(mpfake.Options{Now: func() time.Time {
		if f == nil {
			return time.Now()
		}
		return f.clock.Now()
	}})
	t.Cleanup(fake.Close)
	o := fake.Options()
	name := "mp-" + strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 60 {
		name = name[:60]
	}
	name = strings.Trim(name, "-")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name}, StringData: map[string]string{
		"access_token": o.AccessToken, "public_key": o.PublicKey, "webhook_secret": o.WebhookSecret,
		"api_base": fake.URL(), "qr_pos_id": mpfake.DefaultPOS}}
	if err := k8s.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sec) })
	f = newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "wallet", "qr"}}
		s.Processor = &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorMercadoPago,
			SecretRef: &billingv1alpha1.LocalObjectReference{Name: name}}
	}))
	return f, fake
}

var (
	inputRE    = regexp.MustCompile(`<input[^>]*>`)
	cardAttrRE = regexp.MustCompile(`(?i)name="(number|card_?number|cvc|cvv|security_?code|exp_month|exp_year)"|autocomplete="cc-(number|csc|exp|exp-month|exp-year)"`)
)

// noCardInput fails if the page has an input a card number, expiry or security code could be
// typed into on the portal's own origin.
func noCardInput(t *testing.T, r *response) {
	t.Helper()
	for _, in := range inputRE.FindAllString(r.Body, -1) {
		if cardAttrRE.MatchString(in) {
			t.Fatalf("a card input on the portal's origin: %s", in)
		}
	}
}

// The add-card page of a Mercado Pago portal: Mercado Pago's Secure Fields and no card input of
// the portal's; its CSP names Mercado Pago's script and frame origins, while every other page's
// CSP names none. The page posts the token Mercado Pago made; the card is saved at Mercado
// Pago and listed, and a token in a URL is not accepted.
func TestMercadoPagoAddCardPage(t *testing.T) {
	f, fake := mpPortal(t)
	c := f.customer("ana@example.com", "Ana")
	b := f.browser()
	b.signIn(c)

	r := b.get("/methods/new?type=card")
	wantStatus(t, r, http.StatusSeeOther)
	to, err := url.Parse(r.location())
	if err != nil || to.Host != b.host || to.Path != "/methods/return" || to.Query().Get(mercadopago.FieldsParam) == "" {
		t.Fatalf("add a card went to %q, want the portal's fields page", r.location())
	}
	page := okPage(t, b.get(to.RequestURI()))
	noCardInput(t, page)
	wantBody(t, page, `id="fields-number"`, `id="fields-code"`, `data-public-key="`+fake.Options().PublicKey+`"`,
		`<script src="https://sdk.mercadopago.com/js/v2"></script>`, `<script src="/static/fields-mercadopago.js"></script>`,
		`action="/methods/return"`, `name="setup_ref"`)
	csp := page.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self' https://sdk.mercadopago.com https://http2.mlstatic.com;",
		"frame-src https://sdk.mercadopago.com https://*.mercadopago.com https://*.mercadolibre.com;",
		"connect-src 'self' https://api.mercadopago.com", "default-src 'self';", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the add-card page's CSP %q lacks %q", csp, want)
		}
	}
	js := b.get("/static/fields-mercadopago.js")
	wantStatus(t, js, http.StatusOK)
	wantBody(t, js, "mp.fields.createCardToken")

	for _, path := range []string{"/", "/methods", "/methods/new", "/methods/new?type=wallet", "/payments", "/billing"} {
		r := b.get(path)
		if r.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, r.Code)
		}
		noCardInput(t, r)
		if got := r.Header.Get("Content-Security-Policy"); strings.Contains(got, "mercadopago") || strings.Contains(got, "mlstatic") || strings.Contains(got, "frame-src") {
			t.Errorf("%s: CSP %q names Mercado Pago", path, got)
		}
	}

	// The customer types the card in Mercado Pago's fields: the token comes from Mercado Pago.
	tok, err := fake.CardToken(mpfake.TestCard{Number: mpfake.Mastercard, Holder: mpfake.Approved})
	if err != nil {
		t.Fatal(err)
	}
	// In a URL it is refused: a card token is a bearer credential.
	b.get(to.RequestURI())
	r = b.get("/methods/return?" + payments.SetupReferenceParam + "=" + tok)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if ms := f.methods(c); len(ms) != 0 {
		t.Fatalf("a token in the URL added %d methods", len(ms))
	}
	b.get(to.RequestURI())
	wantRedirect(t, b.submit("/methods/return", url.Values{payments.SetupReferenceParam: {tok}}), "/methods")
	ms := f.methods(c)
	if len(ms) != 1 || ms[0].Card == nil || ms[0].Card.Last4 != "0604" || ms[0].Processor != mercadopago.Type {
		t.Fatalf("methods after the set-up: %+v", ms)
	}
	wantBody(t, b.get("/methods"), "0604")
	pc, err := f.ledger.Customer(f.ctx, mercadopago.Type, c.ID)
	if err != nil || len(fake.Cards(pc.ProcessorCustomer)) != 1 {
		t.Fatalf("Mercado Pago customer %+v (%v) with cards %v", pc, err, fake.Cards(pc.ProcessorCustomer))
	}
	// A posted form without the session's CSRF token is refused.
	wantStatus(t, b.forge("/methods/return", url.Values{payments.SetupReferenceParam: {tok}}), http.StatusForbidden)
	// Card details posted by hand are refused unread, as on any hosted-entry portal.
	b.get("/methods")
	wantStatus(t, b.submit("/methods", cardForm("5031 7557 3453 0604", leakCVC)), http.StatusBadRequest)
	if strings.Contains(f.logs.String(), tok) || strings.Contains(f.logs.String(), fake.Options().AccessToken) {
		t.Fatal("a card token or the access token reached the logs")
	}

	// Paying an incomplete payment with a new card goes through the same page.
	p := f.charge(c, 150000, "Plan Pro")
	r = b.get("/payments/" + p.ID + "/pay?type=card")
	wantStatus(t, r, http.StatusSeeOther)
	to, _ = url.Parse(r.location())
	page = okPage(t, b.get(to.RequestURI()))
	noCardInput(t, page)
	wantBody(t, page, `action="/payments/`+p.ID+`/pay/return"`)
}

// A wallet payment waits for the customer, who pays it on Mercado Pago's checkout (a link out
// and back, no JavaScript on the portal); a QR payment shows Mercado Pago's dynamic QR, drawn by
// the portal, and settles once when Mercado Pago notifies POST /webhooks/mercadopago.
func TestMercadoPagoWalletAndQRPayments(t *testing.T) {
	f, fake := mpPortal(t)
	c := f.customer("ana@example.com", "Ana")
	d, err := f.procs.Driver(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	pay := func(t ledger.PaymentMethod) ledger.Payment {
		f.t.Helper()
		p, claim, err := f.ledger.Store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 99000,
			Currency: ledger.ARS, Description: "Plan Pro", Processor: mercadopago.Type})
		if err != nil || claim == nil {
			f.t.Fatalf("create payment: %v (claim %v)", err, claim)
		}
		if _, err := d.Charge(f.ctx, *claim); err != nil {
			f.t.Fatal(err)
		}
		return f.payment(p.ID)
	}
	b := f.browser()
	b.signIn(c)

	wallet, err := f.ledger.Store.AddPaymentMethod(f.ctx, c.ID, ledger.NewPaymentMethod{Type: payments.MethodWallet, Wallet: "mercadopago"})
	if err != nil {
		t.Fatal(err)
	}
	p := pay(wallet)
	if p.Status != ledger.PaymentRequiresAction {
		t.Fatalf("wallet payment %s, want waiting for the customer", p.Status)
	}
	page := okPage(t, b.get("/payments/"+p.ID))
	wantBody(t, page, "Este pago se hace con tu cuenta de Mercado Pago", `href="/payments/`+p.ID+`/authenticate"`, "Pagar con Mercado Pago")
	r := b.get("/payments/" + p.ID + "/authenticate")
	wantStatus(t, r, http.StatusSeeOther)
	back, err := fake.Pay(r.location(), "account_money")
	if err != nil {
		t.Fatal(err)
	}
	bu, err := url.Parse(back)
	if err != nil || bu.Path != "/payments/"+p.ID+"/authenticated" {
		t.Fatalf("Mercado Pago sent the customer back to %q", back)
	}
	wantRedirect(t, b.get(bu.RequestURI()), "/payments/"+p.ID)
	if got := f.payment(p.ID); got.Status != ledger.PaymentSucceeded {
		t.Fatalf("wallet payment after checkout: %s", got.Status)
	}
	if err := f.ledger.Store.RemovePaymentMethod(f.ctx, c.ID, wallet.ID); err != nil {
		t.Fatal(err)
	}

	if _, err := f.ledger.Store.AddPaymentMethod(f.ctx, c.ID, ledger.NewPaymentMethod{Type: payments.MethodQR}); err != nil {
		t.Fatal(err)
	}
	p = pay(ledger.PaymentMethod{})
	if p.Status != ledger.PaymentPending || !strings.HasPrefix(p.Instructions, "000201") {
		t.Fatalf("QR payment %s with %q, want pending with Mercado Pago's qr_data", p.Status, p.Instructions)
	}
	page = okPage(t, b.get("/payments/"+p.ID))
	wantBody(t, page, `<svg class="qr"`, p.Instructions)

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{processor}", mercadopago.WebhookRequest(f.procs.WebhookHandler()))
	post := func(n mpfake.Notification) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/webhooks/mercadopago?data.id="+n.DataID+"&type=order", bytes.NewReader(n.Body))
		req.Header = n.Header.Clone()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	order := p.ProcessorReference
	if err := fake.ScanAndPay(order); err != nil {
		t.Fatal(err)
	}
	n := fake.OrderNotification(order, "order.processed")
	forged := n
	forged.Header = n.Header.Clone()
	forged.Header.Set("X-Signature", mpfake.Sign("not-the-secret", order, n.Header.Get("X-Request-Id"), "1"))
	if code := post(forged); code != http.StatusBadRequest {
		t.Fatalf("bad signature: %d, want 400", code)
	}
	if got := f.payment(p.ID); got.Status != ledger.PaymentPending {
		t.Fatalf("a forged notification changed the payment to %s", got.Status)
	}
	for i := 0; i < 2; i++ { // delivered, then delivered again
		if code := post(n); code != http.StatusOK {
			t.Fatalf("notification %d: HTTP %d", i, code)
		}
	}
	got := f.payment(p.ID)
	if got.Status != ledger.PaymentSucceeded || len(got.Attempts) != 1 {
		t.Fatalf("QR payment after Mercado Pago's notification: %s with %d attempts", got.Status, len(got.Attempts))
	}
	if fake.Collected() != 2 {
		t.Fatalf("money moved %d times, want twice (the wallet payment and the QR)", fake.Collected())
	}
	_ = charging.AttemptSucceeded
}
