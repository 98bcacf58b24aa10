package receipts

import (
	"strconv"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// texts are a receipt's fixed words in one language.
type texts struct {
	locale                                             string
	title, notice, issuer, customer, amount            string
	paidAt, method, concept, period, paymentID, footer string
	file                                               string
	card, bankTransfer, qr, wallet                     string
	taxCondition                                       map[ledger.TaxCondition]string
	months                                             [12]string
}

var catalog = map[string]texts{
	"es": {
		locale: "es",
		title:  "Comprobante de pago", notice: "No válido como factura",
		issuer: "Emisor", customer: "Cliente", amount: "Importe pagado",
		paidAt: "Fecha de pago", method: "Medio de pago", concept: "Concepto", period: "Período",
		paymentID: "N.º de pago",
		footer:    "Comprobante emitido con Portero. La factura, si corresponde, la emite el comercio.",
		file:      "comprobante",
		card:      "Tarjeta", bankTransfer: "Transferencia bancaria", qr: "Pago con QR", wallet: "Billetera",
		taxCondition: map[ledger.TaxCondition]string{
			ledger.ConsumidorFinal: "Consumidor final", ledger.ResponsableInscripto: "Responsable inscripto",
			ledger.Monotributista: "Monotributista", ledger.Exento: "IVA exento",
		},
		months: [12]string{"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"},
	},
	"en": {
		locale: "en",
		title:  "Payment receipt", notice: "Not a tax invoice",
		issuer: "Issued by", customer: "Customer", amount: "Amount paid",
		paidAt: "Paid on", method: "Payment method", concept: "For", period: "Period",
		paymentID: "Payment ID",
		footer:    "Receipt issued with Portero. The merchant issues the tax invoice, where one is due.",
		file:      "receipt",
		card:      "Card", bankTransfer: "Bank transfer", qr: "QR payment", wallet: "Wallet",
		taxCondition: map[ledger.TaxCondition]string{
			ledger.ConsumidorFinal: "Final consumer (consumidor final)", ledger.ResponsableInscripto: "VAT registered (responsable inscripto)",
			ledger.Monotributista: "Monotributista", ledger.Exento: "VAT exempt (exento)",
		},
		months: [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
	},
}

// textsFor picks the language: "en…" reads English, anything else the portal's first
// language, Spanish.
func textsFor(locale string) texts {
	if l := strings.ToLower(strings.TrimSpace(locale)); l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_") {
		return catalog["en"]
	}
	return catalog["es"]
}

// formatMoney renders minor units as the portal does: "$ 1.234,56" / "US$ 1.234,56" in Spanish
// (Argentine usage), "ARS 1,234.56" in English, where "$" alone would read as dollars.
func formatMoney(locale string, amount int64, cur ledger.Currency) string {
	neg := amount < 0
	u := uint64(amount)
	if neg {
		u = uint64(-(amount + 1)) + 1 // the most negative amount has no positive int64
	}
	digits := cur.MinorUnits()
	div := uint64(1)
	for range digits {
		div *= 10
	}
	thousands, decimal := ",", "."
	if locale == "es" {
		thousands, decimal = ".", ","
	}
	s := group(strconv.FormatUint(u/div, 10), thousands)
	if digits > 0 {
		f := strconv.FormatUint(u%div, 10)
		s += decimal + strings.Repeat("0", digits-len(f)) + f
	}
	if neg {
		s = "-" + s
	}
	if locale == "es" {
		switch cur {
		case ledger.ARS:
			return "$ " + s
		case ledger.USD:
			return "US$ " + s
		}
	}
	return string(cur) + " " + s
}

func group(s, sep string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatDate is a day in the ledger's billing zone (Argentina, UTC−3): "5 mar 2026" / "Mar 5, 2026".
func formatDate(locale string, t time.Time) string {
	t = t.In(ledger.ArgentinaTime)
	y, m, d := t.Date()
	months := textsFor(locale).months
	if locale == "es" {
		return strconv.Itoa(d) + " " + months[m-1] + " " + strconv.Itoa(y)
	}
	return months[m-1] + " " + strconv.Itoa(d) + ", " + strconv.Itoa(y)
}

// formatDateTime is formatDate with the time of day: "5 mar 2026, 14:03 (UTC−3)".
func formatDateTime(locale string, t time.Time) string {
	return formatDate(locale, t) + ", " + t.In(ledger.ArgentinaTime).Format("15:04") + " (UTC−3)"
}

// brandNames are the card brands' printed names, which a stored summary may start with.
var brandNames = func() map[string]bool {
	m := map[string]bool{}
	for _, b := range []payments.Brand{payments.BrandVisa, payments.BrandMastercard, payments.BrandAmex, payments.BrandCabal,
		payments.BrandNaranja, payments.BrandDiscover, payments.BrandDiners, payments.BrandJCB, payments.BrandUnionPay} {
		m[b.DisplayName()] = true
	}
	return m
}()

// wallets names the wallet providers the portal offers.
var wallets = map[string]string{"mercadopago": "Mercado Pago", "modo": "MODO", "uala": "Ualá", "naranjax": "Naranja X"}

// methodSummary is how the receipt names the method a payment used, from what the ledger kept of
// it ("Visa •••• 4242"). It is rebuilt rather than copied so that a receipt never shows more than
// a card's brand and last four digits (or an account's last four), whatever a summary held: a
// brand it does not know reads "Card", digits other than the last four are never printed.
func methodSummary(t texts, mt payments.MethodType, summary string) string {
	last4 := func() string {
		i := strings.LastIndex(summary, "•••• ")
		if i < 0 {
			return ""
		}
		d := summary[i+len("•••• "):]
		if len(d) != 4 || strings.Trim(d, "0123456789") != "" {
			return ""
		}
		return d
	}
	switch mt {
	case "":
		return ""
	case payments.MethodCard:
		brand, _, _ := strings.Cut(summary, " •••• ")
		if !brandNames[brand] {
			brand = t.card
		}
		if d := last4(); d != "" {
			return brand + " •••• " + d
		}
		return brand
	case payments.MethodDirectDebit, payments.MethodCVU:
		kind := "CBU"
		if mt == payments.MethodCVU {
			kind = "CVU"
		}
		if d := last4(); d != "" {
			return kind + " •••• " + d
		}
		return kind
	case payments.MethodBankTransfer:
		return t.bankTransfer
	case payments.MethodQR:
		return t.qr
	case payments.MethodWallet:
		if w, ok := strings.CutPrefix(summary, "Wallet "); ok && wallets[w] != "" {
			return t.wallet + " " + wallets[w]
		}
		return t.wallet
	}
	return string(mt)
}
