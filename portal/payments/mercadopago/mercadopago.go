// Package mercadopago is the Mercado Pago adapter behind payments.Adapter, on the official
// library github.com/mercadopago/sdk-go (v1.8.0) where it covers the call: customers, saved
// cards, payments, payment search, preferences and orders (read). Two calls it does not cover
// are made over the same transport: a card token from a saved card (card_tokens with card_id,
// which v1.8.0's cardtoken.Request cannot express) and QR orders (POST /v1/orders with
// config.qr, which its order.Request lacks).
//
// What Portero does with Mercado Pago:
//
//   - Cards are typed in Mercado Pago's own fields (the Card Payment Brick or Secure Fields of
//     Mercado Pago's JS SDK, loaded by the portal's add-card page only), which tokenize in the
//     browser against Mercado Pago. Portero receives the card token, never the number, and
//     saves the card on the customer's Mercado Pago customer (created lazily, one per Portero
//     customer). That token is the set-up reference: CompleteSetup saves it.
//   - A saved card is charged later without its security code the way Mercado Pago's
//     Automatic Payments do it: a fresh card token from the card's id (POST /v1/card_tokens
//     {card_id}), then a payment with payer {type: customer, id}. Mercado Pago allows this
//     only for applications it enabled for automatic payments; see the README.
//   - Every payment creation carries X-Idempotency-Key = Portero's attempt key, the payment's
//     external_reference is Portero's payment id and its metadata the attempt key, so a lost
//     answer is found again by searching the payment id and re-driven with the same key.
//   - wallet: a Checkout Pro preference for the attempt; the customer pays on Mercado Pago's
//     page with the money in their account and comes back (ChargeRequiresAction, then
//     Authenticate gives the page).
//   - qr: a dynamic QR order (POST /v1/orders, type qr, config.qr.mode dynamic) whose qr_data
//     the portal draws; it settles when Mercado Pago notifies.
//   - A card charge the issuer wants authenticated (3-D Secure challenge) is cancelled and the
//     customer pays the same attempt on Checkout Pro, where Mercado Pago runs the challenge:
//     the portal needs no JavaScript for it, and only one of the two can ever collect.
//
// Nothing Mercado Pago writes in free text reaches an error, a log line or a customer: errors
// carry the HTTP status, Mercado Pago's error and cause codes and the request id, refusals
// become payments.Error codes with Spanish and English messages, and error strings are
// scrubbed of the access token, public key and webhook secret.
package mercadopago

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/config"
	"github.com/mercadopago/sdk-go/pkg/customer"
	"github.com/mercadopago/sdk-go/pkg/customercard"
	"github.com/mercadopago/sdk-go/pkg/order"
	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preference"

	"github.com/portero-dev/portero/portal/payments"
)

// Type is Mercado Pago's registry key (spec.processor.type).
const Type payments.ProcessorType = "mercadopago"

// Keys of the processor Secret.
const (
	// KeyAccessToken is the application's private credential (APP_USR-… in production,
	// TEST-… for test credentials).
	KeyAccessToken = "access_token"
	// KeyPublicKey is the application's public key, which Mercado Pago's JS SDK needs on the
	// add-card page.
	KeyPublicKey = "public_key"
	// KeyWebhookSecret is the secret signature of the application's webhook notifications.
	KeyWebhookSecret = "webhook_secret"
	// KeyAPIBase is optional: another API endpoint (a test double, an egress proxy).
	KeyAPIBase = "api_base"
	// KeyQRPOS is optional: the external_pos_id of the point of sale dynamic QR orders are
	// created for. Without it QR payments fail with unsupported_payment_method.
	KeyQRPOS = "qr_pos_id"
	// KeyNotificationURL is optional: the portal's /webhooks/mercadopago URL, sent as the
	// notification_url of payments, preferences and orders.
	KeyNotificationURL = "notification_url"
)

// DefaultAPIBase is Mercado Pago's API.
const DefaultAPIBase = "https://api.mercadopago.com"

// Origins of Mercado Pago's JS SDK and its Secure Fields: the add-card page's
// Content-Security-Policy names these and nothing else from outside the portal. Mercado Pago
// publishes no CSP list; these are the hosts its SDK v2 loads from, frames and calls.
const (
	// SDKScriptURL is the JS SDK (v2) the add-card page loads.
	SDKScriptURL = "https://sdk.mercadopago.com/js/v2"
)

var (
	// ScriptOrigins may serve scripts to the add-card page.
	ScriptOrigins = []string{"https://sdk.mercadopago.com", "https://http2.mlstatic.com"}
	// FrameOrigins host the Secure Fields' iframes.
	FrameOrigins = []string{"https://sdk.mercadopago.com", "https://*.mercadopago.com", "https://*.mercadolibre.com"}
	// ConnectOrigins are called by the JS SDK to tokenize the card.
	ConnectOrigins = []string{"https://api.mercadopago.com", "https://api.mercadolibre.com", "https://events.mercadopago.com"}
	// ImageOrigins serve the card brands' logos the SDK shows.
	ImageOrigins = []string{"https://http2.mlstatic.com"}
)

