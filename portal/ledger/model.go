package ledger

import (
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// Currency is an ISO 4217 code. Amounts are int64 minor units of it (centavos for ARS).
type Currency string

// Supported currencies. Argentina first; others are refused with ErrUnsupportedCurrency until
// their processors and rounding rules are in place.
const (
	ARS Currency = "ARS"
	USD Currency = "USD"
)

// ParseCurrency accepts a supported ISO 4217 code in any letter case.
func ParseCurrency(s string) (Currency, error) {
	switch c := Currency(strings.ToUpper(strings.TrimSpace(s))); c {
	case ARS, USD:
		return c, nil
	}
	return "", newError(KindInvalid, CodeUnsupportedCurrency, "currency", nil)
}

// MinorUnits is the number of decimal places of the currency's minor unit.
func (c Currency) MinorUnits() int { return 2 }

// TaxCondition is the customer's VAT status before AFIP (condición frente al IVA).
type TaxCondition string

// Tax conditions. The empty value means "not given".
const (
	ConsumidorFinal      TaxCondition = "consumidor_final"
	ResponsableInscripto TaxCondition = "responsable_inscripto"
	Monotributista       TaxCondition = "monotributista"
	Exento               TaxCondition = "exento"
)

func (t TaxCondition) valid() bool {
	switch t {
	case "", ConsumidorFinal, ResponsableInscripto, Monotributista, Exento:
		return true
	}
	return false
}

// Address is a postal address for invoices.
type Address struct {
	Line1      string
	Line2      string
	City       string
	Province   string
	PostalCode string
	// Country is an ISO 3166-1 alpha-2 code; empty defaults to "AR".
	Country string
}

// BillingProfile is what goes on the customer's invoices.
type BillingProfile struct {
	LegalName string
	// TaxID is a CUIT/CUIL, stored as 11 digits; input may carry dashes or spaces.
	TaxID        string
	TaxCondition TaxCondition
	Address      Address
}

// Customer is a merchant's customer. Several customers may share an e-mail address (a person
// with a personal and a company account); the id is the identity.
type Customer struct {
	ID    string
	Email string
	Name  string
	// Billing is the invoicing profile.
	Billing BillingProfile
	// Version changes with every write to the customer or to anything the customer owns
	// (methods, subscriptions, payments and their attempts): the database's triggers keep it, so
	// what was derived from a customer's data stays valid while the version read with it is
	// unchanged. It only grows.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PaymentMethod is one entry of a customer's ordered list. Position 0 is the preferred method.
type PaymentMethod struct {
	ID         string
	CustomerID string
	Position   int
	Type       payments.MethodType
	// Processor holds the method (a card's token is its handle); "" for methods no processor
	// holds (CBU, CVU, transfer, QR, wallet), which any processor taking the type can charge.
	Processor payments.ProcessorType
	// Card fields (type card): what the processor returned when tokenizing; never the number.
	Card *CardInfo
	// Account is the CBU (direct_debit) or CVU (cvu), digits only; show MaskedAccount instead.
	Account string
	// Wallet names the wallet provider (type wallet).
	Wallet    string
	CreatedAt time.Time
	// processorID is the handle of a processor-held method other than a card (a card's is
	// Card.Token); like a token it can charge, so it is never exported.
	processorID string
}

// handle is the processor's handle for charging the method; "" for methods no processor holds.
func (m PaymentMethod) handle() string {
	if m.Card != nil {
		return m.Card.Token
	}
	return m.processorID
}

// CardInfo is the stored, non-sensitive description of a tokenized card.
type CardInfo struct {
	Brand       payments.Brand
	Last4       string
	ExpMonth    int
	ExpYear     int
	Fingerprint string
	// Token is the processor's handle; it can charge the card, so it is never shown to anyone.
	Token string
}

// MaskedAccount is the CBU/CVU with all but the last four digits hidden.
func (m PaymentMethod) MaskedAccount() string {
	if m.Account == "" {
		return ""
	}
	return payments.MaskAccount(m.Account)
}

// Summary is a short human label ("Visa •••• 4242", "CBU •••• 5201", "Transferencia").
func (m PaymentMethod) Summary() string {
	switch m.Type {
	case payments.MethodCard:
		if m.Card != nil {
			return m.Card.Brand.DisplayName() + " •••• " + m.Card.Last4
		}
	case payments.MethodDirectDebit:
		return "CBU " + m.MaskedAccount()
	case payments.MethodCVU:
		return "CVU " + m.MaskedAccount()
	case payments.MethodBankTransfer:
		return "Bank transfer"
	case payments.MethodQR:
		return "QR"
	case payments.MethodWallet:
		if m.Wallet != "" {
			return "Wallet " + m.Wallet
		}
		return "Wallet"
	}
	return string(m.Type)
}

// chargeableBy reports whether the processor can charge the method: one a processor holds (every
// card) only through that processor (a sandbox token means nothing to Stripe); the others
// through any.
func (m PaymentMethod) chargeableBy(p payments.ProcessorType) bool {
	if m.Processor == "" {
		return m.Type != payments.MethodCard
	}
	return m.Processor == p
}

// usableAt reports whether the method can be charged at now: a card must not have expired.
func (m PaymentMethod) usableAt(now time.Time) bool {
	if m.Type == payments.MethodCard {
		return m.Card != nil && payments.CheckExpiry(m.Card.ExpMonth, m.Card.ExpYear, now) == nil
	}
	return true
}

// Interval is a subscription's billing period.
type Interval string

// Billing intervals.
const (
	Week  Interval = "week"
	Month Interval = "month"
	Year  Interval = "year"
)

func (i Interval) valid() bool { return i == Week || i == Month || i == Year }

// SubscriptionStatus is where a subscription stands.
type SubscriptionStatus string

// Subscription statuses.
const (
	SubscriptionActive SubscriptionStatus = "active"
	// SubscriptionPastDue means the latest period's payment failed or waits for a method.
	SubscriptionPastDue  SubscriptionStatus = "past_due"
	SubscriptionCanceled SubscriptionStatus = "canceled"
)

// Subscription bills a customer every interval, in advance: the payment for a period is
// created when the period starts.
type Subscription struct {
	ID         string
	CustomerID string
	Plan       string
	Amount     int64
	Currency   Currency
	Interval   Interval
	Status     SubscriptionStatus
	// BillingAnchor fixes the day of month (or year) periods start on, so a subscription that
	// started on the 31st renews on the last day of shorter months and returns to the 31st.
	BillingAnchor      time.Time
	CurrentPeriodStart time.Time
	CurrentPeriodEnd   time.Time
	// PaymentMethodID pins a method; empty means the customer's preferred one is charged.
	PaymentMethodID    string
	CancelAtPeriodEnd  bool
	CanceledAt         time.Time
	CancellationReason string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	// PlanID names the catalogue plan the subscription is on (see Plan); "" for a subscription
	// with a free-text plan. Amount is then the plan's amount × Quantity, as when it was set.
	PlanID string
	// PlanEN is the plan's English name (Plan holds its Spanish one); "" without a plan.
	PlanEN   string
	Quantity int
	// Pending is a change scheduled for the end of the current period; nil if none.
	Pending *PendingChange
	// ChangeRevision counts the plan and quantity changes made so far; a change is billed
	// once per revision it starts from.
	ChangeRevision int64
}

// PlanName is the plan's name in the language of locale ("es", "en").
func (s Subscription) PlanName(locale string) string {
	if locale == "en" && s.PlanEN != "" {
		return s.PlanEN
	}
	return s.Plan
}

// PendingChange is a plan or quantity change that takes effect at the next renewal.
type PendingChange struct {
	PlanID   string
	Quantity int
}

// CancelMode says when a cancellation takes effect (the portal's cancellation.mode).
type CancelMode string

// Cancellation modes.
const (
	CancelAtPeriodEnd CancelMode = "AtPeriodEnd"
	CancelImmediately CancelMode = "Immediately"
)

// PaymentStatus is a payment's state:
//
//	incomplete ──(usable method)──▶ processing ──▶ succeeded | failed | pending | requires_action
//	requires_action ──(the customer authenticates)──▶ succeeded | failed | pending
//	pending ──(the money arrives)──▶ succeeded | failed
//	failed ──(RetryPayment)──▶ processing
type PaymentStatus string

// Payment statuses.
const (
	// PaymentIncomplete waits for the customer to add a usable payment method.
	PaymentIncomplete PaymentStatus = "incomplete"
	// PaymentProcessing is claimed by one portal process, which is talking to the processor.
	PaymentProcessing PaymentStatus = "processing"
	// PaymentRequiresAction waits for the customer to authenticate the charge (SCA, 3-D
	// Secure) from the portal; the charge at the processor is the attempt's, and stays one.
	PaymentRequiresAction PaymentStatus = "requires_action"
	// PaymentPending waits for money that moves later (bank transfer, QR).
	PaymentPending   PaymentStatus = "pending"
	PaymentSucceeded PaymentStatus = "succeeded"
	PaymentFailed    PaymentStatus = "failed"
)

// Closed reports a payment that will never be collected: the unpaid payment of a subscription
// canceled at once (failed, with code payments.CodeSubscriptionCanceled). It is neither retried
// nor settled nor offered to the customer.
func (p Payment) Closed() bool {
	return p.Status == PaymentFailed && p.FailureCode == payments.CodeSubscriptionCanceled
}

// Due reports a payment that waits for the customer: no usable method yet (incomplete), a
// charge to authenticate (requires_action), a refused charge they can pay again (failed, not
// closed), or money still to be sent (pending).
func (p Payment) Due() bool {
	return p.Status == PaymentIncomplete || p.Status == PaymentRequiresAction || p.Status == PaymentPending ||
		(p.Status == PaymentFailed && !p.Closed())
}

// Payment is one amount to collect from a customer, with its attempts.
type Payment struct {
	ID          string
	CustomerID  string
	Amount      int64
	Currency    Currency
	Description string
	// SubscriptionID and the period are set for subscription payments.
	SubscriptionID string
	PeriodStart    time.Time
	PeriodEnd      time.Time
	// PaymentMethodID is the method of the latest attempt; MethodType and MethodSummary keep
	// what it was even after the method is removed.
	PaymentMethodID string
	MethodType      payments.MethodType
	MethodSummary   string
	Status          PaymentStatus
	IdempotencyKey  string
	// Processor and ProcessorReference identify the charge at the processor.
	Processor          string
	ProcessorReference string
	// Instructions tell the customer how to pay a pending payment (transfer data, QR payload).
	Instructions string
	// FailureCode is a stable payments.Code* value; FailureMessage is its English text.
	FailureCode    string
	FailureMessage string
	// CreditApplied is the part of the charge paid from the customer's credit balance; Amount
	// is what is collected through the payment method.
	CreditApplied int64
	// Attempts is filled by the Get methods, oldest first; nil in lists.
	Attempts  []Attempt
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Attempt is one try at charging a payment.
type Attempt struct {
	Number int
	// Processor is the processor the attempt was charged through.
	Processor          string
	PaymentMethodID    string
	MethodType         payments.MethodType
	MethodSummary      string
	Outcome            PaymentStatus
	ProcessorReference string
	FailureCode        string
	FailureMessage     string
	StartedAt          time.Time
	FinishedAt         time.Time
}

// Page is one page of a list; pass NextCursor back to get the next one ("" when done).
type Page[T any] struct {
	Items      []T
	NextCursor string
}
