// Package stripe is the Stripe adapter behind payments.Adapter, on the official library
// (github.com/stripe/stripe-go/v84, API version 2026-02-25.clover).
//
// Each adapter has a stripe.Client of its own, with the portal's secret key and its backend
// pointed at api_base: the library's global key and backends are never used, so two portals
// in one process never share credentials. Cards are typed on Stripe's pages only — Checkout
// Sessions in setup mode — and charged off-session with PaymentIntents (confirm, off_session,
// the saved PaymentMethod, Portero's attempt key as Stripe's Idempotency-Key). One Stripe
// Customer per Portero customer, created lazily with an idempotency key of its own.
//
// Nothing Stripe writes in free text reaches an error, a log line or a customer: errors carry
// the HTTP status, Stripe's error type and code and the request id, and refusals become
// payments.Error codes with Spanish and English messages. Error strings are additionally
// scrubbed of the secret key and the webhook secret, since some answers (a mistyped key, for
// instance) echo what was sent.
package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	stripelib "github.com/stripe/stripe-go/v84"

	"github.com/portero-dev/portero/portal/payments"
)

// Type is Stripe's registry key.
const Type = payments.ProcessorStripe

// Keys of the processor Secret.
const (
	KeySecretKey     = "secret_key"
	KeyWebhookSecret = "webhook_secret"
	KeyAPIBase       = "api_base"
)

// DefaultAPIBase is Stripe's API.
const DefaultAPIBase = "https://api.stripe.com"

// Metadata keys Portero sets on Stripe objects, so that webhooks and lookups find their way back.
const (
	metaCustomer = "portero_customer"
	metaAttempt  = "portero_attempt"
)

// Options configure an adapter.
type Options struct {
	// SecretKey is the account's secret (sk_…) or restricted (rk_…) key.
	SecretKey string
	// WebhookSecret is the webhook endpoint's signing secret (whsec_…).
	WebhookSecret string
	// APIBase is Stripe's API URL; empty means DefaultAPIBase. Tests point it at stripe-mock.
	APIBase string
	// HTTPClient makes the calls; nil means one with a 30s timeout.
	HTTPClient *http.Client
	// Log receives the adapter's lines; nil discards them.
	Log *slog.Logger
	// Now is the clock for webhook timestamps; nil means time.Now.
	Now func() time.Time
	// MaxNetworkRetries is how often the library retries a failed call itself, with the same
	// idempotency key; nil means 2. Charges whose answer is still lost after that are re-driven
	// by portal/charging.
	MaxNetworkRetries *int64
}

// Adapter is the Stripe processor.
type Adapter struct {
	sc *stripelib.Client
	// api and key make the charge call itself (see Charge).
	api           stripelib.RawRequestBackend
	key           string
	webhookSecret string
	apiBase       string
	secrets       []string
	log           *slog.Logger
	now           func() time.Time
}

// Factory builds the adapter from a portal's processor Secret (keys secret_key,
// webhook_secret, optional api_base).
func Factory(cfg payments.Config) (payments.Adapter, error) {
	a, err := New(Options{
		SecretKey:     string(cfg.Secret[KeySecretKey]),
		WebhookSecret: string(cfg.Secret[KeyWebhookSecret]),
		APIBase:       string(cfg.Secret[KeyAPIBase]),
		HTTPClient:    cfg.HTTPClient,
		Log:           cfg.Log,
		Now:           cfg.Now,
	})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return a, nil
}