// Metadata key Portero sets on payments and preferences: the attempt's idempotency key.
const metaAttempt = "portero_attempt"

// customerDescriptionPrefix marks the Mercado Pago customers Portero created, with the
// Portero customer id after it.
const customerDescriptionPrefix = "portero_customer:"

// FieldsParam is the query parameter StartSetup adds to the portal's return URL: the page it
// names shows Mercado Pago's card fields, and posts the card token back to the same URL as
// payments.SetupReferenceParam.
const FieldsParam = "mp_fields"

// Options configure an adapter.
type Options struct {
	AccessToken   string
	PublicKey     string
	WebhookSecret string
	// APIBase is Mercado Pago's API URL; empty means DefaultAPIBase.
	APIBase string
	// QRPOS is the external_pos_id dynamic QR orders are created for; empty disables QR.
	QRPOS string
	// NotificationURL, when set, is sent as the notification_url of what Portero creates.
	NotificationURL string
	// HTTPClient makes the calls; nil means one with a 30s timeout. The library's own retrying
	// client is never used: a lost answer is re-driven by portal/charging with the same key.
	HTTPClient *http.Client
	// Log receives the adapter's lines; nil discards them.
	Log *slog.Logger
	// Now is the clock for webhook timestamps; nil means time.Now.
	Now func() time.Time
}

// Adapter is the Mercado Pago processor.
type Adapter struct {
	cfg             *config.Config
	tr              *transport
	customers       customer.Client
	cards           customercard.Client
	payments        payment.Client
	preferences     preference.Client
	orders          order.Client
	publicKey       string
	webhookSecret   string
	apiBase         string
	qrPOS           string
	notificationURL string
	secrets         []string
	log             *slog.Logger
	now             func() time.Time
}

// Factory builds the adapter from a portal's processor Secret (keys access_token, public_key,
// webhook_secret; optional api_base, qr_pos_id, notification_url).
func Factory(cfg payments.Config) (payments.Adapter, error) {
	a, err := New(Options{
		AccessToken:     string(cfg.Secret[KeyAccessToken]),
		PublicKey:       string(cfg.Secret[KeyPublicKey]),
		WebhookSecret:   string(cfg.Secret[KeyWebhookSecret]),
		APIBase:         string(cfg.Secret[KeyAPIBase]),
		QRPOS:           string(cfg.Secret[KeyQRPOS]),
		NotificationURL: string(cfg.Secret[KeyNotificationURL]),
		HTTPClient:      cfg.HTTPClient,
		Log:             cfg.Log,
		Now:             cfg.Now,
	})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return a, nil
}

// New returns a Mercado Pago adapter. A configuration error names the key at fault, never a
// value.
func New(o Options) (*Adapter, error) {
	token := strings.TrimSpace(o.AccessToken)
	if token == "" {
		return nil, fmt.Errorf("mercadopago processor: the processor Secret has no %q", KeyAccessToken)
	}
	if !credential(token) {
		return nil, fmt.Errorf("mercadopago processor: %q must be an access token (APP_USR-… or TEST-…)", KeyAccessToken)
	}
	pk := strings.TrimSpace(o.PublicKey)
	if pk == "" {
		return nil, fmt.Errorf("mercadopago processor: the processor Secret has no %q", KeyPublicKey)
	}
	if !credential(pk) {
		return nil, fmt.Errorf("mercadopago processor: %q must be a public key (APP_USR-… or TEST-…)", KeyPublicKey)
	}
	whsec := strings.TrimSpace(o.WebhookSecret)
	if whsec == "" {
		return nil, fmt.Errorf("mercadopago processor: the processor Secret has no %q", KeyWebhookSecret)
	}
	base := strings.TrimRight(strings.TrimSpace(o.APIBase), "/")
	if base == "" {
		base = DefaultAPIBase
	}
	bu, err := url.Parse(base)
	if err != nil || (bu.Scheme != "https" && bu.Scheme != "http") || bu.Host == "" || bu.User != nil || bu.RawQuery != "" {
		return nil, fmt.Errorf("mercadopago processor: %q must be an http(s) URL without credentials", KeyAPIBase)
	}
	if bu.Scheme == "http" && !plainHTTPHost(bu.Hostname()) {
		// The access token travels in every request: in the clear only where it stays on the
		// machine or inside the cluster (a test double, an egress proxy Service).
		return nil, fmt.Errorf("mercadopago processor: %q may use http only for loopback and cluster-local hosts (localhost, 127.0.0.1, ::1, *.svc, *.svc.cluster.local); use https", KeyAPIBase)
	}
	notify := strings.TrimSpace(o.NotificationURL)
	if notify != "" {
		u, err := url.Parse(notify)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("mercadopago processor: %q must be an absolute http(s) URL", KeyNotificationURL)
		}
		// Webhooks only: Mercado Pago otherwise also sends IPN notifications there, which are
		// not signed and would be refused.
		q := u.Query()
		q.Set("source_news", "webhooks")
		u.RawQuery = q.Encode()
		notify = u.String()
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
	tr := &transport{client: o.HTTPClient, base: bu, token: token}
	cfg, err := config.New(token, config.WithHTTPClient(tr))
	if err != nil {
		return nil, errors.New("mercadopago processor: configure the library")
	}
	return &Adapter{
		cfg:             cfg,
		tr:              tr,
		customers:       customer.NewClient(cfg),
		cards:           customercard.NewClient(cfg),
		payments:        payment.NewClient(cfg),
		preferences:     preference.NewClient(cfg),
		orders:          order.NewClient(cfg),
		publicKey:       pk,
		webhookSecret:   whsec,
		apiBase:         base,
		qrPOS:           strings.TrimSpace(o.QRPOS),
		notificationURL: notify,
		secrets:         []string{token, pk, whsec},
		log:             o.Log,
		now:             o.Now,
	}, nil
}

