package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

func (f *fixture) charge(c ledger.Customer, amount int64, desc string) ledger.Payment {
	f.t.Helper()
	p, err := f.ledger.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: amount, Currency: ledger.ARS, Description: desc})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// onlyPayment is the customer's one payment, which must be in status.
func (f *fixture) onlyPayment(c ledger.Customer, status ledger.PaymentStatus) ledger.Payment {
	f.t.Helper()
	page, err := f.ledger.ListPayments(f.ctx, ledger.ListPaymentsParams{CustomerID: c.ID})
	if err != nil || len(page.Items) != 1 || page.Items[0].Status != status {
		f.t.Fatalf("payments = %+v, %v; want one %s", page.Items, err, status)
	}
	return page.Items[0]
}

func (f *fixture) payment(id string) ledger.Payment {
	f.t.Helper()
	p, err := f.ledger.GetPayment(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// The seed's incomplete-payment journey: a customer without a method owes a payment, follows the
// e-mailed deep link, adds a method of an allowed type, and the payment completes exactly once.
// Payment history is off in this portal: the payment to complete is reachable all the same.
func TestCompleteAnIncompletePayment(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Permissions.ViewPaymentHistory = new(bool)
		s.Permissions.UpdatePaymentMethod = new(bool)
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "bank_transfer"}}
	}))
	c := f.customer("jane@example.com", "Jane")
	p := f.charge(c, 1234567, "Factura marzo")
	if p.Status != ledger.PaymentIncomplete {
		t.Fatalf("status = %s", p.Status)
	}
	_, tok := f.session("pay", billingv1alpha1.CustomerReference{ID: c.ID}, &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCompletePayment, PaymentID: p.ID}, time.Hour)
	b := f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/payments/"+p.ID)

	r := b.get("/payments/" + p.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Factura marzo", "$ 12.345,67", "Falta medio de pago", `href="/payments/`+p.ID+`/pay?type=card"`, `href="/payments/`+p.ID+`/pay?type=bank_transfer"`)
	wantNoBody(t, r, "type=direct_debit", `href="/payments"`)
	wantBody(t, b.get("/"), "Necesitan tu atención", "Factura marzo")
	wantBody(t, b.get("/subscriptions"), "Tenés un pago que necesita tu atención", `href="/payments/due"`)
	wantBody(t, b.get("/payments/due"), "Factura marzo")

	wantRefused(t, b.get("/payments/"+p.ID+"/pay?type=direct_debit"), "Este portal no acepta ese medio de pago.")
	r = b.get("/payments/" + p.ID + "/pay?type=card")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Pagar $ 12.345,67", `action="/payments/`+p.ID+`/pay"`)
	r = b.submit("/payments/"+p.ID+"/pay", cardForm("4242424242424241", "123"))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "number")
	wantRefused(t, b.forge("/payments/"+p.ID+"/pay", cardForm("4242424242424242", "123")), csrfRefused)
	wantRefused(t, b.submit("/payments/"+p.ID+"/pay", url.Values{"type": {"direct_debit"}, "account": {goodCBU}}), "Este portal no acepta ese medio de pago.")
	if got := f.payment(p.ID); got.Status != ledger.PaymentIncomplete || len(got.Attempts) != 0 || len(f.methods(c)) != 0 {
		t.Fatalf("refused forms changed the payment (%s, %d attempts) or the methods (%d)", got.Status, len(got.Attempts), len(f.methods(c)))
	}

	wantRedirect(t, b.submit("/payments/"+p.ID+"/pay", cardForm("4242424242424242", "123")), "/payments/"+p.ID)
	r = b.get("/payments/" + p.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "¡Listo! El pago se aprobó.", "Visa •••• 4242")
	got := f.payment(p.ID)
	if got.Status != ledger.PaymentSucceeded || len(got.Attempts) != 1 {
		t.Fatalf("payment = %s with %d attempts", got.Status, len(got.Attempts))
	}
	// Submitting again (back button, double click) charges nothing more.
	wantRedirect(t, b.get("/payments/"+p.ID+"/pay?type=card"), "/payments/"+p.ID)
	b.get("/")
	wantStatus(t, b.submit("/payments/"+p.ID+"/pay", cardForm("5555555555554444", "123")), http.StatusConflict)
	if got := f.payment(p.ID); len(got.Attempts) != 1 {
		t.Fatalf("%d attempts after a second submit", len(got.Attempts))
	}
	// Paid, and history is off: the result was shown once; the payment is not browsable now.
	wantRefused(t, b.get("/payments/"+p.ID), sectionRefused)
	wantNoBody(t, okPage(t, b.get("/")), "Necesitan tu atención")
}

