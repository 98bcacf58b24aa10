// Package sandbox is the built-in processor behind the payments.Adapter contract. It takes all
// six method types, has no hosted set-up (the portal's own form tokenizes cards through
// payments.Sandbox, whose test numbers choose outcomes) and moves no money.
//
// On top of the stateless core it keeps, in memory, a book of the charges it answered, keyed by
// idempotency key: a repeated key gets the first answer back, as at a real processor, and
// LookupCharge can tell what became of a charge whose answer was lost. A restart (or another
// replica) forgets the book; for a processor that moves no money that costs nothing but a
// repeated "collection" in the demo. The book keeps the latest bookLimit charges.
//
// Faults are injectable (InjectFault) so that the processor contract suite can show declines,
// authentication, lost answers and 5xx on the sandbox as on a real processor.
package sandbox

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// Type is the sandbox's registry key.
const Type = payments.ProcessorSandbox

// SecretKey is the key of the processor Secret that holds the sandbox's secret (at least
// payments.MinSandboxSecretLen bytes, the same on every replica).
const SecretKey = "secret"

// SignatureHeader carries the signature of the sandbox's webhooks: "t=<unix>,v1=<hex>", an
// HMAC-SHA256 of "<t>.<body>", as Stripe signs.
const SignatureHeader = "Sandbox-Signature"

// WebhookTolerance bounds how far a webhook's timestamp may be from now, either way.
const WebhookTolerance = 5 * time.Minute

// bookLimit bounds the in-memory book of charges.
const bookLimit = 100_000

// Fault is a misbehaviour the sandbox shows on its next charge.
type Fault int

// Injectable faults.
const (
	// FaultDecline: the next charge is declined (card_declined).
	FaultDecline Fault = iota + 1
	// FaultRequiresAction: the next charge waits for the customer to authenticate it.
	FaultRequiresAction
	// FaultTimeoutAfterCollect: the next charge collects, then its answer is lost.
	FaultTimeoutAfterCollect
	// FaultServerError: the next charge fails with a 5xx before collecting anything.
	FaultServerError
)

// Adapter is the sandbox processor. It also implements the older payments.Processor.
type Adapter struct {
	core       *payments.Sandbox
	webhookKey []byte
	idKey      []byte
	now        func() time.Time

	mu       sync.Mutex
	book     map[string]*charge // by idempotency key
	byRef    map[string]*charge
	order    []string // keys, oldest first, for the bound
	detached map[string]bool
	faults   []Fault
	// collected counts the charges that moved money, whatever their keys.
	collected int
}

type charge struct {
	key    string
	result payments.ChargeResult
}

// Factory builds the sandbox from a portal's processor configuration (payments.Config.Secret
// key SecretKey).
func Factory(cfg payments.Config) (payments.Adapter, error) {
	secret := cfg.Secret[SecretKey]
	if len(secret) == 0 {
		return nil, fmt.Errorf("sandbox processor: the processor Secret has no %q key", SecretKey)
	}
	a, err := New(secret, cfg.Now)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return a, nil
}

// New returns a sandbox adapter. now nil means time.Now.
func New(secret []byte, now func() time.Time) (*Adapter, error) {
	core, err := payments.NewSandbox(secret, now)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Adapter{
		core:       core,
		webhookKey: derive(secret, "portero sandbox webhook"),
		idKey:      derive(secret, "portero sandbox customer"),
		now:        now,
		book:       map[string]*charge{},
		byRef:      map[string]*charge{},
		detached:   map[string]bool{},
	}, nil
}

func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Type implements payments.Adapter.
func (a *Adapter) Type() payments.ProcessorType { return Type }

// Name implements payments.Processor.
func (a *Adapter) Name() string { return string(Type) }

// Capabilities implements payments.Adapter: every method type, cards through the portal's form.
func (a *Adapter) Capabilities() payments.Capabilities {
	return payments.Capabilities{MethodTypes: payments.MethodTypes()}
}