// credential reports whether s looks like a Mercado Pago credential: production (APP_USR-) or
// test (TEST-), printable and without spaces.
func credential(s string) bool {
	if !strings.HasPrefix(s, "APP_USR-") && !strings.HasPrefix(s, "TEST-") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
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

// CardFields implements payments.FieldsHost: cards are typed in Mercado Pago's Secure Fields,
// on the portal's page that StartSetup sends the customer to.
func (a *Adapter) CardFields() payments.CardFields {
	return payments.CardFields{
		Processor: Type, PublicKey: a.publicKey, ScriptURL: SDKScriptURL, Param: FieldsParam,
		ScriptOrigins: ScriptOrigins, FrameOrigins: FrameOrigins, ConnectOrigins: ConnectOrigins, ImageOrigins: ImageOrigins,
	}
}

// String describes the adapter without its credentials, for an accidental %v.
func (a *Adapter) String() string { return "mercadopago adapter (" + a.apiBase + ")" }

// GoString is String, for %#v.
func (a *Adapter) GoString() string { return a.String() }

// LogValue is String, for log/slog.
func (a *Adapter) LogValue() slog.Value { return slog.StringValue(a.String()) }

// PublicKey is the application's public key, which the add-card page gives Mercado Pago's JS
// SDK. It is public by design; it still never goes to logs.
func (a *Adapter) PublicKey() string { return a.publicKey }

// Type implements payments.Adapter.
func (a *Adapter) Type() payments.ProcessorType { return Type }

// Capabilities implements payments.Adapter: cards (typed in Mercado Pago's fields), QR and
// the Mercado Pago wallet.
func (a *Adapter) Capabilities() payments.Capabilities {
	return payments.Capabilities{
		MethodTypes: []payments.MethodType{payments.MethodCard, payments.MethodQR, payments.MethodWallet},
		HostedSetup: true,
	}
}

// EnsureCustomer implements payments.Adapter. Mercado Pago keeps one customer per email and
// refuses a second (cause 101); the adapter then adopts the existing one, so replicas racing to
// create the customer end with the same id.
func (a *Adapter) EnsureCustomer(ctx context.Context, req payments.CustomerRequest) (string, error) {
	if req.Existing != "" {
		return req.Existing, nil
	}
	if req.ID == "" {
		return "", errors.New("mercadopago: create customer: no Portero customer id")
	}
	if req.Email == "" {
		return "", errors.New("mercadopago: create customer: Mercado Pago needs the customer's email")
	}
	first, last, _ := strings.Cut(strings.TrimSpace(req.Name), " ")
	c, err := a.customers.Create(withKey(ctx, "portero:customer:"+req.ID), customer.Request{
		Email:       req.Email,
		FirstName:   first,
		LastName:    strings.TrimSpace(last),
		Description: customerDescriptionPrefix + req.ID,
	})
	if err == nil {
		return c.ID, nil
	}
	if !hasCause(err, causeCustomerExists) {
		return "", a.fail("create customer", err)
	}
	found, err := a.customers.Search(ctx, customer.SearchRequest{Limit: 10, Filters: map[string]string{"email": req.Email}})
	if err != nil {
		return "", a.fail("search customer", err)
	}
	if len(found.Results) == 0 {
		return "", errors.New("mercadopago: create customer: Mercado Pago says the customer exists but finds none by its email")
	}
	for _, r := range found.Results {
		if r.Description == customerDescriptionPrefix+req.ID {
			return r.ID, nil
		}
	}
	return found.Results[0].ID, nil
}

var (
	_ payments.Adapter    = (*Adapter)(nil)
	_ payments.FieldsHost = (*Adapter)(nil)
)