func TestPayByTransferShowsInstructions(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	p := f.charge(c, 50000, "Cuota")
	b := f.browser()
	b.signIn(c)
	b.get("/payments/" + p.ID + "/pay?type=bank_transfer")
	wantRedirect(t, b.submit("/payments/"+p.ID+"/pay", url.Values{"type": {"bank_transfer"}}), "/payments/"+p.ID)
	r := okPage(t, b.get("/payments/"+p.ID))
	wantBody(t, r, "Esperando el pago", "Cómo pagar", "PORTERO.SANDBOX")
	wantNoBody(t, r, `action="/payments/`+p.ID+`/pay"`, "<svg")
	// Still waiting for the transfer: it stays in the banner.
	wantBody(t, b.get("/subscriptions"), `href="/payments/due"`)
}

// A QR payment waits for the customer to pay it from a wallet: its page draws the payload as a
// code a phone scans, named for screen readers in the page's language, with the payload beneath
// it for wallets that take pasted codes. Once paid, the code is gone.
func TestPayByQRShowsAScannableCode(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	p := f.charge(c, 50000, "Cuota")
	b := f.browser()
	b.signIn(c)
	b.get("/payments/" + p.ID + "/pay?type=qr")
	wantRedirect(t, b.submit("/payments/"+p.ID+"/pay", url.Values{"type": {"qr"}}), "/payments/"+p.ID)
	pending := f.payment(p.ID)
	if pending.Status != ledger.PaymentPending || !strings.HasPrefix(pending.Instructions, "sandbox-qr:") {
		t.Fatalf("payment = %s, instructions %q", pending.Status, pending.Instructions)
	}

	r := b.get("/payments/" + p.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Esperando el pago", "Escaneá este código QR", "Si tu billetera acepta códigos pegados",
		`<p class="mono copy">`+pending.Instructions+`</p>`)
	grid, label := pageQRModules(t, r.Body)
	if label != "Código QR para pagar" {
		t.Fatalf("accessible name %q", label)
	}
	if got := scanQR(t, grid); got != pending.Instructions {
		t.Fatalf("the page's code scans as %q, want %q", got, pending.Instructions)
	}
	// Nothing but the payment page draws it.
	wantNoBody(t, okPage(t, b.get("/")), "<svg")
	wantNoBody(t, okPage(t, b.get("/payments/due")), "<svg")

	b.get("/payments/" + p.ID + "?lang=en")
	r = b.get("/payments/" + p.ID)
	wantBody(t, r, "Scan this QR code", "If your wallet accepts pasted codes")
	if _, label := pageQRModules(t, r.Body); label != "QR code to pay" {
		t.Fatalf("accessible name in English %q", label)
	}

	if _, err := f.ledger.ConfirmPayment(f.ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	r = okPage(t, b.get("/payments/"+p.ID))
	wantBody(t, r, "This payment is paid.")
	wantNoBody(t, r, "<svg", pending.Instructions)
}

func TestPayAFailedPaymentWithAnotherCard(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	f.addMethod(c, cardInput("4000000000000002")) // declines every charge
	sub := f.subscribe(c, "Plan Pro")
	p := f.onlyPayment(c, ledger.PaymentFailed)
	b := f.browser()
	b.signIn(c)
	r := b.get("/payments/" + p.ID)
	wantBody(t, r, "El pago fue rechazado.", "La tarjeta fue rechazada", "Pagar con otro medio")
	b.get("/payments/" + p.ID + "/pay?type=card")
	wantRedirect(t, b.submit("/payments/"+p.ID+"/pay", cardForm("5555555555554444", "123")), "/payments/"+p.ID)
	got := f.payment(p.ID)
	if got.Status != ledger.PaymentSucceeded || len(got.Attempts) != 2 || !strings.Contains(got.MethodSummary, "4444") {
		t.Fatalf("payment = %s, %d attempts, %q", got.Status, len(got.Attempts), got.MethodSummary)
	}
	// The new card is now the preferred one, for the next renewals too.
	if ms := f.methods(c); !strings.HasSuffix(ms[0].Card.Last4, "4444") {
		t.Fatalf("preferred = %+v", ms[0])
	}
	if s := f.sub(sub.ID); s.Status != ledger.SubscriptionActive {
		t.Fatalf("subscription = %s", s.Status)
	}
}

// Paying a failed payment again makes the new method the preferred one: with updatePaymentMethod
// off, the portal neither offers nor accepts it (a hand-made POST changes nothing), and it says
// whom to ask. Turning the permission on applies to the next request.
func TestPayingAFailedPaymentNeedsTheUpdatePermission(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Permissions.UpdatePaymentMethod = new(bool)
	}))
	c := f.customer("jane@example.com", "Jane")
	declined := f.addMethod(c, cardInput("4000000000000002"))
	sub := f.subscribe(c, "Plan Pro")
	p := f.onlyPayment(c, ledger.PaymentFailed)
	b := f.browser()
	b.signIn(c)
	r := b.get("/payments/" + p.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "El pago fue rechazado.", "comunicate con nosotros")
	wantNoBody(t, r, "Pagar con otro medio", `/pay?type=`)
	wantRefused(t, b.get("/payments/"+p.ID+"/pay?type=card"), sectionRefused)
	wantRefused(t, b.submit("/payments/"+p.ID+"/pay", cardForm("5555555555554444", "123")), sectionRefused)
	if ms := f.methods(c); len(ms) != 1 || ms[0].ID != declined.ID {
		t.Fatalf("methods changed: %+v", ms)
	}
	if got := f.payment(p.ID); got.Status != ledger.PaymentFailed || len(got.Attempts) != 1 {
		t.Fatalf("payment = %s with %d attempts", got.Status, len(got.Attempts))
	}
	if s := f.sub(sub.ID); s.PaymentMethodID != sub.PaymentMethodID {
		t.Fatalf("subscription re-pinned to %s", s.PaymentMethodID)
	}

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdatePaymentMethod = nil })
	wantBody(t, b.get("/payments/"+p.ID), "Pagar con otro medio")
	b.get("/payments/" + p.ID + "/pay?type=card")
	wantRedirect(t, b.submit("/payments/"+p.ID+"/pay", cardForm("5555555555554444", "123")), "/payments/"+p.ID)
	if got := f.payment(p.ID); got.Status != ledger.PaymentSucceeded {
		t.Fatalf("payment = %s after the permission was turned on", got.Status)
	}
}

