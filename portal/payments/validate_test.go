package payments

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseCardNumber(t *testing.T) {
	tests := []struct {
		in        string
		want      string
		wantBrand Brand
		wantCode  string
	}{
		{in: "4242424242424242", want: "4242424242424242", wantBrand: BrandVisa},
		{in: "4242 4242 4242 4242", want: "4242424242424242", wantBrand: BrandVisa},
		{in: "4242-4242-4242-4242", want: "4242424242424242", wantBrand: BrandVisa},
		{in: " 4111 1111 1111 1111 ", want: "4111111111111111", wantBrand: BrandVisa},
		{in: "4222222222222", want: "4222222222222", wantBrand: BrandVisa}, // 13-digit Visa
		{in: "5555555555554444", want: "5555555555554444", wantBrand: BrandMastercard},
		{in: "5105105105105100", want: "5105105105105100", wantBrand: BrandMastercard},
		{in: "2223003122003222", want: "2223003122003222", wantBrand: BrandMastercard},
		{in: "3782 822463 10005", want: "378282246310005", wantBrand: BrandAmex},
		{in: "371449635398431", want: "371449635398431", wantBrand: BrandAmex},
		{in: "6042010000000006", want: "6042010000000006", wantBrand: BrandCabal},
		{in: "5896570000000008", want: "5896570000000008", wantBrand: BrandCabal},
		{in: "5895620000000002", want: "5895620000000002", wantBrand: BrandNaranja},
		{in: "5895620000000003", want: "5895620000000003", wantBrand: BrandNaranja}, // length-only check
		{in: "6011111111111117", want: "6011111111111117", wantBrand: BrandUnknown},

		{in: "4242424242424241", wantCode: CodeInvalidCardNumber},
		{in: "5555555555554440", wantCode: CodeInvalidCardNumber},
		{in: "378282246310006", wantCode: CodeInvalidCardNumber},
		{in: "4242 4242 4242 424a", wantCode: CodeInvalidCardNumberCharacters},
		{in: "4242.4242.4242.4242", wantCode: CodeInvalidCardNumberCharacters},
		{in: "", wantCode: CodeInvalidCardNumberLength},
		{in: "42424242424", wantCode: CodeInvalidCardNumberLength},
		{in: "42424242424242424242", wantCode: CodeInvalidCardNumberLength},
		{in: "37828224631000", wantCode: CodeInvalidCardNumberLength},    // Amex needs 15
		{in: "55555555555544443", wantCode: CodeInvalidCardNumberLength}, // Mastercard needs 16
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, brand, err := ParseCardNumber(tt.in)
			if tt.wantCode != "" {
				if CodeOf(err) != tt.wantCode {
					t.Fatalf("ParseCardNumber(%q) error = %v, want code %s", tt.in, err, tt.wantCode)
				}
				assertNoLeak(t, err, tt.in)
				return
			}
			if err != nil {
				t.Fatalf("ParseCardNumber(%q) unexpected error: %v", tt.in, err)
			}
			if got != tt.want || brand != tt.wantBrand {
				t.Fatalf("ParseCardNumber(%q) = %q, %s; want %q, %s", tt.in, got, brand, tt.want, tt.wantBrand)
			}
		})
	}
}

func TestSandboxCardsAreValid(t *testing.T) {
	for _, c := range SandboxCards() {
		pan, brand, err := ParseCardNumber(c.Number)
		if err != nil || pan != c.Number || brand != c.Brand {
			t.Errorf("sandbox card %s: got %q %s %v, want itself, %s", c.Number, pan, brand, err, c.Brand)
		}
	}
	for _, a := range SandboxAccounts() {
		parse := ParseCBU
		if a.Type == MethodCVU {
			parse = ParseCVU
		}
		if _, err := parse(a.Number); err != nil {
			t.Errorf("sandbox account %s: %v", a.Number, err)
		}
	}
}

