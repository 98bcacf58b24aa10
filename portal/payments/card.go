package payments

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Brand is a card network.
type Brand string

// Card brands recognised from the number's prefix. Cabal and Naranja are Argentine networks.
const (
	BrandVisa       Brand = "visa"
	BrandMastercard Brand = "mastercard"
	BrandAmex       Brand = "amex"
	BrandCabal      Brand = "cabal"
	BrandNaranja    Brand = "naranja"
	BrandUnknown    Brand = "unknown"
)

// Brands a processor may report for cards typed on its own pages; DetectBrand never returns
// them.
const (
	BrandDiscover Brand = "discover"
	BrandDiners   Brand = "diners"
	BrandJCB      Brand = "jcb"
	BrandUnionPay Brand = "unionpay"
)

// DisplayName is the brand as printed on cards and receipts.
func (b Brand) DisplayName() string {
	switch b {
	case BrandVisa:
		return "Visa"
	case BrandMastercard:
		return "Mastercard"
	case BrandAmex:
		return "American Express"
	case BrandCabal:
		return "Cabal"
	case BrandNaranja:
		return "Naranja"
	case BrandDiscover:
		return "Discover"
	case BrandDiners:
		return "Diners Club"
	case BrandJCB:
		return "JCB"
	case BrandUnionPay:
		return "UnionPay"
	}
	return "Card"
}

// CVCLength is how many digits the brand's security code has.
func (b Brand) CVCLength() int {
	if b == BrandAmex {
		return 4
	}
	return 3
}

// digitsOnly strips the separators people type (spaces and dashes) and reports whether anything
// else was present. Other characters are rejected rather than dropped so that a pasted value
// with letters is flagged, not silently reinterpreted.
func digitsOnly(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
		default:
			return "", false
		}
	}
	return b.String(), true
}

// ParseCardNumber normalises a card number (spaces and dashes removed) and validates its length
// for the detected brand and its Luhn check digit. The error never contains the number.
func ParseCardNumber(s string) (string, Brand, error) {
	pan, ok := digitsOnly(s)
	if !ok {
		return "", "", newError(CodeInvalidCardNumberCharacters, "number")
	}
	if len(pan) < 12 || len(pan) > 19 {
		return "", "", newError(CodeInvalidCardNumberLength, "number")
	}
	brand := DetectBrand(pan)
	if !brandLengthOK(brand, len(pan)) {
		return "", "", newError(CodeInvalidCardNumberLength, "number")
	}
	// Naranja numbers are checked for length only: not every Naranja card is known to carry a
	// Luhn digit, and a false rejection loses a customer while a false acceptance costs only
	// a refusal from the processor.
	if brand != BrandNaranja && !Luhn(pan) {
		return "", "", newError(CodeInvalidCardNumber, "number")
	}
	if brand == BrandUnknown && !cardNetworkPrefix(pan) {
		return "", "", newError(CodeUnknownCardNetwork, "number")
	}
	return pan, brand, nil
}

// cardNetworkPrefix reports whether pan starts like a payment card of some network, named by
// DetectBrand or not: a number like 0000 0000 0000 0000 passes the Luhn check, but no network
// issues it. The test is deliberately wide — refusing a real card loses a customer, accepting
// a made-up one only costs a refusal from the processor — so it keeps every range a network
// uses (Discover, Diners, JCB, UnionPay, Maestro, Mir, RuPay, Elo…): the major industry
// identifiers 3 to 6 whole, Mir (2200–2204) and Mastercard's 2-series (2221–2720) among the
// 2s, and UnionPay's 81. What is left (0, 1, 7, 9, the rest of 2 and 8) is airlines, oil
// companies, health and telecoms, and placeholders.
func cardNetworkPrefix(pan string) bool {
	if len(pan) < 4 {
		return false
	}
	switch pan[0] {
	case '3', '4', '5', '6':
		return true
	case '8':
		return pan[1] == '1'
	case '2':
		four := int(pan[0]-'0')*1000 + int(pan[1]-'0')*100 + int(pan[2]-'0')*10 + int(pan[3]-'0')
		return four >= 2200 && four <= 2204 || four >= 2221 && four <= 2720
	}
	return false
}

