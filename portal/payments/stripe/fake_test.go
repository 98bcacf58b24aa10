package stripe_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v84/webhook"
)

// fakeStripe sits between the adapter and stripe-mock. Every request goes to stripe-mock first,
// which checks it against Stripe's OpenAPI spec: a request stripe-mock refuses fails the test.
// In passthrough mode stripe-mock's answer is returned as is. Otherwise the fake answers with
// responses replayed from Stripe's API reference — the objects are stripe-mock's fixtures, which
// are the reference's examples, with the fields that carry the behaviour filled in from a
// little state (and error bodies written after the reference's) — because stripe-mock is
// stateless and cannot show a decline, authentication, idempotent replays or a lost answer.
// Tests that depend on the replay say so in their names.
type fakeStripe struct {
	t           *testing.T
	mock        string
	srv         *httptest.Server
	passthrough bool

	mu        sync.Mutex
	seq       int
	templates map[string]string // object kind → stripe-mock's JSON for it
	sessions  map[string]*session
	setups    map[string]*setupIntent
	pms       map[string]*paymentMethod
	pis       map[string]*paymentIntent
	piOrder   []string
	idem      map[string]stored
	cut       map[string]bool // idempotency keys whose answers are lost (a network partition)
	// healAfterCut loses a charge's answer once only, as a blip rather than a partition.
	healAfterCut bool
	faults       []fault
	collected    int
	requests     []recorded
}

type fault int

const (
	faultNone fault = iota
	faultDecline
	faultRequiresAction
	faultTimeoutAfterCollect
	faultServerError // a 503 from before Stripe's endpoint began: nothing saved under the key
	faultSaved500    // a 500 from inside the endpoint: Stripe saves it under the key for 24h
)

type session struct {
	id, customer, successURL, cancelURL, status, setupIntent, clientRef string
	metadata                                                            map[string]string
}

type setupIntent struct {
	id, customer, paymentMethod, status string
	metadata                            map[string]string
}

type paymentMethod struct {
	id, customer, brand, last4 string
	expMonth, expYear          int
}

type paymentIntent struct {
	id, customer, paymentMethod, currency, description, status, returnURL string
	amount                                                                int64
	metadata                                                              map[string]string
	lastError                                                             map[string]any
	created                                                               int64
}

type stored struct {
	status int
	body   []byte
}

type recorded struct {
	Method, Path string
	Query, Form  url.Values
	Header       http.Header
}

func newFake(t *testing.T, passthrough bool) *fakeStripe {
	t.Helper()
	f := &fakeStripe{t: t, mock: mockURL, passthrough: passthrough, templates: map[string]string{},
		sessions: map[string]*session{}, setups: map[string]*setupIntent{}, pms: map[string]*paymentMethod{},
		pis: map[string]*paymentIntent{}, idem: map[string]stored{}, cut: map[string]bool{}}
	for kind, path := range map[string]string{
		"payment_intent": "/v1/payment_intents/pi_template", "payment_method": "/v1/payment_methods/pm_template",
		"setup_intent": "/v1/setup_intents/seti_template", "checkout.session": "/v1/checkout/sessions/cs_template",
		"customer": "/v1/customers/cus_template", "event": "/v1/events/evt_template",
	} {
		req, _ := http.NewRequest(http.MethodGet, f.mock+path, nil)
		req.Header.Set("Authorization", "Bearer sk_test_template")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("stripe-mock template %s: %v", kind, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stripe-mock template %s: %s %s", kind, resp.Status, b)
		}
		f.templates[kind] = string(b)
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the fake's base URL, for api_base.
func (f *fakeStripe) URL() string { return f.srv.URL }

func (f *fakeStripe) next(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s_Fake%04dPortero", prefix, f.seq)
}

func (f *fakeStripe) inject(x fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, x)
}

func (f *fakeStripe) Collected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.collected
}

