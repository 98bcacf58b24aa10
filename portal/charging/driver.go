package charging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// DefaultCallTimeout bounds one processor call. Redrive's staleAfter must exceed it, so that a
// charge still in flight is never taken over.
const DefaultCallTimeout = time.Minute

// Options configure a Driver.
type Options struct {
	// Adapter is the portal's processor.
	Adapter payments.Adapter
	// Recorder is where outcomes are recorded (the ledger).
	Recorder Recorder
	// Log receives the driver's lines; nil discards them.
	Log *slog.Logger
	// CallTimeout bounds one processor call; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// Observer hears of every processor call (metrics); nil means none.
	Observer Observer
}

// Driver drives one portal's processor. It is safe for concurrent use.
type Driver struct {
	adapter     payments.Adapter
	rec         Recorder
	log         *slog.Logger
	callTimeout time.Duration
	observer    Observer
}

func (d *Driver) charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	return observe(d, "charge", func() (payments.ChargeResult, error) { return d.adapter.Charge(ctx, req) })
}

func (d *Driver) lookupCharge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	return observe(d, "lookup_charge", func() (payments.ChargeResult, error) { return d.adapter.LookupCharge(ctx, req) })
}

// New returns a driver.
func New(o Options) (*Driver, error) {
	if o.Adapter == nil || o.Recorder == nil {
		return nil, errors.New("charging: an adapter and a recorder are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	return &Driver{adapter: o.Adapter, rec: o.Recorder, callTimeout: o.CallTimeout, observer: o.Observer,
		log: o.Log.With("processor", string(o.Adapter.Type()))}, nil
}

// Adapter returns the processor the driver drives.
func (d *Driver) Adapter() payments.Adapter { return d.adapter }

// ErrOtherProcessor is the answer for an attempt another processor holds (the portal switched
// processors after it began).
var ErrOtherProcessor = errors.New("the attempt belongs to another processor")

// ErrNotWaiting is the answer to authenticating or confirming a payment that does not wait for
// it (it succeeded already, say).
var ErrNotWaiting = errors.New("the payment is not waiting for this")

// Result is what a charge-driving call left recorded.
type Result struct {
	PaymentID string
	Attempt   int
	// Status is the attempt's state after the call.
	Status AttemptStatus
	// Recorded is true when this call recorded the outcome; false when an earlier answer had
	// (or, with Unknown, when there was none to record).
	Recorded bool
	// Unknown is true when the processor's answer was lost: the attempt stays processing and
	// Redrive settles it with the same idempotency key.
	Unknown bool
	// Reference is the processor's id for the charge, once known.
	Reference string
	// Failure says why a failed charge was refused.
	Failure *payments.Error
	// Instructions tell the customer how to pay a pending charge.
	Instructions string
}

// MethodAdded is the outcome of adding a method.
type MethodAdded struct {
	// MethodID is the method's id on the customer's list.
	MethodID string
	Method   payments.Method
	// Added is false when the method was on the list already (a set-up completed twice).
	Added bool
	// Settled are the incomplete payments the new method let proceed.
	Settled []Result
}

// SetupInput are the portal pages a hosted set-up returns to.
type SetupInput struct {
	// ReturnURL receives the customer with the set-up reference in the query parameter
	// payments.SetupReferenceParam; pass that to CompleteSetup.
	ReturnURL string
	CancelURL string
	// Locale of the processor's page ("es", "en").
	Locale string
}

// processorCustomer returns the customer with its processor id, creating it at the processor
// the first time (lazily: customers who never add a processor-held method never get one).
func (d *Driver) processorCustomer(ctx context.Context, customerID string) (Customer, error) {
	c, err := d.rec.Customer(ctx, d.adapter.Type(), customerID)
	if err != nil {
		return Customer{}, fmt.Errorf("read customer %s: %w", customerID, err)
	}
	if c.ProcessorCustomer != "" {
		return c, nil
	}
	id, err := observe(d, "ensure_customer", func() (string, error) {
		return d.adapter.EnsureCustomer(ctx, payments.CustomerRequest{ID: c.ID, Email: c.Email, Name: c.Name, Locale: c.Locale})
	})
	if err != nil {
		return Customer{}, fmt.Errorf("create customer %s at %s: %w", customerID, d.adapter.Type(), err)
	}
	if c.ProcessorCustomer, err = d.rec.SetProcessorCustomer(ctx, d.adapter.Type(), customerID, id); err != nil {
		return Customer{}, fmt.Errorf("store processor customer of %s: %w", customerID, err)
	}
	return c, nil
}

// StartSetup begins a hosted card set-up for the customer: redirect the customer (303) to the
// session's RedirectURL. Nothing is recorded until the set-up completes.
func (d *Driver) StartSetup(ctx context.Context, customerID string, in SetupInput) (payments.SetupSession, error) {
	if !d.adapter.Capabilities().HostedSetup {
		return payments.SetupSession{}, fmt.Errorf("start set-up: %w", payments.ErrUnsupported)
	}
	c, err := d.processorCustomer(ctx, customerID)
	if err != nil {
		return payments.SetupSession{}, err
	}
	s, err := observe(d, "start_setup", func() (payments.SetupSession, error) {
		return d.adapter.StartSetup(ctx, payments.SetupRequest{Customer: c.ProcessorCustomer, PorteroCustomer: customerID,
			ReturnURL: in.ReturnURL, CancelURL: in.CancelURL, Locale: in.Locale, MethodType: payments.MethodCard})
	})
	if err != nil {
		return payments.SetupSession{}, fmt.Errorf("start set-up for customer %s: %w", customerID, err)
	}
	return s, nil
}

// CompleteSetup adds the method of a finished hosted set-up (the reference the customer came
// back with) and lets the customer's incomplete payments proceed. Completing the same set-up
// again (the webhook after the return, a reload) adds nothing.
func (d *Driver) CompleteSetup(ctx context.Context, customerID, reference string) (MethodAdded, error) {
	if reference == "" {
		return MethodAdded{}, &payments.Error{Code: payments.CodeSetupIncomplete}
	}
	c, err := d.rec.Customer(ctx, d.adapter.Type(), customerID)
	if err != nil {
		return MethodAdded{}, fmt.Errorf("read customer %s: %w", customerID, err)
	}
	if c.ProcessorCustomer == "" {
		// No set-up was ever started for this customer, so the reference cannot be theirs.
		return MethodAdded{}, &payments.Error{Code: payments.CodeSetupIncomplete}
	}
	m, err := observe(d, "complete_setup", func() (payments.Method, error) {
		return d.adapter.CompleteSetup(ctx, payments.SetupCompletion{Reference: reference, Customer: c.ProcessorCustomer})
	})
	if err != nil {
		return MethodAdded{}, fmt.Errorf("complete set-up for customer %s: %w", customerID, err)
	}
	return d.addMethod(ctx, customerID, m)
}

// AttachProcessorMethod adds a method the merchant created at the processor (Stripe's pm_…).
func (d *Driver) AttachProcessorMethod(ctx context.Context, customerID, processorMethodID string) (MethodAdded, error) {
	if !validProcessorID(processorMethodID) {
		return MethodAdded{}, &payments.Error{Code: payments.CodeInvalidPaymentMethod, Field: "processor_payment_method"}
	}
	c, err := d.processorCustomer(ctx, customerID)
	if err != nil {
		return MethodAdded{}, err
	}
	m, err := observe(d, "attach_method", func() (payments.Method, error) {
		return d.adapter.AttachMethod(ctx, payments.AttachRequest{Customer: c.ProcessorCustomer, MethodID: processorMethodID})
	})
	if err != nil {
		return MethodAdded{}, fmt.Errorf("attach method for customer %s: %w", customerID, err)
	}
	return d.addMethod(ctx, customerID, m)
}

// validProcessorID accepts what processors use as ids: printable ASCII without spaces, short.
func validProcessorID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// AddCard adds a card typed in the portal's own form, on processors without hosted set-up.
// The card goes to the processor to be tokenized and is then forgotten.
func (d *Driver) AddCard(ctx context.Context, customerID string, card payments.CardDetails) (MethodAdded, error) {
	tok, ok := d.adapter.(payments.CardTokenizer)
	if !ok || d.adapter.Capabilities().HostedSetup {
		return MethodAdded{}, fmt.Errorf("add a typed card: %w", payments.ErrUnsupported)
	}
	if _, err := d.rec.Customer(ctx, d.adapter.Type(), customerID); err != nil {
		return MethodAdded{}, fmt.Errorf("read customer %s: %w", customerID, err)
	}
	t, err := observe(d, "tokenize_card", func() (payments.TokenizedCard, error) { return tok.TokenizeCard(ctx, card) })
	if err != nil {
		return MethodAdded{}, fmt.Errorf("tokenize card for customer %s: %w", customerID, err)
	}
	return d.addMethod(ctx, customerID, payments.Method{Type: payments.MethodCard, ProcessorID: t.Token,
		Brand: t.Brand, Last4: t.Last4, ExpMonth: t.ExpMonth, ExpYear: t.ExpYear, Fingerprint: t.Fingerprint})
}

func (d *Driver) addMethod(ctx context.Context, customerID string, m payments.Method) (MethodAdded, error) {
	if !d.adapter.Capabilities().Takes(m.Type) {
		return MethodAdded{}, &payments.Error{Code: payments.CodeUnsupportedMethod, Field: "type"}
	}
	// The processor holds the method now: record it even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	id, added, err := d.rec.AddMethod(ctx, customerID, d.adapter.Type(), m)
	if err != nil {
		return MethodAdded{}, fmt.Errorf("record method of customer %s: %w", customerID, err)
	}
	out := MethodAdded{MethodID: id, Method: m, Added: added}
	if !added {
		return out, nil
	}
	d.log.Info("payment method added", "customer", customerID, "payment_method", id, "type", m.Type)
	// The method is recorded whatever happens next; a failed settlement leaves the payments
	// incomplete for the next method change or sweep, as the ledger always has.
	out.Settled, err = d.SettleIncomplete(ctx, customerID)
	if err != nil {
		d.log.Error("settle incomplete payments after a method was added", "customer", customerID, "err", err)
	}
	return out, nil
}

// RemoveMethod removes one of the customer's methods: first at the processor, then from the
// list. If the processor cannot be reached nothing changes and the error says to retry
// (payments.IsUnavailable); if the list write fails the retry finds the processor done.
func (d *Driver) RemoveMethod(ctx context.Context, customerID, methodID string) error {
	m, err := d.rec.Method(ctx, customerID, methodID)
	if err != nil {
		return fmt.Errorf("read method %s of customer %s: %w", methodID, customerID, err)
	}
	if m.ProcessorID != "" && m.Processor == d.adapter.Type() {
		c, err := d.rec.Customer(ctx, d.adapter.Type(), customerID)
		if err != nil {
			return fmt.Errorf("read customer %s: %w", customerID, err)
		}
		if _, err := observe(d, "detach", func() (struct{}, error) {
			return struct{}{}, d.adapter.Detach(ctx, payments.DetachRequest{Customer: c.ProcessorCustomer, MethodID: m.ProcessorID})
		}); err != nil {
			return fmt.Errorf("detach method %s of customer %s: %w", methodID, customerID, err)
		}
	}
	if err := d.rec.RemoveMethod(context.WithoutCancel(ctx), customerID, methodID); err != nil {
		return fmt.Errorf("remove method %s of customer %s: %w", methodID, customerID, err)
	}
	return nil
}

// request builds the processor request for an attempt, creating the processor customer when
// none is stored yet.
func (d *Driver) request(ctx context.Context, a *Attempt) (payments.ChargeRequest, error) {
	if a.Processor != "" && a.Processor != d.adapter.Type() {
		// The portal switched processors after this attempt began: only its own processor can
		// tell what became of it, so it is left for the operator rather than charged elsewhere.
		return payments.ChargeRequest{}, fmt.Errorf("%w: attempt %s/%d belongs to processor %s, not %s",
			ErrOtherProcessor, a.PaymentID, a.Number, a.Processor, d.adapter.Type())
	}
	if a.ProcessorCustomer == "" {
		c, err := d.processorCustomer(ctx, a.CustomerID)
		if err != nil {
			return payments.ChargeRequest{}, err
		}
		a.ProcessorCustomer = c.ProcessorCustomer
	}
	return payments.ChargeRequest{
		IdempotencyKey: a.IdempotencyKey(),
		Amount:         a.Amount,
		Currency:       a.Currency,
		Description:    a.Description,
		Method:         a.Method,
		Customer:       a.ProcessorCustomer,
		Reference:      a.Reference,
	}, nil
}

// Charge charges a claimed attempt and records the outcome. It runs outside any transaction
// and is driven to the end even if the caller goes away (an abandoned claim would wait for
// Redrive). A lost answer is not an error: the Result says Unknown and the attempt stays
// processing for Redrive.
func (d *Driver) Charge(ctx context.Context, a Attempt) (Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.callTimeout)
	defer cancel()
	req, err := d.request(ctx, &a)
	if err != nil {
		// Nothing reached the processor's charge endpoint; Redrive tries again.
		d.log.Error("charge not attempted; payment left processing", "payment", a.PaymentID, "attempt", a.Number, "err", err)
		return d.unknown(a), nil
	}
	res, err := d.charge(ctx, req)
	if err != nil {
		d.log.Error("charge outcome unknown; payment left processing", "payment", a.PaymentID, "attempt", a.Number, "err", err)
		return d.unknown(a), nil
	}
	return d.record(ctx, a, res)
}

