package auth

import (
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Link tokens are minted by the operator as 32 random bytes in unpadded base64url (43
// characters). The bounds leave room for a longer token format without accepting junk.
const (
	minTokenLen = 32
	maxTokenLen = 128
)

// ParseLinkToken validates the token of a /s/<token> link or a handle from a cookie: base64url
// characters only, of a plausible length. It does not say whether any session has it.
func ParseLinkToken(s string) (string, bool) {
	if len(s) < minTokenLen || len(s) > maxTokenLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return s, true
}

// ParseCode normalises a one-time code as people type or paste it: surrounding space, and
// spaces or dashes between groups ("123 456", "123-456"), are dropped. It must then be exactly
// length ASCII digits.
func ParseCode(s string, length int) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
		default:
			return "", false
		}
	}
	if b.Len() != length {
		return "", false
	}
	return b.String(), true
}

// NormalizeEmail returns the bare, lower-cased address the ledger stores, or false when s is
// not one e-mail address (display names, groups and several addresses are refused).
func NormalizeEmail(s string) (string, bool) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" || len(e) > 254 || !utf8.ValidString(e) || strings.ContainsAny(e, " \t\r\n<>\",;") {
		return "", false
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "", false
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", false
	}
	return e, true
}
