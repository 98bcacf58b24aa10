package stripe

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	stripelib "github.com/stripe/stripe-go/v84"

	"github.com/portero-dev/portero/portal/payments"
)

// APIError is a Stripe error answer without Stripe's free text: status, type, codes and the
// request id (for Stripe's support) only. The library's own error prints its whole JSON —
// message, and for card errors the PaymentIntent with its client secret — so it is never
// wrapped.
type APIError struct {
	Op          string
	Status      int
	Type        string
	Code        string
	DeclineCode string
	RequestID   string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("stripe: ")
	b.WriteString(e.Op)
	b.WriteString(": HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	for _, s := range []string{e.Type, e.Code, e.DeclineCode} {
		if s != "" {
			b.WriteString(" ")
			b.WriteString(s)
		}
	}
	if e.RequestID != "" {
		b.WriteString(" (request ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// transportError is a failure to get an answer at all, its text scrubbed of credentials.
type transportError struct {
	msg   string
	cause error
}

func (e *transportError) Error() string { return e.msg }

// Unwrap gives the network-level cause (a timeout, a reset), never the *url.Error: that one's
// text carries the request URL.
func (e *transportError) Unwrap() error { return e.cause }

// fail turns a library error into the adapter's: refusals and configuration errors as
// *APIError, 5xx, 429 and transport failures as payments.Unavailable.
func (a *Adapter) fail(op string, err error) error {
	var se *stripelib.Error
	if errors.As(err, &se) {
		ae := &APIError{Op: op, Status: se.HTTPStatusCode, Type: string(se.Type), Code: string(se.Code),
			DeclineCode: string(se.DeclineCode), RequestID: se.RequestID}
		a.scrubAPIError(ae)
		if se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusTooManyRequests {
			return payments.Unavailable("stripe: "+op, ae)
		}
		return ae
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	return payments.Unavailable("stripe: "+op, &transportError{msg: a.scrub(cause.Error()), cause: cause})
}

// scrub removes the credentials from a text.
func (a *Adapter) scrub(s string) string {
	for _, secret := range a.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

func (a *Adapter) scrubAPIError(e *APIError) {
	e.Type, e.Code, e.DeclineCode, e.RequestID = a.scrub(e.Type), a.scrub(e.Code), a.scrub(e.DeclineCode), a.scrub(e.RequestID)
}

// isMissing reports a 404 resource_missing: the object does not exist (for this account).
func isMissing(err error) bool {
	var se *stripelib.Error
	return errors.As(err, &se) && (se.Code == stripelib.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound)
}

// refusal is the failure code of a 4xx answer that refuses a request outright (nothing was
// done), "" for anything else.
func refusal(err error) string {
	var se *stripelib.Error
	if !errors.As(err, &se) {
		return ""
	}
	switch {
	case se.Type == stripelib.ErrorTypeCard || se.HTTPStatusCode == http.StatusPaymentRequired:
		return FailureCode(string(se.Code), string(se.DeclineCode))
	case se.HTTPStatusCode == http.StatusBadRequest && se.Type == stripelib.ErrorTypeInvalidRequest:
		switch se.Code {
		case stripelib.ErrorCodeAmountTooSmall, stripelib.ErrorCodeAmountTooLarge:
			return payments.CodeInvalidAmount
		}
		if se.Param == "currency" {
			return payments.CodeUnsupportedCurrency
		}
		return payments.CodeInvalidPaymentMethod
	}
	return ""
}

// chargeError reads a failed charge or confirmation. A card error is a result (declined, or
// authentication required); a request Stripe refused outright (400) failed without collecting;
// anything else — 5xx, 401, 409, a lost answer — leaves the outcome unknown.
func (a *Adapter) chargeError(op string, err error) (payments.ChargeResult, error) {
	var se *stripelib.Error
	if errors.As(err, &se) && se.Type != stripelib.ErrorTypeIdempotency {
		code := refusal(err)
		ref := ""
		if se.PaymentIntent != nil {
			ref = se.PaymentIntent.ID
		}
		if code == payments.CodeAuthenticationRequired {
			if ref == "" {
				return payments.ChargeResult{}, a.fail(op, err)
			}
			return payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: ref}, nil
		}
		if code != "" {
			return payments.ChargeResult{Status: payments.ChargeFailed, Reference: ref, Failure: &payments.Error{Code: code}}, nil
		}
	}
	return payments.ChargeResult{}, a.fail(op, err)
}

// FailureCode maps Stripe's error code and decline code to Portero's stable failure code. The
// decline code is the more precise; lost, stolen and fraudulent cards are told apart from a
// plain decline to nobody, as Stripe advises.
func FailureCode(code, declineCode string) string {
	for _, c := range []string{declineCode, code} {
		switch c {
		case "insufficient_funds":
			return payments.CodeInsufficientFunds
		case "expired_card":
			return payments.CodeExpiredCard
		case "incorrect_cvc", "invalid_cvc":
			return payments.CodeIncorrectCVC
		case "incorrect_number", "invalid_number":
			return payments.CodeInvalidCardNumber
		case "processing_error", "try_again_later", "issuer_not_available", "reenter_transaction":
			return payments.CodeProcessingError
		case "card_velocity_exceeded", "withdrawal_count_limit_exceeded", "card_decline_rate_limit_exceeded":
			return payments.CodeCardLimitExceeded
		case "authentication_required":
			return payments.CodeAuthenticationRequired
		case "payment_intent_authentication_failure":
			return payments.CodeAuthenticationFailed
		case "amount_too_small", "amount_too_large":
			return payments.CodeInvalidAmount
		case "currency_not_supported":
			return payments.CodeUnsupportedCurrency
		}
	}
	return payments.CodeCardDeclined
}