// InjectFault makes the next charge misbehave; several queue up in order.
func (a *Adapter) InjectFault(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = append(a.faults, f)
}

// Collected reports how many charges moved money since the adapter started, whatever their
// keys: the contract's "never charged twice" is counted with it.
func (a *Adapter) Collected() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.collected
}

// EnsureCustomer implements payments.Adapter. The sandbox keeps no customers: the id is derived
// from Portero's, so replicas racing to create one agree.
func (a *Adapter) EnsureCustomer(ctx context.Context, req payments.CustomerRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if req.Existing != "" {
		return req.Existing, nil
	}
	if req.ID == "" {
		return "", errors.New("sandbox: ensure customer: no Portero customer id")
	}
	m := hmac.New(sha256.New, a.idKey)
	m.Write([]byte(req.ID))
	return "scus_" + hex.EncodeToString(m.Sum(nil)[:12]), nil
}

// StartSetup implements payments.Adapter: the sandbox has no hosted page.
func (a *Adapter) StartSetup(context.Context, payments.SetupRequest) (payments.SetupSession, error) {
	return payments.SetupSession{}, fmt.Errorf("sandbox: hosted set-up: %w", payments.ErrUnsupported)
}

// CompleteSetup implements payments.Adapter: the sandbox has no hosted page.
func (a *Adapter) CompleteSetup(context.Context, payments.SetupCompletion) (payments.Method, error) {
	return payments.Method{}, fmt.Errorf("sandbox: hosted set-up: %w", payments.ErrUnsupported)
}

// TokenizeCard implements payments.CardTokenizer and payments.Processor.
func (a *Adapter) TokenizeCard(ctx context.Context, card payments.CardDetails) (payments.TokenizedCard, error) {
	return a.core.TokenizeCard(ctx, card)
}

// testMethods are the processor method ids a merchant may attach on a sandbox portal, named as
// Stripe names its test PaymentMethods, each standing for a documented sandbox card.
var testMethods = map[string]string{
	"pm_card_visa":                            "4242424242424242",
	"pm_card_visa_debit":                      "4000056655665556",
	"pm_card_mastercard":                      "5555555555554444",
	"pm_card_amex":                            "378282246310005",
	"pm_card_cabal":                           "6042010000000006",
	"pm_card_naranja":                         "5895620000000002",
	"pm_card_chargeDeclined":                  "4000000000000002",
	"pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
	"pm_card_chargeDeclinedExpiredCard":       "4000000000000069",
	"pm_card_chargeDeclinedProcessingError":   "4000000000000119",
}

// AttachMethod implements payments.Adapter for the test method ids above (pm_card_visa…).
func (a *Adapter) AttachMethod(ctx context.Context, req payments.AttachRequest) (payments.Method, error) {
	number, ok := testMethods[req.MethodID]
	if !ok {
		return payments.Method{}, &payments.Error{Code: payments.CodeInvalidPaymentMethod, Field: "processor_payment_method"}
	}
	cvc := "123"
	if strings.HasPrefix(number, "37") {
		cvc = "1234"
	}
	exp := a.now().AddDate(3, 0, 0)
	tok, err := a.core.TokenizeCard(ctx, payments.CardDetails{Number: number, ExpMonth: int(exp.Month()), ExpYear: exp.Year(), CVC: cvc})
	if err != nil {
		return payments.Method{}, err
	}
	return MethodFromToken(tok), nil
}

// MethodFromToken is the payments.Method for a card the portal's form tokenized.
func MethodFromToken(t payments.TokenizedCard) payments.Method {
	return payments.Method{Type: payments.MethodCard, ProcessorID: t.Token, Brand: t.Brand,
		Last4: t.Last4, ExpMonth: t.ExpMonth, ExpYear: t.ExpYear, Fingerprint: t.Fingerprint}
}

// Detach implements payments.Adapter. Sandbox tokens are stateless, so the adapter remembers
// the detached ones (in memory) and refuses to charge them, as a processor would.
func (a *Adapter) Detach(ctx context.Context, req payments.DetachRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.detached[req.MethodID] = true
	return nil
}

