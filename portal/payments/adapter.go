package payments

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"time"
)

// ProcessorType names a processor implementation. It is the CustomerPortal's
// spec.processor.type and the key of the Registry.
type ProcessorType string

// Processor types shipped with Portero.
const (
	ProcessorSandbox ProcessorType = "sandbox"
	ProcessorStripe  ProcessorType = "stripe"
)

// Capabilities say what an adapter can do, so callers decide before they call.
type Capabilities struct {
	// MethodTypes are the payment method types the processor takes, in display order.
	MethodTypes []MethodType
	// HostedSetup is true when card details are typed on the processor's own page (StartSetup,
	// then CompleteSetup) and never reach the portal. When false the portal's own form collects
	// them and the adapter implements CardTokenizer.
	HostedSetup bool
}

// Takes reports whether the processor takes method type t.
func (c Capabilities) Takes(t MethodType) bool { return slices.Contains(c.MethodTypes, t) }

// Adapter is one payment processor behind the processor-neutral contract that portal/charging
// drives. Every implementation passes the suite in portal/payments/processortest and is
// registered in one Registry; nothing else names a concrete processor. Implementations must be
// safe for concurrent use.
//
// Errors: a refusal a person can act on is an *Error (a stable code with es/en messages). A
// processor that could not be reached, or answered 5xx, gives an error for which
// IsUnavailable is true; nothing was done (or, for Charge, the outcome is unknown and the
// attempt is re-driven with the same idempotency key). No error string ever contains a
// credential.
type Adapter interface {
	// Type is the registry key ("sandbox", "stripe").
	Type() ProcessorType
	// Capabilities says which method types the processor takes and how cards are entered.
	Capabilities() Capabilities

	// EnsureCustomer returns the processor's customer id for a Portero customer, creating it
	// when req.Existing is empty. The caller stores the id; creating twice for the same
	// Portero customer (two replicas racing) returns the same processor customer.
	EnsureCustomer(ctx context.Context, req CustomerRequest) (string, error)

	// StartSetup begins a hosted card entry: redirect the customer to the returned URL. The
	// customer comes back to req.ReturnURL with the set-up reference in the query parameter
	// SetupReferenceParam, or to req.CancelURL. ErrUnsupported without HostedSetup.
	StartSetup(ctx context.Context, req SetupRequest) (SetupSession, error)
	// CompleteSetup turns a finished hosted set-up into a reusable method. It checks that the
	// set-up belongs to req.Customer; an unfinished one is *Error CodeSetupIncomplete.
	CompleteSetup(ctx context.Context, req SetupCompletion) (Method, error)
	// AttachMethod adopts a method the merchant created at the processor (Stripe's pm_…) for
	// req.Customer. A method of another customer is *Error CodePaymentMethodInUse.
	AttachMethod(ctx context.Context, req AttachRequest) (Method, error)
	// Detach removes a method at the processor. Detaching one already gone is not an error.
	Detach(ctx context.Context, req DetachRequest) error

	// Charge collects req.Amount off-session. A returned error means the outcome is unknown:
	// the caller keeps the attempt open and re-drives it with the same req.IdempotencyKey.
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
	// LookupCharge tells what became of an earlier Charge: by req.Reference when it is known,
	// else by req.IdempotencyKey. ErrNoSuchCharge means the processor has no record of it, so
	// charging again with the same key cannot collect twice.
	LookupCharge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
	// Authenticate starts the customer's part of a charge that answered ChargeRequiresAction.
	// The result is final when no authentication turned out to be needed; otherwise it is
	// ChargeRequiresAction with RedirectURL, a page of the processor that sends the customer
	// back to req.ReturnURL, after which LookupCharge gives the outcome.
	Authenticate(ctx context.Context, req ActionRequest) (ActionResult, error)

	// ParseWebhook verifies a processor's webhook request over its raw body and normalises it.
	// A bad signature or a timestamp out of tolerance gives an error matching
	// ErrWebhookSignature. Events the adapter does not act on have Type EventIgnored.
	ParseWebhook(header http.Header, body []byte) (Event, error)
}

// CardTokenizer is implemented by adapters without hosted set-up: the portal's own form sends
// the card here, and only the token and display fields come back.
type CardTokenizer interface {
	TokenizeCard(ctx context.Context, card CardDetails) (TokenizedCard, error)
}

