// Package mpfake is a contract fake of Mercado Pago's API — not Mercado Pago, which publishes
// no mock server. It is built from Mercado Pago's published API reference and developer guides
// for the calls Portero makes, so that the adapter in portal/payments/mercadopago, and the
// official library underneath it, are tested against what Mercado Pago documents:
//
//   - request shapes are checked (Bearer access token, or the public key for browser
//     tokenization; X-Idempotency-Key on payment and order creation; required fields and
//     their types), and a request Mercado Pago would refuse is refused the way it documents
//     (400 with error and cause codes), besides being recorded in Violations;
//   - answers have the documented shapes: customers, saved cards, card tokens (from card data
//     with the public key, or from a saved card's card_id without the security code, which
//     needs an application enabled for automatic payments, else cause 3031 at payment time),
//     payments with status and status_detail (approved/accredited, in_process, rejected with
//     the cc_rejected_* details, pending/pending_challenge with three_ds_info), payment search
//     by external_reference, Checkout Pro preferences and their page, and dynamic QR orders
//     (POST /v1/orders, type qr) with type_response.qr_data;
//   - a repeated X-Idempotency-Key is answered with the first answer;
//   - test cards behave as Mercado Pago's test cards do: the cardholder name decides the
//     outcome (APRO approved, OTHE declined, CONT pending, CALL call for authorize, FUND
//     insufficient funds, SECU security code, EXPI expiry date, FORM form error);
//   - webhook notifications are signed as Mercado Pago signs them: x-signature
//     "ts=<ms>,v1=<HMAC-SHA256 hex>" over "id:<data.id>;request-id:<x-request-id>;ts:<ts>;".
//
// Where the reference is silent the fake says what it assumes: a card saved twice on a customer
// is answered with the saved card (200); a card token may save its card until it expires but
// pays once; a customer's email is unique (cause 101).
//
// Faults (FailNextPayment) make the next payment creation decline, ask for a challenge, lose its
// answer after collecting, or fail with a 500 before anything happens.
package mpfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// Default credentials of a fake account (test credentials have the TEST- prefix).
const (
	DefaultAccessToken   = "TEST-8123456789012345-010101-0123456789abcdef0123456789abcdef-123456789"
	DefaultPublicKey     = "TEST-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	DefaultWebhookSecret = "7f3c9e1a5b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a"
	DefaultPOS           = "PORTEROPOS001"
	DefaultUserID        = 123456789
)

// Options configure a fake account.
type Options struct {
	AccessToken, PublicKey, WebhookSecret string
	// UserID is the account's (collector's) user id.
	UserID int64
	// POS are the external_pos_id of the account's points of sale (QR orders need one);
	// empty means DefaultPOS.
	POS []string
	// NoAutomaticPayments makes the application one Mercado Pago has not enabled for
	// automatic payments: a payment with a card token made from a saved card without its
	// security code is refused (cause 3031).
	NoAutomaticPayments bool
	// EchoCredentials makes error answers quote the Authorization header they got, as some
	// APIs do, for tests that check credentials never leak through errors.
	EchoCredentials bool
	// Now is the fake's clock; nil means time.Now.
	Now func() time.Time
}

// Fault is a misbehaviour of the next payment creation.
type Fault int

// Faults.
const (
	// Decline: the issuer declines (rejected, cc_rejected_other_reason).
	Decline Fault = iota + 1
	// Challenge: the issuer asks for 3-D Secure (pending, pending_challenge).
	Challenge
	// TimeoutAfterCollect: the payment is approved and the answer never arrives.
	TimeoutAfterCollect
	// ServerError: a 500 before anything is created or saved under the key.
	ServerError
)

// Request is one request the fake received, for tests of request shapes. The Authorization
// header is not kept.
type Request struct {
	Method, Path, Query string
	IdempotencyKey      string
	Body                map[string]any
}

// Fake is a running fake account.
type Fake struct {
	opts Options
	srv  *httptest.Server

	mu         sync.Mutex
	seq        int64
	customers  map[string]*customer
	cards      map[string]*card
	tokens     map[string]*cardToken
	payments   []*payment
	prefs      map[string]*pref
	orders     map[string]*order
	idem       map[string]saved
	cut        map[string]bool
	faults     []Fault
	requests   []Request
	violations []string
}

type saved struct {
	status int
	body   []byte
}

// New starts a fake account on a loopback port. Close stops it.
func New(o Options) *Fake {
	if o.AccessToken == "" {
		o.AccessToken = DefaultAccessToken
	}
	if o.PublicKey == "" {
		o.PublicKey = DefaultPublicKey
	}
	if o.WebhookSecret == "" {
		o.WebhookSecret = DefaultWebhookSecret
	}
	if o.UserID == 0 {
		o.UserID = DefaultUserID
	}
	if len(o.POS) == 0 {
		o.POS = []string{DefaultPOS}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &Fake{opts: o, customers: map[string]*customer{}, cards: map[string]*card{}, tokens: map[string]*cardToken{},
		prefs: map[string]*pref{}, orders: map[string]*order{}, idem: map[string]saved{}, cut: map[string]bool{}, seq: 1000}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the fake's API base (api_base of the processor Secret).
func (f *Fake) URL() string { return f.srv.URL }

// Close stops the fake.
func (f *Fake) Close() { f.srv.Close() }

// Options returns the account's configuration (its credentials, for the processor Secret).
func (f *Fake) Options() Options { return f.opts }

// FailNextPayment makes the next payment creation misbehave; faults queue up.
func (f *Fake) FailNextPayment(fl Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fl)
}

// Requests returns the requests received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Violations lists the requests that broke Mercado Pago's documented request shapes.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// Collected counts the payments that moved money (approved card, account money and QR
// payments), whatever their keys.
func (f *Fake) Collected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.payments {
		if p.status == "approved" {
			n++
		}
	}
	return n
}

