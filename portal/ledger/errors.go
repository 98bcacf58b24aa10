package ledger

import (
	"errors"
	"strconv"
	"strings"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
)

// Kind groups error codes by how a caller should react, so an HTTP layer maps a Kind to a status
// once instead of listing every code.
type Kind string

// Error kinds.
const (
	KindNotFound Kind = "not_found" // 404
	KindInvalid  Kind = "invalid"   // 400/422: the request is wrong, Field says where
	KindConflict Kind = "conflict"  // 409: the request is fine but the current state forbids it
)

// Stable error codes of the ledger, in addition to the payments.Code* validation codes that
// are passed through unchanged (e.g. invalid_cbu_check_digit).
const (
	CodeNotFound                         = "not_found"
	CodeInvalidField                     = "invalid_field"
	CodeRequired                         = "required"
	CodeUnsupportedCurrency              = payments.CodeUnsupportedCurrency
	CodeInvalidAmount                    = payments.CodeInvalidAmount
	CodeLastMethodWithActiveSubscription = "last_method_with_active_subscription"
	CodeIdempotencyConflict              = "idempotency_key_conflict"
	CodeSubscriptionCanceled             = "subscription_canceled"
	CodePaymentState                     = "payment_state"
	CodeMethodNotUsable                  = "payment_method_not_usable"
	CodePaymentMethodLimit               = "payment_method_limit_reached"
	// Plans and plan changes (plans.go, subscription_change.go).
	CodePlanExists           = "plan_exists"
	CodePlanArchived         = "plan_archived"
	CodePlanCurrencyMismatch = "plan_currency_mismatch"
	CodeQuantityAboveMaximum = "quantity_above_maximum"
	CodeSubscriptionChanged  = "subscription_changed"
	CodePeriodEnded          = "subscription_period_ended"
)

// Error is a failure the caller can explain to a person: a missing object, invalid input or a
// forbidden state change. Other errors returned by the Store are infrastructure failures.
type Error struct {
	Kind Kind
	// Code is stable and machine-readable (CodeNotFound, payments.CodeInvalidCBUCheckDigit…).
	Code string
	// Field names the offending input for KindInvalid ("email", "billing.tax_id", "card.number").
	Field string
	// Resource names what was not found ("customer", "payment"…) for KindNotFound, and what an
	// idempotency key was used for ("subscription"; a payment when empty) for its conflict.
	Resource string
	// Limit is the cap a CodePaymentMethodLimit refusal reached.
	Limit int
	cause error
}

// Sentinel errors for errors.Is; they match any *Error with the same Code.
var (
	ErrNotFound                         = &Error{Kind: KindNotFound, Code: CodeNotFound}
	ErrLastMethodWithActiveSubscription = &Error{Kind: KindConflict, Code: CodeLastMethodWithActiveSubscription}
	ErrIdempotencyConflict              = &Error{Kind: KindConflict, Code: CodeIdempotencyConflict}
	ErrUnsupportedCurrency              = &Error{Kind: KindInvalid, Code: CodeUnsupportedCurrency}
	ErrSubscriptionCanceled             = &Error{Kind: KindConflict, Code: CodeSubscriptionCanceled}
	ErrPaymentState                     = &Error{Kind: KindConflict, Code: CodePaymentState}
	ErrPaymentMethodLimit               = &Error{Kind: KindConflict, Code: CodePaymentMethodLimit}
)

func newError(kind Kind, code, field string, cause error) *Error {
	return &Error{Kind: kind, Code: code, Field: field, cause: cause}
}

func notFound(resource string) *Error {
	return &Error{Kind: KindNotFound, Code: CodeNotFound, Resource: resource}
}

// invalid wraps a payments validation error as a ledger error on the given field.
func invalid(field string, err error) error {
	var pe *payments.Error
	if errors.As(err, &pe) {
		return &Error{Kind: KindInvalid, Code: pe.Code, Field: field, cause: pe}
	}
	return err
}

