package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus series. Routes are ServeMux patterns ("GET /api/v1/payments/{id}")
// or "unmatched", so label cardinality is bounded by the route table, never by ids in paths; the
// method is in the pattern, so a made-up one is "unmatched" (405). Codes are the statuses net/http
// knows, or "other". Nothing a caller can vary at will becomes a label value: each would be a
// series held until the process exits.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_merchant_api_requests_total",
			Help: "Merchant API requests by route and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portero_merchant_api_request_duration_seconds",
			Help:    "Merchant API request latency by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	if reg != nil {
		m.requests = register(reg, m.requests)
		m.duration = register(reg, m.duration)
	}
	return m
}

// register registers c, or returns the collector already registered under the same name (a
// second API on the same registry, as in tests) so both count into one series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a conflicting definition is a programming error
	}
	return c
}

func (m *metrics) observe(route string, status int, elapsed time.Duration) {
	m.requests.WithLabelValues(route, statusLabel(status)).Inc()
	m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
}

// statusLabel bounds the code label to the statuses net/http knows (some sixty) and "other".
func statusLabel(code int) string {
	if code < 100 || code > 599 || http.StatusText(code) == "" {
		return "other"
	}
	return strconv.Itoa(code)
}
