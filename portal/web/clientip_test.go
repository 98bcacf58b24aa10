package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

func TestClientIP(t *testing.T) {
	pod := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		remote  string
		xff     []string // header lines
		trusted []netip.Prefix
		want    string
	}{
		{"no header", "203.0.113.7:1234", nil, nil, "203.0.113.7"},
		{"forged header, no trusted proxies", "203.0.113.7:1234", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"a private peer is not trusted by default", "10.0.0.5:1234", []string{"198.51.100.1"}, nil, "10.0.0.5"},
		{"loopback peer", "127.0.0.1:1234", []string{"198.51.100.1"}, nil, "127.0.0.1"},
		{"trusted proxy", "10.0.0.5:1234", []string{"198.51.100.1"}, pod, "198.51.100.1"},
		{"trusted chain: right-most untrusted", "10.0.0.5:1234", []string{"198.51.100.66, 198.51.100.1, 10.0.0.9"}, pod, "198.51.100.1"},
		{"entries left of the client are never read", "10.0.0.5:1234", []string{"10.9.9.9, 198.51.100.1"}, pod, "198.51.100.1"},
		{"several header lines are one list", "10.0.0.5:1234", []string{"198.51.100.66", "198.51.100.1, 10.0.0.9"}, pod, "198.51.100.1"},
		{"an untrusted peer's header is ignored", "203.0.113.7:1234", []string{"198.51.100.1"}, pod, "203.0.113.7"},
		{"garbage: the peer stands in", "10.0.0.5:1234", []string{"garbage"}, pod, "10.0.0.5"},
		{"garbage past a trusted hop: that hop", "10.0.0.5:1234", []string{"198.51.100.1, unknown, 10.0.0.9"}, pod, "10.0.0.9"},
		{"empty entry ends the walk", "10.0.0.5:1234", []string{"198.51.100.1, "}, pod, "10.0.0.5"},
		{"only trusted hops: the furthest", "10.0.0.5:1234", []string{"10.0.0.8, 10.0.0.9"}, pod, "10.0.0.8"},
		{"hop with a port", "10.0.0.5:1234", []string{"198.51.100.1:5555"}, pod, "198.51.100.1"},
		{"IPv6 hop with a port", "10.0.0.5:1234", []string{"[2001:db8:1:2::99]:443"}, pod, "2001:db8:1:2::/64"},
		{"IPv6 client: its /64", "[2001:db8:1:2:aaaa::1]:443", nil, nil, "2001:db8:1:2::/64"},
		{"same /64, same key", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", nil, nil, "2001:db8:1:2::/64"},
		{"another /64", "[2001:db8:1:3::1]:443", nil, nil, "2001:db8:1:3::/64"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:203.0.113.7]:443", nil, nil, "203.0.113.7"},
		{"IPv4-mapped hop", "10.0.0.5:1234", []string{"::ffff:198.51.100.1"}, pod, "198.51.100.1"},
		{"IPv4-mapped trusted peer", "[::ffff:10.0.0.5]:1234", []string{"198.51.100.1"}, pod, "198.51.100.1"},
		{"IPv6 proxy, IPv6 client", "[fd00::5]:1234", []string{"2001:db8:1:2::99"}, pod, "2001:db8:1:2::/64"},
		{"zone dropped", "[fe80::1%eth0]:1234", nil, nil, "fe80::/64"},
		{"not an IP peer", "@", nil, pod, "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, h := range tt.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := clientIP(r, tt.trusted); got != tt.want {
				t.Errorf("clientIP(%s, %q, %v) = %s, want %s", tt.remote, tt.xff, tt.trusted, got, tt.want)
			}
		})
	}
}