// Error implements error in English.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Field != "" {
		b.WriteString(" (" + e.Field + ")")
	}
	b.WriteString(": ")
	b.WriteString(e.Message("en"))
	return b.String()
}

// Unwrap exposes the payments.Error a validation failure came from.
func (e *Error) Unwrap() error { return e.cause }

// Is matches sentinels by Code, and a not-found error matches charging.ErrNotFound (the
// ledger answers the charging driver as its Recorder).
func (e *Error) Is(target error) bool {
	if target == charging.ErrNotFound {
		return e.Kind == KindNotFound
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Message is the human explanation in Spanish for "es*" locales, English otherwise.
func (e *Error) Message(locale string) string {
	var pe *payments.Error
	if errors.As(e.cause, &pe) {
		return pe.Message(locale)
	}
	en, es := e.messages()
	l := strings.ToLower(locale)
	if l == "es" || strings.HasPrefix(l, "es-") || strings.HasPrefix(l, "es_") {
		return es
	}
	return en
}

func (e *Error) messages() (en, es string) {
	switch e.Code {
	case CodeNotFound:
		r, rs := resourceNames(e.Resource)
		return "The " + r + " does not exist.", "No existe " + rs + "."
	case CodeRequired:
		return "The field " + e.Field + " is required.", "El campo " + e.Field + " es obligatorio."
	case CodeInvalidField:
		return "The field " + e.Field + " is not valid.", "El campo " + e.Field + " no es válido."
	case CodeUnsupportedCurrency:
		return "The currency is not supported; use ARS or USD.", "La moneda no está soportada; usá ARS o USD."
	case CodeInvalidAmount:
		return "The amount must be a positive number of cents.", "El importe debe ser una cantidad positiva de centavos."
	case CodeLastMethodWithActiveSubscription:
		return "This is the only payment method and there is an active subscription; add another method before removing it, or cancel the subscription.",
			"Es el único medio de pago y hay una suscripción activa; agregá otro medio antes de quitarlo o cancelá la suscripción."
	case CodeIdempotencyConflict:
		if e.Resource == "subscription" {
			return "This idempotency key was already used for a different subscription; use a new key for a new subscription.",
				"Esta clave de idempotencia ya se usó para otra suscripción; usá una clave nueva para una suscripción nueva."
		}
		return "This idempotency key was already used for a different payment; use a new key for a new payment.",
			"Esta clave de idempotencia ya se usó para otro pago; usá una clave nueva para un pago nuevo."
	case CodeSubscriptionCanceled:
		return "The subscription is canceled.", "La suscripción está cancelada."
	case CodePaymentState:
		return "The payment cannot do that in its current state.", "El pago no admite esa operación en su estado actual."
	case CodeMethodNotUsable:
		return "The payment method cannot be used (for example, the card expired).",
			"El medio de pago no se puede usar (por ejemplo, la tarjeta está vencida)."
	case CodePlanExists, CodePlanArchived, CodePlanCurrencyMismatch,
		CodeQuantityAboveMaximum, CodeSubscriptionChanged, CodePeriodEnded:
		return planMessages(e)
	case CodePaymentMethodLimit:
		n := strconv.Itoa(e.Limit)
		return "There are already " + n + " saved payment methods, the most this portal allows; remove one to add another.",
			"Ya hay " + n + " medios de pago guardados, el máximo que permite este portal; quitá uno para agregar otro."
	}
	return "The request could not be completed.", "No se pudo completar la solicitud."
}

func resourceNames(resource string) (en, es string) {
	switch resource {
	case "customer":
		return "customer", "el cliente"
	case "payment_method":
		return "payment method", "el medio de pago"
	case "subscription":
		return "subscription", "la suscripción"
	case "payment":
		return "payment", "el pago"
	case "plan":
		return "plan", "el plan"
	}
	return "object", "el objeto"
}

// CodeOf returns the stable code of err (a ledger or payments error), or "" if it has none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return payments.CodeOf(err)
}