// A subscription canceled at once leaves its unpaid payment closed: shown as voided, never
// offered for payment, not among the payments due, and a hand-made POST charges nothing.
func TestCanceledSubscriptionsPaymentIsClosed(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	sub := f.subscribe(c, "Plan Pro") // no method: its first payment is incomplete
	p := f.onlyPayment(c, ledger.PaymentIncomplete)
	b := f.browser()
	b.signIn(c)
	wantBody(t, b.get("/"), "Necesitan tu atención")
	if _, err := f.ledger.CancelSubscription(f.ctx, c.ID, sub.ID, ledger.CancelImmediately, ""); err != nil {
		t.Fatal(err)
	}

	r := b.get("/payments/" + p.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Anulado", "La suscripción se canceló antes de este pago: no se va a cobrar.")
	wantNoBody(t, r, "/pay?type=", "rechazado", "comunicate con nosotros")
	wantRedirect(t, b.get("/payments/"+p.ID+"/pay?type=card"), "/payments/"+p.ID)
	b.get("/payments")
	wantStatus(t, b.submit("/payments/"+p.ID+"/pay", cardForm("4242424242424242", "123")), http.StatusConflict)
	wantNoBody(t, okPage(t, b.get("/")), "Necesitan tu atención")
	wantNoBody(t, okPage(t, b.get("/payments/due")), "Plan Pro")
	if got := f.payment(p.ID); !got.Closed() || len(got.Attempts) != 0 || len(f.methods(c)) != 0 {
		t.Fatalf("payment = %+v, methods %d", got, len(f.methods(c)))
	}
}

func TestPaymentHistory(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	f.addMethod(c, cardInput("4242424242424242"))
	ok := f.charge(c, 10000, "Primera cuota")
	f.charge(c, 20000, "Segunda cuota")
	stranger := f.customer("mallory@example.com", "Mallory")
	theirs := f.charge(stranger, 99900, "Secreto")
	b := f.browser()
	b.signIn(c)
	r := b.get("/payments")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Primera cuota", "Segunda cuota", "$ 100,00", "Aprobado", "Visa •••• 4242")
	wantNoBody(t, r, "Secreto")
	r = b.get("/payments/" + ok.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Este pago está aprobado", "Intentos de cobro")
	wantStatus(t, b.get("/payments/"+theirs.ID), http.StatusNotFound)
	wantStatus(t, b.get("/payments/"+theirs.ID+"/pay?type=card"), http.StatusNotFound)
	b.get("/payments")
	wantStatus(t, b.submit("/payments/"+theirs.ID+"/pay", cardForm("5555555555554444", "123")), http.StatusNotFound)
	if got := f.payment(theirs.ID); got.Status != ledger.PaymentIncomplete {
		t.Fatalf("the stranger's payment moved to %s", got.Status)
	}
	wantRedirect(t, b.get("/payments?after=bm9wZQ"), "/payments")

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.ViewPaymentHistory = new(bool) })
	wantNoBody(t, okPage(t, b.get("/")), `href="/payments"`, "Últimos pagos")
	wantRefused(t, b.get("/payments"), sectionRefused)
	wantRefused(t, b.get("/payments/"+ok.ID), sectionRefused)
}
