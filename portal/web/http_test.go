package web

import (
	"crypto/tls"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	r := b.get("/login")
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https://cdn.acme.example; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if r.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain http")
	}
	// No inline script or style anywhere: the CSP would block it.
	if regexp.MustCompile(`<script|<style|style="|onclick=|javascript:`).MatchString(r.Body) {
		t.Errorf("inline script or style in the page:\n%s", r.Body)
	}
	r = b.do(http.MethodGet, "/login", nil, http.Header{"X-Forwarded-Proto": {"https"}})
	if got := r.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("HSTS behind an https proxy = %q", got)
	}
	req := httptest.NewRequest(http.MethodGet, "https://billing.acme.example/login", nil)
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}

	// Bodies are limited.
	big := strings.Repeat("a", maxFormBytes+1)
	req = httptest.NewRequest(http.MethodPost, "http://billing.acme.example/login", strings.NewReader("email="+big))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d", rec.Code)
	}
}

func TestCookieAttributes(t *testing.T) {
	f := newFixture(t)
	cookieLine := func(host string) string {
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/login", nil)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec.Header().Get("Set-Cookie")
	}
	got := cookieLine("billing.acme.example")
	for _, part := range []string{"__Host-portero-pre=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(got, part) {
			t.Errorf("production cookie %q lacks %s", got, part)
		}
	}
	if strings.Contains(got, "Domain=") {
		t.Errorf("host-only cookie has a Domain: %q", got)
	}
	for _, host := range []string{"127.0.0.1:8080", "localhost:9000", "[::1]:8080"} {
		got := cookieLine(host)
		if !strings.HasPrefix(got, "portero-pre=") || strings.Contains(got, "Secure") || !strings.Contains(got, "HttpOnly") {
			t.Errorf("loopback http cookie for %s = %q", host, got)
		}
	}
	f.h.insecure = true
	if got := cookieLine("portal.lan:8080"); strings.Contains(got, "Secure") || strings.Contains(got, "__Host-") {
		t.Errorf("--insecure-cookies cookie = %q", got)
	}
}

// A portal served on http://127.0.0.1 (make run) works end to end over a real connection with
// a real cookie jar, which drops Secure cookies on plain http.
func TestLoopbackHTTPSignIn(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	_, tok := f.session("loop", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	jar := newJar(t)
	client := &http.Client{Jar: jar}
	res, err := client.Get(srv.URL + "/s/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form:\n%s", body)
	}
	res, err = client.PostForm(srv.URL+"/s/"+tok, map[string][]string{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	body = readAll(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "Hola, Jane") {
		t.Fatalf("after the exchange: %d\n%s", res.StatusCode, body)
	}
}

func TestLanguage(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	r := b.get("/login")
	wantBody(t, r, `<html lang="es">`, "Enviarme un código", `href="?lang=en"`)
	wantRedirect(t, b.get("/login?lang=en"), "/login")
	if b.cookies["__Host-portero-lang"] != "en" {
		t.Fatalf("language cookie = %q", b.cookies["__Host-portero-lang"])
	}
	r = b.get("/login")
	wantBody(t, r, `<html lang="en">`, "Send me a code", "Sign in to Acme Billing")
	wantStatus(t, b.get("/login?lang=xx"), http.StatusOK) // unknown: ignored

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Branding.Locale = "en" })
	wantBody(t, f.browser().get("/login"), `<html lang="en">`)
	wantRedirect(t, b.get("/login?lang=es"), "/login") // switch back
	wantBody(t, b.get("/login"), `<html lang="es">`)

	// Ledger errors speak the page's language too.
	c := f.customer("jane@example.com", "Jane")
	b.signIn(c)
	b.get("/?lang=en")
	b.get("/billing")
	r = b.submit("/billing", func() map[string][]string { v := billingForm(); v.Set("tax_id", "30-71234567-2"); return v }())
	wantBody(t, r, "The CUIT/CUIL check digit does not match")
}

func TestBrandAndStatic(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	r := b.get("/brand.css?v=" + brandVersion("#0a7cff"))
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "--brand:#0a7cff", "--brand-ink:#")
	if r.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(r.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("headers = %v", r.Header)
	}
	if got := b.get("/brand.css?v=stale").Header.Get("Cache-Control"); got != "no-cache" {
		t.Fatalf("stale version cached: %q", got)
	}
	r = b.get("/static/portal.css")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "--brand")
	wantStatus(t, b.get("/static/"), http.StatusNotFound)
	if r := b.get("/static/../web.go"); r.Code == http.StatusOK {
		t.Fatal("a path outside static/ was served")
	}
	wantStatus(t, b.get("/static/portal.css/"), http.StatusNotFound)
	wantStatus(t, b.get("/nope"), http.StatusNotFound)
	wantBody(t, b.get("/robots.txt"), "Disallow: /")
}

