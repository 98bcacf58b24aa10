package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// Error codes the API itself returns, besides the ledger's and the processor's codes that pass
// through unchanged (see ErrorCodes). Codes are API contract: never renamed once released.
const (
	CodeUnauthorized              = "unauthorized"
	CodeMerchantAPIDisabled       = "merchant_api_disabled"
	CodeMerchantAPIKeyUnavailable = "merchant_api_key_unavailable"
	CodePortalUnavailable         = "portal_unavailable"
	CodeRouteNotFound             = "route_not_found"
	CodeMethodNotAllowed          = "method_not_allowed"
	CodeUnsupportedMediaType      = "unsupported_media_type"
	CodeRequestTooLarge           = "request_too_large"
	CodeMalformedJSON             = "malformed_json"
	CodeUnknownField              = "unknown_field"
	CodeIdempotencyKeyRequired    = "idempotency_key_required"
	CodeIdempotencyConflict       = "idempotency_conflict"
	CodeMethodTypeNotAllowed      = "payment_method_type_not_allowed"
	CodeTTLExceedsPortalMaximum   = "ttl_exceeds_portal_maximum"
	CodeSessionRefused            = "session_refused"
	CodeSessionNotReady           = "session_not_ready"
	CodeKubernetesUnavailable     = "kubernetes_unavailable"
	CodeInternal                  = "internal_error"
	// CodeRawCardNotAccepted refuses card details sent to a portal whose processor takes cards
	// on its own pages only (send processor_payment_method instead).
	CodeRawCardNotAccepted = "raw_card_not_accepted"
)

// ErrorCodes lists every code an error response may carry, for the OpenAPI document (whose
// Error.code enum a test compares with this list) and for clients generating enums.
func ErrorCodes() []string {
	return []string{
		CodeUnauthorized, CodeMerchantAPIDisabled, CodeMerchantAPIKeyUnavailable, CodePortalUnavailable,
		CodeRouteNotFound, CodeMethodNotAllowed, CodeUnsupportedMediaType, CodeRequestTooLarge,
		CodeMalformedJSON, CodeUnknownField, CodeIdempotencyKeyRequired, CodeIdempotencyConflict,
		CodeMethodTypeNotAllowed, CodeTTLExceedsPortalMaximum, CodeSessionRefused, CodeSessionNotReady,
		CodeKubernetesUnavailable, CodeInternal, CodeRawCardNotAccepted,
		// The ledger's.
		ledger.CodeNotFound, ledger.CodeInvalidField, ledger.CodeRequired,
		ledger.CodeLastMethodWithActiveSubscription, ledger.CodeSubscriptionCanceled,
		ledger.CodePaymentState, ledger.CodeMethodNotUsable, ledger.CodePaymentMethodLimit,
		ledger.CodePlanExists, ledger.CodePlanArchived, ledger.CodePlanCurrencyMismatch,
		ledger.CodeQuantityAboveMaximum, ledger.CodeSubscriptionChanged, ledger.CodePeriodEnded,
		// The processor's validation codes and refusals.
		payments.CodeInvalidCardNumberCharacters, payments.CodeInvalidCardNumberLength,
		payments.CodeInvalidCardNumber, payments.CodeInvalidExpiryMonth, payments.CodeInvalidExpiryYear,
		payments.CodeExpiredCard, payments.CodeInvalidCVC,
		payments.CodeInvalidCBUCharacters, payments.CodeInvalidCBULength, payments.CodeInvalidCBUCheckDigit,
		payments.CodeCBUIsCVU, payments.CodeInvalidCVUCharacters, payments.CodeInvalidCVULength,
		payments.CodeInvalidCVUPrefix, payments.CodeInvalidCVUCheckDigit,
		payments.CodeInvalidCUITCharacters, payments.CodeInvalidCUITLength, payments.CodeInvalidCUITPrefix,
		payments.CodeInvalidCUITCheckDigit,
		payments.CodeUnknownCardNetwork, payments.CodePlaceholderCBU, payments.CodePlaceholderCVU,
		payments.CodeCardDeclined, payments.CodeInsufficientFunds, payments.CodeIncorrectCVC,
		payments.CodeProcessingError, payments.CodeUnsupportedCurrency, payments.CodeUnsupportedMethod,
		payments.CodeInvalidAmount, payments.CodeInvalidToken, payments.CodeInvalidReference,
		payments.CodeInvalidPaymentMethod, payments.CodePaymentMethodInUse, payments.CodeProcessorUnavailable,
	}
}