func (f *fakeStripe) Requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	f.requests = append(f.requests, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Form: form, Header: r.Header.Clone()})
	f.mu.Unlock()

	status, mockBody, hdr := f.forward(r, body)
	if f.passthrough {
		w.Header().Set("Content-Type", hdr.Get("Content-Type"))
		w.WriteHeader(status)
		_, _ = w.Write(mockBody)
		return
	}
	if status != http.StatusOK {
		f.t.Errorf("stripe-mock refused %s %s (%d): %s", r.Method, r.URL.Path, status, mockBody)
		w.WriteHeader(status)
		_, _ = w.Write(mockBody)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.route(w, r, form)
}

// forward sends the request to stripe-mock, which checks it against Stripe's spec.
func (f *fakeStripe) forward(r *http.Request, body []byte) (int, []byte, http.Header) {
	req, err := http.NewRequest(r.Method, f.mock+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		f.t.Errorf("forward: %v", err)
		return http.StatusInternalServerError, nil, nil
	}
	for _, h := range []string{"Authorization", "Content-Type", "Stripe-Version", "Idempotency-Key"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Errorf("forward to stripe-mock: %v", err)
		return http.StatusBadGateway, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (f *fakeStripe) route(w http.ResponseWriter, r *http.Request, form url.Values) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	expand := map[string]bool{}
	for k, vs := range r.URL.Query() {
		if strings.HasPrefix(k, "expand") {
			for _, v := range vs {
				expand[v] = true
			}
		}
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/customers":
		f.idempotent(w, r, func() (int, any) {
			obj := f.object("customer")
			obj["id"], obj["email"], obj["name"] = f.next("cus"), form.Get("email"), form.Get("name")
			obj["metadata"] = metadata(form)
			return http.StatusOK, obj
		})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		s := &session{id: f.next("cs_test"), customer: form.Get("customer"), successURL: form.Get("success_url"),
			cancelURL: form.Get("cancel_url"), status: "open", clientRef: form.Get("client_reference_id"), metadata: metadata(form)}
		f.sessions[s.id] = s
		f.reply(w, http.StatusOK, f.renderSession(s, nil))
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "checkout" && parts[1] == "sessions":
		if s := f.sessions[parts[2]]; s != nil {
			f.reply(w, http.StatusOK, f.renderSession(s, expand))
			return
		}
		f.missing(w, "checkout session", parts[2])
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "setup_intents":
		if si := f.setups[parts[1]]; si != nil {
			f.reply(w, http.StatusOK, f.renderSetupIntent(si, expand["payment_method"]))
			return
		}
		f.missing(w, "setup intent", parts[1])
	case len(parts) >= 2 && parts[0] == "payment_methods":
		pm := f.pms[parts[1]]
		if pm == nil {
			f.missing(w, "payment method", parts[1])
			return
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 2:
			f.reply(w, http.StatusOK, f.renderPM(pm))
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "attach":
			if pm.customer != "" && pm.customer != form.Get("customer") {
				f.stripeError(w, http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
					"message": "The payment method you provided has already been attached to a customer."})
				return
			}
			pm.customer = form.Get("customer")
			f.reply(w, http.StatusOK, f.renderPM(pm))
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "detach":
			if pm.customer == "" {
				f.stripeError(w, http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
					"code":    "payment_method_unexpected_state",
					"message": "The payment method you provided is not attached to a customer so detachment is impossible."})
				return
			}
			pm.customer = ""
			f.reply(w, http.StatusOK, f.renderPM(pm))
		default:
			f.t.Errorf("fake Stripe: unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotImplemented)
		}
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payment_intents":
		f.createPaymentIntent(w, r, form)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/payment_intents":
		var data []any
		for i := len(f.piOrder) - 1; i >= 0; i-- {
			pi := f.pis[f.piOrder[i]]
			if c := r.URL.Query().Get("customer"); c == "" || c == pi.customer {
				data = append(data, f.renderPI(pi))
			}
		}
		if data == nil {
			data = []any{}
		}
		f.reply(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/payment_intents"})
	case len(parts) >= 2 && parts[0] == "payment_intents":
		pi := f.pis[parts[1]]
		if pi == nil {
			f.missing(w, "payment intent", parts[1])
			return
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 2:
			f.reply(w, http.StatusOK, f.renderPI(pi))
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "confirm":
			// On-session confirmation of an attempt the bank wants authenticated: Stripe
			// answers with its 3-D Secure page (next_action redirect_to_url).
			if pi.status != "requires_payment_method" && pi.status != "requires_action" {
				f.stripeError(w, http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
					"code": "payment_intent_unexpected_state", "message": "This PaymentIntent's status does not allow confirmation."})
				return
			}
			pi.status, pi.returnURL, pi.lastError = "requires_action", form.Get("return_url"), nil
			f.reply(w, http.StatusOK, f.renderPI(pi))
		default:
			f.t.Errorf("fake Stripe: unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotImplemented)
		}
	default:
		f.t.Errorf("fake Stripe: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// createPaymentIntent is POST /v1/payment_intents with confirm=true&off_session=true.
func (f *fakeStripe) createPaymentIntent(w http.ResponseWriter, r *http.Request, form url.Values) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		f.t.Error("a PaymentIntent was created without an Idempotency-Key")
	}
	if f.cut[key] {
		hangUp(w)
		return
	}
	if st, ok := f.idem[key]; ok { // Stripe answers a repeated key with the saved response
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st.status)
		_, _ = w.Write(st.body)
		return
	}
	fl := faultNone
	if len(f.faults) > 0 {
		fl, f.faults = f.faults[0], f.faults[1:]
	}
	save := func(status int, v any) {
		b, _ := json.Marshal(v)
		f.idem[key] = stored{status: status, body: b}
	}
	if fl == faultServerError {
		f.stripeError(w, http.StatusServiceUnavailable, map[string]any{"type": "api_error",
			"message": "An unknown error occurred"})
		return
	}
	if fl == faultSaved500 {
		e := map[string]any{"error": map[string]any{"type": "api_error", "message": "An unknown error occurred"}}
		save(http.StatusInternalServerError, e)
		f.reply(w, http.StatusInternalServerError, e)
		return
	}
	pm := f.pms[form.Get("payment_method")]
	if pm == nil || pm.customer != form.Get("customer") {
		e := map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "resource_missing",
			"param": "payment_method", "message": "No such PaymentMethod: '" + form.Get("payment_method") + "'"}}
		save(http.StatusBadRequest, e)
		f.reply(w, http.StatusBadRequest, e)
		return
	}
	pi := &paymentIntent{id: f.next("pi"), customer: form.Get("customer"), paymentMethod: pm.id,
		currency: form.Get("currency"), description: form.Get("description"), metadata: metadata(form),
		created: time.Now().Unix() + int64(f.seq)}
	fmt.Sscan(form.Get("amount"), &pi.amount)
	f.pis[pi.id] = pi
	f.piOrder = append(f.piOrder, pi.id)
	switch fl {
	case faultDecline, faultRequiresAction:
		// The reference's off-session errors: HTTP 402, a card_error with the PaymentIntent.
		pi.status = "requires_payment_method"
		e := map[string]any{"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
			"message": "Your card was declined.", "doc_url": "https://stripe.com/docs/error-codes/card-declined"}
		if fl == faultRequiresAction {
			e = map[string]any{"type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
				"message": "Your card was declined. This transaction requires authentication.",
				"doc_url": "https://stripe.com/docs/error-codes/authentication-required"}
		}
		pi.lastError = e
		withPI := map[string]any{}
		for k, v := range e {
			withPI[k] = v
		}
		withPI["payment_intent"] = f.renderPI(pi)
		body := map[string]any{"error": withPI}
		save(http.StatusPaymentRequired, body)
		f.reply(w, http.StatusPaymentRequired, body)
	default:
		pi.status = "succeeded"
		f.collected++
		obj := f.renderPI(pi)
		save(http.StatusOK, obj)
		if fl == faultTimeoutAfterCollect {
			if !f.healAfterCut {
				f.cut[key] = true // the charge happened; every answer about it is lost
			}
			hangUp(w)
			return
		}
		f.reply(w, http.StatusOK, obj)
	}
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// idempotent answers a repeated key with the saved response, else runs create and saves it.
func (f *fakeStripe) idempotent(w http.ResponseWriter, r *http.Request, create func() (int, any)) {
	key := r.Header.Get("Idempotency-Key")
	if st, ok := f.idem[key]; ok && key != "" {
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st.status)
		_, _ = w.Write(st.body)
		return
	}
	status, v := create()
	b, _ := json.Marshal(v)
	if key != "" {
		f.idem[key] = stored{status: status, body: b}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (f *fakeStripe) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_"+fmt.Sprint(f.seq))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeStripe) stripeError(w http.ResponseWriter, status int, e map[string]any) {
	f.reply(w, status, map[string]any{"error": e})
}