// Charge implements payments.Adapter and payments.Processor.
func (a *Adapter) Charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	if err := ctx.Err(); err != nil {
		return payments.ChargeResult{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.book[req.IdempotencyKey]; c != nil && req.IdempotencyKey != "" {
		return c.result, nil // an idempotent replay: the first answer, nothing collected again
	}
	var fault Fault
	if len(a.faults) > 0 {
		fault, a.faults = a.faults[0], a.faults[1:]
	}
	var res payments.ChargeResult
	switch {
	case fault == FaultServerError:
		return payments.ChargeResult{}, payments.Unavailable("sandbox: charge", errors.New("HTTP 503 (injected fault)"))
	case fault == FaultDecline:
		res = payments.ChargeResult{Status: payments.ChargeFailed, Failure: &payments.Error{Code: payments.CodeCardDeclined}}
	case fault == FaultRequiresAction:
		res = payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: "sca_" + randomID()}
	case req.Method.Type == payments.MethodCard && a.detached[req.Method.Token]:
		res = payments.ChargeResult{Status: payments.ChargeFailed, Failure: &payments.Error{Code: payments.CodeInvalidToken}}
	default:
		var err error
		if res, err = a.core.Charge(ctx, req); err != nil {
			return payments.ChargeResult{}, err
		}
	}
	a.record(req.IdempotencyKey, res)
	if res.Status == payments.ChargeSucceeded {
		a.collected++
	}
	if fault == FaultTimeoutAfterCollect {
		return payments.ChargeResult{}, payments.Unavailable("sandbox: charge", context.DeadlineExceeded)
	}
	return res, nil
}

// record books a charge; the caller holds a.mu.
func (a *Adapter) record(key string, res payments.ChargeResult) {
	c := &charge{key: key, result: res}
	if key == "" {
		return // no key, no replay: the older Processor callers
	}
	if len(a.order) >= bookLimit {
		old := a.book[a.order[0]]
		delete(a.book, a.order[0])
		if old != nil {
			delete(a.byRef, old.result.Reference)
		}
		a.order = a.order[1:]
	}
	a.book[key] = c
	a.order = append(a.order, key)
	if res.Reference != "" {
		a.byRef[res.Reference] = c
	}
}