// New returns a Stripe adapter. A configuration error names the key at fault, never a value.
func New(o Options) (*Adapter, error) {
	key := strings.TrimSpace(o.SecretKey)
	if key == "" {
		return nil, fmt.Errorf("stripe processor: the processor Secret has no %q", KeySecretKey)
	}
	if !strings.HasPrefix(key, "sk_") && !strings.HasPrefix(key, "rk_") {
		return nil, fmt.Errorf("stripe processor: %q must be a secret (sk_…) or restricted (rk_…) key", KeySecretKey)
	}
	whsec := strings.TrimSpace(o.WebhookSecret)
	if whsec == "" {
		return nil, fmt.Errorf("stripe processor: the processor Secret has no %q", KeyWebhookSecret)
	}
	if !strings.HasPrefix(whsec, "whsec_") {
		return nil, fmt.Errorf("stripe processor: %q must be a webhook signing secret (whsec_…)", KeyWebhookSecret)
	}
	base := strings.TrimRight(strings.TrimSpace(o.APIBase), "/")
	if base == "" {
		base = DefaultAPIBase
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("stripe processor: %q must be an http(s) URL without credentials", KeyAPIBase)
	} else if u.Scheme == "http" && !plainHTTPHost(u.Hostname()) {
		// The secret key travels in every request: in the clear only where it stays on the
		// machine or inside the cluster (stripe-mock, an egress proxy Service).
		return nil, fmt.Errorf("stripe processor: %q may use http only for loopback and cluster-local hosts (localhost, 127.0.0.1, ::1, *.svc, *.svc.cluster.local); use https", KeyAPIBase)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	retries := o.MaxNetworkRetries
	if retries == nil {
		retries = stripelib.Int64(2)
	}
	backends := stripelib.NewBackendsWithConfig(&stripelib.BackendConfig{
		HTTPClient: o.HTTPClient,
		// The library's own logger would print request failures with Stripe's messages; the
		// adapter reports scrubbed errors instead.
		LeveledLogger:     &stripelib.LeveledLogger{Level: stripelib.LevelNull},
		MaxNetworkRetries: retries,
		URL:               stripelib.String(base),
		EnableTelemetry:   stripelib.Bool(false),
	})
	raw, ok := backends.API.(stripelib.RawRequestBackend)
	if !ok {
		return nil, errors.New("stripe processor: the library's backend makes no raw requests")
	}
	return &Adapter{
		sc:            stripelib.NewClient(key, stripelib.WithBackends(backends)),
		api:           raw,
		key:           key,
		webhookSecret: whsec,
		apiBase:       base,
		secrets:       []string{key, whsec},
		log:           o.Log,
		now:           o.Now,
	}, nil
}

// String describes the adapter without its credentials, for an accidental %v.
func (a *Adapter) String() string { return "stripe adapter (" + a.apiBase + ")" }

// GoString is String, for %#v.
func (a *Adapter) GoString() string { return a.String() }

// LogValue is String, for log/slog.
func (a *Adapter) LogValue() slog.Value { return slog.StringValue(a.String()) }

// Type implements payments.Adapter.
func (a *Adapter) Type() payments.ProcessorType { return Type }

// Capabilities implements payments.Adapter: cards, typed on Stripe's pages.
func (a *Adapter) Capabilities() payments.Capabilities {
	return payments.Capabilities{MethodTypes: []payments.MethodType{payments.MethodCard}, HostedSetup: true}
}

// EnsureCustomer implements payments.Adapter. The idempotency key is derived from Portero's
// customer id, so replicas racing to create the customer get the same one from Stripe.
func (a *Adapter) EnsureCustomer(ctx context.Context, req payments.CustomerRequest) (string, error) {
	if req.Existing != "" {
		return req.Existing, nil
	}
	if req.ID == "" {
		return "", errors.New("stripe: create customer: no Portero customer id")
	}
	p := &stripelib.CustomerCreateParams{}
	if req.Email != "" {
		p.Email = stripelib.String(req.Email)
	}
	if req.Name != "" {
		p.Name = stripelib.String(req.Name)
	}
	if l := stripeLocale(req.Locale); l != "auto" {
		p.PreferredLocales = []*string{stripelib.String(l)}
	}
	p.AddMetadata(metaCustomer, req.ID)
	p.SetIdempotencyKey("portero:customer:" + req.ID)
	c, err := a.sc.V1Customers.Create(ctx, p)
	if err != nil {
		return "", a.fail("create customer", err)
	}
	return c.ID, nil
}

// stripeLocale maps a portal locale to Checkout's.
func stripeLocale(l string) string {
	l = strings.ToLower(l)
	switch {
	case l == "es" || strings.HasPrefix(l, "es-") || strings.HasPrefix(l, "es_"):
		return "es"
	case l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_"):
		return "en"
	}
	return "auto"
}

// StartSetup implements payments.Adapter with a Checkout Session in setup mode. Its
// success_url is the return URL plus setup_ref={CHECKOUT_SESSION_ID}, which Stripe fills in.
func (a *Adapter) StartSetup(ctx context.Context, req payments.SetupRequest) (payments.SetupSession, error) {
	if req.MethodType != "" && req.MethodType != payments.MethodCard {
		return payments.SetupSession{}, &payments.Error{Code: payments.CodeUnsupportedMethod, Field: "type"}
	}
	if req.Customer == "" {
		return payments.SetupSession{}, errors.New("stripe: start set-up: no Stripe customer")
	}
	success, err := withReference(req.ReturnURL)
	if err != nil {
		return payments.SetupSession{}, err
	}
	if u, err := url.Parse(req.CancelURL); err != nil || !u.IsAbs() {
		return payments.SetupSession{}, errors.New("stripe: start set-up: the cancel URL must be absolute")
	}
	p := &stripelib.CheckoutSessionCreateParams{
		Mode:               stripelib.String("setup"),
		Customer:           stripelib.String(req.Customer),
		SuccessURL:         stripelib.String(success),
		CancelURL:          stripelib.String(req.CancelURL),
		PaymentMethodTypes: []*string{stripelib.String("card")},
		Locale:             stripelib.String(stripeLocale(req.Locale)),
		SetupIntentData:    &stripelib.CheckoutSessionCreateSetupIntentDataParams{},
	}
	if req.PorteroCustomer != "" {
		p.ClientReferenceID = stripelib.String(req.PorteroCustomer)
		p.AddMetadata(metaCustomer, req.PorteroCustomer)
		p.SetupIntentData.AddMetadata(metaCustomer, req.PorteroCustomer)
	}
	s, err := a.sc.V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		return payments.SetupSession{}, a.fail("create checkout session", err)
	}
	return payments.SetupSession{RedirectURL: s.URL, Reference: s.ID}, nil
}

