package web

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// Cookie names. With Secure, the __Host- prefix makes the browser refuse any cookie of that
// name that is not Secure, host-only and Path=/, so a sibling subdomain cannot plant one
// (session fixation, CSRF-token tossing). Plain-http local runs cannot use the prefix.
const (
	cookieSession   = "portero"       // the browser session
	cookiePre       = "portero-pre"   // pre-session CSRF nonce for the forms before sign-in
	cookieChallenge = "portero-login" // the login challenge in progress
	cookieLang      = "portero-lang"  // the chosen language
)

// cookieMode says how this request's cookies are set: Secure with the __Host- prefix, or, for
// plain http on loopback (or --insecure-cookies), neither.
type cookieMode struct{ secure bool }

func (h *Handler) cookieMode(r *http.Request) cookieMode {
	if isHTTPS(r) {
		return cookieMode{secure: true}
	}
	if h.insecure || isLoopbackHost(r.Host) {
		return cookieMode{secure: false}
	}
	return cookieMode{secure: true}
}

func (m cookieMode) name(base string) string {
	if m.secure {
		return "__Host-" + base
	}
	return base
}

// get returns the cookie's value, "" when absent.
func (m cookieMode) get(r *http.Request, base string) string {
	c, err := r.Cookie(m.name(base))
	if err != nil {
		return ""
	}
	return c.Value
}

// set writes an HttpOnly, SameSite=Lax cookie for the whole site; maxAge 0 makes it last for
// the browser session, a negative maxAge deletes it.
func (m cookieMode) set(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     m.name(base),
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge < 0:
		c.MaxAge = -1
		c.Value = ""
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

func (m cookieMode) clear(w http.ResponseWriter, base string) { m.set(w, base, "", -1) }

// isHTTPS reports whether the browser reached us over https: TLS here, or at the proxy in
// front (X-Forwarded-Proto, as set by ingress controllers).
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https")
}

func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clientIP is the address rate limits count against. X-Forwarded-For is believed only when the
// direct peer is on a private or loopback network (an ingress controller or a local proxy);
// from it, the right-most public address is the first one no proxy of ours wrote.
func clientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if h, _, err := net.SplitHostPort(peer); err == nil {
		peer = h
	}
	ip := net.ParseIP(peer)
	if ip == nil {
		return peer
	}
	if !(ip.IsLoopback() || ip.IsPrivate()) {
		return ip.String()
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := net.ParseIP(strings.TrimSpace(hops[i]))
		if hop == nil {
			continue
		}
		if !(hop.IsLoopback() || hop.IsPrivate()) {
			return hop.String()
		}
	}
	return ip.String()
}