// Luhn reports whether a string of digits passes the Luhn (mod 10) check. Non-digits fail.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// DetectBrand identifies the network from the number's issuer prefix (IIN). pan must be digits.
func DetectBrand(pan string) Brand {
	p := func(n int) int { // the first n digits as an integer, -1 if too short
		if len(pan) < n {
			return -1
		}
		v := 0
		for i := 0; i < n; i++ {
			v = v*10 + int(pan[i]-'0')
		}
		return v
	}
	switch six := p(6); {
	case six == 589562:
		return BrandNaranja
	case six == 589657, six == 600691, six == 603522, six == 627170, six >= 604201 && six <= 604400:
		return BrandCabal
	}
	switch two := p(2); {
	case two == 34 || two == 37:
		return BrandAmex
	case two >= 51 && two <= 55:
		return BrandMastercard
	}
	if four := p(4); four >= 2221 && four <= 2720 {
		return BrandMastercard
	}
	if p(1) == 4 {
		return BrandVisa
	}
	return BrandUnknown
}

func brandLengthOK(b Brand, n int) bool {
	switch b {
	case BrandVisa:
		return n == 13 || n == 16 || n == 19
	case BrandMastercard, BrandCabal, BrandNaranja:
		return n == 16
	case BrandAmex:
		return n == 15
	}
	return n >= 12 && n <= 19
}

// NormalizeExpiryYear turns a two-digit year (as printed on cards, "28") into a four-digit one.
func NormalizeExpiryYear(year int) int {
	if year >= 0 && year < 100 {
		return 2000 + year
	}
	return year
}

// CheckExpiry validates an expiry month and year against now. A card is valid through the last
// day of its expiry month. Two-digit years are accepted. Returned errors are *Error.
func CheckExpiry(month, year int, now time.Time) error {
	if month < 1 || month > 12 {
		return newError(CodeInvalidExpiryMonth, "exp_month")
	}
	year = NormalizeExpiryYear(year)
	// Issuers print at most ~20 years ahead; 50 leaves room without accepting typos like 20288.
	if year < 2000 || year > now.Year()+50 {
		return newError(CodeInvalidExpiryYear, "exp_year")
	}
	if year < now.Year() || (year == now.Year() && time.Month(month) < now.Month()) {
		return newError(CodeExpiredCard, "exp_year")
	}
	return nil
}

// ValidateCVC checks the security code's format for the brand: 3 digits, 4 for American Express.
func ValidateCVC(cvc string, brand Brand) error {
	if len(cvc) != brand.CVCLength() {
		return newError(CodeInvalidCVC, "cvc")
	}
	for i := 0; i < len(cvc); i++ {
		if cvc[i] < '0' || cvc[i] > '9' {
			return newError(CodeInvalidCVC, "cvc")
		}
	}
	return nil
}

// CardDetails is what a customer types to add a card. It exists only on the way to a
// processor's TokenizeCard and is never stored. Its String, GoString and LogValue methods redact
// the number and CVC so that an accidental %v or slog attribute cannot leak them.
type CardDetails struct {
	Number     string
	ExpMonth   int
	ExpYear    int
	CVC        string
	HolderName string
}

// String redacts everything but the last four digits.
func (c CardDetails) String() string {
	return fmt.Sprintf("CardDetails{number: %s, exp: %02d/%d, cvc: [redacted]}", maskPAN(c.Number), c.ExpMonth, c.ExpYear)
}

// GoString redacts like String, for %#v.
func (c CardDetails) GoString() string { return c.String() }

// LogValue redacts for log/slog.
func (c CardDetails) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("number", maskPAN(c.Number)),
		slog.Int("exp_month", c.ExpMonth),
		slog.Int("exp_year", c.ExpYear),
	)
}

// maskPAN keeps at most the last four digits of whatever was typed.
func maskPAN(s string) string {
	d, _ := digitsOnly(s)
	if len(d) < 8 {
		// Too short to be a real number; showing any of it would reveal most of it.
		return "••••"
	}
	return "•••• " + d[len(d)-4:]
}