// plainHTTPHost reports whether an api_base on this host may use plain http.
func plainHTTPHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return strings.HasSuffix(host, ".svc") || strings.HasSuffix(host, ".svc.cluster.local")
}

// withReference appends setup_ref={CHECKOUT_SESSION_ID} to an absolute URL, before any
// fragment. The braces stay literal: Stripe replaces the template, not an escaped form of it.
func withReference(returnURL string) (string, error) {
	u, err := url.Parse(returnURL)
	if err != nil || !u.IsAbs() {
		return "", errors.New("stripe: start set-up: the return URL must be absolute")
	}
	base, frag, _ := strings.Cut(returnURL, "#")
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	out := base + sep + payments.SetupReferenceParam + "={CHECKOUT_SESSION_ID}"
	if frag != "" {
		out += "#" + frag
	}
	return out, nil
}

// CompleteSetup implements payments.Adapter for a Checkout Session (cs_…) or its SetupIntent
// (seti_…). Anything that is not a finished set-up of req.Customer is CodeSetupIncomplete,
// without saying which, so a reference cannot be probed for someone else's card.
func (a *Adapter) CompleteSetup(ctx context.Context, req payments.SetupCompletion) (payments.Method, error) {
	incomplete := &payments.Error{Code: payments.CodeSetupIncomplete}
	var si *stripelib.SetupIntent
	switch {
	case strings.HasPrefix(req.Reference, "cs_"):
		p := &stripelib.CheckoutSessionRetrieveParams{}
		p.AddExpand("setup_intent.payment_method")
		s, err := a.sc.V1CheckoutSessions.Retrieve(ctx, req.Reference, p)
		if isMissing(err) {
			return payments.Method{}, incomplete
		}
		if err != nil {
			return payments.Method{}, a.fail("retrieve checkout session", err)
		}
		if s.Mode != stripelib.CheckoutSessionModeSetup || idOf(s.Customer) != req.Customer ||
			s.Status != stripelib.CheckoutSessionStatusComplete || s.SetupIntent == nil {
			return payments.Method{}, incomplete
		}
		si = s.SetupIntent
	case strings.HasPrefix(req.Reference, "seti_"):
		p := &stripelib.SetupIntentRetrieveParams{}
		p.AddExpand("payment_method")
		var err error
		si, err = a.sc.V1SetupIntents.Retrieve(ctx, req.Reference, p)
		if isMissing(err) {
			return payments.Method{}, incomplete
		}
		if err != nil {
			return payments.Method{}, a.fail("retrieve setup intent", err)
		}
	default:
		return payments.Method{}, incomplete
	}
	if si.Status != stripelib.SetupIntentStatusSucceeded || si.PaymentMethod == nil ||
		(si.Customer != nil && si.Customer.ID != req.Customer) {
		return payments.Method{}, incomplete
	}
	pm := si.PaymentMethod
	if pm.Card == nil { // not expanded (a seti_ reached through an old session)
		var err error
		if pm, err = a.sc.V1PaymentMethods.Retrieve(ctx, pm.ID, nil); err != nil {
			return payments.Method{}, a.fail("retrieve payment method", err)
		}
	}
	return a.adopt(ctx, pm, req.Customer)
}

