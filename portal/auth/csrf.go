package auth

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/base64"
)

// Forms shown before sign-in (e-mail, code, link exchange, account choice) are protected by a
// signed double submit: the browser holds a random pre-session cookie, and each form carries
// the HMAC of it under a server key. A cross-site page can make the browser send the cookie but
// can neither read it nor compute the MAC, so it cannot forge the form (login CSRF).

// NewPreSession returns a fresh pre-session cookie value.
func NewPreSession() string { return newHandle() }

// PreSessionToken is the form token that goes with a pre-session cookie value.
func (s *Store) PreSessionToken(cookie string) string {
	return base64.RawURLEncoding.EncodeToString(mac(s.csrfKey, []byte(cookie)))
}

// CheckPreSessionToken reports whether token was made for cookie.
func (s *Store) CheckPreSessionToken(cookie, token string) bool {
	if cookie == "" || token == "" {
		return false
	}
	want := mac(s.csrfKey, []byte(cookie))
	got, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && hmac.Equal(want, got)
}

// TokensEqual compares a session's CSRF token with a submitted one in constant time.
func TokensEqual(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