func (f *Fake) now() time.Time { return f.opts.Now() }

func stamp(t time.Time) string { return t.Format("2006-01-02T15:04:05.000-07:00") }

func (f *Fake) next() int64 {
	f.seq++
	return f.seq
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// errorBody is Mercado Pago's error answer: message, error, status and cause codes.
func errorBody(status int, code, message string, causes ...any) map[string]any {
	cs := []any{}
	for _, c := range causes {
		cs = append(cs, map[string]any{"code": c, "description": message, "data": nil})
	}
	return map[string]any{"message": message, "error": code, "status": status, "cause": cs}
}

func writeJSON(w http.ResponseWriter, status int, v any) []byte {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", randomHex(8)+"-"+randomHex(4))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return b
}

// refuse answers an error and records why, when the request broke a documented shape.
func (f *Fake) refuse(w http.ResponseWriter, r *http.Request, status int, code, message string, causes ...any) {
	if status == http.StatusBadRequest {
		f.violations = append(f.violations, r.Method+" "+r.URL.Path+": "+message)
	}
	body := errorBody(status, code, message, causes...)
	if f.opts.EchoCredentials {
		body["message"] = message + " (received " + r.Header.Get("Authorization") + ")"
	}
	writeJSON(w, status, body)
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// serve routes a request.
func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var body map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		f.mu.Lock()
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "the body is not JSON")
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		IdempotencyKey: r.Header.Get("X-Idempotency-Key"), Body: body})
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	route := r.Method + " " + r.URL.Path

	// The checkout page is Mercado Pago's web page, not the API: no credentials.
	if r.Method == http.MethodGet && r.URL.Path == "/checkout/v1/redirect" {
		f.checkoutPage(w, r)
		return
	}
	// Browser tokenization authenticates with the public key; everything else with the
	// access token.
	if route == "POST /v1/card_tokens" && r.URL.Query().Get("public_key") != "" {
		if r.URL.Query().Get("public_key") != f.opts.PublicKey {
			f.refuse(w, r, http.StatusUnauthorized, "unauthorized", "invalid public key")
			return
		}
		f.browserToken(w, r, body)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.opts.AccessToken {
		f.refuse(w, r, http.StatusUnauthorized, "unauthorized", "invalid access token")
		return
	}
	switch {
	case route == "POST /v1/customers":
		f.createCustomer(w, r, body)
	case route == "GET /v1/customers/search":
		f.searchCustomers(w, r)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "customers":
		f.getCustomer(w, r, parts[2])
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "customers" && parts[3] == "cards":
		f.saveCard(w, r, parts[2], body)
	case r.Method == http.MethodGet && len(parts) == 4 && parts[1] == "customers" && parts[3] == "cards":
		f.listCards(w, parts[2])
	case len(parts) == 5 && parts[1] == "customers" && parts[3] == "cards":
		f.cardByID(w, r, parts[2], parts[4])
	case route == "POST /v1/card_tokens":
		f.savedCardToken(w, r, body)
	case route == "POST /v1/payments":
		f.createPayment(w, r, body)
	case route == "GET /v1/payments/search":
		f.searchPayments(w, r)
	case len(parts) == 3 && parts[1] == "payments" && (r.Method == http.MethodGet || r.Method == http.MethodPut):
		f.paymentByID(w, r, parts[2], body)
	case route == "POST /checkout/preferences":
		f.createPreference(w, r, body)
	case len(parts) == 3 && parts[0] == "checkout" && parts[1] == "preferences" && (r.Method == http.MethodGet || r.Method == http.MethodPut):
		f.preferenceByID(w, r, parts[2], body)
	case route == "POST /v1/orders":
		f.createOrder(w, r, body)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[1] == "orders":
		f.getOrder(w, r, parts[2])
	default:
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "not_found", "resource not found"))
	}
}

// replay answers a repeated X-Idempotency-Key with the saved answer; ok is false for a new key.
func (f *Fake) replay(w http.ResponseWriter, r *http.Request) bool {
	key := r.Header.Get("X-Idempotency-Key")
	s, ok := f.idem[r.URL.Path+"\x00"+key]
	if !ok || key == "" {
		return false
	}
	if f.cut[r.URL.Path+"\x00"+key] {
		// The answer of a charge that timed out stays lost: Go's client replays requests that
		// carry X-Idempotency-Key on a dropped connection, and would otherwise get it back.
		hangUp(w)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	_, _ = w.Write(s.body)
	return true
}

// save keeps an answer under the request's key.
func (f *Fake) save(r *http.Request, status int, body []byte) {
	if key := r.Header.Get("X-Idempotency-Key"); key != "" {
		f.idem[r.URL.Path+"\x00"+key] = saved{status: status, body: body}
	}
}

// answer writes an answer and saves it under the request's key.
func (f *Fake) answer(w http.ResponseWriter, r *http.Request, status int, v any) {
	f.save(r, status, writeJSON(w, status, v))
}

// fields of a JSON object, for shape checks.
func str(m map[string]any, k string) (string, bool) {
	v, ok := m[k].(string)
	return v, ok
}

func num(m map[string]any, k string) (float64, bool) {
	v, ok := m[k].(float64)
	return v, ok
}

func obj(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ = fmt.Sprintf