// adopt checks a PaymentMethod is a card of the customer's (attaching it if it is nobody's)
// and describes it.
func (a *Adapter) adopt(ctx context.Context, pm *stripelib.PaymentMethod, customer string) (payments.Method, error) {
	if pm.Type != stripelib.PaymentMethodTypeCard || pm.Card == nil {
		return payments.Method{}, &payments.Error{Code: payments.CodeUnsupportedMethod, Field: "processor_payment_method"}
	}
	switch owner := idOf(pm.Customer); {
	case owner == "":
		p := &stripelib.PaymentMethodAttachParams{Customer: stripelib.String(customer)}
		attached, err := a.sc.V1PaymentMethods.Attach(ctx, pm.ID, p)
		if err != nil {
			if code := refusal(err); code != "" {
				return payments.Method{}, &payments.Error{Code: code, Field: "processor_payment_method"}
			}
			return payments.Method{}, a.fail("attach payment method", err)
		}
		if attached.Card != nil {
			pm = attached
		}
	case owner != customer:
		return payments.Method{}, &payments.Error{Code: payments.CodePaymentMethodInUse, Field: "processor_payment_method"}
	}
	return methodOf(pm), nil
}

// methodOf keeps what Portero stores of a card: brand, last 4, expiry — and the handle.
func methodOf(pm *stripelib.PaymentMethod) payments.Method {
	return payments.Method{
		Type:        payments.MethodCard,
		ProcessorID: pm.ID,
		Brand:       brandOf(pm.Card.Brand),
		Last4:       pm.Card.Last4,
		ExpMonth:    int(pm.Card.ExpMonth),
		ExpYear:     int(pm.Card.ExpYear),
	}
}

func brandOf(b stripelib.PaymentMethodCardBrand) payments.Brand {
	switch b {
	case "visa":
		return payments.BrandVisa
	case "mastercard":
		return payments.BrandMastercard
	case "amex":
		return payments.BrandAmex
	case "discover":
		return payments.BrandDiscover
	case "diners":
		return payments.BrandDiners
	case "jcb":
		return payments.BrandJCB
	case "unionpay":
		return payments.BrandUnionPay
	}
	return payments.BrandUnknown
}

func idOf(c *stripelib.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// AttachMethod implements payments.Adapter for a PaymentMethod (pm_…) the merchant created.
func (a *Adapter) AttachMethod(ctx context.Context, req payments.AttachRequest) (payments.Method, error) {
	invalid := &payments.Error{Code: payments.CodeInvalidPaymentMethod, Field: "processor_payment_method"}
	if !strings.HasPrefix(req.MethodID, "pm_") || req.Customer == "" {
		return payments.Method{}, invalid
	}
	pm, err := a.sc.V1PaymentMethods.Retrieve(ctx, req.MethodID, nil)
	if isMissing(err) {
		return payments.Method{}, invalid
	}
	if err != nil {
		return payments.Method{}, a.fail("retrieve payment method", err)
	}
	return a.adopt(ctx, pm, req.Customer)
}

// Detach implements payments.Adapter. A method already detached is done; one of another
// customer is not touched.
func (a *Adapter) Detach(ctx context.Context, req payments.DetachRequest) error {
	pm, err := a.sc.V1PaymentMethods.Retrieve(ctx, req.MethodID, nil)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return a.fail("retrieve payment method", err)
	}
	switch owner := idOf(pm.Customer); {
	case owner == "":
		return nil
	case req.Customer != "" && owner != req.Customer:
		return &payments.Error{Code: payments.CodePaymentMethodInUse}
	}
	if _, err := a.sc.V1PaymentMethods.Detach(ctx, req.MethodID, nil); err != nil && !isMissing(err) {
		return a.fail("detach payment method", err)
	}
	return nil
}

