package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-dev/portero/portal/server"
)

// oddPaths are request targets a scanner sends: unknown pages, made-up tokens and ids, encoded
// slashes and backslashes, dot segments, and the paths net/http's mux redirects.
var oddPaths = []string{
	"/", "/nope", "/s/not-a-token", "/methods/pm_x/remove", "/payments/pay_x", "/%2Fevil.example/x",
	"/\\evil.example", "/%5C%5Cevil", "//evil.example/", "/a/../b", "/static", "/static/nope.css",
	"/login/../../etc/passwd", "/%00", "/%09/x", "/api", "/metrics",
}

// servedPortal mounts a handler on the fixture's stores as cmd/portal mounts it: on the
// server's public mux (which cleans paths first), its metrics on the server's registry and
// /metrics handler.
func servedPortal(t *testing.T, f *fixture) (public, metrics http.Handler, h *Handler) {
	t.Helper()
	srv := server.New(slog.New(slog.DiscardHandler))
	h, err := New(Options{Ledger: f.ledger.Store, Processors: f.procs, Auth: f.auth, Rules: f.rules, Mailer: SecretMailer{Reader: f.rules.Client},
		Registry: srv.Registry(), Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mux().Handle("/", h)
	return srv.Mux(), srv.MetricsHandler(), h
}

// scrape returns the series of /metrics (text format) whose names start with prefix, labels
// and all, "le" buckets folded into their histogram.
func scrape(t *testing.T, metrics http.Handler, prefix string) map[string]bool {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	series := map[string]bool{}
	le := regexp.MustCompile(`,?le="[^"]*"`)
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name = strings.NewReplacer("_bucket{", "{", "_sum{", "{", "_count{", "{").Replace(name)
		series[le.ReplaceAllString(name, "")] = true
	}
	return series
}

// labelValues returns the distinct values of a label among series.
func labelValues(series map[string]bool, label string) []string {
	re := regexp.MustCompile(`[{,]` + label + `="([^"]*)"`)
	seen := map[string]bool{}
	for s := range series {
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			seen[m[1]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// A method is any token a client puts in its request line, and the catch-all route takes every
// method: 200k made-up ones once grew the heap by 254 MiB, a series each. Unknown methods are
// answered 405 before any metric, and what clients vary (methods, paths, ids) never becomes a
// label value.
func TestMadeUpMethodsAndPathsAddNoSeries(t *testing.T) {
	f := newFixture(t)
	public, metrics, h := servedPortal(t, f)
	b := f.browser()
	for _, p := range []string{"/login", "/", "/static/portal.css"} {
		b.doOn(public, http.MethodGet, p, nil, nil)
		b.doOn(public, http.MethodHead, p, nil, nil)
	}

	refused := 0
	send := func(round string, n int) {
		for i := range n {
			method, p := fmt.Sprintf("AAAA%s%04d", round, i), oddPaths[i%len(oddPaths)]
			r := b.doOn(public, method, p, nil, nil)
			switch {
			case r.Code == http.StatusTemporaryRedirect:
				// The server's mux cleans "//x" and "/a/../b" before the portal sees them.
				if to := r.location(); !strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") {
					t.Fatalf("%s %s: redirected to %q", method, p, to)
				}
			case r.Code != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD, POST":
				t.Fatalf("%s %s: %d, Allow %q; want 405 with Allow: GET, HEAD, POST", method, p, r.Code, r.Header.Get("Allow"))
			case r.Header.Get("X-Content-Type-Options") != "nosniff":
				t.Fatalf("the 405 lacks the security headers: %v", r.Header)
			default:
				refused++
			}
			// Odd paths with the methods the portal serves, and ids no route knows.
			b.doOn(public, http.MethodGet, p, nil, nil)
			b.doOn(public, http.MethodPost, p, nil, nil)
			b.doOn(public, http.MethodGet, fmt.Sprintf("/%s%d", round, i), nil, nil)
			b.doOn(public, http.MethodGet, fmt.Sprintf("/payments/pay_%s%d", round, i), nil, nil)
		}
	}
	send("a", 2*len(oddPaths)) // every kind of request once at least
	before := scrape(t, metrics, "portero_portal_")
	send("b", 2000)
	after := scrape(t, metrics, "portero_portal_")

	var added []string
	for s := range after {
		if !before[s] {
			added = append(added, s)
		}
	}
	if len(added) > 0 {
		sort.Strings(added)
		t.Errorf("2,000 more made-up requests added %d series, want none; e.g. %s", len(added), added[:min(5, len(added))])
	}
	// Two metrics have a method label: requests (GET, POST) and sign-ins (code, link).
	all := scrape(t, metrics, "")
	if methods := labelValues(all, "method"); len(methods) > 4 {
		t.Errorf("/metrics has %d method label values (%s…), want at most 4 (GET, POST; code, link)", len(methods), strings.Join(methods[:min(8, len(methods))], ", "))
	}
	for _, m := range labelValues(scrape(t, metrics, "portero_portal_http_"), "method") {
		if m != "GET" && m != "POST" {
			t.Errorf("request method label %q", m)
		}
	}
	for _, m := range labelValues(scrape(t, metrics, "portero_portal_logins_"), "method") {
		if m != "code" && m != "link" {
			t.Errorf("sign-in method label %q", m)
		}
	}
	for _, route := range labelValues(after, "route") {
		if route != "unmatched" && !strings.Contains(route, "/") {
			t.Errorf("route label %q is not a pattern", route)
		}
		if strings.Contains(route, "evil") || strings.Contains(route, "pay_") {
			t.Errorf("route label %q comes from a request path", route)
		}
	}
	if got, want := testutil.ToFloat64(h.metrics.methodRejected), float64(refused); got != want || refused < 1000 {
		t.Errorf("requests refused for their method = %v, want %v", got, want)
	}
}

func TestMetricLabelsAreBounded(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "HEAD": "GET", "POST": "POST", "get": "other",
		"PUT": "other", "AAAA0001": "other", "": "other"} {
		if got := httpMethodLabel(in); got != want {
			t.Errorf("httpMethodLabel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int]string{200: "200", 404: "404", 599: "other", 999: "other", 0: "other", -1: "other", 418: "418"} {
		if got := statusLabel(in); got != want {
			t.Errorf("statusLabel(%d) = %q, want %q", in, got, want)
		}
	}
}
