package receipts

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

var paidAt = time.Date(2026, time.March, 5, 17, 3, 0, 0, time.UTC) // 14:03 in Argentina

func sampleReceipt(t *testing.T) Receipt {
	t.Helper()
	portal := &billingv1alpha1.CustomerPortal{Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Acme",
		Branding: billingv1alpha1.Branding{LegalName: "Acme Servicios Digitales S.R.L.", TaxID: "30-71234567-1"}}}
	c := ledger.Customer{ID: "cus_1", Email: "nandu@example.com", Name: "Ñandú",
		Billing: ledger.BillingProfile{LegalName: "Ñandú Gómez y Asociados S.A.", TaxID: "27280335148",
			TaxCondition: ledger.ResponsableInscripto,
			Address:      ledger.Address{Line1: "Av. Corrientes 1234", Line2: "Piso 5", City: "CABA", Province: "Buenos Aires", PostalCode: "C1043"}}}
	p := ledger.Payment{ID: "pay_2xk7qm4vz6tw3nb5hc2dr7ya", CustomerID: "cus_1", Amount: 150000, Currency: ledger.ARS,
		Description: "Plan Pro — marzo", Status: ledger.PaymentSucceeded, MethodType: payments.MethodCard,
		MethodSummary: "Visa •••• 4242", PeriodStart: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 4, 1, 3, 0, 0, 0, time.UTC),
		UpdatedAt: paidAt.Add(time.Hour),
		Attempts: []ledger.Attempt{
			{Number: 1, Outcome: ledger.PaymentFailed, FinishedAt: paidAt.Add(-time.Hour)},
			{Number: 2, Outcome: ledger.PaymentSucceeded, FinishedAt: paidAt},
		}}
	r, err := New(MerchantOf(portal), c, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pdfText extracts a PDF's text with poppler's pdftotext, the parser most Linux PDF readers
// share: what it reads is what a person's reader shows.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext is needed to read the receipts back (Debian's poppler-utils; .ci/run installs it)")
	}
	file := filepath.Join(t.TempDir(), "receipt.pdf")
	if err := os.WriteFile(file, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-enc", "UTF-8", file, "-")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("pdftotext cannot read the receipt: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// pdfInfo reads the document's metadata with poppler's pdfinfo, which fails on a broken file.
func pdfInfo(t *testing.T, pdf []byte) map[string]string {
	t.Helper()
	bin, err := exec.LookPath("pdfinfo")
	if err != nil {
		t.Fatal("pdfinfo is needed to read the receipts back (Debian's poppler-utils; .ci/run installs it)")
	}
	file := filepath.Join(t.TempDir(), "receipt.pdf")
	if err := os.WriteFile(file, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-enc", "UTF-8", file)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("pdfinfo cannot read the receipt: %v\n%s", err, stderr.String())
	}
	info := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			info[k] = strings.TrimSpace(v)
		}
	}
	return info
}