func (d *Driver) unknown(a Attempt) Result {
	return Result{PaymentID: a.PaymentID, Attempt: a.Number, Status: AttemptProcessing, Unknown: true, Reference: a.Reference}
}

// record writes a processor's answer for an attempt, even if ctx was canceled meanwhile: money
// may have moved, so the record must be written.
func (d *Driver) record(ctx context.Context, a Attempt, res payments.ChargeResult) (Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if res.Status == payments.ChargeFailed && res.Failure == nil {
		res.Failure = &payments.Error{Code: payments.CodeProcessingError}
	}
	changed, err := d.rec.RecordResult(ctx, a, res)
	if err != nil {
		return Result{}, fmt.Errorf("record charge of payment %s attempt %d: %w", a.PaymentID, a.Number, err)
	}
	out := Result{PaymentID: a.PaymentID, Attempt: a.Number, Recorded: changed, Reference: res.Reference}
	if changed {
		out.Status, out.Failure, out.Instructions = StatusOf(res), res.Failure, res.Instructions
		code := ""
		if res.Failure != nil {
			code = res.Failure.Code
		}
		d.log.Info("payment charged", "customer", a.CustomerID, "payment", a.PaymentID, "attempt", a.Number,
			"method_type", a.Method.Type, "status", out.Status, "failure_code", code)
		return out, nil
	}
	// An earlier answer was recorded: report what stands.
	cur, err := d.rec.FindAttempt(ctx, AttemptRef{PaymentID: a.PaymentID})
	if err != nil {
		return Result{}, fmt.Errorf("read payment %s: %w", a.PaymentID, err)
	}
	out.Status, out.Reference = cur.Status, cur.Reference
	return out, nil
}

