package charging

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// Recorder is the store the driver records into; the ledger implements it. Every method is one
// transaction and never calls out. The exactly-once argument (see the package doc) rests on
// the conditions each method states, so an implementation must keep them.
//
// Processor identities are kept per processor type: a portal may switch processors live
// (spec.processor is a rule), and the sandbox's customer id or card token means nothing to
// Stripe. Methods and attempts say which processor holds them.
type Recorder interface {
	// Customer returns what the processor needs to know about a customer, with its customer id
	// at that processor if one is stored. ErrNotFound for an unknown customer.
	Customer(ctx context.Context, processor payments.ProcessorType, customerID string) (Customer, error)
	// SetProcessorCustomer stores the customer's id at the processor unless one is stored
	// already, and returns the stored one: the first writer wins, so racing replicas agree.
	SetProcessorCustomer(ctx context.Context, processor payments.ProcessorType, customerID, processorCustomerID string) (string, error)

	// AddMethod appends a processor-held method to the customer's list (the first becomes the
	// preferred one). A method with the same processor and ProcessorID already on the list is
	// returned as it is with added=false, so a set-up completed twice (the customer's return
	// and the processor's webhook) adds it once.
	AddMethod(ctx context.Context, customerID string, processor payments.ProcessorType, m payments.Method) (methodID string, added bool, err error)
	// Method returns one of the customer's methods; ErrNotFound if the customer has none with
	// this id.
	Method(ctx context.Context, customerID, methodID string) (StoredMethod, error)
	// RemoveMethod removes one of the customer's methods; removing one already gone is no error.
	RemoveMethod(ctx context.Context, customerID, methodID string) error
	// RemoveProcessorMethod removes the method with this processor id from whichever customer
	// holds it and returns that customer; removed=false when no one holds it (any more).
	RemoveProcessorMethod(ctx context.Context, processor payments.ProcessorType, processorMethodID string) (customerID string, removed bool, err error)

	// ClaimIncomplete claims a new attempt on each of the customer's incomplete payments that
	// now has a method this processor can charge (one it holds, or one no processor holds), by
	// a conditional update: a payment is claimed by one caller only.
	ClaimIncomplete(ctx context.Context, processor payments.ProcessorType, customerID string) ([]Attempt, error)
	// ClaimStale takes over at most limit attempts left processing for longer than olderThan,
	// each by a compare-and-set on its last update, so two sweepers never take the same one.
	// The attempt keeps its number (and so its idempotency key) and its method, even if the
	// method was removed since.
	ClaimStale(ctx context.Context, olderThan time.Duration, limit int) ([]Attempt, error)
	// FindAttempt returns the latest attempt matching ref (see AttemptRef); ErrNotFound if none.
	FindAttempt(ctx context.Context, ref AttemptRef) (Attempt, error)
	// RecordResult records the processor's answer for an attempt. It changes the payment only
	// if a.Number is still the payment's current attempt and the move is allowed:
	//
	//	processing      → any result
	//	requires_action → succeeded, failed, pending
	//	pending         → succeeded, failed
	//	succeeded, failed → nothing
	//
	// so of the synchronous answer, a re-drive, the customer's return and the processor's
	// webhooks, the first final answer wins and the rest change nothing (changed=false).
	RecordResult(ctx context.Context, a Attempt, res payments.ChargeResult) (changed bool, err error)

	// EventSeen reports whether the processor's event was handled already.
	EventSeen(ctx context.Context, processor payments.ProcessorType, eventID string) (bool, error)
	// MarkEvent records a handled event (id, type) so that a redelivery is skipped.
	MarkEvent(ctx context.Context, processor payments.ProcessorType, eventID string, eventType string) error
}

// ErrNotFound is a Recorder's answer for a customer or attempt it does not hold.
var ErrNotFound = errors.New("not found")

// Customer is what the driver needs of a Portero customer.
type Customer struct {
	ID     string
	Email  string
	Name   string
	Locale string
	// ProcessorCustomer is the processor's id for the customer; "" until one is stored.
	ProcessorCustomer string
}

// StoredMethod is a method on a customer's list.
type StoredMethod struct {
	ID string
	// Processor is the processor that holds it; "" for methods no processor holds (a CBU the
	// portal validated itself).
	Processor payments.ProcessorType
	payments.Method
}

// AttemptStatus is the state of a charge attempt (and of its payment while it is current).
type AttemptStatus string

// Attempt states.
const (
	AttemptProcessing     AttemptStatus = "processing"
	AttemptRequiresAction AttemptStatus = "requires_action"
	AttemptPending        AttemptStatus = "pending"
	AttemptSucceeded      AttemptStatus = "succeeded"
	AttemptFailed         AttemptStatus = "failed"
)

// Final reports whether nothing can change the attempt any more.
func (s AttemptStatus) Final() bool { return s == AttemptSucceeded || s == AttemptFailed }

// StatusOf is the attempt state a processor's result moves an attempt to.
func StatusOf(res payments.ChargeResult) AttemptStatus {
	switch res.Status {
	case payments.ChargeSucceeded:
		return AttemptSucceeded
	case payments.ChargePending:
		return AttemptPending
	case payments.ChargeRequiresAction:
		return AttemptRequiresAction
	}
	return AttemptFailed
}

// Attempt is one try at charging a payment, as the Recorder hands it out.
type Attempt struct {
	PaymentID  string
	CustomerID string
	// Number counts the payment's attempts from 1; with PaymentID it makes the idempotency key.
	Number      int
	Amount      int64
	Currency    string
	Description string
	// Method is what the attempt charges (Token: the processor method id for cards).
	Method payments.MethodRef
	// Processor holds Method (the attempt's processor); "" for a method no processor holds.
	Processor payments.ProcessorType
	// ProcessorCustomer is the customer's id at Processor when stored; the driver fills it in
	// otherwise.
	ProcessorCustomer string
	Status            AttemptStatus
	// Reference is the processor's id for the charge, once known.
	Reference string
}

// IdempotencyKey is the attempt's key at the processor: stable for the attempt, so every call
// about it — the first, retries, re-drives — is one charge to a processor that honours keys.
// It is the key the ledger has always used, so attempts started before the driver keep theirs.
func (a Attempt) IdempotencyKey() string { return a.PaymentID + "/" + strconv.Itoa(a.Number) }

// AttemptRef finds an attempt: by PaymentID (its current attempt; CustomerID, when set, must
// own it), else by the processor Reference, else by IdempotencyKey.
type AttemptRef struct {
	PaymentID      string
	CustomerID     string
	Reference      string
	IdempotencyKey string
}
