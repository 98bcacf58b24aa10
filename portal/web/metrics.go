package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-dev/portero/portal/ledger"
)

// metrics are the portal UI's Prometheus series. Labels are bounded: route patterns, fixed
// result words, known status codes and methods; never an address, id, token or anything else a
// client can vary at will (each distinct value is a series held until the process exits).
type metrics struct {
	logins   *prometheus.CounterVec
	codes    *prometheus.CounterVec
	sessions *prometheus.CounterVec
	pages    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	security *prometheus.CounterVec
	// pageCache counts overviews served from the page cache (hit) and rendered for it (miss).
	pageCache                      *prometheus.CounterVec
	pageCacheHits, pageCacheMisses prometheus.Counter
	// methodRejected counts requests refused for their method (see knownMethods).
	methodRejected prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_logins_total",
			Help: "Sign-in attempts by method (code, link) and result.",
		}, []string{"method", "result"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_login_codes_total",
			Help: "One-time codes by outcome: sent, failed (SMTP), not_sent_unknown_email, not_sent_cooldown.",
		}, []string{"result"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_browser_sessions_total",
			Help: "Browser sessions created and ended, by event and reason.",
		}, []string{"event", "reason"}),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_page_views_total",
			Help: "Successful page views by route.",
		}, []string{"route"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_http_errors_total",
			Help: "Responses with status 4xx or 5xx, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portero_portal_http_request_duration_seconds",
			Help:    "Time to answer a request, by route and method.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		security: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_security_rejections_total",
			Help: "Requests refused for a missing or wrong CSRF token, by a rate limit, or for a method the portal does not serve.",
		}, []string{"reason"}),
		pageCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_page_cache_requests_total",
			Help: "Signed-in overviews served from the page cache (hit) or rendered and kept (miss).",
		}, []string{"result"}),
	}
	m.pageCacheHits, m.pageCacheMisses = m.pageCache.WithLabelValues("hit"), m.pageCache.WithLabelValues("miss")
	m.methodRejected = m.security.WithLabelValues("method")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.logins, m.codes, m.sessions, m.pages, m.errors, m.latency, m.security, m.pageCache} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register portal metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) login(method, result string) { m.logins.WithLabelValues(method, result).Inc() }
func (m *metrics) code(result string)          { m.codes.WithLabelValues(result).Inc() }
func (m *metrics) sessionCreated(method string) {
	m.sessions.WithLabelValues("created", method).Inc()
}
func (m *metrics) sessionEnded(reason string) { m.sessions.WithLabelValues("ended", reason).Inc() }
func (m *metrics) csrfRejected()              { m.security.WithLabelValues("csrf").Inc() }

// rateLimited counts by the bucket's kind (the part before the first colon).
func (m *metrics) rateLimited(bucket string) {
	kind, _, _ := strings.Cut(bucket, ":")
	m.security.WithLabelValues("rate_limit_" + kind).Inc()
}

// statusWriter remembers the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// requestTimeout bounds the work of one request (database, rules, processor), below the
// server's write timeout so the customer gets an error page rather than a dropped connection.
const requestTimeout = 25 * time.Second

// instrument is the outermost layer: request deadline, panic recovery, metrics and the access
// log. The route label is the pattern the mux matched (never the path, which can hold a token).
func (h *Handler) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Every change a customer makes here is the portal's in the merchant's event log.
		ctx, cancel := context.WithTimeout(ledger.WithSource(r.Context(), ledger.SourcePortal), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				h.log.Error("panic serving request", "route", r.Pattern, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			h.metrics.latency.WithLabelValues(route, httpMethodLabel(r.Method)).Observe(time.Since(start).Seconds())
			switch {
			case status >= 400:
				h.metrics.errors.WithLabelValues(route, statusLabel(status)).Inc()
			case status < 300 && r.Method == http.MethodGet:
				h.metrics.pages.WithLabelValues(route).Inc()
			}
			if h.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations even when dropped
				h.log.Debug("request", "method", r.Method, "route", route, "status", status, "duration", time.Since(start))
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				h.log.Warn("request hit its deadline", "route", route)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// allowedMethods are the only methods the portal answers: its routes are GET (with HEAD) and
// POST forms.
const allowedMethods = "GET, HEAD, POST"

// knownMethods answers any other method 405, before routing and before any metric. The
// catch-all route takes every method, and a method is whatever token the client sends
// ("AAAA0001 / HTTP/1.1" is a valid request line): were it to reach instrument, each made-up
// one would be a series of its own, kept for the life of the process.
func (h *Handler) knownMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodPost:
			next.ServeHTTP(w, r)
			return
		}
		setSecurityHeaders(w, r)
		w.Header().Set("Allow", allowedMethods)
		h.metrics.methodRejected.Inc()
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	})
}

// httpMethodLabel bounds the method label to GET (HEAD is served by the GET routes, whose
// patterns the route label names anyway) and POST; knownMethods refuses the rest first, so
// "other" should stay empty, but a label a client writes is never trusted.
func httpMethodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	}
	return "other"
}

// statusLabel bounds the code label to the statuses net/http knows (some sixty) and "other".
func statusLabel(code int) string {
	if code < 100 || code > 599 || http.StatusText(code) == "" {
		return "other"
	}
	return strconv.Itoa(code)
}

// secure sets the security headers every response carries and limits the request body. Pages
// replace the CSP with one that also allows the portal's logo origin.
func (h *Handler) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w, r)
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		next.ServeHTTP(w, r)
	})
}

func setSecurityHeaders(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	for k, v := range securityHeaders {
		hd[k] = v
	}
	if isHTTPS(r) {
		hd["Strict-Transport-Security"] = hstsHeader
	}
}

// securityHeaders are set on every response. The value slices are shared by all responses
// (keys canonical, so assigning them is what Header.Set would do, less an allocation each):
// nothing writes into a header's values in place, and appending to a one-element slice copies.
var securityHeaders = http.Header{
	"Content-Security-Policy":      {defaultCSP},
	"X-Content-Type-Options":       {"nosniff"},
	"X-Frame-Options":              {"DENY"},
	"Referrer-Policy":              {"same-origin"},
	"Cross-Origin-Opener-Policy":   {"same-origin"},
	"Cross-Origin-Resource-Policy": {"same-origin"},
	"Permissions-Policy":           {"camera=(), microphone=(), geolocation=(), payment=(), usb=()"},
	"Cache-Control":                {"no-store"},
}

var hstsHeader = []string{"max-age=31536000"}

// contentSecurityPolicy allows nothing inline and nothing foreign, except images from the
// portal's logo origin.
func contentSecurityPolicy(logoOrigin string) string {
	if logoOrigin == "" {
		return defaultCSP
	}
	return cspWithImages("'self' " + logoOrigin)
}

// defaultCSP is the policy with no logo origin, built once.
var defaultCSP = cspWithImages("'self'")

func cspWithImages(img string) string {
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src " + img +
		"; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
}