// PendingConfirmer is implemented by adapters whose pending charges (bank transfer, QR) are
// confirmed by the merchant rather than by a webhook.
type PendingConfirmer interface {
	Confirm(ctx context.Context, reference string) (ChargeResult, error)
}

// ChargeRequiresAction means the customer must authenticate the charge (SCA, 3-D Secure): the
// payment waits for the customer, who completes it from the portal (Adapter.Authenticate).
const ChargeRequiresAction ChargeStatus = "requires_action"

// SetupReferenceParam is the query parameter that carries the set-up reference back to
// SetupRequest.ReturnURL.
const SetupReferenceParam = "setup_ref"

// CustomerRequest identifies a Portero customer to the processor.
type CustomerRequest struct {
	// ID is Portero's customer id; adapters keep it on the processor's customer (metadata).
	ID    string
	Email string
	Name  string
	// Locale is the customer's language ("es", "en") for processor-hosted pages and receipts.
	Locale string
	// Existing is the processor customer id already stored, if any: returned as is.
	Existing string
}

// SetupRequest starts a hosted set-up.
type SetupRequest struct {
	// Customer is the processor's customer id (EnsureCustomer).
	Customer string
	// PorteroCustomer is Portero's customer id, echoed in webhook events about the set-up.
	PorteroCustomer string
	// ReturnURL and CancelURL are the portal's pages the customer comes back to.
	ReturnURL string
	CancelURL string
	// Locale of the processor's page ("es", "en").
	Locale string
	// MethodType is the type being set up (card).
	MethodType MethodType
}

// SetupSession is a started hosted set-up.
type SetupSession struct {
	// RedirectURL is where to send the customer (HTTP 303).
	RedirectURL string
	// Reference identifies the set-up for CompleteSetup.
	Reference string
}

// SetupCompletion names a finished hosted set-up.
type SetupCompletion struct {
	Reference string
	// Customer is the processor customer id the set-up must belong to.
	Customer string
}

// AttachRequest adopts a processor-side method.
type AttachRequest struct {
	Customer string
	// MethodID is the processor's method id (Stripe pm_…, sandbox tok_…).
	MethodID string
}

// DetachRequest removes a processor-side method.
type DetachRequest struct {
	Customer string
	MethodID string
}

// Method is a reusable payment method as a processor holds it. It is everything Portero stores
// about one: the handle and what the customer needs to recognise it — never the number.
type Method struct {
	Type MethodType
	// ProcessorID is the processor's handle for charging; it is never shown to anyone.
	ProcessorID string
	// Card display fields (type card).
	Brand    Brand
	Last4    string
	ExpMonth int
	ExpYear  int
	// Fingerprint identifies a card number across customers without revealing it. Only the
	// portal's own form (the sandbox) sets it; hosted set-ups keep brand, last 4 and expiry
	// and nothing more.
	Fingerprint string
}

// ActionRequest starts a customer's authentication of a charge.
type ActionRequest struct {
	// Reference is the charge's processor reference (ChargeResult.Reference).
	Reference string
	// Customer and Method are what the charge was made with.
	Customer string
	Method   MethodRef
	// ReturnURL is the portal page the processor sends the customer back to.
	ReturnURL string
	// IdempotencyKey is the attempt's key; adapters derive their own keys from it.
	IdempotencyKey string
}

// ActionResult is Authenticate's answer.
type ActionResult struct {
	ChargeResult
	// RedirectURL, when set, is where to send the customer to authenticate.
	RedirectURL string
}

// EventType is a processor-neutral webhook event kind.
type EventType string

// Normalised event types.
const (
	// EventIgnored is a verified event Portero does not act on.
	EventIgnored EventType = "ignored"
	// EventSetupSucceeded: a hosted set-up finished (Reference, PorteroCustomer).
	EventSetupSucceeded EventType = "setup.succeeded"
	// EventChargeSucceeded, EventChargeFailed and EventChargeRequiresAction report a charge's
	// new state (Reference, IdempotencyKey). They are hints: the driver asks LookupCharge for
	// the current state, so their order of arrival does not matter.
	EventChargeSucceeded      EventType = "charge.succeeded"
	EventChargeFailed         EventType = "charge.failed"
	EventChargeRequiresAction EventType = "charge.requires_action"
	// EventMethodDetached: a method was removed at the processor (MethodID).
	EventMethodDetached EventType = "method.detached"
)

