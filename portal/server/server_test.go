package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Metrics are served only on their own handler: the public mux is what the Service and the
// Ingress expose, and the counters there (logins, payments, API calls) are not the public's.
func TestMetricsAreNotPublic(t *testing.T) {
	s := New(slog.New(slog.DiscardHandler))
	s.Mux().Handle("/", http.NotFoundHandler()) // as cmd/portal mounts the UI

	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}
	if code, body := get(s.Mux(), "/metrics"); code != http.StatusNotFound || strings.Contains(body, "go_goroutines") {
		t.Errorf("public /metrics = %d %.80q", code, body)
	}
	if code, _ := get(s.Mux(), "/healthz"); code != http.StatusOK {
		t.Errorf("public /healthz = %d: the probes stay on the served port", code)
	}
	if code, body := get(s.MetricsHandler(), "/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics /metrics = %d %.80q", code, body)
	}
	if code, _ := get(s.MetricsHandler(), "/"); code != http.StatusNotFound {
		t.Errorf("the metrics listener serves more than /metrics: / = %d", code)
	}
}
