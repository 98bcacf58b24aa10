// Package api is the merchant API of a portal: JSON over HTTP under /api/v1, authenticated with
// the bearer key in the Secret the CustomerPortal's spec.merchantAPI.keySecretRef names. The
// merchant's backend creates customers and subscriptions, adds payment methods on a customer's
// behalf, creates and confirms payments, and hands its customers portal links (PortalSessions).
//
// The API is described by the OpenAPI 3.1 document served, without authentication, at
// /api/v1/openapi.json; a test keeps document and handler in step.
package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

// Prefix is where the API is mounted; the handler sees full paths.
const Prefix = "/api/v1/"

// Deps are what the API needs.
type Deps struct {
	// Store is the ledger. Required.
	Store *ledger.Store
	// Rules is the live view of the portal (its merchantAPI, cancellation and session settings)
	// and the client PortalSessions and Secrets are written and read with. Required.
	Rules *rules.Rules
	// Now is the clock idempotent replays are judged by (see createPayment); nil means time.Now.
	Now func() time.Time
	// Log receives one line per request (method, route, status, duration, ids) and errors;
	// never a card number, CVC, API key or link token. nil discards.
	Log *slog.Logger
	// Registry receives the API's metrics; nil registers nowhere.
	Registry prometheus.Registerer
	// Processors gives the portal's payment processor as its CustomerPortal names it now.
	// Required.
	Processors Processors
}

// Processors gives the charging driver of the processor the portal names now (spec.processor,
// read live: portal/charging/live in production).
type Processors interface {
	Driver(ctx context.Context) (*charging.Driver, error)
}

// API is the merchant API handler.
type API struct {
	store      *ledger.Store
	processors Processors
	rules      *rules.Rules
	now        func() time.Time
	log        *slog.Logger
	mux        *http.ServeMux
	routes     []route
	keys       *keyCache
	metrics    *metrics
	idem       *keyedMutex
	// sessionWait bounds how long POST /portal_sessions waits for the link.
	sessionWait time.Duration
}

// route is one endpoint: its ServeMux pattern and whether it needs the API key.
type route struct {
	pattern string
	public  bool
}

// New returns the merchant API. Mount it at Prefix ("/api/v1/").
func New(d Deps) http.Handler { return newAPI(d) }

func newAPI(d Deps) *API {
	a := &API{
		store:       d.Store,
		processors:  d.Processors,
		rules:       d.Rules,
		now:         d.Now,
		log:         d.Log,
		mux:         http.NewServeMux(),
		keys:        newKeyCache(d.Rules, keyCacheTTL),
		metrics:     newMetrics(d.Registry),
		idem:        newKeyedMutex(),
		sessionWait: 10 * time.Second,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a.registerRoutes()
	return a
}

// registerRoutes is the API's table of contents; openapi.json documents the same list.
func (a *API) registerRoutes() {
	a.handle("GET /api/v1/openapi.json", true, a.serveOpenAPI)

	a.handle("POST /api/v1/customers", false, a.createCustomer)
	a.handle("GET /api/v1/customers", false, a.listCustomers)
	a.handle("GET /api/v1/customers/{id}", false, a.getCustomer)
	a.handle("PATCH /api/v1/customers/{id}", false, a.updateCustomer)
	a.handle("POST /api/v1/customers/{id}/payment_methods", false, a.addPaymentMethod)
	a.handle("GET /api/v1/customers/{id}/payment_methods", false, a.listPaymentMethods)
	a.handle("GET /api/v1/customers/{id}/subscriptions", false, a.listSubscriptions)

	a.handle("POST /api/v1/subscriptions", false, a.createSubscription)
	a.handle("GET /api/v1/subscriptions/{id}", false, a.getSubscription)
	a.handle("POST /api/v1/subscriptions/{id}/cancel", false, a.cancelSubscription)
	a.handle("POST /api/v1/subscriptions/{id}/update", false, a.updateSubscription)

	a.handle("POST /api/v1/plans", false, a.createPlan)
	a.handle("GET /api/v1/plans", false, a.listPlans)
	a.handle("GET /api/v1/plans/{id}", false, a.getPlan)
	a.handle("POST /api/v1/plans/{id}/archive", false, a.archivePlan)

	a.handle("POST /api/v1/payments", false, a.createPayment)
	a.handle("GET /api/v1/payments", false, a.listPayments)
	a.handle("GET /api/v1/payments/{id}", false, a.getPayment)
	a.handle("POST /api/v1/payments/{id}/confirm", false, a.confirmPayment)
	a.handle("GET /api/v1/payments/{id}/receipt.pdf", false, a.getReceiptPDF)

	a.handle("POST /api/v1/portal_sessions", false, a.createSession)
	a.handle("GET /api/v1/portal_sessions/{id}", false, a.getSession)
	a.handle("POST /api/v1/portal_sessions/{id}/revoke", false, a.revokeSession)

	a.handle("GET /api/v1/events", false, a.listEvents)
	a.handle("GET /api/v1/events/{id}", false, a.getEvent)
	a.handle("POST /api/v1/events/{id}/redeliver", false, a.redeliverEvent)
}

// handlerFunc is an endpoint: it writes a success response itself or returns the error to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

func (a *API) handle(pattern string, public bool, h handlerFunc) {
	a.routes = append(a.routes, route{pattern: pattern, public: public})
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !public {
			if e := a.authenticate(r); e != nil {
				a.writeError(w, r, e)
				return
			}
		}
		if e := h(w, r); e != nil {
			a.writeError(w, r, e)
		}
	})
}

