package web

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// Form decoding: every value a customer types goes through one of these functions, which turn
// url.Values into ledger input or field errors. Field errors are either *payments.Error
// (translated by its Message) or a catalogue key (msgKey). They never echo the input, and a
// card number or security code is never put back into a form.

// msgKey is a field error whose text is in the catalogue.
type msgKey string

func (m msgKey) Error() string { return string(m) }

// fieldErrors maps form field names to what is wrong with them.
type fieldErrors map[string]error

// Card form fields. Names follow the autocomplete tokens so browsers and password managers
// fill them.
const (
	fieldNumber   = "number"
	fieldExpMonth = "exp_month"
	fieldExpYear  = "exp_year"
	fieldCVC      = "cvc"
	fieldHolder   = "holder"
	fieldAccount  = "account"
	fieldWallet   = "wallet"
)

// parseMethodType accepts the method types the platform supports.
func parseMethodType(s string) (payments.MethodType, bool) {
	t := payments.MethodType(strings.TrimSpace(s))
	return t, t.Valid()
}

// newMethod is a decoded add-method form: a card (for the processor to tokenize; never given to
// the ledger) or a method the ledger records itself.
type newMethod struct {
	ledger.NewPaymentMethod
	Card *payments.CardDetails
}

// decodeNewMethod reads the add-method form for type t. The card's number and CVC are checked
// here for quick feedback and again by the processor, which tokenizes them.
func decodeNewMethod(vals url.Values, t payments.MethodType, now time.Time) (newMethod, fieldErrors) {
	in := newMethod{NewPaymentMethod: ledger.NewPaymentMethod{Type: t}}
	errs := fieldErrors{}
	switch t {
	case payments.MethodCard:
		card, cerrs := decodeCard(vals, now)
		in.Card = &card
		errs = cerrs
	case payments.MethodDirectDebit:
		acct, err := payments.ParseCBU(vals.Get(fieldAccount))
		if err != nil {
			errs[fieldAccount] = err
		}
		in.Account = acct
	case payments.MethodCVU:
		acct, err := payments.ParseCVU(vals.Get(fieldAccount))
		if err != nil {
			errs[fieldAccount] = err
		}
		in.Account = acct
	case payments.MethodWallet:
		w := strings.TrimSpace(vals.Get(fieldWallet))
		if walletName(w) == w {
			errs[fieldWallet] = msgKey("form.wallet_choose")
		}
		in.Wallet = w
	case payments.MethodBankTransfer, payments.MethodQR:
		// Nothing to type: the payment instructions come with each charge.
	default:
		errs["type"] = msgKey("form.method_type")
	}
	return in, errs
}

// decodeCard reads the card fields. The expiry is two numbers (month, and year in two or four
// digits) as printed on the card.
func decodeCard(vals url.Values, now time.Time) (payments.CardDetails, fieldErrors) {
	errs := fieldErrors{}
	var c payments.CardDetails
	pan, brand, err := payments.ParseCardNumber(vals.Get(fieldNumber))
	if err != nil {
		errs[fieldNumber] = err
	}
	c.Number = pan
	month, mok := parseSmallInt(vals.Get(fieldExpMonth), 2)
	year, yok := parseSmallInt(vals.Get(fieldExpYear), 4)
	switch {
	case !mok:
		errs[fieldExpMonth] = msgKey("form.exp_month")
	case !yok:
		errs[fieldExpYear] = msgKey("form.exp_year")
	default:
		if err := payments.CheckExpiry(month, year, now); err != nil {
			var pe *payments.Error
			if errors.As(err, &pe) && pe.Field == "exp_month" {
				errs[fieldExpMonth] = err
			} else {
				errs[fieldExpYear] = err
			}
		}
	}
	c.ExpMonth, c.ExpYear = month, payments.NormalizeExpiryYear(year)
	c.CVC = strings.TrimSpace(vals.Get(fieldCVC))
	if err := payments.ValidateCVC(c.CVC, cvcBrand(brand)); err != nil {
		errs[fieldCVC] = err
	}
	holder, ok := cleanText(vals.Get(fieldHolder), 100)
	if !ok {
		errs[fieldHolder] = msgKey("form.text_invalid")
	}
	c.HolderName = holder
	return c, errs
}

