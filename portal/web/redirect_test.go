package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// portalOrigin is where the test browser thinks it is (see fixture.browser).
const portalOrigin = "http://billing.acme.example"

// onPortal fails unless a Location header names a path on the portal itself, as a browser reads
// it: browsers drop tabs and newlines anywhere in a URL and take a backslash for a slash, so
// "/\\evil.example" and "/\t/evil.example" are other sites to them.
func onPortal(t *testing.T, req, loc string) {
	t.Helper()
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
		t.Errorf("%s: Location %q is not a path on the portal", req, loc)
		return
	}
	browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc)
	base, _ := url.Parse(portalOrigin + "/a/b")
	ref, err := url.Parse(browser)
	if err != nil {
		t.Errorf("%s: Location %q does not parse: %v", req, loc, err)
		return
	}
	if got := base.ResolveReference(ref); got.Host != "billing.acme.example" {
		t.Errorf("%s: Location %q leads to %s", req, loc, got)
	}
}

// The language switch rebuilt its redirect from the decoded path: "/%2Fevil.example/pay?lang=es"
// answered 303 to "//evil.example/pay" on the merchant's own billing host, signed in or not.
// Every redirect a visitor can shape (the switch, net/http's path cleaning and trailing-slash
// redirects in front of it) must lead to a path on the portal; the requests are followed, as a
// browser would, until they settle.
func TestRedirectsStayOnThePortal(t *testing.T) {
	f := newFixture(t)
	public, _, _ := servedPortal(t, f)
	for _, target := range []string{
		"/%2Fevil.example/pay?lang=es",
		"/%2Fevil.example/x?lang=en",
		"/%2F%2Fevil.example?lang=es",
		"/%2F%2F%2Fevil.example/?lang=es",
		"/%5Cevil.example?lang=es",
		"/%5C%5Cevil.example?lang=es",
		"/%5C/evil.example?lang=es",
		"/\\evil.example?lang=es",
		"/\\/evil.example?lang=es",
		"//evil.example?lang=es",
		"///evil.example/?lang=es",
		"//evil.example/%2F..?lang=es",
		"/%09/evil.example?lang=es",
		"/%0A/evil.example?lang=es",
		"/%0D%0A/evil.example?lang=es",
		"/%2F%09%2Fevil.example?lang=es",
		"/%20/evil.example?lang=es",
		"/%00/evil.example?lang=es",
		"/.%2F%2Fevil.example?lang=es",
		"/%2e%2e/%2e%2e//evil.example?lang=es",
		"/payments/..%2F..%2F%2Fevil.example?lang=es",
		"/https://evil.example/?lang=es",
		"/https:%2F%2Fevil.example?lang=es",
		"/@evil.example?lang=es",
		"/s/%2F%2Fevil.example?lang=en",
		"/login?lang=en&next=//evil.example",
		"/login?next=https://evil.example&lang=en",
		"/x?lang=es&%2F%2Fevil=1",
		"/static?lang=es",
		"/login/?lang=es",
		"/?lang=en&lang=es",
		"/%E3%80%82evil.example?lang=es",
	} {
		for _, host := range []string{"billing.acme.example", "evil.example"} {
			b := f.browser()
			b.host = host // an absolute-form request target names any host it likes
			path, hops := target, 0
			for ; hops < 5; hops++ {
				r := b.doOn(public, http.MethodGet, path, nil, nil)
				if r.Code < 300 || r.Code > 399 {
					break
				}
				loc := r.location()
				onPortal(t, "GET "+host+" "+target, loc)
				if t.Failed() {
					return
				}
				path = loc
			}
			if hops == 5 {
				t.Errorf("GET %s: still redirecting after 5 hops, at %s", target, path)
			}
		}
	}

	// The contract, exactly: the switch still switches, and leads to the portal's overview.
	b := f.browser()
	r := b.doOn(public, http.MethodGet, "/%2Fevil.example/x?lang=en", nil, nil)
	wantRedirect(t, r, "/")
	if b.cookies["__Host-"+cookieLang] != "en" && b.cookies[cookieLang] != "en" {
		t.Errorf("language not remembered: cookies %v", b.cookies)
	}
	// A page of the portal keeps its address, query and all.
	wantRedirect(t, b.doOn(public, http.MethodGet, "/login?lang=es", nil, nil), "/login")
	wantRedirect(t, b.doOn(public, http.MethodGet, "/payments/pay_1?lang=es&from=x", nil, nil), "/payments/pay_1?from=x")
	wantRedirect(t, b.doOn(public, http.MethodGet, "/s/abc%2Ddef?lang=en", nil, nil), "/s/abc%2Ddef")
}

// redirect is the one way out of a handler: whatever a caller passes (a merchant's payment id
// in a flow, a path from the request), the browser stays on the portal.
func TestRedirectRefusesOtherOrigins(t *testing.T) {
	for to, want := range map[string]string{
		"/payments/pay_1":            "/payments/pay_1",
		"/login/code?resent=1":       "/login/code?resent=1",
		"/subscriptions/sub%2F1":     "/subscriptions/sub%2F1",
		"/s/tok":                     "/s/tok",
		"/":                          "/",
		"//evil.example":             "/",
		"///evil.example":            "/",
		"/\\evil.example":            "/",
		"/%5Cevil.example":           "/",
		"/%2Fevil.example":           "/",
		"/%2F%2Fevil.example":        "/",
		"/%09/evil.example":          "/",
		"/\t/evil.example":           "/",
		"/\n/evil.example":           "/",
		"https://evil.example/":      "/",
		"HTTPS://evil.example/":      "/",
		"//evil.example@portal/":     "/",
		"javascript:alert(1)":        "/",
		"evil.example":               "/",
		"":                           "/",
		"/payments/..":               "/",
		"/payments/%2E%2E/%2Fevil":   "/",
		"/payments/pay_1/../../evil": "/",
	} {
		rec := httptest.NewRecorder()
		redirect(rec, &visit{r: httptest.NewRequest(http.MethodPost, "/payments/pay_1/pay", nil)}, to)
		if got := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || got != want {
			t.Errorf("redirect(%q): %d to %q, want 303 to %q", to, rec.Code, got, want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                      "/",
		"/login":                 "/login", // unlike localTarget: a fine place to send someone
		"/s/tok":                 "/s/tok",
		"/payments/due?from=m#x": "/payments/due?from=m",
		"/payments/":             "/payments/",
		"/a%20b":                 "",
		"/a\x7fb":                "",
		"/a\x01b":                "",
		"/%7F":                   "",
		"/%01":                   "",
		"/%0D%0ALocation:%20x":   "",
		"/\\":                    "",
		"/a//b":                  "",
		"/./a":                   "",
		"/a/.":                   "",
		"/%2F":                   "",
	} {
		got, ok := localPath(in)
		if ok != (want != "") || got != want {
			t.Errorf("localPath(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