// Charge implements payments.Adapter: a PaymentIntent confirmed off-session at once, with the
// attempt's key as Idempotency-Key (so a repeated attempt is answered with the first
// PaymentIntent) and in metadata (so LookupCharge and webhooks find it without its id).
func (a *Adapter) Charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	switch {
	case req.Method.Type != payments.MethodCard:
		return failed(payments.CodeUnsupportedMethod), nil
	case !strings.HasPrefix(req.Method.Token, "pm_") || req.Customer == "":
		return failed(payments.CodeInvalidPaymentMethod), nil
	case req.Amount <= 0:
		return failed(payments.CodeInvalidAmount), nil
	case req.IdempotencyKey == "":
		return payments.ChargeResult{}, errors.New("stripe: charge without an idempotency key refused")
	}
	// The library's own request (its headers and API version, retries with the key, Stripe's
	// errors), with the form written directly and only what the outcome is read from decoded:
	// the library's reflective encoder and the whole PaymentIntent, dozens of nested objects,
	// were most of what a charge cost on top of Stripe's answer (make bench).
	raw := &stripelib.RawParams{}
	raw.Context = ctx
	raw.SetIdempotencyKey(req.IdempotencyKey)
	resp, err := a.api.RawRequest(http.MethodPost, "/v1/payment_intents", a.key, chargeForm(req), raw)
	if err != nil {
		return a.chargeError("create payment intent", err)
	}
	var pi chargeAnswer
	if err := json.Unmarshal(resp.RawJSON, &pi); err != nil || pi.ID == "" {
		// Money may have moved: the answer is lost, not a refusal.
		return payments.ChargeResult{}, payments.Unavailable("stripe: create payment intent", errors.New("unreadable answer"))
	}
	return pi.result(), nil
}

// chargeForm is the PaymentIntent a charge creates, in Stripe's form encoding: confirmed at
// once, off-session, with the saved card and the attempt's key in metadata (LookupCharge and
// webhooks find it by that). It is written directly — the same fields and values the library's
// encoder writes for the PaymentIntentCreateParams (TestChargeFormIsTheLibrarys checks) —
// without walking that struct's hundred-odd fields by reflection on every charge.
func chargeForm(req payments.ChargeRequest) string {
	var b strings.Builder
	b.Grow(256)
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	add("amount", strconv.FormatInt(req.Amount, 10))
	add("confirm", "true")
	add("currency", strings.ToLower(req.Currency))
	add("customer", req.Customer)
	if req.Description != "" {
		add("description", req.Description)
	}
	add("metadata["+metaAttempt+"]", req.IdempotencyKey)
	add("off_session", "true")
	add("payment_method", req.Method.Token)
	add("payment_method_types[0]", "card")
	return b.String()
}

// chargeAnswer is the part of a PaymentIntent a charge's outcome is read from.
type chargeAnswer struct {
	ID               string                        `json:"id"`
	Status           stripelib.PaymentIntentStatus `json:"status"`
	LastPaymentError *struct {
		Code        stripelib.ErrorCode `json:"code"`
		DeclineCode string              `json:"decline_code"`
	} `json:"last_payment_error"`
}

func (c *chargeAnswer) result() payments.ChargeResult {
	var code stripelib.ErrorCode
	var decline string
	if e := c.LastPaymentError; e != nil {
		code, decline = e.Code, e.DeclineCode
	}
	return outcome(c.ID, c.Status, c.LastPaymentError != nil, code, decline)
}

func failed(code string) payments.ChargeResult {
	return payments.ChargeResult{Status: payments.ChargeFailed, Failure: &payments.Error{Code: code}}
}

// resultOf reads a PaymentIntent's state.
func resultOf(pi *stripelib.PaymentIntent) payments.ChargeResult {
	var code stripelib.ErrorCode
	var decline string
	if e := pi.LastPaymentError; e != nil {
		code, decline = e.Code, string(e.DeclineCode)
	}
	return outcome(pi.ID, pi.Status, pi.LastPaymentError != nil, code, decline)
}

// outcome is a charge's result from its PaymentIntent's id, status and last error (hasError:
// whether it has one, with code and decline code).
func outcome(id string, status stripelib.PaymentIntentStatus, hasError bool, code stripelib.ErrorCode, decline string) payments.ChargeResult {
	res := payments.ChargeResult{Reference: id}
	switch status {
	case stripelib.PaymentIntentStatusSucceeded:
		res.Status = payments.ChargeSucceeded
	case stripelib.PaymentIntentStatusProcessing, stripelib.PaymentIntentStatusRequiresCapture:
		res.Status = payments.ChargePending
	case stripelib.PaymentIntentStatusRequiresAction:
		res.Status = payments.ChargeRequiresAction
	case stripelib.PaymentIntentStatusRequiresPaymentMethod:
		// An off-session attempt the bank wants authenticated comes back here with
		// authentication_required; any other error is a refusal.
		if hasError && (code == stripelib.ErrorCodeAuthenticationRequired || decline == "authentication_required") {
			res.Status = payments.ChargeRequiresAction
			return res
		}
		res.Status, res.Failure = payments.ChargeFailed, &payments.Error{Code: payments.CodeProcessingError}
		if hasError {
			res.Failure.Code = FailureCode(string(code), decline)
		}
	default: // requires_confirmation, canceled: nothing was collected
		res.Status, res.Failure = payments.ChargeFailed, &payments.Error{Code: payments.CodeProcessingError}
	}
	return res
}