func TestCheckExpiry(t *testing.T) {
	now := time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)
	y := now.Year() // expiry years are relative to the clock, as CheckExpiry reads them
	tests := []struct {
		month, year int
		wantCode    string
	}{
		{3, y, ""}, // valid through the end of its month
		{4, y, ""},
		{1, y + 1, ""},
		{12, (y + 4) % 100, ""}, // two-digit year
		{2, y, CodeExpiredCard},
		{12, y - 1, CodeExpiredCard},
		{2, y % 100, CodeExpiredCard},
		{0, y + 1, CodeInvalidExpiryMonth},
		{13, y + 1, CodeInvalidExpiryMonth},
		{5, 20277, CodeInvalidExpiryYear},
		{5, 1999, CodeInvalidExpiryYear},
		{5, -1, CodeInvalidExpiryYear},
	}
	for _, tt := range tests {
		err := CheckExpiry(tt.month, tt.year, now)
		if CodeOf(err) != tt.wantCode {
			t.Errorf("CheckExpiry(%d, %d) = %v, want code %q", tt.month, tt.year, err, tt.wantCode)
		}
	}
	// The last instant of the expiry month is still valid; the first of the next is not.
	if err := CheckExpiry(3, y, time.Date(y, time.March, 31, 23, 59, 59, 0, time.UTC)); err != nil {
		t.Errorf("card expiring 03/%d rejected on 31 March: %v", y, err)
	}
	if err := CheckExpiry(3, y, time.Date(y, time.April, 1, 0, 0, 0, 0, time.UTC)); CodeOf(err) != CodeExpiredCard {
		t.Errorf("card expiring 03/%d accepted on 1 April: %v", y, err)
	}
}

func TestValidateCVC(t *testing.T) {
	tests := []struct {
		cvc   string
		brand Brand
		ok    bool
	}{
		{"123", BrandVisa, true},
		{"000", BrandMastercard, true},
		{"1234", BrandAmex, true},
		{"1234", BrandVisa, false},
		{"123", BrandAmex, false},
		{"12", BrandVisa, false},
		{"12a", BrandVisa, false},
		{"", BrandCabal, false},
		{" 123", BrandVisa, false},
	}
	for _, tt := range tests {
		err := ValidateCVC(tt.cvc, tt.brand)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateCVC(%q, %s) = %v, want ok=%v", tt.cvc, tt.brand, err, tt.ok)
		}
		if err != nil && CodeOf(err) != CodeInvalidCVC {
			t.Errorf("ValidateCVC(%q) code = %s", tt.cvc, CodeOf(err))
		}
	}
}