// cvcBrand is the brand whose CVC length applies; unknown numbers are checked as 3 digits.
func cvcBrand(b payments.Brand) payments.Brand {
	if b == "" {
		return payments.BrandUnknown
	}
	return b
}

// parseSmallInt reads 1 to maxDigits ASCII digits.
func parseSmallInt(s string, maxDigits int) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxDigits {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// cleanText trims s and accepts it if it is valid UTF-8 without control characters and at most
// maxRunes long.
func cleanText(s string, maxRunes int) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRunes {
		return "", false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", false
		}
	}
	return s, true
}

// Billing form fields, and the ledger's names for them.
var billingFields = []struct{ form, ledger string }{
	{"legal_name", "billing.legal_name"},
	{"tax_id", "billing.tax_id"},
	{"tax_condition", "billing.tax_condition"},
	{"line1", "billing.address.line1"},
	{"line2", "billing.address.line2"},
	{"city", "billing.address.city"},
	{"province", "billing.address.province"},
	{"postal_code", "billing.address.postal_code"},
	{"country", "billing.address.country"},
}

// taxConditions are offered in this order.
var taxConditions = []ledger.TaxCondition{ledger.ConsumidorFinal, ledger.ResponsableInscripto, ledger.Monotributista, ledger.Exento}

// decodeBilling reads the billing form. The ledger validates again (and owns the rules); this
// gives every field its error at once instead of one per submit.
func decodeBilling(vals url.Values) (ledger.BillingProfile, fieldErrors) {
	errs := fieldErrors{}
	text := func(field string, max int) string {
		s, ok := cleanText(vals.Get(field), max)
		if !ok {
			errs[field] = msgKey("form.text_invalid")
		}
		return s
	}
	b := ledger.BillingProfile{
		LegalName: text("legal_name", 200),
		Address: ledger.Address{
			Line1:      text("line1", 200),
			Line2:      text("line2", 200),
			City:       text("city", 100),
			Province:   text("province", 100),
			PostalCode: text("postal_code", 20),
			Country:    strings.ToUpper(text("country", 2)),
		},
	}
	if b.Address.Country != "" && (len(b.Address.Country) != 2 || !isUpperASCII(b.Address.Country)) {
		errs["country"] = msgKey("form.country")
	}
	tc := ledger.TaxCondition(strings.TrimSpace(vals.Get("tax_condition")))
	known := tc == ""
	for _, c := range taxConditions {
		known = known || c == tc
	}
	if !known {
		errs["tax_condition"] = msgKey("form.choose_option")
	}
	b.TaxCondition = tc
	if raw := strings.TrimSpace(vals.Get("tax_id")); raw != "" {
		id, err := payments.ParseCUIT(raw)
		if err != nil {
			errs["tax_id"] = err
		}
		b.TaxID = id
	} else if tc != "" && tc != ledger.ConsumidorFinal {
		errs["tax_id"] = msgKey("form.tax_id_required")
	}
	return b, errs
}

func isUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// formField maps a ledger error's field to the form field it belongs to.
func formField(ledgerField string) string {
	for _, f := range billingFields {
		if f.ledger == ledgerField {
			return f.form
		}
	}
	switch ledgerField {
	case "card.number":
		return fieldNumber
	case "card.exp_month":
		return fieldExpMonth
	case "card.exp_year":
		return fieldExpYear
	case "card.cvc":
		return fieldCVC
	case "account":
		return fieldAccount
	case "wallet":
		return fieldWallet
	case "reason":
		return "reason"
	}
	return ""
}

// parseMove reads the direction of a reorder button.
func parseMove(s string) (string, bool) {
	switch s {
	case "up", "down", "top":
		return s, true
	}
	return "", false
}

// moveOrder returns ids with the one at index i moved as asked; ok is false when it cannot
// move that way.
func moveOrder(ids []string, i int, to string) ([]string, bool) {
	if i < 0 || i >= len(ids) {
		return nil, false
	}
	out := append([]string(nil), ids...)
	switch to {
	case "up":
		if i == 0 {
			return nil, false
		}
		out[i-1], out[i] = out[i], out[i-1]
	case "down":
		if i == len(ids)-1 {
			return nil, false
		}
		out[i+1], out[i] = out[i], out[i+1]
	case "top":
		if i == 0 {
			return nil, false
		}
		id := out[i]
		copy(out[1:i+1], out[:i])
		out[0] = id
	default:
		return nil, false
	}
	return out, true
}