// Event is a verified processor webhook event.
type Event struct {
	// ID is the processor's event id, for de-duplication.
	ID   string
	Type EventType
	// ProcessorEventType is the processor's own name for it, for logs.
	ProcessorEventType string
	// Reference is the charge's or set-up's processor reference.
	Reference string
	// IdempotencyKey is the attempt's key, when the processor echoes it back.
	IdempotencyKey string
	// Customer is the processor customer id; PorteroCustomer Portero's, when echoed back.
	Customer        string
	PorteroCustomer string
	// MethodID is the processor method id (EventMethodDetached).
	MethodID string
}

// Sentinel errors of the adapter contract.
var (
	// ErrUnsupported: the processor cannot do this (e.g. hosted set-up on the sandbox).
	ErrUnsupported = errors.New("not supported by this payment processor")
	// ErrNoSuchCharge: LookupCharge found no charge for the key or reference.
	ErrNoSuchCharge = errors.New("the payment processor has no record of this charge")
	// ErrWebhookSignature: a webhook's signature or timestamp did not verify.
	ErrWebhookSignature = errors.New("webhook signature did not verify")
	// ErrUnavailable: the processor could not be reached or failed (5xx, timeout); retry later.
	ErrUnavailable = errors.New("payment processor unavailable")
)

// IsUnavailable reports whether err means the processor could not be reached or failed, so the
// same request may be retried later.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Unavailable wraps a transport or server failure so that IsUnavailable matches it. The cause
// must not carry a credential; adapters scrub it first.
func Unavailable(op string, cause error) error {
	return &unavailableError{op: op, cause: cause}
}

type unavailableError struct {
	op    string
	cause error
}

func (e *unavailableError) Error() string {
	if e.cause == nil {
		return e.op + ": " + ErrUnavailable.Error()
	}
	return e.op + ": " + ErrUnavailable.Error() + ": " + e.cause.Error()
}

func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }
func (e *unavailableError) Unwrap() error        { return e.cause }

// Config is what a Factory gets to build an adapter for one portal.
type Config struct {
	// Secret is the data of the Secret the portal's spec.processor.secretRef names. Keys are
	// the adapter's own (Stripe: secret_key, webhook_secret, optional api_base).
	Secret map[string][]byte
	// HTTPClient makes the processor's API calls; nil means a client with a 30s timeout.
	HTTPClient *http.Client
	// Log receives the adapter's own log lines; never a credential. Nil discards them.
	Log *slog.Logger
	// Now is the clock (webhook timestamps, expiry checks); nil means time.Now.
	Now func() time.Time
}

// Factory builds an adapter from a portal's configuration. A bad configuration (a missing
// key) is an error that names the key and never its value.
type Factory func(Config) (Adapter, error)

// Registry maps processor types to factories: the one place a processor is registered.
type Registry struct {
	factories map[ProcessorType]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[ProcessorType]Factory{}} }

// Register adds a factory. Registering a type twice is a programming error and panics.
func (r *Registry) Register(t ProcessorType, f Factory) {
	if _, dup := r.factories[t]; dup {
		panic("payments: processor type " + string(t) + " registered twice")
	}
	r.factories[t] = f
}

// New builds the adapter of type t.
func (r *Registry) New(t ProcessorType, cfg Config) (Adapter, error) {
	f, ok := r.factories[t]
	if !ok {
		return nil, &UnknownProcessorError{Type: t, Known: r.Types()}
	}
	return f(cfg)
}

// Types lists the registered types, sorted.
func (r *Registry) Types() []ProcessorType {
	out := make([]ProcessorType, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// UnknownProcessorError is Registry.New's answer for a type nobody registered.
type UnknownProcessorError struct {
	Type  ProcessorType
	Known []ProcessorType
}

func (e *UnknownProcessorError) Error() string {
	known := ""
	for i, t := range e.Known {
		if i > 0 {
			known += ", "
		}
		known += string(t)
	}
	return "unknown payment processor type " + string(e.Type) + " (known: " + known + ")"
}