// SettleIncomplete charges the customer's incomplete payments if the customer now has a usable
// method, each exactly once however many callers race (each payment is claimed by one). One
// payment's failure does not strand the others; the errors are joined.
func (d *Driver) SettleIncomplete(ctx context.Context, customerID string) ([]Result, error) {
	atts, err := d.rec.ClaimIncomplete(ctx, d.adapter.Type(), customerID)
	if err != nil {
		return nil, fmt.Errorf("claim incomplete payments of customer %s: %w", customerID, err)
	}
	var out []Result
	var errs []error
	for _, a := range atts {
		r, err := d.Charge(ctx, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// Redrive settles attempts whose outcome was lost (left processing longer than staleAfter, which
// must exceed the call timeout). For each it asks the processor what became of the attempt's
// key and charges again, with the same key, only if the processor has no record of it. An
// attempt the processor still does not answer for stays processing for the next sweep. It
// returns how many attempts it took over; run it periodically.
func (d *Driver) Redrive(ctx context.Context, staleAfter time.Duration) (int, error) {
	atts, err := d.rec.ClaimStale(ctx, staleAfter, 100)
	if err != nil {
		return 0, fmt.Errorf("claim stale attempts: %w", err)
	}
	var errs []error
	for _, a := range atts {
		if ctx.Err() != nil {
			break
		}
		d.log.Warn("re-driving an attempt whose outcome is unknown", "payment", a.PaymentID, "attempt", a.Number)
		if _, err := d.redrive(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	return len(atts), errors.Join(errs...)
}

func (d *Driver) redrive(ctx context.Context, a Attempt) (Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.callTimeout)
	defer cancel()
	req, err := d.request(ctx, &a)
	if err != nil {
		d.log.Error("re-drive not attempted; payment left processing", "payment", a.PaymentID, "attempt", a.Number, "err", err)
		return d.unknown(a), nil
	}
	res, err := d.lookupCharge(ctx, req)
	if errors.Is(err, payments.ErrNoSuchCharge) {
		res, err = d.charge(ctx, req)
	}
	if err != nil {
		d.log.Error("re-drive outcome unknown; payment left processing", "payment", a.PaymentID, "attempt", a.Number, "err", err)
		return d.unknown(a), nil
	}
	return d.record(ctx, a, res)
}

// Authenticate starts the customer's authentication of a payment that waits for it (the bank
// asked for 3-D Secure on an off-session charge). Redirect the customer to the returned URL;
// they come back to returnURL, where FinishAuthentication records the outcome. An empty URL
// means no authentication was needed after all and the Result is final.
func (d *Driver) Authenticate(ctx context.Context, customerID, paymentID, returnURL string) (string, Result, error) {
	a, err := d.rec.FindAttempt(ctx, AttemptRef{PaymentID: paymentID, CustomerID: customerID})
	if err != nil {
		return "", Result{}, fmt.Errorf("read payment %s: %w", paymentID, err)
	}
	if a.Status != AttemptRequiresAction {
		return "", Result{}, fmt.Errorf("authenticate payment %s (%s): %w", paymentID, a.Status, ErrNotWaiting)
	}
	req, err := d.request(ctx, &a)
	if err != nil {
		return "", Result{}, err
	}
	ar, err := observe(d, "authenticate", func() (payments.ActionResult, error) {
		return d.adapter.Authenticate(ctx, payments.ActionRequest{Reference: a.Reference, Customer: req.Customer,
			Method: a.Method, ReturnURL: returnURL, IdempotencyKey: req.IdempotencyKey})
	})
	if err != nil {
		return "", Result{}, fmt.Errorf("authenticate payment %s: %w", paymentID, err)
	}
	if ar.RedirectURL != "" {
		return ar.RedirectURL, Result{PaymentID: a.PaymentID, Attempt: a.Number, Status: AttemptRequiresAction, Reference: a.Reference}, nil
	}
	r, err := d.record(ctx, a, ar.ChargeResult)
	return "", r, err
}

// FinishAuthentication records the outcome of a payment the customer came back from
// authenticating. Calling it again (a reload) or after the webhook settled it changes nothing.
func (d *Driver) FinishAuthentication(ctx context.Context, customerID, paymentID string) (Result, error) {
	a, err := d.rec.FindAttempt(ctx, AttemptRef{PaymentID: paymentID, CustomerID: customerID})
	if err != nil {
		return Result{}, fmt.Errorf("read payment %s: %w", paymentID, err)
	}
	return d.settle(ctx, a)
}

// settle asks the processor for an attempt's current state and records it.
func (d *Driver) settle(ctx context.Context, a Attempt) (Result, error) {
	cur := Result{PaymentID: a.PaymentID, Attempt: a.Number, Status: a.Status, Reference: a.Reference}
	if a.Status.Final() {
		return cur, nil
	}
	req, err := d.request(ctx, &a)
	if err != nil {
		return Result{}, err
	}
	res, err := d.lookupCharge(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("look up payment %s attempt %d: %w", a.PaymentID, a.Number, err)
	}
	if StatusOf(res) == a.Status {
		return cur, nil
	}
	return d.record(ctx, a, res)
}

// ConfirmPending settles a pending payment (bank transfer, QR) once the merchant says the money
// arrived, on processors whose pending charges are confirmed that way. Confirming a payment that
// succeeded already returns it unchanged.
func (d *Driver) ConfirmPending(ctx context.Context, paymentID string) (Result, error) {
	conf, ok := d.adapter.(payments.PendingConfirmer)
	if !ok {
		return Result{}, fmt.Errorf("confirm payment %s: %w", paymentID, payments.ErrUnsupported)
	}
	a, err := d.rec.FindAttempt(ctx, AttemptRef{PaymentID: paymentID})
	if err != nil {
		return Result{}, fmt.Errorf("read payment %s: %w", paymentID, err)
	}
	switch a.Status {
	case AttemptSucceeded:
		return Result{PaymentID: a.PaymentID, Attempt: a.Number, Status: a.Status, Reference: a.Reference}, nil
	case AttemptPending:
	default:
		return Result{}, fmt.Errorf("confirm payment %s (%s): %w", paymentID, a.Status, ErrNotWaiting)
	}
	res, err := observe(d, "confirm", func() (payments.ChargeResult, error) { return conf.Confirm(ctx, a.Reference) })
	if err != nil {
		return Result{}, fmt.Errorf("confirm payment %s with %s: %w", paymentID, d.adapter.Type(), err)
	}
	if res.Reference == "" {
		res.Reference = a.Reference
	}
	return d.record(ctx, a, res)
}
