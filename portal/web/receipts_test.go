package web

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
)

// readPDF extracts a PDF's text with poppler's pdftotext (Debian's poppler-utils, which .ci/run
// installs): the receipt must open in a standard reader, not merely start with %PDF.
func readPDF(t *testing.T, pdf string) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext is needed to read receipts back (Debian's poppler-utils; .ci/run installs it)")
	}
	file := filepath.Join(t.TempDir(), "receipt.pdf")
	if err := os.WriteFile(file, []byte(pdf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext cannot read the receipt: %v", err)
	}
	return string(out)
}

// TestReceipts: a succeeded payment's page links its receipt; the receipt page and its PDF
// name the merchant's legal name and CUIT, the customer's billing profile, the amount, the
// method (brand and last four) and the payment id, in Spanish and English. Another customer's
// payment and a payment not yet paid have no receipt (404), and receipts follow the payment
// history permission, a session's restrictions included.
func TestReceipts(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Branding.LegalName = "Acme Servicios Digitales S.R.L."
		s.Branding.TaxID = "30-71234567-1"
	}))
	c := f.customer("jane@example.com", "Jane Doe")
	if _, err := f.ledger.UpdateCustomer(f.ctx, c.ID, ledger.CustomerUpdate{Billing: &ledger.BillingProfile{
		LegalName: "Gómez & Asociados S.A.", TaxID: "27-28033514-8", TaxCondition: ledger.ResponsableInscripto}}); err != nil {
		t.Fatal(err)
	}
	f.addMethod(c, flowtest.Method{Type: "bank_transfer"})
	due := f.charge(c, 4200, "Transferencia esperada") // pending until the money arrives
	card := f.addMethod(c, cardInput("4242424242424242"))
	if _, err := f.ledger.MakePreferred(f.ctx, c.ID, card.ID); err != nil {
		t.Fatal(err)
	}
	paid := f.charge(c, 150000, "Plan Pro")
	if d, p := f.payment(due.ID).Status, f.payment(paid.ID).Status; d != ledger.PaymentPending || p != ledger.PaymentSucceeded {
		t.Fatalf("payments are %s and %s, want pending and succeeded", d, p)
	}
	other := f.customer("otro@example.com", "Otro")
	f.addMethod(other, cardInput("4242424242424242"))
	foreign := f.charge(other, 990000, "Ajeno")

	b := f.browser()
	b.signIn(c)
	receipt := "/payments/" + paid.ID + "/receipt"

	t.Run("the page", func(t *testing.T) {
		r := b.get("/payments/" + paid.ID)
		wantBody(t, r, `href="`+receipt+`"`, "Ver comprobante")
		r = b.get(receipt)
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, "Comprobante de pago", "No válido como factura", "Acme Servicios Digitales S.R.L.", "CUIT 30-71234567-1",
			"Gómez &amp; Asociados S.A.", "CUIT/CUIL 27-28033514-8", "Responsable inscripto", "$ 1.500,00", "Visa •••• 4242",
			paid.ID, `href="`+receipt+`.pdf"`, `/static/receipt.css?v=`)
		css := b.get("/static/receipt.css")
		wantStatus(t, css, http.StatusOK)
		wantBody(t, css, "@media print")
	})

	t.Run("the PDF, in both languages", func(t *testing.T) {
		for _, tc := range []struct{ lang, amount, title, file string }{
			{"es", "$ 1.500,00", "Comprobante de pago", "comprobante-"},
			{"en", "ARS 1,500.00", "Payment receipt", "receipt-"},
		} {
			b.get("/payments/" + paid.ID + "?lang=" + tc.lang)
			r := b.get(receipt + ".pdf")
			wantStatus(t, r, http.StatusOK)
			if ct := r.Header.Get("Content-Type"); ct != "application/pdf" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="`+tc.file+paid.ID+`.pdf"` {
				t.Fatalf("Content-Disposition %q", cd)
			}
			text := readPDF(t, r.Body)
			for _, want := range []string{tc.title, tc.amount, "30-71234567-1", "Acme Servicios Digitales S.R.L.",
				"Gómez & Asociados S.A.", "Visa •••• 4242", paid.ID} {
				if !strings.Contains(text, want) {
					t.Fatalf("the %s PDF lacks %q:\n%s", tc.lang, want, text)
				}
			}
			if strings.Contains(text, "4242 4242") || strings.Contains(text, "424242") {
				t.Fatalf("the PDF shows more of the card than its last four:\n%s", text)
			}
		}
		b.get("/payments/" + paid.ID + "?lang=es")
	})

	t.Run("none for another customer's payment or one not paid", func(t *testing.T) {
		for _, id := range []string{foreign.ID, due.ID, "pay_nope"} {
			wantStatus(t, b.get("/payments/"+id+"/receipt"), http.StatusNotFound)
			r := b.get("/payments/" + id + "/receipt.pdf")
			wantStatus(t, r, http.StatusNotFound)
			if strings.HasPrefix(r.Body, "%PDF") {
				t.Fatal("a PDF was sent for a payment without a receipt")
			}
		}
		wantNoBody(t, b.get("/payments/"+due.ID), "/receipt")
	})

	t.Run("a session that may not see the history gets none", func(t *testing.T) {
		_, tok := f.sessionWith("no-history", billingv1alpha1.PortalSessionSpec{
			Customer: billingv1alpha1.CustomerReference{ID: c.ID},
			Restrictions: &billingv1alpha1.SessionRestrictions{
				Permissions: &billingv1alpha1.RestrictedPermissions{ViewPaymentHistory: ptr.To(false)}},
		}, time.Hour)
		s := f.browser()
		wantRedirect(t, s.openLink(tok), "/")
		wantStatus(t, s.get(receipt), http.StatusForbidden)
		wantStatus(t, s.get(receipt+".pdf"), http.StatusForbidden)
	})

	t.Run("nor a portal that hides the history", func(t *testing.T) {
		f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.ViewPaymentHistory = ptr.To(false) })
		wantStatus(t, b.get(receipt), http.StatusForbidden)
		wantStatus(t, b.get(receipt+".pdf"), http.StatusForbidden)
	})
}
