package payments

import (
	"errors"
	"strings"
)

// Stable error codes. They are part of the API contract (the merchant API returns them and the
// portal UI keys its messages on them), so a code is never renamed once released.
const (
	CodeInvalidCardNumberCharacters = "invalid_card_number_characters"
	CodeInvalidCardNumberLength     = "invalid_card_number_length"
	CodeInvalidCardNumber           = "invalid_card_number"
	CodeInvalidExpiryMonth          = "invalid_expiry_month"
	CodeInvalidExpiryYear           = "invalid_expiry_year"
	CodeExpiredCard                 = "expired_card"
	CodeInvalidCVC                  = "invalid_cvc"

	CodeInvalidCBUCharacters  = "invalid_cbu_characters"
	CodeInvalidCBULength      = "invalid_cbu_length"
	CodeInvalidCBUCheckDigit  = "invalid_cbu_check_digit"
	CodeCBUIsCVU              = "cbu_is_cvu"
	CodeInvalidCVUCharacters  = "invalid_cvu_characters"
	CodeInvalidCVULength      = "invalid_cvu_length"
	CodeInvalidCVUPrefix      = "invalid_cvu_prefix"
	CodeInvalidCVUCheckDigit  = "invalid_cvu_check_digit"
	CodeInvalidCUITCharacters = "invalid_cuit_characters"
	CodeInvalidCUITLength     = "invalid_cuit_length"
	CodeInvalidCUITPrefix     = "invalid_cuit_prefix"
	CodeInvalidCUITCheckDigit = "invalid_cuit_check_digit"

	// Numbers whose check digits match but that no real card or account carries: a card
	// number whose prefix belongs to no card network (0000 0000 0000 0000), and a CBU or CVU
	// that is all zeros or whose account number is zero. They are typed to get past a form.
	CodeUnknownCardNetwork = "unknown_card_network"
	CodePlaceholderCBU     = "placeholder_cbu"
	CodePlaceholderCVU     = "placeholder_cvu"

	// Outcomes a processor reports for a charge it refused.
	CodeCardDeclined         = "card_declined"
	CodeInsufficientFunds    = "insufficient_funds"
	CodeIncorrectCVC         = "incorrect_cvc"
	CodeProcessingError      = "processing_error"
	CodeUnsupportedCurrency  = "unsupported_currency"
	CodeUnsupportedMethod    = "unsupported_payment_method"
	CodeInvalidAmount        = "invalid_amount"
	CodeInvalidToken         = "invalid_token"
	CodeInvalidReference     = "invalid_reference"
	CodeInvalidPaymentMethod = "invalid_payment_method"

	// Outcomes of processor-hosted flows.
	CodeAuthenticationRequired = "authentication_required"
	CodeAuthenticationFailed   = "authentication_failed"
	CodeSetupIncomplete        = "setup_incomplete"
	CodePaymentMethodInUse     = "payment_method_in_use"
	CodeProcessorUnavailable   = "processor_unavailable"
	CodeCardLimitExceeded      = "card_limit_exceeded"

	// Not a processor's answer: the ledger closes the unpaid payments of a subscription
	// canceled at once with this code. They are never charged or offered again.
	CodeSubscriptionCanceled = "subscription_canceled"
)

// Error is a validation failure or a processor refusal that a person can act on. It never
// carries the offending input: messages come from a fixed catalog keyed by Code, so a card
// number or CBU cannot leak through an error string, a log line or an HTTP response.
type Error struct {
	// Code is the stable machine-readable reason, one of the Code* constants.
	Code string
	// Field names the input that was wrong ("number", "exp_month", "cvc", "cbu", "cvu",
	// "tax_id"…), empty when the failure is not about one field (e.g. a decline).
	Field string
}

// Error implements error with the English message, prefixed by the code for logs.
func (e *Error) Error() string {
	return e.Code + ": " + e.Message("en")
}