// TestReceiptPDFOpensInAStandardReader: the PDF parses, is one A4 page, and its text — read back
// by a real PDF parser, not matched as bytes — holds the amount, both CUITs, both names with
// their accents, the method's brand and last four only, the payment id and what it is, in
// Spanish and in English.
func TestReceiptPDFOpensInAStandardReader(t *testing.T) {
	r := sampleReceipt(t)
	for _, tc := range []struct {
		locale string
		want   []string
	}{
		{"es", []string{"Comprobante de pago", "No válido como factura", "$ 1.500,00", "Importe pagado",
			"5 mar 2026, 14:03 (UTC−3)", "Responsable inscripto", "N.º de pago", "1 mar 2026 – 1 abr 2026"}},
		{"en", []string{"Payment receipt", "Not a tax invoice", "ARS 1,500.00", "Amount paid",
			"Mar 5, 2026, 14:03 (UTC−3)", "Payment ID", "Mar 1, 2026 – Apr 1, 2026"}},
	} {
		t.Run(tc.locale, func(t *testing.T) {
			pdf, err := r.PDF(tc.locale)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
				t.Fatalf("not a PDF: %q", pdf[:min(len(pdf), 16)])
			}
			info := pdfInfo(t, pdf)
			for key, want := range map[string]string{"Pages": "1", "Page size": "595.28 x 841.89 pts (A4)",
				"Title": r.Document(tc.locale).Title + " pay_2xk7qm4vz6tw3nb5hc2dr7ya", "Author": "Acme Servicios Digitales S.R.L."} {
				if info[key] != want {
					t.Errorf("pdfinfo's %s = %q, want %q", key, info[key], want)
				}
			}
			text := pdfText(t, pdf)
			want := append([]string{"Acme Servicios Digitales S.R.L.", "CUIT 30-71234567-1", "Ñandú Gómez y Asociados S.A.",
				"CUIT/CUIL 27-28033514-8", "Av. Corrientes 1234, Piso 5", "C1043 CABA, Buenos Aires", "nandu@example.com",
				"Visa •••• 4242", "Plan Pro — marzo", "pay_2xk7qm4vz6tw3nb5hc2dr7ya"}, tc.want...)
			for _, w := range want {
				if !strings.Contains(text, w) {
					t.Errorf("the PDF's text lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// TestOnlySucceededPaymentsHaveReceipts: money not received has no receipt, and a receipt
// names the payment's own customer.
func TestOnlySucceededPaymentsHaveReceipts(t *testing.T) {
	c := ledger.Customer{ID: "cus_1"}
	for _, s := range []ledger.PaymentStatus{ledger.PaymentIncomplete, ledger.PaymentProcessing, ledger.PaymentPending, ledger.PaymentFailed} {
		if _, err := New(Merchant{}, c, ledger.Payment{CustomerID: "cus_1", Status: s}); !errors.Is(err, ErrNoReceipt) {
			t.Errorf("a %s payment: %v, want ErrNoReceipt", s, err)
		}
	}
	if _, err := New(Merchant{}, ledger.Customer{ID: "cus_2"}, ledger.Payment{CustomerID: "cus_1", Status: ledger.PaymentSucceeded}); err == nil {
		t.Error("a receipt was made out to another customer")
	}
}

// TestReceiptMethodNeverShowsMoreThanBrandAndLast4: whatever a stored summary holds, the
// receipt prints at most a known brand and four digits.
func TestReceiptMethodNeverShowsMoreThanBrandAndLast4(t *testing.T) {
	es := textsFor("es")
	for _, tc := range []struct {
		t             payments.MethodType
		summary, want string
	}{
		{payments.MethodCard, "Visa •••• 4242", "Visa •••• 4242"},
		{payments.MethodCard, "American Express •••• 0005", "American Express •••• 0005"},
		{payments.MethodCard, "Visa •••• 4242 4242 4242 4242", "Visa"},
		{payments.MethodCard, "4242424242424242", "Tarjeta"},
		{payments.MethodCard, "Tarjeta 4000 0566 •••• 5556", "Tarjeta •••• 5556"},
		{payments.MethodCard, "", "Tarjeta"},
		{payments.MethodDirectDebit, "CBU •••• 3456", "CBU •••• 3456"},
		{payments.MethodDirectDebit, "CBU 0110599552000000123456", "CBU"},
		{payments.MethodCVU, "CVU •••• 3456", "CVU •••• 3456"},
		{payments.MethodBankTransfer, "Bank transfer", "Transferencia bancaria"},
		{payments.MethodQR, "QR", "Pago con QR"},
		{payments.MethodWallet, "Wallet modo", "Billetera MODO"},
		{payments.MethodWallet, "Wallet <b>", "Billetera"},
		{"", "", ""},
	} {
		if got := methodSummary(es, tc.t, tc.summary); got != tc.want {
			t.Errorf("methodSummary(%s, %q) = %q, want %q", tc.t, tc.summary, got, tc.want)
		}
	}
}

func TestReceiptMoneyAndNames(t *testing.T) {
	for _, tc := range []struct {
		locale string
		amount int64
		cur    ledger.Currency
		want   string
	}{
		{"es", 150000, ledger.ARS, "$ 1.500,00"},
		{"es", 5, ledger.ARS, "$ 0,05"},
		{"es", 123456789, ledger.USD, "US$ 1.234.567,89"},
		{"en", 123456789, ledger.ARS, "ARS 1,234,567.89"},
		{"en", -100, ledger.USD, "USD -1.00"},
		{"es", math.MinInt64, ledger.ARS, "$ -92.233.720.368.547.758,08"},
	} {
		if got := formatMoney(tc.locale, tc.amount, tc.cur); got != tc.want {
			t.Errorf("formatMoney(%s, %d, %s) = %q, want %q", tc.locale, tc.amount, tc.cur, got, tc.want)
		}
	}
	portal := &billingv1alpha1.CustomerPortal{Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Acme Billing"}}
	if m := MerchantOf(portal); m.LegalName != "Acme Billing" || m.TaxID != "" {
		t.Errorf("without branding.legalName and taxID: %+v", m)
	}
	if got := Filename("en", `pay_1"; x=y`); got != "receipt-pay_1xy.pdf" {
		t.Errorf("Filename = %q", got)
	}
	if got := Filename("es", "pay_1"); got != "comprobante-pay_1.pdf" {
		t.Errorf("Filename = %q", got)
	}
}
