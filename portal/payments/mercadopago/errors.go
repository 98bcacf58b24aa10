package mercadopago

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mercadopago/sdk-go/pkg/mperror"

	"github.com/portero-dev/portero/portal/payments"
)

// APIError is a Mercado Pago error answer without Mercado Pago's free text: the HTTP status,
// the error code, the cause codes and the request id (for Mercado Pago's support) only. The
// library's own error is the whole answer body, whose messages may echo what was sent, so it is
// never wrapped.
type APIError struct {
	Op     string
	Status int
	// Code is Mercado Pago's "error" field (bad_request, not_found, unauthorized…).
	Code string
	// Causes are the codes of the answer's "cause" list (2006, 3031…).
	Causes    []string
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("mercadopago: ")
	b.WriteString(e.Op)
	b.WriteString(": HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if len(e.Causes) > 0 {
		b.WriteString(" (cause ")
		b.WriteString(strings.Join(e.Causes, ", "))
		b.WriteString(")")
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
// text carries the request URL, whose query may name a customer's email.
func (e *transportError) Unwrap() error { return e.cause }

// answer is the shape of Mercado Pago's error bodies.
type answer struct {
	Error string `json:"error"`
	Cause []struct {
		Code json.RawMessage `json:"code"`
	} `json:"cause"`
}

// apiError reads a library error as an APIError; nil when it is not an answer.
func (a *Adapter) apiError(op string, err error) *APIError {
	var re *mperror.ResponseError
	if !errors.As(err, &re) {
		return nil
	}
	ae := &APIError{Op: op, Status: re.StatusCode, RequestID: token(re.Headers.Get("X-Request-Id"))}
	var ans answer
	if json.Unmarshal([]byte(re.Message), &ans) == nil {
		ae.Code = token(ans.Error)
		for _, c := range ans.Cause {
			code := strings.Trim(string(c.Code), `"`)
			if t := token(code); t != "" {
				ae.Causes = append(ae.Causes, t)
			}
		}
	}
	ae.Code, ae.RequestID = a.scrub(ae.Code), a.scrub(ae.RequestID)
	for i := range ae.Causes {
		ae.Causes[i] = a.scrub(ae.Causes[i])
	}
	return ae
}

// token keeps a code-like string (letters, digits, _ - .) of at most 64 bytes, and nothing
// else: an error code is never free text.
func token(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return ""
		}
	}
	return s
}

// fail turns a library or transport error into the adapter's: refusals and configuration
// errors as *APIError, 5xx, 429 and transport failures as payments.Unavailable.
func (a *Adapter) fail(op string, err error) error {
	if ae := a.apiError(op, err); ae != nil {
		if ae.Status >= 500 || ae.Status == http.StatusTooManyRequests {
			return payments.Unavailable("mercadopago: "+op, ae)
		}
		return ae
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	return payments.Unavailable("mercadopago: "+op, &transportError{msg: a.scrub(cause.Error()), cause: cause})
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

// isMissing reports a 404: the object does not exist (for this account).
func isMissing(err error) bool {
	var re *mperror.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// isRefusal reports a 4xx other than 401/403/404/409/429: Mercado Pago refused the request as
// sent, and did nothing.
func isRefusal(err error) bool {
	var re *mperror.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusTooManyRequests:
		return false
	}
	return re.StatusCode >= 400 && re.StatusCode < 500
}

// hasCause reports whether a Mercado Pago answer lists the cause code.
func hasCause(err error, code string) bool {
	var re *mperror.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	var ans answer
	if json.Unmarshal([]byte(re.Message), &ans) != nil {
		return false
	}
	for _, c := range ans.Cause {
		if strings.Trim(string(c.Code), `"`) == code {
			return true
		}
	}
	return false
}

// Cause codes Mercado Pago answers a payment creation with that Portero reads.
const (
	// causeSecurityCodeRequired: the card token has no security code and the application is
	// not enabled for automatic payments ("security_code_id can't be null").
	causeSecurityCodeRequired = "3031"
	// causeCustomerExists: a customer with this email exists already.
	causeCustomerExists = "101"
)

// FailureCode maps a payment's status_detail to Portero's stable failure code. Lost, stolen
// and fraud-flagged cards (blacklist, high risk) are a plain decline to the customer.
func FailureCode(statusDetail string) string {
	switch statusDetail {
	case "cc_rejected_insufficient_amount":
		return payments.CodeInsufficientFunds
	case "cc_rejected_bad_filled_security_code":
		return payments.CodeIncorrectCVC
	case "cc_rejected_bad_filled_date":
		// The saved card's expiry no longer matches (a renewed card): it must be added again.
		return payments.CodeInvalidToken
	case "cc_rejected_bad_filled_card_number":
		return payments.CodeInvalidCardNumber
	case "cc_rejected_bad_filled_other", "cc_rejected_invalid_installments", "rejected_insufficient_data":
		return payments.CodeInvalidPaymentMethod
	case "cc_rejected_card_type_not_allowed":
		return payments.CodeUnsupportedMethod
	case "cc_rejected_max_attempts", "cc_amount_rate_limit_exceeded":
		return payments.CodeCardLimitExceeded
	case "cc_rejected_3ds_mandatory":
		return payments.CodeAuthenticationRequired
	case "cc_rejected_3ds_challenge":
		return payments.CodeAuthenticationFailed
	case "cc_rejected_card_error", "cc_rejected_duplicated_payment", "expired", "by_collector", "by_payer":
		return payments.CodeProcessingError
	}
	// cc_rejected_other_reason, cc_rejected_call_for_authorize, cc_rejected_card_disabled,
	// cc_rejected_blacklist, cc_rejected_high_risk, rejected_by_bank, rejected_by_regulations
	// and whatever Mercado Pago adds: the card was declined.
	return payments.CodeCardDeclined
}

func failed(code string) payments.ChargeResult {
	return payments.ChargeResult{Status: payments.ChargeFailed, Failure: &payments.Error{Code: code}}
}

// refusedCharge reads a payment creation Mercado Pago refused outright (nothing was created):
// a failed charge with the code a person can act on. The security-code cause means the
// merchant's application is not enabled for automatic payments, which the merchant must fix;
// it is logged for them.
func (a *Adapter) refusedCharge(op string, err error) payments.ChargeResult {
	ae := a.apiError(op, err)
	if hasCause(err, causeSecurityCodeRequired) {
		a.log.Error("Mercado Pago refused a charge without the card's security code: the application is not enabled for automatic payments (see the README)",
			"err", ae)
		return failed(payments.CodeProcessingError)
	}
	a.log.Warn("Mercado Pago refused a charge", "err", ae)
	return failed(payments.CodeInvalidPaymentMethod)
}

// errNotOurs is the answer to a webhook whose body Mercado Pago's records contradict.
func errNotOurs(what string) error {
	return fmt.Errorf("mercadopago webhook: %s: %w", what, payments.ErrWebhookSignature)
}