// Message returns the human explanation in the given locale ("es", "es-AR", "en"…); Spanish for
// any "es" locale and English otherwise.
func (e *Error) Message(locale string) string {
	en, es := messages(e.Code)
	if isSpanish(locale) {
		return es
	}
	return en
}

// Is makes errors.Is(err, &Error{Code: c}) match any error with that code, and additionally
// the same Field when the target sets one.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Field == "" || t.Field == e.Field)
}

// CodeOf returns the Code of the first *Error in err's chain, or "" if there is none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func newError(code, field string) *Error { return &Error{Code: code, Field: field} }

func isSpanish(locale string) bool {
	l := strings.ToLower(strings.TrimSpace(locale))
	return l == "es" || strings.HasPrefix(l, "es-") || strings.HasPrefix(l, "es_")
}

// messages is the catalog; a switch rather than a map keeps it immutable.
func messages(code string) (en, es string) {
	switch code {
	case CodeInvalidCardNumberCharacters:
		return "The card number may contain only digits, spaces and dashes.",
			"El número de tarjeta solo puede contener dígitos, espacios y guiones."
	case CodeInvalidCardNumberLength:
		return "The card number has the wrong number of digits for its brand.",
			"El número de tarjeta no tiene la cantidad de dígitos correcta para su marca."
	case CodeInvalidCardNumber:
		return "The card number is not valid; check that it was typed correctly.",
			"El número de tarjeta no es válido; revisá que esté bien escrito."
	case CodeUnknownCardNetwork:
		return "This number belongs to no card network (it looks like a placeholder such as 0000 0000 0000 0000); type the number printed on your card.",
			"Este número no corresponde a ninguna red de tarjetas (parece un número de ejemplo, como 0000 0000 0000 0000); escribí el número que figura en tu tarjeta."
	case CodeInvalidExpiryMonth:
		return "The expiry month must be between 1 and 12.",
			"El mes de vencimiento debe estar entre 1 y 12."
	case CodeInvalidExpiryYear:
		return "The expiry year is not valid.",
			"El año de vencimiento no es válido."
	case CodeExpiredCard:
		return "The card has expired; use another card.",
			"La tarjeta está vencida; usá otra tarjeta."
	case CodeInvalidCVC:
		return "The security code must be 3 digits (4 for American Express).",
			"El código de seguridad debe tener 3 dígitos (4 para American Express)."
	case CodeInvalidCBUCharacters:
		return "The CBU may contain only digits, spaces and dashes.",
			"El CBU solo puede contener dígitos, espacios y guiones."
	case CodeInvalidCBULength:
		return "A CBU has exactly 22 digits.",
			"El CBU tiene exactamente 22 dígitos."
	case CodeInvalidCBUCheckDigit:
		return "The CBU check digits do not match; check that it was typed correctly.",
			"Los dígitos verificadores del CBU no coinciden; revisá que esté bien escrito."
	case CodeCBUIsCVU:
		return "This number is a CVU (it starts with 000), not a CBU; add it as a CVU.",
			"Este número es un CVU (empieza con 000), no un CBU; agregalo como CVU."
	case CodeInvalidCVUCharacters:
		return "The CVU may contain only digits, spaces and dashes.",
			"El CVU solo puede contener dígitos, espacios y guiones."
	case CodeInvalidCVULength:
		return "A CVU has exactly 22 digits.",
			"El CVU tiene exactamente 22 dígitos."
	case CodeInvalidCVUPrefix:
		return "A CVU starts with 000; this looks like a CBU, add it as a bank account.",
			"Un CVU empieza con 000; esto parece un CBU, agregalo como cuenta bancaria."
	case CodeInvalidCVUCheckDigit:
		return "The CVU check digits do not match; check that it was typed correctly.",
			"Los dígitos verificadores del CVU no coinciden; revisá que esté bien escrito."
	case CodePlaceholderCBU:
		return "This CBU names no account (its account number is all zeros); type the 22-digit CBU your bank shows for your account.",
			"Este CBU no corresponde a ninguna cuenta (su número de cuenta es todo ceros); escribí el CBU de 22 dígitos que tu banco muestra para tu cuenta."
	case CodePlaceholderCVU:
		return "This CVU names no account (its account number is all zeros); type the 22-digit CVU your wallet shows for your account.",
			"Este CVU no corresponde a ninguna cuenta (su número de cuenta es todo ceros); escribí el CVU de 22 dígitos que tu billetera muestra para tu cuenta."
	case CodeInvalidCUITCharacters:
		return "The CUIT/CUIL may contain only digits, spaces and dashes.",
			"El CUIT/CUIL solo puede contener dígitos, espacios y guiones."
	case CodeInvalidCUITLength:
		return "A CUIT/CUIL has exactly 11 digits.",
			"El CUIT/CUIL tiene exactamente 11 dígitos."
	case CodeInvalidCUITPrefix:
		return "A CUIT/CUIL starts with 20, 23, 24, 27, 30, 33 or 34.",
			"El CUIT/CUIL empieza con 20, 23, 24, 27, 30, 33 o 34."
	case CodeInvalidCUITCheckDigit:
		return "The CUIT/CUIL check digit does not match; check that it was typed correctly.",
			"El dígito verificador del CUIT/CUIL no coincide; revisá que esté bien escrito."
	case CodeSubscriptionCanceled:
		return "The subscription was canceled before this payment was made; it will not be charged.",
			"La suscripción se canceló antes de este pago; no se va a cobrar."
	case CodeCardDeclined:
		return "The card was declined; use another payment method or contact your bank.",
			"La tarjeta fue rechazada; usá otro medio de pago o comunicate con tu banco."
	case CodeInsufficientFunds:
		return "The payment was declined for insufficient funds.",
			"El pago fue rechazado por fondos insuficientes."
	case CodeIncorrectCVC:
		return "The security code is incorrect.",
			"El código de seguridad es incorrecto."
	case CodeProcessingError:
		return "The payment could not be processed; try again later.",
			"No se pudo procesar el pago; intentá de nuevo más tarde."
	case CodeUnsupportedCurrency:
		return "This currency is not supported.",
			"Esta moneda no está soportada."
	case CodeUnsupportedMethod:
		return "This payment method is not supported.",
			"Este medio de pago no está soportado."
	case CodeInvalidAmount:
		return "The amount must be greater than zero.",
			"El importe debe ser mayor que cero."
	case CodeInvalidToken:
		return "The saved card is no longer valid; add it again.",
			"La tarjeta guardada ya no es válida; agregala de nuevo."
	case CodeInvalidReference:
		return "The payment reference is not valid.",
			"La referencia del pago no es válida."
	case CodeInvalidPaymentMethod:
		return "The payment method is incomplete or not valid.",
			"El medio de pago está incompleto o no es válido."
	case CodeAuthenticationRequired:
		return "Your bank asks you to confirm this payment; confirm it from the portal.",
			"Tu banco pide que confirmes este pago; confirmalo desde el portal."
	case CodeAuthenticationFailed:
		return "Your bank could not confirm the payment; try again or use another payment method.",
			"Tu banco no pudo confirmar el pago; intentá de nuevo o usá otro medio de pago."
	case CodeSetupIncomplete:
		return "The card was not saved because the form was not completed; try again.",
			"La tarjeta no se guardó porque no se completó el formulario; intentá de nuevo."
	case CodePaymentMethodInUse:
		return "This payment method belongs to another customer.",
			"Este medio de pago pertenece a otro cliente."
	case CodeProcessorUnavailable:
		return "The payment processor is not answering; nothing was charged or saved, try again in a few minutes.",
			"El procesador de pagos no responde; no se cobró ni se guardó nada, intentá de nuevo en unos minutos."
	case CodeCardLimitExceeded:
		return "The card's limit was exceeded; use another payment method or contact your bank.",
			"Se superó el límite de la tarjeta; usá otro medio de pago o comunicate con tu banco."
	}
	return "The request could not be completed.", "No se pudo completar la solicitud."
}
