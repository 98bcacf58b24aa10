package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// pdfText reads a PDF back with poppler's pdftotext (Debian's poppler-utils, which .ci/run
// installs), as a standard reader does.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext is needed to read receipts back (Debian's poppler-utils; .ci/run installs it)")
	}
	file := filepath.Join(t.TempDir(), "receipt.pdf")
	if err := os.WriteFile(file, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext cannot read the receipt: %v", err)
	}
	return string(out)
}

// TestReceiptPDF: GET /payments/{id}/receipt.pdf of a succeeded payment is a PDF a standard
// reader opens, whose text holds the amount, the merchant's legal name and CUIT and the
// customer's, in the portal's language unless the request asks for the other; a payment not
// yet paid has none (409), a missing one is 404.
func TestReceiptPDF(t *testing.T) {
	f := newFixture(t, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Branding.LegalName = "Acme Servicios Digitales S.R.L."
		p.Spec.Branding.TaxID = "30-71234567-1"
	})
	var c customerJSON
	f.expect(req{method: "POST", path: "/api/v1/customers", body: map[string]any{"email": "recibo@example.com", "name": "Jane",
		"billing": map[string]any{"legal_name": "Gómez y Asociados S.A.", "tax_id": "27-28033514-8", "tax_condition": "responsable_inscripto"}}},
		201, "").json(t, &c)
	f.addCard(c.ID, "5555555555554444", "123")
	paid := f.pay(c.ID, 150000)
	if paid.Status != "succeeded" {
		t.Fatalf("the payment is %s", paid.Status)
	}
	path := "/api/v1/payments/" + paid.ID + "/receipt.pdf"

	for _, tc := range []struct {
		name    string
		path    string
		headers map[string]string
		want    []string
		file    string
	}{
		{"the portal's language", path, nil, []string{"Comprobante de pago", "$ 1.500,00", "No válido como factura"}, "comprobante-"},
		{"lang=en", path + "?lang=en", map[string]string{"Accept-Language": "es"}, []string{"Payment receipt", "ARS 1,500.00"}, "receipt-"},
		{"Accept-Language", path, map[string]string{"Accept-Language": "en-US,en;q=0.9"}, []string{"Payment receipt", "ARS 1,500.00"}, "receipt-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.expect(req{method: "GET", path: tc.path, headers: tc.headers}, 200, "")
			if ct := res.header.Get("Content-Type"); ct != "application/pdf" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cd := res.header.Get("Content-Disposition"); cd != `attachment; filename="`+tc.file+paid.ID+`.pdf"` {
				t.Fatalf("Content-Disposition %q", cd)
			}
			if !bytes.HasPrefix(res.body, []byte("%PDF-")) {
				t.Fatal("not a PDF")
			}
			text := pdfText(t, res.body)
			for _, want := range append(tc.want, "Acme Servicios Digitales S.R.L.", "CUIT 30-71234567-1",
				"Gómez y Asociados S.A.", "27-28033514-8", "Mastercard •••• 4444", paid.ID) {
				if !strings.Contains(text, want) {
					t.Fatalf("the receipt's text lacks %q:\n%s", want, text)
				}
			}
		})
	}

	t.Run("none for a payment not paid, a missing one, or a bad request", func(t *testing.T) {
		other := f.customer("transfer@example.com")
		f.addMethod(other.ID, map[string]any{"type": "bank_transfer"})
		pending := f.pay(other.ID, 5000)
		res := f.expect(req{method: "GET", path: "/api/v1/payments/" + pending.ID + "/receipt.pdf", headers: map[string]string{"Accept-Language": "es"}}, 409, "payment_state")
		if !strings.Contains(res.err(t).Message, "solo un pago acreditado tiene comprobante") {
			t.Errorf("message: %s", res.body)
		}
		f.expect(req{method: "GET", path: "/api/v1/payments/pay_nope/receipt.pdf"}, 404, "not_found")
		f.expect(req{method: "GET", path: path + "?lang=fr"}, 400, "invalid_field")
		f.expect(req{method: "GET", path: path + "?format=png"}, 400, "")
		f.expect(req{method: "GET", path: path, key: "-"}, 401, CodeUnauthorized)
	})
}
