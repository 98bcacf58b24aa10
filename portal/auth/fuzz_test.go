package auth

import (
	"strings"
	"testing"
)

func FuzzParseLinkToken(f *testing.F) {
	f.Add("dGhpcyBpcyBhIHRva2VuIG9mIHRoaXJ0eS10d28gYnl0ZXM")
	f.Add("")
	f.Add("../../etc/passwd")
	f.Add(strings.Repeat("A", 200))
	f.Add("dGhpcyBpcyBhIHRva2VuIG9mIHRoaXJ0eS10d28gYnl0ZXM=")
	f.Fuzz(func(t *testing.T, in string) {
		tok, ok := ParseLinkToken(in)
		if !ok {
			return
		}
		if tok != in || len(tok) < minTokenLen || len(tok) > maxTokenLen {
			t.Fatalf("accepted %q as %q", in, tok)
		}
		if strings.ContainsAny(tok, "/.%=+ \x00") {
			t.Fatalf("accepted a token with separators: %q", tok)
		}
	})
}

func FuzzParseCode(f *testing.F) {
	f.Add("123456", 6)
	f.Add(" 123 456 ", 6)
	f.Add("123-456-78", 8)
	f.Add("١٢٣٤٥٦", 6) // Arabic-Indic digits are not ASCII digits
	f.Add("12345", 6)
	f.Fuzz(func(t *testing.T, in string, length int) {
		code, ok := ParseCode(in, length)
		if !ok {
			return
		}
		if len(code) != length {
			t.Fatalf("%q → %q, want %d digits", in, code, length)
		}
		for i := 0; i < len(code); i++ {
			if code[i] < '0' || code[i] > '9' {
				t.Fatalf("%q → %q has a non-digit", in, code)
			}
		}
		if again, ok := ParseCode(code, length); !ok || again != code {
			t.Fatalf("not idempotent: %q → %q", code, again)
		}
	})
}

func FuzzNormalizeEmail(f *testing.F) {
	f.Add("Jane@Example.com")
	f.Add("  jane@example.com ")
	f.Add("Jane <jane@example.com>")
	f.Add("a@b")
	f.Add("jane@example.com, john@example.com")
	f.Add("\"quoted\"@example.com")
	f.Fuzz(func(t *testing.T, in string) {
		e, ok := NormalizeEmail(in)
		if !ok {
			return
		}
		if e != strings.ToLower(e) || strings.TrimSpace(e) != e || len(e) > 254 || strings.Count(e, "@") < 1 {
			t.Fatalf("accepted %q as %q", in, e)
		}
		if again, ok := NormalizeEmail(e); !ok || again != e {
			t.Fatalf("not idempotent: %q → %q", e, again)
		}
	})
}
