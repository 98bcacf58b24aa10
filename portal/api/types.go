package api

import (
	"time"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// The JSON shapes of the API. Field names are snake_case; money is an integer amount of minor
// units (centavos) plus an ISO 4217 currency; times are RFC 3339 in UTC. The OpenAPI document
// (openapi.json) describes the same shapes, and a test keeps the two in step.

// listResponse is a page of a list; NextCursor is "" on the last page.
type listResponse[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// customerJSON is a customer.
type customerJSON struct {
	ID        string      `json:"id"`
	Email     string      `json:"email"`
	Name      string      `json:"name"`
	Billing   billingJSON `json:"billing"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

type billingJSON struct {
	LegalName    string      `json:"legal_name"`
	TaxID        string      `json:"tax_id"`
	TaxCondition string      `json:"tax_condition"`
	Address      addressJSON `json:"address"`
}

type addressJSON struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	Province   string `json:"province"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// createCustomerRequest is the body of POST /customers.
type createCustomerRequest struct {
	Email   string       `json:"email"`
	Name    string       `json:"name"`
	Billing *billingJSON `json:"billing"`
}

// updateCustomerRequest is the body of PATCH /customers/{id}: only the fields present change;
// billing replaces the whole profile.
type updateCustomerRequest struct {
	Email   *string      `json:"email"`
	Name    *string      `json:"name"`
	Billing *billingJSON `json:"billing"`
}

func toCustomer(c ledger.Customer) customerJSON {
	b := c.Billing
	return customerJSON{
		ID: c.ID, Email: c.Email, Name: c.Name,
		Billing: billingJSON{
			LegalName: b.LegalName, TaxID: b.TaxID, TaxCondition: string(b.TaxCondition),
			Address: addressJSON{Line1: b.Address.Line1, Line2: b.Address.Line2, City: b.Address.City,
				Province: b.Address.Province, PostalCode: b.Address.PostalCode, Country: b.Address.Country},
		},
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

func (b *billingJSON) toLedger() ledger.BillingProfile {
	if b == nil {
		return ledger.BillingProfile{}
	}
	return ledger.BillingProfile{
		LegalName: b.LegalName, TaxID: b.TaxID, TaxCondition: ledger.TaxCondition(b.TaxCondition),
		Address: ledger.Address{Line1: b.Address.Line1, Line2: b.Address.Line2, City: b.Address.City,
			Province: b.Address.Province, PostalCode: b.Address.PostalCode, Country: b.Address.Country},
	}
}

// paymentMethodJSON is a stored payment method. It never carries a card number, CVC or token;
// accounts are masked.
type paymentMethodJSON struct {
	ID            string    `json:"id"`
	CustomerID    string    `json:"customer_id"`
	Position      int       `json:"position"`
	Type          string    `json:"type"`
	Summary       string    `json:"summary"`
	Card          *cardJSON `json:"card,omitempty"`
	MaskedAccount string    `json:"masked_account,omitempty"`
	Wallet        string    `json:"wallet,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

type cardJSON struct {
	Brand       string `json:"brand"`
	Last4       string `json:"last4"`
	ExpMonth    int    `json:"exp_month"`
	ExpYear     int    `json:"exp_year"`
	Fingerprint string `json:"fingerprint"`
}

// addPaymentMethodRequest is the body of POST /customers/{id}/payment_methods.
type addPaymentMethodRequest struct {
	Type string            `json:"type"`
	Card *cardDetailsInput `json:"card"`
	// ProcessorPaymentMethod is a method the merchant created at the portal's processor
	// (Stripe's pm_…), adopted for the customer: the way to add a card on a portal whose
	// processor takes card details on its own pages only.
	ProcessorPaymentMethod string `json:"processor_payment_method"`
	Account                string `json:"account"`
	Wallet                 string `json:"wallet"`
}

// cardDetailsInput is what the merchant sends to add a card. It goes to the processor and is
// then dropped; it has no String method on purpose: it is converted, never printed.
type cardDetailsInput struct {
	Number     string `json:"number"`
	ExpMonth   int    `json:"exp_month"`
	ExpYear    int    `json:"exp_year"`
	CVC        string `json:"cvc"`
	HolderName string `json:"holder_name"`
}

func toPaymentMethod(m ledger.PaymentMethod) paymentMethodJSON {
	out := paymentMethodJSON{
		ID: m.ID, CustomerID: m.CustomerID, Position: m.Position, Type: string(m.Type),
		Summary: m.Summary(), MaskedAccount: m.MaskedAccount(), Wallet: m.Wallet, CreatedAt: m.CreatedAt,
	}
	if m.Card != nil {
		out.Card = &cardJSON{Brand: string(m.Card.Brand), Last4: m.Card.Last4, ExpMonth: m.Card.ExpMonth,
			ExpYear: m.Card.ExpYear, Fingerprint: m.Card.Fingerprint}
	}
	return out
}

// subscriptionJSON is a subscription.
type subscriptionJSON struct {
	ID                 string     `json:"id"`
	CustomerID         string     `json:"customer_id"`
	Plan               string     `json:"plan"`
	Amount             int64      `json:"amount"`
	Currency           string     `json:"currency"`
	Interval           string     `json:"interval"`
	Status             string     `json:"status"`
	CurrentPeriodStart time.Time  `json:"current_period_start"`
	CurrentPeriodEnd   time.Time  `json:"current_period_end"`
	PaymentMethodID    string     `json:"payment_method_id,omitempty"`
	CancelAtPeriodEnd  bool       `json:"cancel_at_period_end"`
	CanceledAt         *time.Time `json:"canceled_at,omitempty"`
	CancellationReason string     `json:"cancellation_reason,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	// PlanID is the catalogue plan (absent for a free-text plan); Quantity its units.
	PlanID   string `json:"plan_id,omitempty"`
	Quantity int    `json:"quantity"`
	// PendingChange is a change scheduled for the period's end.
	PendingChange *pendingChangeJSON `json:"pending_change,omitempty"`
	// InitialPayment is the first period's payment, in the response to a creation only.
	InitialPayment *paymentJSON `json:"initial_payment,omitempty"`
}

// pendingChangeJSON is a plan or quantity change that takes effect at the period's end.
type pendingChangeJSON struct {
	PlanID      string    `json:"plan_id"`
	Quantity    int       `json:"quantity"`
	EffectiveAt time.Time `json:"effective_at"`
}

// createSubscriptionRequest is the body of POST /subscriptions: a plan_id (and quantity), or
// a free-text plan with its amount, currency and interval.
type createSubscriptionRequest struct {
	CustomerID       string     `json:"customer_id"`
	PlanID           string     `json:"plan_id"`
	Quantity         int        `json:"quantity"`
	Plan             string     `json:"plan"`
	Amount           int64      `json:"amount"`
	Currency         string     `json:"currency"`
	Interval         string     `json:"interval"`
	PaymentMethodID  string     `json:"payment_method_id"`
	StartAt          *time.Time `json:"start_at"`
	NoInitialPayment bool       `json:"no_initial_payment"`
}

// cancelSubscriptionRequest is the optional body of POST /subscriptions/{id}/cancel.
type cancelSubscriptionRequest struct {
	// Mode is at_period_end or immediately; empty means the portal's cancellation.mode.
	Mode   string `json:"mode"`
	Reason string `json:"reason"`
}

func toSubscription(s ledger.Subscription) subscriptionJSON {
	out := subscriptionJSON{
		ID: s.ID, CustomerID: s.CustomerID, Plan: s.Plan, Amount: s.Amount, Currency: string(s.Currency),
		Interval: string(s.Interval), Status: string(s.Status),
		CurrentPeriodStart: s.CurrentPeriodStart, CurrentPeriodEnd: s.CurrentPeriodEnd,
		PaymentMethodID: s.PaymentMethodID, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CanceledAt: optionalTime(s.CanceledAt), CancellationReason: s.CancellationReason,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
		PlanID: s.PlanID, Quantity: max(s.Quantity, 1),
	}
	if s.Pending != nil {
		out.PendingChange = &pendingChangeJSON{PlanID: s.Pending.PlanID, Quantity: s.Pending.Quantity, EffectiveAt: s.CurrentPeriodEnd}
	}
	return out
}

// paymentJSON is a payment. Attempts are present on GET /payments/{id} and on responses to
// creation and confirmation, absent in lists.
type paymentJSON struct {
	ID                 string     `json:"id"`
	CustomerID         string     `json:"customer_id"`
	Amount             int64      `json:"amount"`
	Currency           string     `json:"currency"`
	Description        string     `json:"description"`
	Status             string     `json:"status"`
	SubscriptionID     string     `json:"subscription_id,omitempty"`
	PeriodStart        *time.Time `json:"period_start,omitempty"`
	PeriodEnd          *time.Time `json:"period_end,omitempty"`
	PaymentMethodID    string     `json:"payment_method_id,omitempty"`
	MethodType         string     `json:"method_type,omitempty"`
	MethodSummary      string     `json:"method_summary,omitempty"`
	Processor          string     `json:"processor,omitempty"`
	ProcessorReference string     `json:"processor_reference,omitempty"`
	Instructions       string     `json:"instructions,omitempty"`
	FailureCode        string     `json:"failure_code,omitempty"`
	FailureMessage     string     `json:"failure_message,omitempty"`
	// CreditApplied is the part of the charge paid from the customer's credit balance; amount
	// is what the payment method is charged.
	CreditApplied int64         `json:"credit_applied,omitempty"`
	Attempts      []attemptJSON `json:"attempts,omitempty"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
}

type attemptJSON struct {
	Number             int        `json:"number"`
	PaymentMethodID    string     `json:"payment_method_id,omitempty"`
	MethodType         string     `json:"method_type"`
	MethodSummary      string     `json:"method_summary"`
	Outcome            string     `json:"outcome"`
	ProcessorReference string     `json:"processor_reference,omitempty"`
	FailureCode        string     `json:"failure_code,omitempty"`
	FailureMessage     string     `json:"failure_message,omitempty"`
	StartedAt          time.Time  `json:"started_at"`
	FinishedAt         *time.Time `json:"finished_at,omitempty"`
}

// createPaymentRequest is the body of POST /payments.
type createPaymentRequest struct {
	CustomerID     string `json:"customer_id"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	Description    string `json:"description"`
	SubscriptionID string `json:"subscription_id"`
}

// toPayment renders a payment; the failure message follows the caller's language.
func toPayment(p ledger.Payment, loc string) paymentJSON {
	out := paymentJSON{
		ID: p.ID, CustomerID: p.CustomerID, Amount: p.Amount, Currency: string(p.Currency),
		Description: p.Description, Status: string(p.Status), SubscriptionID: p.SubscriptionID,
		PeriodStart: optionalTime(p.PeriodStart), PeriodEnd: optionalTime(p.PeriodEnd),
		PaymentMethodID: p.PaymentMethodID, MethodType: string(p.MethodType), MethodSummary: p.MethodSummary,
		Processor: p.Processor, ProcessorReference: p.ProcessorReference, Instructions: p.Instructions,
		FailureCode: p.FailureCode, FailureMessage: failureMessage(p.FailureCode, p.FailureMessage, loc),
		CreditApplied: p.CreditApplied, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	for _, a := range p.Attempts {
		out.Attempts = append(out.Attempts, attemptJSON{
			Number: a.Number, PaymentMethodID: a.PaymentMethodID, MethodType: string(a.MethodType),
			MethodSummary: a.MethodSummary, Outcome: string(a.Outcome), ProcessorReference: a.ProcessorReference,
			FailureCode: a.FailureCode, FailureMessage: failureMessage(a.FailureCode, a.FailureMessage, loc),
			StartedAt: a.StartedAt, FinishedAt: optionalTime(a.FinishedAt),
		})
	}
	return out
}

// failureMessage localises a stored failure: the ledger keeps the English text, the code is
// what the catalog is keyed on.
func failureMessage(code, stored, loc string) string {
	if code == "" {
		return stored
	}
	return (&payments.Error{Code: code}).Message(loc)
}

// createSessionRequest is the body of POST /portal_sessions.
type createSessionRequest struct {
	CustomerID    string    `json:"customer_id"`
	CustomerEmail string    `json:"customer_email"`
	TTL           string    `json:"ttl"`
	ReturnURL     string    `json:"return_url"`
	Flow          *flowJSON `json:"flow"`
	// DeliverByEmail also e-mails the link to the customer.
	DeliverByEmail bool `json:"deliver_by_email"`
	// Restrictions narrow what the session may do (see restrictionsJSON).
	Restrictions *restrictionsJSON `json:"restrictions"`
	// AfterExpiration is what the link offers once it has ended.
	AfterExpiration *afterExpirationJSON `json:"after_expiration"`
}

type flowJSON struct {
	Type           string `json:"type"`
	PaymentID      string `json:"payment_id,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
}

// sessionJSON is a created portal session: the link to hand to the customer.
type sessionJSON struct {
	ID            string    `json:"id"`
	URL           string    `json:"url"`
	ExpiresAt     time.Time `json:"expires_at"`
	CustomerID    string    `json:"customer_id,omitempty"`
	CustomerEmail string    `json:"customer_email,omitempty"`
	Flow          *flowJSON `json:"flow,omitempty"`
	// DeliverByEmail echoes the request: the e-mail is sent by the operator right after.
	DeliverByEmail bool `json:"deliver_by_email"`
	// Restrictions and AfterExpiration are the session's, as created.
	Restrictions    *restrictionsJSON    `json:"restrictions,omitempty"`
	AfterExpiration *afterExpirationJSON `json:"after_expiration"`
}

// sessionStateJSON is a portal session as GET and revoke answer it: its state, never its link.
type sessionStateJSON struct {
	ID string `json:"id"`
	// Phase is pending, active, expired, revoked or refused (see sessionPhase).
	Phase   string `json:"phase"`
	Revoked bool   `json:"revoked"`
	// RevocationReason is spec.revocationReason: why, when revoked with one.
	RevocationReason string               `json:"revocation_reason,omitempty"`
	ExpiresAt        *time.Time           `json:"expires_at,omitempty"`
	CustomerID       string               `json:"customer_id,omitempty"`
	CustomerEmail    string               `json:"customer_email,omitempty"`
	Flow             *flowJSON            `json:"flow,omitempty"`
	DeliverByEmail   bool                 `json:"deliver_by_email"`
	Delivery         *sessionDeliveryJSON `json:"delivery,omitempty"`
	Restrictions     *restrictionsJSON    `json:"restrictions,omitempty"`
	AfterExpiration  *afterExpirationJSON `json:"after_expiration"`
	CreatedAt        time.Time            `json:"created_at"`
}

// sessionDeliveryJSON is how the link's e-mail went, when one was asked for.
type sessionDeliveryJSON struct {
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