// apiError is an error response: status, stable code, optional field and a message rendered in
// the caller's language when written.
type apiError struct {
	status  int
	code    string
	field   string
	message func(locale string) string
	// header is an extra response header (WWW-Authenticate, Allow).
	header, headerValue string
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// newError builds an apiError with a fixed English and Spanish message.
func newError(status int, code, field, en, es string) *apiError {
	return &apiError{status: status, code: code, field: field, message: func(locale string) string {
		if isSpanish(locale) {
			return es
		}
		return en
	}}
}

func (e *apiError) withHeader(name, value string) *apiError {
	e.header, e.headerValue = name, value
	return e
}

// Errors the handlers share.
var (
	errUnauthorized = func() *apiError {
		return newError(http.StatusUnauthorized, CodeUnauthorized, "",
			"Missing or wrong API key: send the portal's merchant API key as \"Authorization: Bearer <key>\".",
			"Falta la clave de API o es incorrecta: enviá la clave de la API de comercios del portal como \"Authorization: Bearer <clave>\".").
			withHeader("WWW-Authenticate", `Bearer realm="portero"`)
	}
	errMerchantAPIDisabled = func() *apiError {
		return newError(http.StatusNotFound, CodeMerchantAPIDisabled, "",
			"This portal has no merchant API: set spec.merchantAPI.keySecretRef on the CustomerPortal to enable it.",
			"Este portal no tiene API de comercios: configurá spec.merchantAPI.keySecretRef en el CustomerPortal para habilitarla.")
	}
	errKeyUnavailable = func() *apiError {
		return newError(http.StatusServiceUnavailable, CodeMerchantAPIKeyUnavailable, "",
			"The merchant API key cannot be read right now (its Secret is missing or unreadable); try again shortly.",
			"No se puede leer la clave de la API de comercios en este momento (falta su Secret o no se puede leer); intentá de nuevo en unos instantes.")
	}
	errPortalUnavailable = func() *apiError {
		return newError(http.StatusServiceUnavailable, CodePortalUnavailable, "",
			"The portal's configuration is not available right now; try again shortly.",
			"La configuración del portal no está disponible en este momento; intentá de nuevo en unos instantes.")
	}
	errRouteNotFound = func() *apiError {
		return newError(http.StatusNotFound, CodeRouteNotFound, "",
			"There is no such API endpoint; see /api/v1/openapi.json.",
			"No existe ese endpoint de la API; mirá /api/v1/openapi.json.")
	}
	errIdempotencyKeyRequired = func() *apiError {
		return newError(http.StatusBadRequest, CodeIdempotencyKeyRequired, "Idempotency-Key",
			"Send an Idempotency-Key header (for example a UUID) so a retried request never charges twice.",
			"Enviá un encabezado Idempotency-Key (por ejemplo un UUID) para que un reintento nunca cobre dos veces.")
	}
	errInternal = func() *apiError {
		return newError(http.StatusInternalServerError, CodeInternal, "",
			"Something went wrong on our side; try again later. Nothing was changed unless a later GET shows otherwise.",
			"Algo falló de nuestro lado; intentá de nuevo más tarde. No se cambió nada salvo que un GET posterior muestre lo contrario.")
	}
)

func errMethodNotAllowed(allow []string) *apiError {
	return newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "",
		"This endpoint does not accept that HTTP method; allowed: "+strings.Join(allow, ", ")+".",
		"Este endpoint no acepta ese método HTTP; se permiten: "+strings.Join(allow, ", ")+".").
		withHeader("Allow", strings.Join(allow, ", "))
}

func errInvalidField(field, en, es string) *apiError {
	return newError(http.StatusBadRequest, ledger.CodeInvalidField, field, en, es)
}

func errRequired(field string) *apiError {
	return newError(http.StatusBadRequest, ledger.CodeRequired, field,
		"The field "+field+" is required.", "El campo "+field+" es obligatorio.")
}

// declineCodes are processor refusals: the request was fine, the money source said no. They
// answer 402 Payment Required, as card APIs do, so clients can tell them from their own mistakes.
func isDecline(code string) bool {
	switch code {
	case payments.CodeCardDeclined, payments.CodeInsufficientFunds, payments.CodeIncorrectCVC,
		payments.CodeProcessingError, payments.CodeInvalidToken:
		return true
	}
	return false
}

// apiCode renames the few ledger codes the API spells differently.
func apiCode(code string) string {
	if code == ledger.CodeIdempotencyConflict {
		return CodeIdempotencyConflict
	}
	return code
}

// fromStoreError turns an error of the ledger (or the processor behind it) into a response.
// Anything that is not a typed, explainable error is an internal error: the caller logs it.
func fromStoreError(err error) (*apiError, bool) {
	var le *ledger.Error
	if errors.As(err, &le) {
		status := http.StatusBadRequest
		switch le.Kind {
		case ledger.KindNotFound:
			status = http.StatusNotFound
		case ledger.KindConflict:
			status = http.StatusConflict
		}
		if isDecline(le.Code) {
			status = http.StatusPaymentRequired
		}
		return &apiError{status: status, code: apiCode(le.Code), field: le.Field, message: le.Message}, true
	}
	var pe *payments.Error
	if errors.As(err, &pe) {
		status := http.StatusBadRequest
		switch {
		case isDecline(pe.Code):
			status = http.StatusPaymentRequired
		case pe.Code == payments.CodePaymentMethodInUse:
			status = http.StatusConflict
		}
		return &apiError{status: status, code: pe.Code, field: pe.Field, message: pe.Message}, true
	}
	if payments.IsUnavailable(err) {
		// Nothing was recorded: the same request can simply be sent again.
		pe := &payments.Error{Code: payments.CodeProcessorUnavailable}
		return (&apiError{status: http.StatusServiceUnavailable, code: pe.Code, message: pe.Message}).withHeader("Retry-After", "30"), true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(http.StatusServiceUnavailable, CodeInternal, "",
			"The request took too long; try again. Retry creations of payments and subscriptions with the same Idempotency-Key.",
			"La solicitud tardó demasiado; intentá de nuevo. Reintentá la creación de pagos y suscripciones con la misma Idempotency-Key."), false
	}
	return errInternal(), false
}

// isSpanish reports whether a locale ("es", "es-AR") asks for Spanish.
func isSpanish(locale string) bool {
	l := strings.ToLower(strings.TrimSpace(locale))
	return l == "es" || strings.HasPrefix(l, "es-") || strings.HasPrefix(l, "es_")
}

// locale picks "es" or "en" from Accept-Language by quality; English when neither is asked for.
func locale(r *http.Request) string {
	best, bestQ := "en", -1.0
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		lang := strings.ToLower(tag)
		if i := strings.IndexAny(lang, "-_"); i >= 0 {
			lang = lang[:i]
		}
		if (lang == "es" || lang == "en") && q > bestQ {
			best, bestQ = lang, q
		}
	}
	return best
}