// LookupCharge implements payments.Adapter: by PaymentIntent id when known; else among the
// customer's latest PaymentIntents, by the attempt key in their metadata (listing is strongly
// consistent; search is not).
func (a *Adapter) LookupCharge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	if req.Reference != "" {
		pi, err := a.sc.V1PaymentIntents.Retrieve(ctx, req.Reference, nil)
		if isMissing(err) {
			return payments.ChargeResult{}, payments.ErrNoSuchCharge
		}
		if err != nil {
			return payments.ChargeResult{}, a.fail("retrieve payment intent", err)
		}
		return resultOf(pi), nil
	}
	if req.Customer == "" || req.IdempotencyKey == "" {
		return payments.ChargeResult{}, errors.New("stripe: look up charge: need a reference, or a customer and a key")
	}
	p := &stripelib.PaymentIntentListParams{Customer: stripelib.String(req.Customer)}
	p.Limit = stripelib.Int64(100)
	seen := 0
	for pi, err := range a.sc.V1PaymentIntents.List(ctx, p) {
		if err != nil {
			return payments.ChargeResult{}, a.fail("list payment intents", err)
		}
		if pi.Metadata[metaAttempt] == req.IdempotencyKey {
			return resultOf(pi), nil
		}
		// A lost answer is re-driven within minutes; its PaymentIntent is among the newest.
		if seen++; seen >= 300 {
			break
		}
	}
	return payments.ChargeResult{}, payments.ErrNoSuchCharge
}

// Authenticate implements payments.Adapter: the same PaymentIntent is confirmed on-session with
// the saved method and a return URL, and Stripe answers with its 3-D Secure page. A
// PaymentIntent already waiting on that page gives the page again rather than a new
// confirmation, so a customer clicking twice gets one challenge.
func (a *Adapter) Authenticate(ctx context.Context, req payments.ActionRequest) (payments.ActionResult, error) {
	if !strings.HasPrefix(req.Reference, "pi_") {
		return payments.ActionResult{}, payments.ErrNoSuchCharge
	}
	if u, err := url.Parse(req.ReturnURL); err != nil || !u.IsAbs() {
		return payments.ActionResult{}, errors.New("stripe: authenticate: the return URL must be absolute")
	}
	pi, err := a.sc.V1PaymentIntents.Retrieve(ctx, req.Reference, nil)
	if isMissing(err) {
		return payments.ActionResult{}, payments.ErrNoSuchCharge
	}
	if err != nil {
		return payments.ActionResult{}, a.fail("retrieve payment intent", err)
	}
	if pi.Status == stripelib.PaymentIntentStatusRequiresPaymentMethod {
		p := &stripelib.PaymentIntentConfirmParams{ReturnURL: stripelib.String(req.ReturnURL), OffSession: stripelib.Bool(false)}
		if req.Method.Token != "" {
			p.PaymentMethod = stripelib.String(req.Method.Token)
		}
		pi, err = a.sc.V1PaymentIntents.Confirm(ctx, req.Reference, p)
		if err != nil {
			res, err := a.chargeError("confirm payment intent", err)
			return payments.ActionResult{ChargeResult: res}, err
		}
	}
	res := resultOf(pi)
	if pi.Status != stripelib.PaymentIntentStatusRequiresAction {
		return payments.ActionResult{ChargeResult: res}, nil
	}
	if na := pi.NextAction; na != nil && na.RedirectToURL != nil && na.RedirectToURL.URL != "" {
		return payments.ActionResult{ChargeResult: res, RedirectURL: na.RedirectToURL.URL}, nil
	}
	// use_stripe_sdk and the like need Stripe.js in the customer's browser; the portal works
	// without JavaScript, so it cannot carry them out.
	kind := "none"
	if pi.NextAction != nil {
		kind = string(pi.NextAction.Type)
	}
	return payments.ActionResult{}, fmt.Errorf("stripe: authenticate: Stripe asked for an action the portal cannot show (%s)", kind)
}

var _ payments.Adapter = (*Adapter)(nil)