func TestParseCBU(t *testing.T) {
	tests := []struct {
		in       string
		want     string
		wantCode string
	}{
		{in: "2850590940090418135201", want: "2850590940090418135201"}, // the BCRA's published example
		{in: "28505909 40090418135201", want: "2850590940090418135201"},
		{in: "285-0590-9-4009041813520-1", want: "2850590940090418135201"},
		{in: "0110599552000000123456", want: "0110599552000000123456"},
		{in: "0070999000000001234565", want: "0070999000000001234565"},
		{in: "0720000778000000123456", want: "0720000778000000123456"},

		{in: "2850590840090418135201", wantCode: CodeInvalidCBUCheckDigit}, // first block digit wrong
		{in: "2850590940090418135202", wantCode: CodeInvalidCBUCheckDigit}, // second block digit wrong
		{in: "2850509940090418135201", wantCode: CodeInvalidCBUCheckDigit}, // transposed branch digits
		{in: "2850590940090418153201", wantCode: CodeInvalidCBUCheckDigit}, // transposed account digits
		{in: "285059094009041813520", wantCode: CodeInvalidCBULength},
		{in: "28505909400904181352011", wantCode: CodeInvalidCBULength},
		{in: "", wantCode: CodeInvalidCBULength},
		{in: "2850590940090418I35201", wantCode: CodeInvalidCBUCharacters},
		{in: "0000003110000000123456", wantCode: CodeCBUIsCVU},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCBU(tt.in)
			if tt.wantCode != "" {
				if CodeOf(err) != tt.wantCode {
					t.Fatalf("ParseCBU(%q) = %v, want code %s", tt.in, err, tt.wantCode)
				}
				assertNoLeak(t, err, tt.in)
				var pe *Error
				if !errors.As(err, &pe) || pe.Field != "cbu" {
					t.Fatalf("error field = %+v, want cbu", pe)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCBU(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseCVU(t *testing.T) {
	tests := []struct {
		in       string
		want     string
		wantCode string
	}{
		{in: "0000003110000000123456", want: "0000003110000000123456"},
		{in: "0000007990000000123452", want: "0000007990000000123452"},
		{in: "0000 0031 1000 0000 1234 56", want: "0000003110000000123456"},

		{in: "0000003100000000123456", wantCode: CodeInvalidCVUCheckDigit},
		{in: "0000003110000000123457", wantCode: CodeInvalidCVUCheckDigit},
		{in: "2850590940090418135201", wantCode: CodeInvalidCVUPrefix}, // a valid CBU is not a CVU
		{in: "00000031100000001234", wantCode: CodeInvalidCVULength},
		{in: "000000311000000012345X", wantCode: CodeInvalidCVUCharacters},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCVU(tt.in)
			if tt.wantCode != "" {
				if CodeOf(err) != tt.wantCode {
					t.Fatalf("ParseCVU(%q) = %v, want code %s", tt.in, err, tt.wantCode)
				}
				assertNoLeak(t, err, tt.in)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCVU(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseCUIT(t *testing.T) {
	tests := []struct {
		in       string
		want     string
		wantCode string
	}{
		{in: "33-69345023-9", want: "33693450239"}, // AFIP's own CUIT
		{in: "30-50001091-2", want: "30500010912"},
		{in: "20-12345678-6", want: "20123456786"},
		{in: "27-17254359-1", want: "27172543591"},
		{in: "27 37465281 3", want: "27374652813"},
		{in: "20100000009", want: "20100000009"},
		{in: "20-00000006-0", want: "20000000060"}, // 11 - sum mod 11 = 11 → check digit 0
		{in: "23-00000000-0", want: "23000000000"},
		{in: "24000000007", want: "24000000007"},
		{in: "34000000002", want: "34000000002"},

		{in: "20-12345678-7", wantCode: CodeInvalidCUITCheckDigit},
		{in: "33-69345023-0", wantCode: CodeInvalidCUITCheckDigit},
		{in: "20-00000001-0", wantCode: CodeInvalidCUITCheckDigit}, // 11 - sum mod 11 = 10: no valid digit
		{in: "20-00000001-9", wantCode: CodeInvalidCUITCheckDigit},
		{in: "20-10000005-1", wantCode: CodeInvalidCUITCheckDigit},
		{in: "21-12345678-6", wantCode: CodeInvalidCUITPrefix},
		{in: "50-12345678-6", wantCode: CodeInvalidCUITPrefix},
		{in: "20-1234567-6", wantCode: CodeInvalidCUITLength},
		{in: "", wantCode: CodeInvalidCUITLength},
		{in: "20.12345678.6", wantCode: CodeInvalidCUITCharacters},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCUIT(tt.in)
			if tt.wantCode != "" {
				if CodeOf(err) != tt.wantCode {
					t.Fatalf("ParseCUIT(%q) = %v, want code %s", tt.in, err, tt.wantCode)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCUIT(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if f := FormatCUIT(got); len(f) != 13 || strings.ReplaceAll(f, "-", "") != got {
				t.Fatalf("FormatCUIT(%q) = %q", got, f)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	err := &Error{Code: CodeInvalidCBUCheckDigit, Field: "cbu"}
	es, en := err.Message("es-AR"), err.Message("en")
	if !strings.Contains(es, "verificadores") || !strings.Contains(en, "check digits") {
		t.Fatalf("messages: es=%q en=%q", es, en)
	}
	if err.Message("fr") != en {
		t.Fatalf("unknown locale should fall back to English")
	}
	if !strings.HasPrefix(err.Error(), CodeInvalidCBUCheckDigit+": ") {
		t.Fatalf("Error() = %q, want code prefix", err.Error())
	}
	if !errors.Is(err, &Error{Code: CodeInvalidCBUCheckDigit}) || errors.Is(err, &Error{Code: CodeInvalidCVUCheckDigit}) {
		t.Fatal("errors.Is must match by code")
	}
	if errors.Is(err, &Error{Code: CodeInvalidCBUCheckDigit, Field: "cvu"}) {
		t.Fatal("errors.Is must honour a target field")
	}
	// Every code has its own message in both languages.
	codes := []string{
		CodeInvalidCardNumberCharacters, CodeInvalidCardNumberLength, CodeInvalidCardNumber,
		CodeInvalidExpiryMonth, CodeInvalidExpiryYear, CodeExpiredCard, CodeInvalidCVC,
		CodeInvalidCBUCharacters, CodeInvalidCBULength, CodeInvalidCBUCheckDigit, CodeCBUIsCVU,
		CodeInvalidCVUCharacters, CodeInvalidCVULength, CodeInvalidCVUPrefix, CodeInvalidCVUCheckDigit,
		CodeInvalidCUITCharacters, CodeInvalidCUITLength, CodeInvalidCUITPrefix, CodeInvalidCUITCheckDigit,
		CodeCardDeclined, CodeInsufficientFunds, CodeIncorrectCVC, CodeProcessingError,
		CodeUnsupportedCurrency, CodeUnsupportedMethod, CodeInvalidAmount, CodeInvalidToken,
		CodeInvalidReference, CodeInvalidPaymentMethod, CodeSubscriptionCanceled,
		CodeAuthenticationRequired, CodeSetupIncomplete, CodePaymentMethodInUse,
		CodeProcessorUnavailable, CodeCardLimitExceeded, CodeAuthenticationFailed,
	}
	fallbackEN, _ := messages("no_such_code")
	seen := map[string]string{}
	for _, c := range codes {
		e := &Error{Code: c}
		if e.Message("en") == fallbackEN || e.Message("es") == e.Message("en") {
			t.Errorf("code %s lacks its own es/en messages", c)
		}
		if prev, dup := seen[e.Message("en")]; dup {
			t.Errorf("codes %s and %s share a message", prev, c)
		}
		seen[e.Message("en")] = c
	}
}

func TestCardDetailsRedacted(t *testing.T) {
	c := CardDetails{Number: "4242 4242 4242 4242", ExpMonth: 12, ExpYear: testExpYear, CVC: "987"}
	for _, s := range []string{c.String(), c.GoString(), c.LogValue().String()} {
		if strings.Contains(strings.ReplaceAll(s, " ", ""), "424242424242") || strings.Contains(s, "987") {
			t.Fatalf("card details leaked: %s", s)
		}
		if !strings.Contains(s, "4242") {
			t.Fatalf("last4 missing: %s", s)
		}
	}
}

// assertNoLeak fails if an error's text contains the input's digits (when long enough to
// identify an account), in either language.
func assertNoLeak(t *testing.T, err error, input string) {
	t.Helper()
	d := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, input)
	if len(d) < 8 {
		return
	}
	var pe *Error
	errors.As(err, &pe)
	for _, s := range []string{err.Error(), pe.Message("es"), pe.Message("en")} {
		if strings.Contains(s, d[:8]) {
			t.Fatalf("error %q echoes the input", s)
		}
	}
}

// TestPlaceholderNumbersAreRefused: numbers whose check digits match but that no card or
// account carries are refused with their own code and a message that says what to type, in
// Spanish and English; real numbers around them still pass.
func TestPlaceholderNumbersAreRefused(t *testing.T) {
	cards := []struct {
		in       string
		wantCode string
	}{
		{"0000000000000000", CodeUnknownCardNetwork},
		{"0000 0000 0000 0000", CodeUnknownCardNetwork},
		{"000000000000", CodeUnknownCardNetwork},
		{"1000000000000008", CodeUnknownCardNetwork}, // airlines' industry identifier
		{"9999999999999995", CodeUnknownCardNetwork}, // national use
		{"7000000000000005", CodeUnknownCardNetwork}, // petroleum
		{"2000000000000006", CodeUnknownCardNetwork}, // a 2 that is neither Mir nor Mastercard
		{"8000000000000003", CodeUnknownCardNetwork}, // an 8 that is not UnionPay's 81
		{"6011111111111117", ""},                     // Discover, named by no DetectBrand brand
		{"3056930009020004", ""},                     // Diners Club
		{"3566002020360505", ""},                     // JCB
		{"6200000000000005", ""},                     // UnionPay
		{"8171999927660000", ""},                     // UnionPay's 81 range
		{"2200000000000004", ""},                     // Mir
		{"6759649826438453", ""},                     // Maestro
		{"5018000000000009", ""},                     // Maestro (Argentine debit cards start so)
		{"4242424242424242", ""},                     // Visa, named by DetectBrand
	}
	for _, tt := range cards {
		_, _, err := ParseCardNumber(tt.in)
		if CodeOf(err) != tt.wantCode {
			t.Errorf("ParseCardNumber(%q) = %v, want code %q", tt.in, err, tt.wantCode)
		}
	}
	accounts := []struct {
		parse    func(string) (string, error)
		name, in string
		wantCode string
	}{
		{ParseCBU, "CBU", "0000000000000000000000", CodePlaceholderCBU}, // was "this is a CVU"
		{ParseCBU, "CBU", "0000-0000 00000000000000", CodePlaceholderCBU},
		{ParseCBU, "CBU", "2850590900000000000000", CodePlaceholderCBU}, // a real bank and branch, account zero
		{ParseCVU, "CVU", "0000000000000000000000", CodePlaceholderCVU},
		{ParseCVU, "CVU", "0000003100000000000000", CodePlaceholderCVU}, // a provider, account zero
		{ParseCBU, "CBU", "2850590940090418135201", ""},
		{ParseCBU, "CBU", "0110599552000000123456", ""},
		{ParseCVU, "CVU", "0000003110000000123456", ""},
	}
	for _, tt := range accounts {
		_, err := tt.parse(tt.in)
		if CodeOf(err) != tt.wantCode {
			t.Errorf("Parse%s(%q) = %v, want code %q", tt.name, tt.in, err, tt.wantCode)
		}
	}
	for _, code := range []string{CodeUnknownCardNetwork, CodePlaceholderCBU, CodePlaceholderCVU} {
		e := &Error{Code: code}
		fallbackEN, fallbackES := messages("")
		if es, en := e.Message("es"), e.Message("en"); es == fallbackES || en == fallbackEN || es == en {
			t.Errorf("%s has no message of its own in both languages: es %q, en %q", code, es, en)
		}
	}
}
