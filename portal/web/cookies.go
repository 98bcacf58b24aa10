package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// Cookie names. With Secure, the __Host- prefix makes the browser refuse any cookie of that
// name that is not Secure, host-only and Path=/, so a sibling subdomain cannot plant one
// (session fixation, CSRF-token tossing). Plain-http local runs cannot use the prefix.
const (
	cookieSession   = "portero"       // the browser session
	cookiePre       = "portero-pre"   // pre-session CSRF nonce for the forms before sign-in
	cookieChallenge = "portero-login" // the login challenge in progress
	cookieLang      = "portero-lang"  // the chosen language
	// cookieKnown marks a browser that signed in with an e-mailed code (auth.RememberBrowser).
	cookieKnown = "portero-known"
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

// clientIP is the client address rate limits count against, as a bucket key: an IPv4 address,
// or the /64 of an IPv6 one (one subscriber usually holds a whole /64, so counting single
// addresses would give each client billions of buckets); IPv4-mapped IPv6 counts as IPv4.
//
// X-Forwarded-For is believed only as far as the portal's spec.exposure.trustedProxies reach:
// with none (the default) it is ignored and the connection's peer is the client, since anyone
// can send the header. When the peer is a trusted proxy, the header is walked from the right
// (the entry the nearest proxy appended), past the trusted proxies' own addresses; the first
// address that is not one is the client. Entries to its left were written by the client or
// proxies we do not know, so are never read. A malformed entry (a proxy's "unknown", an empty
// or garbled one) ends the walk, and the last good address, the proxy that passed it on,
// stands for the client: skipping it would read entries the client may have written.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	addr := peer.Addr()
	if err != nil {
		if addr, err = netip.ParseAddr(r.RemoteAddr); err != nil {
			return r.RemoteAddr // not an IP peer (a test, a unix socket): one bucket for all
		}
	}
	addr = addr.Unmap().WithZone("")
	if !isTrusted(addr, trusted) {
		return clientKey(addr)
	}
	// Several X-Forwarded-For lines are one comma-separated list, in order (RFC 9110 5.3).
	xff := strings.Join(r.Header.Values("X-Forwarded-For"), ",")
	for xff != "" {
		i := strings.LastIndexByte(xff, ',')
		hop, ok := parseHop(xff[i+1:])
		if !ok {
			break
		}
		addr = hop
		if !isTrusted(addr, trusted) {
			break
		}
		if i < 0 {
			break
		}
		xff = xff[:i]
	}
	return clientKey(addr)
}

// parseHop reads one X-Forwarded-For entry: an address, with a port as some proxies add.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func clientKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// trustedProxies parses the portal's spec.exposure.trustedProxies as it is now, so a change
// applies to the next request. The API server admits only CIDRs; a bare address is read as a
// single-address prefix, and anything else (an object stored before validation) is skipped.
func trustedProxies(p *billingv1alpha1.CustomerPortal) []netip.Prefix {
	if p == nil || p.Spec.Exposure == nil || len(p.Spec.Exposure.TrustedProxies) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(p.Spec.Exposure.TrustedProxies))
	for _, s := range p.Spec.Exposure.TrustedProxies {
		if pr, err := netip.ParsePrefix(s); err == nil {
			if pr.Addr().Is4In6() && pr.Bits() >= 96 { // ::ffff:10.0.0.0/104 is 10.0.0.0/8
				pr = netip.PrefixFrom(pr.Addr().Unmap(), pr.Bits()-96)
			}
			out = append(out, pr.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// clientIP is this request's rate-limit key under the portal's trusted proxies now.
func (v *visit) clientIP() string { return clientIP(v.r, trustedProxies(v.portal)) }