// ServeHTTP routes, and measures and logs every request once.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(ledger.WithSource(r.Context(), ledger.SourceMerchantAPI), requestInfoKey{}, info))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	_, pattern := a.mux.Handler(r)
	route := pattern
	if pattern == "" {
		route = "unmatched"
		a.writeError(rec, r, a.unrouted(r))
	} else {
		a.mux.ServeHTTP(rec, r)
	}
	elapsed := time.Since(start)
	a.metrics.observe(route, rec.status, elapsed)
	a.logRequest(r, route, rec.status, elapsed, info)
}

// unrouted tells a path that exists with another method (405, with Allow) from one that does
// not exist at all (404), in JSON like every other error.
func (a *API) unrouted(r *http.Request) *apiError {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := a.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		return errMethodNotAllowed(allow)
	}
	return errRouteNotFound()
}

// requestInfo collects the ids a request touched, for its log line.
type requestInfo struct {
	customerID, paymentID, subscriptionID, sessionID string
	err                                              error
}

type requestInfoKey struct{}

func info(r *http.Request) *requestInfo {
	if i, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

// logRequest writes the access log line. Only ids, never bodies: bodies may hold card data.
func (a *API) logRequest(r *http.Request, route string, status int, elapsed time.Duration, i *requestInfo) {
	attrs := []any{"method", r.Method, "route", route, "status", status, "duration", elapsed}
	for _, kv := range []struct{ k, v string }{
		{"customer", i.customerID}, {"payment", i.paymentID},
		{"subscription", i.subscriptionID}, {"session", i.sessionID},
	} {
		if kv.v != "" {
			attrs = append(attrs, kv.k, kv.v)
		}
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
		if i.err != nil {
			attrs = append(attrs, "err", i.err.Error())
		}
	}
	a.log.Log(r.Context(), level, "merchant api request", attrs...)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.written {
		s.status, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.written = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writeJSON writes a success response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError writes an error response in the caller's language.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.header != "" {
		w.Header().Set(e.header, e.headerValue)
	}
	writeJSON(w, e.status, errorBody{Code: e.code, Message: e.message(locale(r)), Field: e.field})
}

// storeError maps a ledger error, keeping an unexplainable one for the log line.
func (a *API) storeError(r *http.Request, err error) *apiError {
	e, typed := fromStoreError(err)
	if !typed {
		info(r).err = err
	}
	return e
}

// idempotentStoreError is storeError for a creation keyed by the Idempotency-Key header: the
// ledger's field idempotency_key is that header.
func (a *API) idempotentStoreError(r *http.Request, err error) *apiError {
	e := a.storeError(r, err)
	if e.field == "idempotency_key" {
		e.field = "Idempotency-Key"
	}
	return e
}
