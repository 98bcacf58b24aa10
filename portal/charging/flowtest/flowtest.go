// Package flowtest puts a real charging driver in front of the ledger, for tests of the packages
// that make payments and payment methods as fixtures (the merchant API, the customer pages, the
// billing loops). The ledger only records; what used to be one ledger call that charged is a
// ledger call that records and claims, then the driver's charge of the claim — as the portal
// does it. Flow's methods keep the shape the ledger's had, so a fixture reads as what it sets up:
// "create a payment" means create, claim, charge and record. (The ledger's own tests have the
// same helper inside the package; they cannot import this one.)
package flowtest

import (
	"context"
	"errors"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// Flow is a ledger with its charging driver.
type Flow struct {
	*ledger.Store
	Driver *charging.Driver
}

// New puts a driver for adapter in front of the ledger.
func New(st *ledger.Store, adapter payments.Adapter) *Flow {
	d, err := charging.New(charging.Options{Adapter: adapter, Recorder: st})
	if err != nil {
		panic(err)
	}
	return &Flow{Store: st, Driver: d}
}

// NewSandbox is New with a sandbox under secret (at least payments.MinSandboxSecretLen bytes) on
// clock now (nil: time.Now).
func NewSandbox(st *ledger.Store, secret []byte, now func() time.Time) (*Flow, error) {
	a, err := sandbox.New(secret, now)
	if err != nil {
		return nil, err
	}
	return New(st, a), nil
}

// Processors is the flow's driver as a portal's processor that never changes.
func (f *Flow) Processors() Fixed { return Fixed{f.Driver} }

// Fixed is a portal processor that never changes (web.Processors, api.Processors,
// billing.Processors).
type Fixed struct{ D *charging.Driver }

// Driver implements the Processors interfaces.
func (p Fixed) Driver(context.Context) (*charging.Driver, error) { return p.D, nil }

func (f *Flow) processor() payments.ProcessorType { return f.Driver.Adapter().Type() }

// charged charges a claimed attempt (if any) and returns the payment as recorded after it.
func (f *Flow) charged(ctx context.Context, p ledger.Payment, a *charging.Attempt) (ledger.Payment, error) {
	if a == nil {
		return p, nil
	}
	if _, err := f.Driver.Charge(ctx, *a); err != nil {
		return ledger.Payment{}, err
	}
	return f.Store.GetPayment(context.WithoutCancel(ctx), p.ID)
}

// CreatePayment records a payment and charges it through the flow's processor.
func (f *Flow) CreatePayment(ctx context.Context, in ledger.NewPayment) (ledger.Payment, error) {
	if in.Processor == "" {
		in.Processor = f.processor()
	}
	p, a, err := f.Store.CreatePayment(ctx, in)
	if err != nil {
		return ledger.Payment{}, err
	}
	return f.charged(ctx, p, a)
}

// Method is what a customer or merchant hands the portal to add a payment method: a card goes
// to the processor (charging.Driver.AddCard) and only its token reaches the ledger; anything
// else is recorded by the ledger.
type Method struct {
	Type    payments.MethodType
	Card    *payments.CardDetails
	Account string
	Wallet  string
	Limit   int
}

// AddPaymentMethod adds a method and lets the customer's incomplete payments proceed.
func (f *Flow) AddPaymentMethod(ctx context.Context, customerID string, in Method) (ledger.PaymentMethod, error) {
	if in.Card == nil {
		m, err := f.Store.AddPaymentMethod(ctx, customerID, ledger.NewPaymentMethod{Type: in.Type, Account: in.Account, Wallet: in.Wallet, Limit: in.Limit})
		if err == nil {
			f.settle(ctx, customerID)
		}
		return m, err
	}
	if err := f.Store.CheckMethodLimit(ctx, customerID, in.Limit); err != nil {
		return ledger.PaymentMethod{}, err
	}
	added, err := f.Driver.AddCard(ledger.WithMethodLimit(ctx, in.Limit), customerID, *in.Card)
	if err != nil {
		return ledger.PaymentMethod{}, err
	}
	return f.Store.GetPaymentMethod(context.WithoutCancel(ctx), customerID, added.MethodID)
}

func (f *Flow) settle(ctx context.Context, customerID string) {
	_, _ = f.Driver.SettleIncomplete(context.WithoutCancel(ctx), customerID)
}

// MakePreferred reorders, then settles as the portal does after a method change.
func (f *Flow) MakePreferred(ctx context.Context, customerID, methodID string) ([]ledger.PaymentMethod, error) {
	ms, err := f.Store.MakePreferred(ctx, customerID, methodID)
	if err == nil {
		f.settle(ctx, customerID)
	}
	return ms, err
}

// ReorderPaymentMethods reorders, then settles as the portal does after a method change.
func (f *Flow) ReorderPaymentMethods(ctx context.Context, customerID string, ids []string) ([]ledger.PaymentMethod, error) {
	ms, err := f.Store.ReorderPaymentMethods(ctx, customerID, ids)
	if err == nil {
		f.settle(ctx, customerID)
	}
	return ms, err
}

// RemovePaymentMethod asks the ledger, detaches at the processor, then records the removal.
func (f *Flow) RemovePaymentMethod(ctx context.Context, customerID, methodID string) error {
	if err := f.Store.CheckRemovePaymentMethod(ctx, customerID, methodID); err != nil {
		return err
	}
	return f.Driver.RemoveMethod(ctx, customerID, methodID)
}

// RetryPayment claims a new attempt on a failed payment and charges it.
func (f *Flow) RetryPayment(ctx context.Context, customerID, paymentID string) (ledger.Payment, error) {
	p, a, err := f.Store.RetryPayment(ctx, customerID, paymentID, f.processor())
	if err != nil {
		return ledger.Payment{}, err
	}
	return f.charged(ctx, p, a)
}

// ConfirmPayment confirms a pending payment through the driver, as the merchant API does.
func (f *Flow) ConfirmPayment(ctx context.Context, paymentID string) (ledger.Payment, error) {
	_, err := f.Driver.ConfirmPending(ctx, paymentID)
	if errors.Is(err, charging.ErrNotWaiting) {
		return ledger.Payment{}, ledger.ErrPaymentState
	}
	if err != nil {
		return ledger.Payment{}, err
	}
	return f.Store.GetPayment(ctx, paymentID)
}

// CreateSubscription creates a subscription and charges its first period.
func (f *Flow) CreateSubscription(ctx context.Context, in ledger.NewSubscription) (ledger.Subscription, ledger.Payment, error) {
	if in.Processor == "" {
		in.Processor = f.processor()
	}
	c, err := f.Store.CreateSubscriptionIdempotent(ctx, in)
	if err != nil || c.Claim == nil {
		return c.Subscription, c.InitialPayment, err
	}
	if c.InitialPayment, err = f.charged(ctx, c.InitialPayment, c.Claim); err != nil {
		return ledger.Subscription{}, ledger.Payment{}, err
	}
	sub, err := f.Store.GetSubscription(ctx, c.Subscription.ID)
	return sub, c.InitialPayment, err
}

// RenewDue renews and charges the renewals; Payments are as recorded after their charge.
func (f *Flow) RenewDue(ctx context.Context, now time.Time) (ledger.RenewalResult, error) {
	res, err := f.Store.RenewDue(ctx, now, f.processor())
	for _, a := range res.Claims {
		if _, cerr := f.Driver.Charge(ctx, a); cerr != nil {
			return res, cerr
		}
	}
	for i, p := range res.Payments {
		got, gerr := f.Store.GetPayment(ctx, p.ID)
		if gerr != nil {
			return res, gerr
		}
		res.Payments[i] = got
	}
	return res, err
}

// ChangeSubscription makes a change and charges what it bills at once, as the portal does.
func (f *Flow) ChangeSubscription(ctx context.Context, customerID, id string, ch ledger.SubscriptionChange) (ledger.SubscriptionChangeResult, error) {
	if ch.Processor == "" {
		ch.Processor = f.processor()
	}
	res, err := f.Store.ChangeSubscription(ctx, customerID, id, ch)
	if err != nil || res.Claim == nil {
		return res, err
	}
	res.Payment, err = f.charged(ctx, res.Payment, res.Claim)
	return res, err
}
