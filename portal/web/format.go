package web

import (
	"strconv"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// formatMoney renders minor units: "$ 1.234,56" / "US$ 1.234,56" in Spanish (Argentine usage),
// "ARS 1,234.56" in English, where "$" alone would be read as dollars.
func formatMoney(locale string, amount int64, cur ledger.Currency) string {
	neg := amount < 0
	if neg {
		amount = -amount
	}
	digits := cur.MinorUnits()
	div := int64(1)
	for i := 0; i < digits; i++ {
		div *= 10
	}
	whole, frac := amount/div, amount%div
	thousands, decimal := ",", "."
	if locale == "es" {
		thousands, decimal = ".", ","
	}
	s := groupThousands(strconv.FormatInt(whole, 10), thousands)
	if digits > 0 {
		f := strconv.FormatInt(frac, 10)
		s += decimal + strings.Repeat("0", max(digits-len(f), 0)) + f
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

func groupThousands(s, sep string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

var monthsES = [...]string{"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"}

// formatDate renders a day in the ledger's billing zone (Argentina, UTC−3): "5 mar 2026" /
// "Mar 5, 2026". Billing periods count their days there, so a period shows the day it ends on.
func formatDate(locale string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(ledger.ArgentinaTime) // the ledger's billing days: a period ends on the day shown
	y, m, d := t.Date()
	if locale == "es" {
		return strconv.Itoa(d) + " " + monthsES[m-1] + " " + strconv.Itoa(y)
	}
	if y < 1000 || y > 9999 { // Format pads the year to four digits
		return t.Format("Jan 2, 2006")
	}
	return m.String()[:3] + " " + strconv.Itoa(d) + ", " + strconv.Itoa(y)
}

func formatDateTime(locale string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatDate(locale, t) + " " + t.In(ledger.ArgentinaTime).Format("15:04") + " (UTC−3)"
}

// wallets are the providers offered for wallet methods, in display order.
var wallets = []struct{ ID, Name string }{
	{"mercadopago", "Mercado Pago"},
	{"modo", "MODO"},
	{"uala", "Ualá"},
	{"naranjax", "Naranja X"},
}

func walletName(id string) string {
	for _, w := range wallets {
		if w.ID == id {
			return w.Name
		}
	}
	return id
}

// methodLabel is how a saved method is named on screen. Numbers are never shown whole: the
// ledger holds only a card's last four digits, and CBU/CVU are masked.
func methodLabel(locale string, m ledger.PaymentMethod) string {
	cat := catalog[locale]
	switch m.Type {
	case payments.MethodCard:
		if m.Card != nil {
			return m.Card.Brand.DisplayName() + " •••• " + m.Card.Last4
		}
	case payments.MethodDirectDebit:
		return "CBU " + m.MaskedAccount()
	case payments.MethodCVU:
		return "CVU " + m.MaskedAccount()
	case payments.MethodWallet:
		if m.Wallet != "" {
			return walletName(m.Wallet)
		}
	}
	if s, ok := cat["method."+string(m.Type)]; ok {
		return s
	}
	return string(m.Type)
}

// paymentMethodLabel is the method a payment used, from what the ledger kept of it.
func paymentMethodLabel(locale string, t payments.MethodType, summary string) string {
	switch t {
	case "":
		return ""
	case payments.MethodCard, payments.MethodDirectDebit, payments.MethodCVU:
		if summary != "" {
			return summary
		}
	case payments.MethodWallet:
		if w, ok := strings.CutPrefix(summary, "Wallet "); ok {
			return walletName(w)
		}
	}
	if s, ok := catalog[locale]["method."+string(t)]; ok {
		return s
	}
	return string(t)
}