// LookupCharge implements payments.Adapter from the in-memory book.
func (a *Adapter) LookupCharge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	if err := ctx.Err(); err != nil {
		return payments.ChargeResult{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.byRef[req.Reference]
	if c == nil {
		c = a.book[req.IdempotencyKey]
	}
	if c == nil {
		return payments.ChargeResult{}, payments.ErrNoSuchCharge
	}
	return c.result, nil
}

// Authenticate implements payments.Adapter. The sandbox's bank approves at once: the charge is
// collected and the redirect goes straight back to the portal, which then looks it up.
func (a *Adapter) Authenticate(ctx context.Context, req payments.ActionRequest) (payments.ActionResult, error) {
	if err := ctx.Err(); err != nil {
		return payments.ActionResult{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.byRef[req.Reference]
	if c == nil {
		return payments.ActionResult{}, payments.ErrNoSuchCharge
	}
	if c.result.Status == payments.ChargeRequiresAction {
		c.result = payments.ChargeResult{Status: payments.ChargeSucceeded, Reference: req.Reference}
		a.collected++
	}
	if c.result.Status != payments.ChargeSucceeded {
		return payments.ActionResult{ChargeResult: c.result}, nil
	}
	return payments.ActionResult{
		ChargeResult: payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: req.Reference},
		RedirectURL:  req.ReturnURL,
	}, nil
}

// Confirm implements payments.PendingConfirmer and payments.Processor.
func (a *Adapter) Confirm(ctx context.Context, reference string) (payments.ChargeResult, error) {
	res, err := a.core.Confirm(ctx, reference)
	if err != nil || res.Status != payments.ChargeSucceeded {
		return res, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.byRef[reference]; c != nil && c.result.Status == payments.ChargePending {
		c.result = res
		a.collected++
	}
	return res, nil
}

// wireEvent is the sandbox's webhook body: the normalised event itself.
type wireEvent struct {
	ID              string             `json:"id"`
	Type            payments.EventType `json:"type"`
	Reference       string             `json:"reference,omitempty"`
	IdempotencyKey  string             `json:"idempotency_key,omitempty"`
	Customer        string             `json:"customer,omitempty"`
	PorteroCustomer string             `json:"portero_customer,omitempty"`
	MethodID        string             `json:"method_id,omitempty"`
}

// SignEvent returns a signed webhook request (header and body) for ev, as the sandbox would
// send it; an empty ev.ID gets a fresh one. Tests and demos use it to play the processor.
func (a *Adapter) SignEvent(ev payments.Event) (http.Header, []byte) {
	if ev.ID == "" {
		ev.ID = "evt_" + randomID()
	}
	body, _ := json.Marshal(wireEvent{ID: ev.ID, Type: ev.Type, Reference: ev.Reference,
		IdempotencyKey: ev.IdempotencyKey, Customer: ev.Customer, PorteroCustomer: ev.PorteroCustomer,
		MethodID: ev.MethodID})
	ts := strconv.FormatInt(a.now().Unix(), 10)
	h := http.Header{}
	h.Set(SignatureHeader, "t="+ts+",v1="+hex.EncodeToString(a.sign(ts, body)))
	return h, body
}

// DetachAtProcessor plays a method removed at the processor (the customer asked their bank,
// say): the method is detached and the webhook the sandbox sends about it is returned.
func (a *Adapter) DetachAtProcessor(methodID string) (http.Header, []byte) {
	_ = a.Detach(context.Background(), payments.DetachRequest{MethodID: methodID})
	return a.SignEvent(payments.Event{Type: payments.EventMethodDetached, MethodID: methodID})
}

func (a *Adapter) sign(ts string, body []byte) []byte {
	m := hmac.New(sha256.New, a.webhookKey)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ParseWebhook implements payments.Adapter: the signature is checked over the raw body, in
// constant time, with the timestamp within WebhookTolerance of now either way.
func (a *Adapter) ParseWebhook(header http.Header, body []byte) (payments.Event, error) {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header.Get(SignatureHeader), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return payments.Event{}, fmt.Errorf("sandbox webhook: malformed %s header: %w", SignatureHeader, payments.ErrWebhookSignature)
	}
	want := a.sign(ts, body)
	ok := false
	for _, s := range sigs {
		ok = ok || hmac.Equal(s, want)
	}
	if !ok {
		return payments.Event{}, fmt.Errorf("sandbox webhook: %w", payments.ErrWebhookSignature)
	}
	if d := a.now().Sub(time.Unix(unix, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return payments.Event{}, fmt.Errorf("sandbox webhook: timestamp %s from now: %w", d.Round(time.Second), payments.ErrWebhookSignature)
	}
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil || w.ID == "" {
		return payments.Event{}, errors.New("sandbox webhook: body is not an event")
	}
	ev := payments.Event{ID: w.ID, Type: w.Type, ProcessorEventType: string(w.Type), Reference: w.Reference,
		IdempotencyKey: w.IdempotencyKey, Customer: w.Customer, PorteroCustomer: w.PorteroCustomer, MethodID: w.MethodID}
	switch ev.Type {
	case payments.EventSetupSucceeded, payments.EventChargeSucceeded, payments.EventChargeFailed,
		payments.EventChargeRequiresAction, payments.EventMethodDetached:
	default:
		ev.Type = payments.EventIgnored
	}
	return ev, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var (
	_ payments.Adapter          = (*Adapter)(nil)
	_ payments.CardTokenizer    = (*Adapter)(nil)
	_ payments.PendingConfirmer = (*Adapter)(nil)
	_ payments.Processor        = (*Adapter)(nil)
)
