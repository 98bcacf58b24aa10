package payments

import (
	"strings"
	"testing"
)

// The fuzz targets check properties every parser must keep for any input: no panic; an accepted
// value is canonical (digits only, re-parses to itself, survives separators); a rejected value
// yields a coded *Error whose text does not echo the input.

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// spaced inserts separators the way people type them.
func spaced(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i > 0 && i%4 == 0 {
			b.WriteString(" - ")
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func checkRejected(t *testing.T, err error, in string) {
	t.Helper()
	code := CodeOf(err)
	if code == "" {
		t.Fatalf("error without code for %q: %v", in, err)
	}
	d, _ := digitsOnly(in)
	if len(d) >= 8 && strings.Contains(err.Error(), d) {
		t.Fatalf("error echoes input %q: %v", in, err)
	}
}

func FuzzParseCardNumber(f *testing.F) {
	for _, c := range SandboxCards() {
		f.Add(c.Number)
	}
	f.Add("4242 4242 4242 4241")
	f.Add("")
	f.Add("٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢") // Arabic-Indic digits are not ASCII digits
	f.Fuzz(func(t *testing.T, in string) {
		pan, brand, err := ParseCardNumber(in)
		if err != nil {
			checkRejected(t, err, in)
			return
		}
		if !isDigits(pan) || len(pan) < 12 || len(pan) > 19 {
			t.Fatalf("accepted non-canonical %q → %q", in, pan)
		}
		if brand != BrandNaranja && !Luhn(pan) {
			t.Fatalf("accepted Luhn-invalid %q", pan)
		}
		if brand != DetectBrand(pan) {
			t.Fatalf("brand mismatch for %q", pan)
		}
		again, brand2, err := ParseCardNumber(spaced(pan))
		if err != nil || again != pan || brand2 != brand {
			t.Fatalf("re-parse of %q: %q %s %v", pan, again, brand2, err)
		}
	})
}

func FuzzParseCBU(f *testing.F) {
	f.Add("2850590940090418135201")
	f.Add("0110599552000000123456")
	f.Add("0000003110000000123456")
	f.Add("28505909-40090418135201")
	f.Fuzz(func(t *testing.T, in string) {
		cbu, err := ParseCBU(in)
		if err != nil {
			checkRejected(t, err, in)
			return
		}
		if len(cbu) != 22 || !isDigits(cbu) || strings.HasPrefix(cbu, "000") || !cbuCheckDigitsOK(cbu) {
			t.Fatalf("accepted invalid CBU %q from %q", cbu, in)
		}
		if again, err := ParseCBU(spaced(cbu)); err != nil || again != cbu {
			t.Fatalf("re-parse of %q: %q %v", cbu, again, err)
		}
		if _, err := ParseCVU(cbu); CodeOf(err) != CodeInvalidCVUPrefix {
			t.Fatalf("CBU %q accepted as CVU: %v", cbu, err)
		}
		// Changing any single digit must break a check digit.
		for i := 0; i < len(cbu); i++ {
			b := []byte(cbu)
			b[i] = '0' + (b[i]-'0'+1)%10
			if _, err := ParseCBU(string(b)); err == nil {
				t.Fatalf("single-digit change at %d of %q still valid", i, cbu)
			}
		}
	})
}

func FuzzParseCVU(f *testing.F) {
	f.Add("0000003110000000123456")
	f.Add("0000007990000000123452")
	f.Add("2850590940090418135201")
	f.Fuzz(func(t *testing.T, in string) {
		cvu, err := ParseCVU(in)
		if err != nil {
			checkRejected(t, err, in)
			return
		}
		if len(cvu) != 22 || !isDigits(cvu) || !strings.HasPrefix(cvu, "000") || !cbuCheckDigitsOK(cvu) {
			t.Fatalf("accepted invalid CVU %q from %q", cvu, in)
		}
		if again, err := ParseCVU(spaced(cvu)); err != nil || again != cvu {
			t.Fatalf("re-parse of %q: %q %v", cvu, again, err)
		}
	})
}

func FuzzParseCUIT(f *testing.F) {
	f.Add("33-69345023-9")
	f.Add("20-12345678-6")
	f.Add("20-00000001-0")
	f.Add("20000000060")
	f.Fuzz(func(t *testing.T, in string) {
		cuit, err := ParseCUIT(in)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("error without code: %v", err)
			}
			return
		}
		if len(cuit) != 11 || !isDigits(cuit) {
			t.Fatalf("accepted non-canonical %q → %q", in, cuit)
		}
		want, ok := cuitCheckDigit(cuit[:10])
		if !ok || want != cuit[10] {
			t.Fatalf("accepted wrong check digit %q", cuit)
		}
		if again, err := ParseCUIT(FormatCUIT(cuit)); err != nil || again != cuit {
			t.Fatalf("FormatCUIT round trip of %q: %q %v", cuit, again, err)
		}
	})
}