func TestBrandColoursAreReadable(t *testing.T) {
	f := newFixture(t)
	varRE := regexp.MustCompile(`--([a-z-]+):(#[0-9a-f]{6})`)
	for _, c := range []string{"#0a7cff", "#ffff00", "#ffffff", "#000000", "#777777", "#ff6600"} {
		f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Branding.PrimaryColor = c })
		vars := map[string][3]float64{}
		for _, m := range varRE.FindAllStringSubmatch(f.browser().get("/brand.css").Body, -1) {
			vars[m[1]] = parseHex(m[2])
		}
		if got := contrast(vars["brand-button"], vars["brand-ink"]); got < 4.5 {
			t.Errorf("%s: button text contrast %.2f", c, got)
		}
		if got := contrast(vars["brand-text"], [3]float64{1, 1, 1}); got < 4.5 {
			t.Errorf("%s: link contrast on white %.2f", c, got)
		}
	}
	if brandColor("#12345g") != defaultBrandColor || brandColor("#ABCDEF") != "#abcdef" {
		t.Fatal("brandColor does not validate")
	}
}

func TestPortalGone(t *testing.T) {
	f := newFixture(t)
	if err := k8s.Delete(f.ctx, f.portal); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer sees the deletion", func() bool { return f.rules.Portal(f.ctx) == nil })
	r := f.browser().get("/login")
	wantStatus(t, r, http.StatusServiceUnavailable)
	wantBody(t, r, "no está disponible")
}

func TestMetricsAreRegistered(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.get("/login")
	b.forge("/login", nil)
	b.get("/nope")
	if got := testutil.ToFloat64(f.h.metrics.pages.WithLabelValues("GET /login")); got != 1 {
		t.Errorf("page views = %v", got)
	}
	if got := testutil.ToFloat64(f.h.metrics.errors.WithLabelValues("POST /login", "403")); got != 1 {
		t.Errorf("errors = %v", got)
	}
	if got := testutil.ToFloat64(f.h.metrics.security.WithLabelValues("csrf")); got != 1 {
		t.Errorf("csrf rejections = %v", got)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"portero_portal_page_views_total", "portero_portal_http_errors_total", "portero_portal_http_request_duration_seconds", "portero_portal_security_rejections_total"} {
		if !names[n] {
			t.Errorf("metric %s not gathered", n)
		}
	}
}

// Every template names catalogue keys that exist, in both languages.
func TestCatalogueIsComplete(t *testing.T) {
	for _, l := range locales {
		for k := range catalog[defaultLocale] {
			if _, ok := catalog[l][k]; !ok {
				t.Errorf("%s lacks %q", l, k)
			}
		}
		for k := range catalog[l] {
			if _, ok := catalog[defaultLocale][k]; !ok {
				t.Errorf("%s has %q that %s lacks", l, k, defaultLocale)
			}
		}
	}
	// Literal keys in templates and Go code.
	keyRE := regexp.MustCompile(`"((?:title|error|form|flash|nav|a11y|banner|footer|login|code|choose|link|linkinvalid|ended|signedout|nopublic|overview|methods|method|card|account|pay|action|interval|subscription|subscriptions|billing|tax|payments|due|payment|mail)\.[a-z0-9_.]+)"`)
	check := func(name, text string) {
		for _, m := range keyRE.FindAllStringSubmatch(text, -1) {
			if _, ok := catalog[defaultLocale][m[1]]; !ok && !strings.HasSuffix(m[1], ".") {
				t.Errorf("%s uses unknown key %q", name, m[1])
			}
		}
	}
	_ = fs.WalkDir(templateFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := templateFS.ReadFile(p)
			check(p, string(b))
		}
		return nil
	})
	for _, p := range goSources(t) {
		check(p.name, p.text)
	}
	// Keys built from values: every value they can take.
	families := map[string][]string{
		"method.%s":              {"card", "direct_debit", "cvu", "bank_transfer", "qr", "wallet"},
		"method.%s.hint":         {"card", "direct_debit", "cvu", "bank_transfer", "qr", "wallet"},
		"method.%s.explain":      {"bank_transfer", "qr"},
		"account.%s":             {"direct_debit", "cvu"},
		"account.%s.hint":        {"direct_debit", "cvu"},
		"payment.status.%s":      {"incomplete", "processing", "pending", "succeeded", "failed", "closed"},
		"subscription.status.%s": {"active", "past_due", "canceled"},
		"interval.%s":            {"week", "month", "year"},
		"tax.%s":                 {"consumidor_final", "responsable_inscripto", "monotributista", "exento"},
		"linkinvalid.%s.heading": {"unknown", "expired", "revoked"},
		"linkinvalid.%s.body":    {"unknown", "expired", "revoked"},
		"error.heading.%s":       {"400", "401", "403", "404", "409", "410", "413", "422", "429", "500", "503"},
	}
	for pattern, values := range families {
		for _, v := range values {
			k := strings.Replace(pattern, "%s", v, 1)
			if _, ok := catalog[defaultLocale][k]; !ok {
				t.Errorf("missing key %q", k)
			}
		}
	}
}

type source struct{ name, text string }

// goSources returns the package's non-test Go files.
func goSources(t *testing.T) []source {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var out []source
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		b, err := os.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		// The ledger's field names ("billing.address.city") look like keys but are not.
		text := regexp.MustCompile(`"billing\.address\.[a-z0-9_]+"`).ReplaceAllString(string(b), `""`)
		out = append(out, source{name: e.Name(), text: text})
	}
	return out
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
