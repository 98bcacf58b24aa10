package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

func acceptLanguage(v string) http.Header { return http.Header{"Accept-Language": {v}} }

func wantVaryAcceptLanguage(t *testing.T, r *response) {
	t.Helper()
	for _, v := range r.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Accept-Language") {
				return
			}
		}
	}
	t.Errorf("Vary = %q, want it to name Accept-Language", r.Header.Values("Vary"))
}

// A first visit speaks the browser's preferred language among the portal's; a choice made with
// the switcher wins from then on; a browser that prefers neither gets branding.locale.
func TestFirstVisitSpeaksTheBrowsersLanguage(t *testing.T) {
	f := newFixture(t)
	const es, en = `<html lang="es">`, `<html lang="en">`
	for header, want := range map[string]string{
		"en-US,en;q=0.9":     en,
		"fr, en;q=0.5":       en,
		"en-GB":              en,
		"es-AR,es;q=0.9":     es,
		"es;q=0.1, en;q=0.2": en,
		"en;q=0, es;q=0.5":   es,
		"fr":                 es, // branding.locale (es by default)
		"*":                  es,
		"":                   es,
		"garbage;;;":         es,
	} {
		r := f.browser().do(http.MethodGet, "/login", nil, acceptLanguage(header))
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(r.Body, want) {
			t.Errorf("Accept-Language %q: page is not %s", header, want)
		}
		wantVaryAcceptLanguage(t, r)
	}
	wantBody(t, f.browser().do(http.MethodGet, "/login", nil, acceptLanguage("en-US,en;q=0.9")), "Send me a code")

	// A saved choice wins over the header, both ways.
	b := f.browser()
	wantRedirect(t, b.do(http.MethodGet, "/login?lang=es", nil, acceptLanguage("en-US,en;q=0.9")), "/login")
	r := b.do(http.MethodGet, "/login", nil, acceptLanguage("en-US,en;q=0.9"))
	wantBody(t, r, es, "Enviarme un código")
	wantVaryAcceptLanguage(t, r)
	wantRedirect(t, b.do(http.MethodGet, "/login?lang=en", nil, acceptLanguage("es-AR")), "/login")
	wantBody(t, b.do(http.MethodGet, "/login", nil, acceptLanguage("es-AR")), en)

	// Neither language preferred: the portal's own.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Branding.Locale = "en" })
	wantBody(t, f.browser().do(http.MethodGet, "/login", nil, acceptLanguage("fr")), en)
	wantBody(t, f.browser().do(http.MethodGet, "/login", nil, acceptLanguage("fr, es;q=0.3")), es)
}

// The overview is kept per session (pageCache): a page rendered in one language must not be
// served for a request that asks, through its browser, for the other.
func TestCachedOverviewFollowsTheBrowsersLanguage(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.signIn(f.customer("jane@example.com", "Jane"))
	en, es := acceptLanguage("en-US,en;q=0.9"), acceptLanguage("es-AR,es;q=0.9")
	hits := func() float64 { return testutil.ToFloat64(f.h.metrics.pageCacheHits) }
	for i, step := range []struct {
		hdr  http.Header
		want string
		hit  bool
	}{
		{en, "Hello, Jane", false},
		{en, "Hello, Jane", true},
		{es, "Hola, Jane", false},
		{es, "Hola, Jane", true},
		{en, "Hello, Jane", false},
	} {
		before := hits()
		r := b.do(http.MethodGet, "/", nil, step.hdr)
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(r.Body, step.want) {
			t.Fatalf("step %d (%s): overview lacks %q", i, step.hdr.Get("Accept-Language"), step.want)
		}
		wantVaryAcceptLanguage(t, r)
		if got := hits() > before; got != step.hit {
			t.Errorf("step %d: served from the cache = %v, want %v", i, got, step.hit)
		}
	}
}

func TestAcceptedLocale(t *testing.T) {
	for header, want := range map[string]string{
		"en-US,en;q=0.9":           "en",
		"fr, en;q=0.5":             "en",
		"fr":                       "",
		"es-419":                   "es",
		"pt-BR, es;q=0.8":          "es",
		"de;q=0.9, en;q=0.8":       "en",
		"en;q=0":                   "",
		"*":                        "",
		"":                         "",
		"en-US;q=abc":              "",
		strings.Repeat("en,", 500): "",
	} {
		got, ok := acceptedLocale([]string{header})
		if ok != (want != "") || got != want {
			t.Errorf("acceptedLocale(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
	// Several header lines are one list.
	if got, ok := acceptedLocale([]string{"fr", "en;q=0.4"}); !ok || got != "en" {
		t.Errorf("two header lines: %q, %v", got, ok)
	}
}