func TestTrustedProxiesParse(t *testing.T) {
	p := &billingv1alpha1.CustomerPortal{}
	if got := trustedProxies(p); got != nil {
		t.Fatalf("no exposure: %v", got)
	}
	p.Spec.Exposure = &billingv1alpha1.Exposure{TrustedProxies: []string{
		"10.244.0.0/16", "10.0.0.1/8", "::ffff:192.168.0.0/112", "fd00::/8", "192.0.2.7", "not a cidr"}}
	var got []string
	for _, pr := range trustedProxies(p) {
		got = append(got, pr.String())
	}
	want := []string{"10.244.0.0/16", "10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "192.0.2.7/32"}
	if len(got) != len(want) {
		t.Fatalf("trustedProxies = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("trustedProxies = %v, want %v", got, want)
		}
	}
}

// atNextHour moves the fixture's clock on to the next full hour, so rate-limit windows (fixed,
// of an hour or a divisor of one) cannot end in the middle of a test.
func (f *fixture) atNextHour() {
	f.clock.SetTime(f.clock.Now().Truncate(time.Hour).Add(time.Hour))
}

// The rate limits count the client the portal's trustedProxies say, as they are at the time of
// the request: a kubectl patch applies to the next request.
func TestTrustedProxiesApplyLive(t *testing.T) {
	f := newFixture(t)
	f.atNextHour()
	f.h.limits.CodeRequestsPerIP.Hits = 3
	ask := func(ip string, xff ...string) int {
		t.Helper()
		b := f.browser()
		b.ip = ip
		b.get("/login")
		hdr := http.Header{}
		for _, h := range xff {
			hdr.Add("X-Forwarded-For", h)
		}
		return b.do(http.MethodPost, "/login", url.Values{"email": {"someone@example.com"}, "csrf": {b.csrf()}}, hdr).Code
	}
	// Without trusted proxies, the ingress (10.0.0.5) is the client: its visitors share one
	// bucket, whatever X-Forwarded-For they claim.
	for i := 0; i < 3; i++ {
		if code := ask("10.0.0.5", "198.51.100."+string(rune('1'+i))); code != http.StatusSeeOther {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code := ask("10.0.0.5", "198.51.100.9"); code != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For bought a fresh bucket: %d", code)
	}

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Exposure = &billingv1alpha1.Exposure{PublicURL: "https://billing.acme.example/", TrustedProxies: []string{"10.0.0.0/8"}}
	})
	// Now each visitor behind the ingress is counted on its own.
	for i := 0; i < 3; i++ {
		if code := ask("10.0.0.5", "198.51.100.20"); code != http.StatusSeeOther {
			t.Fatalf("visitor A, request %d: %d", i, code)
		}
	}
	if code := ask("10.0.0.5", "198.51.100.20"); code != http.StatusTooManyRequests {
		t.Fatalf("visitor A past its limit: %d", code)
	}
	if code := ask("10.0.0.7", "198.51.100.21"); code != http.StatusSeeOther {
		t.Fatalf("visitor B was limited with A: %d", code)
	}
	// A visitor who forges the header in front of the ingress is still one visitor.
	if code := ask("10.0.0.5", "198.51.100.99, 198.51.100.20"); code != http.StatusTooManyRequests {
		t.Fatalf("a forged entry left of the client's got through: %d", code)
	}
	// An IPv6 visitor's /64 is one client.
	for i, ip := range []string{"2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7:abcd::3"} {
		if code := ask("10.0.0.5", ip); code != http.StatusSeeOther {
			t.Fatalf("IPv6 request %d: %d", i, code)
		}
	}
	if code := ask("[2001:db8:7:7::99]", ""); code != http.StatusTooManyRequests {
		t.Fatalf("another address of the same /64 was a new client: %d", code)
	}

	// Taken away again: the header no longer counts.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Exposure.TrustedProxies = nil })
	f.clock.Step(10 * time.Minute) // a fresh window for everyone
	for i := 0; i < 3; i++ {
		ask("10.0.0.5", "198.51.100."+string(rune('1'+i)))
	}
	if code := ask("10.0.0.5", "198.51.100.30"); code != http.StatusTooManyRequests {
		t.Fatalf("X-Forwarded-For still believed after trustedProxies was emptied: %d", code)
	}
}
