package charging

import (
	"errors"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// Observer hears of every call the driver makes to its processor: the operation, how long it
// took and its outcome. Both are from small fixed sets, fit for metric labels:
//
// operations: ensure_customer, start_setup, complete_setup, attach_method, tokenize_card,
// detach, charge, lookup_charge, authenticate, confirm;
//
// outcomes: ok; for charge, lookup_charge and confirm the charge's state (succeeded, failed,
// pending, requires_action) or not_found (a lookup of a charge the processor never received);
// refused (the processor said no: a *payments.Error); unavailable (the processor could not be
// reached, failed or timed out: payments.IsUnavailable); error (anything else). An unavailable
// or error charge has an unknown outcome: the driver re-drives it with the same key.
type Observer func(operation string, took time.Duration, outcome string)

// observe runs one processor call and reports it.
func observe[T any](d *Driver, op string, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	if d.observer != nil {
		outcome := callOutcome(err)
		if r, ok := any(v).(payments.ChargeResult); ok && err == nil {
			outcome = string(r.Status)
		}
		d.observer(op, time.Since(start), outcome)
	}
	return v, err
}

// callOutcome names how a call ended by its error.
func callOutcome(err error) string {
	var pe *payments.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, payments.ErrNoSuchCharge):
		return "not_found"
	case payments.IsUnavailable(err):
		return "unavailable"
	case errors.As(err, &pe):
		return "refused"
	default:
		return "error"
	}
}
