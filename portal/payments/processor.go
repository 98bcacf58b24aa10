// Package payments holds what Portero knows about money movement without a database: the
// validators for Argentine and card identifiers (Luhn, CBU, CVU, CUIT/CUIL), the Adapter
// contract every payment processor is reached through (and the Registry that maps a portal's
// spec.processor.type to one), and the built-in sandbox's core. Each processor's adapter lives
// in a folder of its own (sandbox/, stripe/) and passes the suite in processortest/.
//
// Processor is the older, narrower interface the ledger called before portal/charging drove the
// processors (the ledger now only records); the sandbox's core still implements it.
//
// Nothing in this package stores or logs a card number or security code: they exist only in a
// CardDetails value on the way to TokenizeCard, and every error is a fixed, localised message.
package payments

import (
	"context"
)

// MethodType is the kind of a payment method. The string values are stable API and match the
// CustomerPortal's spec.paymentMethods.allowed list.
type MethodType string

// Payment method types.
const (
	MethodCard         MethodType = "card"
	MethodDirectDebit  MethodType = "direct_debit"
	MethodCVU          MethodType = "cvu"
	MethodBankTransfer MethodType = "bank_transfer"
	MethodQR           MethodType = "qr"
	MethodWallet       MethodType = "wallet"
)

// MethodTypes lists every supported type in display order.
func MethodTypes() []MethodType {
	return []MethodType{MethodCard, MethodDirectDebit, MethodCVU, MethodBankTransfer, MethodQR, MethodWallet}
}

// Valid reports whether t is one of the supported types.
func (t MethodType) Valid() bool {
	for _, v := range MethodTypes() {
		if t == v {
			return true
		}
	}
	return false
}

// SettlesLater reports whether charges of this type wait for the money to arrive (the customer
// pays by transfer or scans a QR code) and so stay pending until confirmed.
func (t MethodType) SettlesLater() bool {
	return t == MethodBankTransfer || t == MethodQR
}

// TokenizedCard is what a processor returns for a card; it is all Portero ever stores about one.
type TokenizedCard struct {
	// Token is the processor's opaque handle used to charge the card later.
	Token string
	Brand Brand
	// Last4 are the last four digits, for display.
	Last4    string
	ExpMonth int
	ExpYear  int
	// Fingerprint identifies the card number across customers and tokens without revealing it
	// (an HMAC of the number under the processor's secret).
	Fingerprint string
}

// MethodRef tells the processor what to charge.
type MethodRef struct {
	Type MethodType
	// Token is the card token from TokenizeCard (card only).
	Token string
	// Account is the CBU (direct_debit) or CVU (cvu), digits only.
	Account string
	// Wallet names the wallet provider (wallet only), e.g. "mercadopago".
	Wallet string
}

// ChargeRequest asks a processor to collect an amount.
type ChargeRequest struct {
	// IdempotencyKey is unique per charge attempt; a processor that supports it must never
	// collect twice for the same key.
	IdempotencyKey string
	// Amount in minor units (centavos for ARS); always positive.
	Amount int64
	// Currency is an ISO 4217 code such as "ARS".
	Currency    string
	Description string
	Method      MethodRef
	// Customer is the processor's customer id, for processors that charge a method through
	// its customer (Stripe); empty for the sandbox.
	Customer string
	// Reference is the charge's processor reference when it is known already; LookupCharge
	// uses it before the idempotency key.
	Reference string
}

// ChargeStatus is the outcome of a charge.
type ChargeStatus string

// Charge outcomes.
const (
	ChargeSucceeded ChargeStatus = "succeeded"
	ChargeFailed    ChargeStatus = "failed"
	// ChargePending means the money has not moved yet (a transfer or QR payment); call Confirm
	// once the processor reports it arrived.
	ChargePending ChargeStatus = "pending"
)

// ChargeResult is what a processor answers for Charge and Confirm.
type ChargeResult struct {
	Status ChargeStatus
	// Reference is the processor's id for the charge; Confirm takes it for pending charges.
	Reference string
	// Failure says why a failed charge was refused, in words a customer can act on.
	Failure *Error
	// Instructions tell the customer how to pay a pending charge: transfer details, or for a QR
	// charge the code's payload and nothing else, which the portal draws as a scannable code
	// (and shows as text beneath it, for wallets that take pasted codes).
	Instructions string
}

// Processor is a payment service provider. Implementations must be safe for concurrent use.
//
// Refusals a customer can act on (a declined card, a wrong security code, an expired card) are
// reported as *Error from TokenizeCard, or as a ChargeFailed result from Charge; a returned Go
// error from Charge means the outcome is unknown (the processor could not be reached).
type Processor interface {
	// Name identifies the processor in stored payments and logs ("sandbox").
	Name() string
	// TokenizeCard validates a card and exchanges it for a token. The CVC is checked and then
	// forgotten; it is never part of the result.
	TokenizeCard(ctx context.Context, card CardDetails) (TokenizedCard, error)
	// Charge collects req.Amount from req.Method.
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
	// Confirm settles a pending charge by its reference once the money arrived.
	Confirm(ctx context.Context, reference string) (ChargeResult, error)
}