func (f *fakeStripe) missing(w http.ResponseWriter, what, id string) {
	f.stripeError(w, http.StatusNotFound, map[string]any{"type": "invalid_request_error", "code": "resource_missing",
		"param": "id", "message": "No such " + what + ": '" + id + "'"})
}

func metadata(form url.Values) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok {
			m[strings.TrimSuffix(name, "]")] = v[0]
		}
		if name, ok := strings.CutPrefix(k, "setup_intent_data[metadata]["); ok {
			m[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return m
}

// object is a fresh copy of stripe-mock's fixture for an object kind.
func (f *fakeStripe) object(kind string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(f.templates[kind]), &m); err != nil {
		f.t.Fatalf("template %s: %v", kind, err)
	}
	return m
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (f *fakeStripe) renderPM(pm *paymentMethod) map[string]any {
	obj := f.object("payment_method")
	obj["id"], obj["type"], obj["customer"] = pm.id, "card", orNil(pm.customer)
	card := obj["card"].(map[string]any)
	card["brand"], card["display_brand"], card["last4"] = pm.brand, pm.brand, pm.last4
	card["exp_month"], card["exp_year"] = pm.expMonth, pm.expYear
	return obj
}

func (f *fakeStripe) renderSetupIntent(si *setupIntent, expandPM bool) map[string]any {
	obj := f.object("setup_intent")
	obj["id"], obj["status"], obj["customer"], obj["metadata"] = si.id, si.status, orNil(si.customer), si.metadata
	obj["usage"], obj["last_setup_error"], obj["next_action"] = "off_session", nil, nil
	obj["client_secret"] = si.id + "_secret_fake"
	obj["payment_method"] = orNil(si.paymentMethod)
	if expandPM && si.paymentMethod != "" {
		obj["payment_method"] = f.renderPM(f.pms[si.paymentMethod])
	}
	return obj
}

func (f *fakeStripe) renderSession(s *session, expand map[string]bool) map[string]any {
	obj := f.object("checkout.session")
	obj["id"], obj["mode"], obj["status"], obj["customer"] = s.id, "setup", s.status, orNil(s.customer)
	obj["url"] = "https://checkout.stripe.com/c/pay/" + s.id
	obj["success_url"], obj["cancel_url"], obj["metadata"] = s.successURL, s.cancelURL, s.metadata
	obj["client_reference_id"], obj["payment_intent"], obj["currency"] = orNil(s.clientRef), nil, nil
	obj["setup_intent"] = orNil(s.setupIntent)
	if s.setupIntent != "" && (expand["setup_intent"] || expand["setup_intent.payment_method"]) {
		obj["setup_intent"] = f.renderSetupIntent(f.setups[s.setupIntent], expand["setup_intent.payment_method"])
	}
	return obj
}

func (f *fakeStripe) renderPI(pi *paymentIntent) map[string]any {
	obj := f.object("payment_intent")
	obj["id"], obj["amount"], obj["currency"], obj["customer"] = pi.id, pi.amount, pi.currency, pi.customer
	obj["payment_method"], obj["status"], obj["metadata"] = pi.paymentMethod, pi.status, pi.metadata
	obj["description"], obj["last_payment_error"], obj["next_action"] = orNil(pi.description), nil, nil
	obj["client_secret"], obj["created"] = pi.id+"_secret_fake", pi.created
	obj["canceled_at"], obj["amount_received"] = nil, 0
	if pi.status == "succeeded" {
		obj["amount_received"] = pi.amount
	}
	if pi.lastError != nil {
		obj["last_payment_error"] = pi.lastError
	}
	if pi.status == "requires_action" {
		obj["next_action"] = map[string]any{"type": "redirect_to_url", "redirect_to_url": map[string]any{
			"return_url": pi.returnURL, "url": f.srv.URL + "/3ds/" + pi.id}}
	}
	return obj
}

// completeSession plays the customer on Checkout: a Visa card is entered, a SetupIntent
// succeeds and attaches it to the session's customer, and Stripe sends the customer to the
// success URL with the session id filled in.
func (f *fakeStripe) completeSession(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sessions[id]
	if s == nil {
		f.t.Fatalf("no checkout session %s", id)
	}
	pm := &paymentMethod{id: f.next("pm"), customer: s.customer, brand: "visa", last4: "4242", expMonth: 12, expYear: cardExpYear()}
	f.pms[pm.id] = pm
	si := &setupIntent{id: f.next("seti"), customer: s.customer, paymentMethod: pm.id, status: "succeeded", metadata: s.metadata}
	f.setups[si.id] = si
	s.status, s.setupIntent = "complete", si.id
	return strings.ReplaceAll(s.successURL, "{CHECKOUT_SESSION_ID}", s.id)
}

// addCard makes a card at Stripe as a merchant would (pm_…), attached to nobody.
func (f *fakeStripe) addCard(brand, last4 string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	pm := &paymentMethod{id: f.next("pm"), brand: brand, last4: last4, expMonth: 7, expYear: cardExpYear()}
	f.pms[pm.id] = pm
	return pm.id
}

// authenticate plays the customer passing 3-D Secure on the page next_action named.
func (f *fakeStripe) authenticate(t *testing.T, redirectURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := strings.CutPrefix(redirectURL, f.srv.URL+"/3ds/")
	pi := f.pis[id]
	if !ok || pi == nil || pi.status != "requires_action" {
		t.Fatalf("%s is no 3-D Secure page of a waiting PaymentIntent", redirectURL)
	}
	pi.status = "succeeded"
	f.collected++
}

// detach removes a method at Stripe, as the customer's bank or the merchant's dashboard might.
func (f *fakeStripe) detach(id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	pm := f.pms[id]
	pm.customer = ""
	return f.renderPM(pm)
}

func (f *fakeStripe) paymentIntentByKey(key string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pi := range f.pis {
		if pi.metadata["portero_attempt"] == key {
			return f.renderPI(pi)
		}
	}
	return nil
}

// event signs an event about obj as Stripe would deliver it. Its api_version is stripe-mock's
// (a newer release train than the library's), as test events may be.
func (f *fakeStripe) event(typ string, obj map[string]any, signedAt time.Time) (http.Header, []byte) {
	f.mu.Lock()
	ev := f.object("event")
	ev["id"], ev["type"], ev["created"] = f.next("evt"), typ, signedAt.Unix()
	f.mu.Unlock()
	ev["api_version"], ev["data"] = "2026-08-26.dahlia", map[string]any{"object": obj}
	body, _ := json.Marshal(ev)
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: testWebhookSecret, Timestamp: signedAt})
	h := http.Header{}
	h.Set("Stripe-Signature", sp.Header)
	return h, body
}

// cardExpYear is a card expiry year some years ahead of the real clock, so the fake's cards never
// expire under the tests.
func cardExpYear() int { return time.Now().Year() + 4 }
