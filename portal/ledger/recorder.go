package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
)

// The ledger is portal/charging's Recorder: the charging driver calls the processor and records
// every outcome here, one transaction each, under the conditions charging.Recorder states (the
// exactly-once argument of the charging package rests on them). Nothing here calls out.

var _ charging.Recorder = (*Store)(nil)

type methodLimitKey struct{}

// WithMethodLimit carries the portal's cap on a customer's methods (paymentMethods.maxPerCustomer,
// a live rule) to the methods the charging driver adds (AddMethod): an add beyond it is refused
// with ErrPaymentMethodLimit. Without it, adds are not capped.
func WithMethodLimit(ctx context.Context, limit int) context.Context {
	return context.WithValue(ctx, methodLimitKey{}, limit)
}

func methodLimitOf(ctx context.Context) int {
	n, _ := ctx.Value(methodLimitKey{}).(int)
	return n
}

// Customer implements charging.Recorder.
func (s *Store) Customer(ctx context.Context, processor payments.ProcessorType, customerID string) (charging.Customer, error) {
	c, err := s.GetCustomer(ctx, customerID)
	if err != nil {
		return charging.Customer{}, err
	}
	out := charging.Customer{ID: c.ID, Email: c.Email, Name: c.Name}
	err = s.read().queryRow(ctx, `SELECT processor_customer_id FROM processor_customers
		WHERE customer_id = ? AND processor = ?`, customerID, string(processor)).Scan(&out.ProcessorCustomer)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return charging.Customer{}, fmt.Errorf("read processor customer of %s: %w", customerID, err)
	}
	return out, nil
}

// SetProcessorCustomer implements charging.Recorder: the first id stored wins.
func (s *Store) SetProcessorCustomer(ctx context.Context, processor payments.ProcessorType, customerID, processorCustomerID string) (string, error) {
	if processorCustomerID == "" {
		return "", errors.New("store processor customer: empty id")
	}
	if _, err := s.GetCustomer(ctx, customerID); err != nil {
		return "", err
	}
	var stored string
	err := s.inTx(ctx, func(q querier) error {
		if _, err := q.exec(ctx, `INSERT INTO processor_customers (customer_id, processor, processor_customer_id, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, customerID, string(processor), processorCustomerID,
			toMillis(s.nowMs())); err != nil {
			return err
		}
		return q.queryRow(ctx, `SELECT processor_customer_id FROM processor_customers
			WHERE customer_id = ? AND processor = ?`, customerID, string(processor)).Scan(&stored)
	})
	if errors.Is(err, sql.ErrNoRows) {
		// The processor's id is another customer's: a processor that handed out one id twice.
		return "", fmt.Errorf("store processor customer of %s: the %s id is another customer's", customerID, processor)
	}
	if err != nil {
		return "", fmt.Errorf("store processor customer of %s: %w", customerID, err)
	}
	return stored, nil
}

// AddMethod implements charging.Recorder: the method is recorded as held by processor (its
// ProcessorID is the processor's handle, stored like a card token and never shown), capped by
// WithMethodLimit. A method already on a list with the same processor handle is returned with
// added=false; one on another customer's list is refused (payments.CodePaymentMethodInUse).
func (s *Store) AddMethod(ctx context.Context, customerID string, processor payments.ProcessorType, m payments.Method) (string, bool, error) {
	if m.ProcessorID == "" || processor == "" {
		return "", false, errors.New("record processor method: no processor or processor id")
	}
	pm := PaymentMethod{Type: m.Type, Processor: processor}
	switch m.Type {
	case payments.MethodCard:
		pm.Card = &CardInfo{Brand: m.Brand, Last4: m.Last4, ExpMonth: m.ExpMonth, ExpYear: m.ExpYear,
			Fingerprint: m.Fingerprint, Token: m.ProcessorID}
	default:
		if !m.Type.Valid() {
			return "", false, newError(KindInvalid, payments.CodeUnsupportedMethod, "type", nil)
		}
		pm.processorID = m.ProcessorID
	}
	got, added, err := s.insertMethod(ctx, customerID, pm, methodLimitOf(ctx))
	if err != nil {
		return "", false, err
	}
	return got.ID, added, nil
}

// Method implements charging.Recorder.
func (s *Store) Method(ctx context.Context, customerID, methodID string) (charging.StoredMethod, error) {
	m, err := getMethod(ctx, s.read(), customerID, methodID)
	if err != nil {
		return charging.StoredMethod{}, err
	}
	return storedMethod(m), nil
}

func storedMethod(m PaymentMethod) charging.StoredMethod {
	out := charging.StoredMethod{ID: m.ID, Processor: m.Processor,
		Method: payments.Method{Type: m.Type, ProcessorID: m.handle()}}
	if m.Card != nil {
		out.Brand, out.Last4, out.ExpMonth, out.ExpYear, out.Fingerprint = m.Card.Brand, m.Card.Last4,
			m.Card.ExpMonth, m.Card.ExpYear, m.Card.Fingerprint
	}
	return out
}

// RemoveMethod implements charging.Recorder: RemovePaymentMethod's rules, and a method already
// gone is no error.
func (s *Store) RemoveMethod(ctx context.Context, customerID, methodID string) error {
	err := s.removeMethod(ctx, customerID, methodID, true)
	var le *Error
	if errors.As(err, &le) && le.Kind == KindNotFound && le.Resource == "payment_method" {
		return nil
	}
	return err
}

// RemoveProcessorMethod implements charging.Recorder. The processor removed the method already,
// so it goes even if it was the last one of a customer with a subscription: it could not be
// charged any more, and the customer is asked for another when the next payment comes due.
func (s *Store) RemoveProcessorMethod(ctx context.Context, processor payments.ProcessorType, processorMethodID string) (string, bool, error) {
	if processorMethodID == "" {
		return "", false, nil
	}
	var id, customerID string
	err := s.read().queryRow(ctx, `SELECT id, customer_id FROM payment_methods
		WHERE processor = ? AND card_token = ? AND card_token <> '' AND detached_at IS NULL`,
		string(processor), processorMethodID).Scan(&id, &customerID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("find processor method: %w", err)
	}
	err = s.removeMethod(ctx, customerID, id, false)
	var le *Error
	if errors.As(err, &le) && le.Kind == KindNotFound {
		return customerID, false, nil // removed meanwhile by someone else
	}
	if err != nil {
		return "", false, err
	}
	s.log.Info("payment method removed: the processor detached it", "customer", customerID, "payment_method", id)
	return customerID, true, nil
}

// ClaimIncomplete implements charging.Recorder: every incomplete payment of the customer that
// now has a method the processor can charge gets a new attempt, in one transaction under the
// customer lock, so of any number of callers racing (adds in two tabs, two replicas, the
// billing sweep) one claims each payment and the others get nothing.
func (s *Store) ClaimIncomplete(ctx context.Context, processor payments.ProcessorType, customerID string) ([]charging.Attempt, error) {
	if processor == "" {
		return nil, errNoProcessor
	}
	// Most calls find nothing to claim (a method added with no payment waiting): a read first
	// spares them the customer's write lock.
	ids, err := s.read().strings(ctx, `SELECT id FROM payments WHERE customer_id = ? AND status = 'incomplete'
		ORDER BY created_at, id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list incomplete payments of customer %s: %w", customerID, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	now := s.nowMs()
	var out []charging.Attempt
	err = s.inTx(ctx, func(q querier) error {
		out = nil
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		for _, id := range ids {
			a, _, err := s.claimLocked(ctx, q, id, PaymentIncomplete, processor, now)
			if err != nil {
				return fmt.Errorf("claim payment %s: %w", id, err)
			}
			if a != nil {
				out = append(out, *a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim incomplete payments of customer %s: %w", customerID, err)
	}
	return out, nil
}

// ClaimStale implements charging.Recorder: each payment left processing longer than olderThan
// is taken over by a compare-and-set on its updated_at, so two sweepers (replicas) never take
// the same one. The attempt keeps its number, key, method (even one removed since) and
// processor.
func (s *Store) ClaimStale(ctx context.Context, olderThan time.Duration, limit int) ([]charging.Attempt, error) {
	cutoff := toMillis(s.nowMs().Add(-olderThan))
	rows, err := s.read().query(ctx, `SELECT id, customer_id, updated_at FROM payments
		WHERE status = 'processing' AND updated_at < ? ORDER BY updated_at LIMIT ?`, cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("list stale payments: %w", err)
	}
	type stale struct {
		id, customerID string
		updated        int64
	}
	var list []stale
	for rows.Next() {
		var st stale
		if err := rows.Scan(&st.id, &st.customerID, &st.updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list stale payments: %w", err)
		}
		list = append(list, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list stale payments: %w", err)
	}
	var out []charging.Attempt
	for _, st := range list {
		var a *charging.Attempt
		err := s.inTx(ctx, func(q querier) error {
			// The customer's row first, as in every transaction that writes a payment: the
			// payment's write takes it too (the version trigger), and on PostgreSQL two
			// transactions taking the two locks in opposite orders could deadlock.
			if err := lockCustomer(ctx, q, st.customerID); err != nil {
				return err
			}
			ok, err := q.execOne(ctx, `UPDATE payments SET updated_at = ? WHERE id = ? AND status = 'processing'
				AND updated_at = ?`, toMillis(s.nowMs()), st.id, st.updated)
			if err != nil || !ok {
				return err
			}
			cur, err := currentAttempt(ctx, q, st.id, "")
			a = &cur
			return err
		})
		if err != nil {
			return out, fmt.Errorf("take over stale payment %s: %w", st.id, err)
		}
		if a != nil {
			out = append(out, *a)
		}
	}
	return out, nil
}

// FindAttempt implements charging.Recorder.
func (s *Store) FindAttempt(ctx context.Context, ref charging.AttemptRef) (charging.Attempt, error) {
	q := s.read()
	switch {
	case ref.PaymentID != "":
		return currentAttempt(ctx, q, ref.PaymentID, ref.CustomerID)
	case ref.Reference != "":
		var paymentID string
		var n int
		err := q.queryRow(ctx, `SELECT payment_id, attempt_number FROM payment_attempts
			WHERE processor_reference = ? ORDER BY started_at DESC, attempt_number DESC LIMIT 1`, ref.Reference).Scan(&paymentID, &n)
		if errors.Is(err, sql.ErrNoRows) {
			return charging.Attempt{}, notFound("payment")
		}
		if err != nil {
			return charging.Attempt{}, fmt.Errorf("find attempt by reference: %w", err)
		}
		return attemptAt(ctx, q, paymentID, n)
	case ref.IdempotencyKey != "":
		paymentID, num, ok := strings.Cut(ref.IdempotencyKey, "/")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || paymentID == "" {
			return charging.Attempt{}, notFound("payment")
		}
		return attemptAt(ctx, q, paymentID, n)
	}
	return charging.Attempt{}, notFound("payment")
}

// currentAttempt is the payment's latest attempt; customerID, when set, must own the payment.
// A payment that never had an attempt (incomplete from the start) has none: not found.
func currentAttempt(ctx context.Context, q querier, paymentID, customerID string) (charging.Attempt, error) {
	query := "SELECT customer_id, attempt_count FROM payments WHERE id = ?"
	args := []any{paymentID}
	if customerID != "" {
		query += " AND customer_id = ?"
		args = append(args, customerID)
	}
	var owner string
	var n int
	err := q.queryRow(ctx, query, args...).Scan(&owner, &n)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && n == 0) {
		return charging.Attempt{}, notFound("payment")
	}
	if err != nil {
		return charging.Attempt{}, fmt.Errorf("read payment %s: %w", paymentID, err)
	}
	return attemptAt(ctx, q, paymentID, n)
}

// attemptAt reads attempt n of a payment, with what charging it needs: the payment's amount,
// the method it charges (even one removed since) and the processor it went through.
func attemptAt(ctx context.Context, q querier, paymentID string, n int) (charging.Attempt, error) {
	p, err := scanPayment(q.queryRow(ctx, "SELECT "+paymentColumns+" FROM payments WHERE id = ?", paymentID))
	if errors.Is(err, sql.ErrNoRows) {
		return charging.Attempt{}, notFound("payment")
	}
	if err != nil {
		return charging.Attempt{}, fmt.Errorf("read payment %s: %w", paymentID, err)
	}
	var methodID sql.NullString
	var processor, outcome, reference string
	err = q.queryRow(ctx, `SELECT payment_method_id, processor, outcome, processor_reference
		FROM payment_attempts WHERE payment_id = ? AND attempt_number = ?`, paymentID, n).Scan(&methodID, &processor, &outcome, &reference)
	if errors.Is(err, sql.ErrNoRows) {
		return charging.Attempt{}, notFound("payment")
	}
	if err != nil {
		return charging.Attempt{}, fmt.Errorf("read attempt %d of payment %s: %w", n, paymentID, err)
	}
	var m PaymentMethod
	if methodID.Valid {
		// The attempt charges what it chose, even if the method was removed since.
		m, err = scanMethod(q.queryRow(ctx, "SELECT "+methodColumns+" FROM payment_methods WHERE id = ?", methodID.String))
		if err != nil {
			return charging.Attempt{}, fmt.Errorf("read method of payment %s: %w", paymentID, err)
		}
	}
	a := newAttempt(p, n, m, payments.ProcessorType(processor))
	a.Status, a.Reference = charging.AttemptStatus(outcome), reference
	return *a, nil
}

// allowedFrom lists the states RecordResult may move a payment out of into to (see
// charging.Recorder.RecordResult): the first final answer wins.
func allowedFrom(to PaymentStatus) []string {
	switch to {
	case PaymentSucceeded, PaymentFailed:
		return []string{"processing", "requires_action", "pending"}
	case PaymentPending:
		return []string{"processing", "requires_action"}
	case PaymentRequiresAction:
		return []string{"processing"}
	}
	return nil
}

// RecordResult implements charging.Recorder. The payment moves only if a.Number is still its
// current attempt and the move is allowed (a conditional UPDATE), with its attempt, its
// subscription's status and the merchant's event in the same transaction.
func (s *Store) RecordResult(ctx context.Context, a charging.Attempt, res payments.ChargeResult) (bool, error) {
	status := PaymentStatus(charging.StatusOf(res))
	from := allowedFrom(status)
	var code, msg string
	if status == PaymentFailed {
		code = payments.CodeProcessingError
		if res.Failure != nil && res.Failure.Code != "" {
			code = res.Failure.Code
		}
		msg = (&payments.Error{Code: code}).Message("en")
	}
	now := s.nowMs()
	var finished sql.NullInt64
	if status != PaymentRequiresAction {
		finished = nullMillis(now)
	}
	changed := false
	var customerID string
	err := s.inTx(ctx, func(q querier) error {
		changed = false
		if err := q.queryRow(ctx, "SELECT customer_id FROM payments WHERE id = ?", a.PaymentID).Scan(&customerID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("payment")
			}
			return err
		}
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		ok, err := q.execOne(ctx, `UPDATE payments SET status = ?, processor = ?,
			processor_reference = CASE WHEN ? = '' THEN processor_reference ELSE ? END,
			instructions = ?, failure_code = ?, failure_message = ?, updated_at = ?
			WHERE id = ? AND attempt_count = ? AND status IN (`+placeholders(len(from))+`)`,
			append([]any{string(status), string(a.Processor), res.Reference, res.Reference, res.Instructions,
				code, msg, toMillis(now), a.PaymentID, a.Number}, anys(from)...)...)
		if err != nil || !ok {
			// !ok: an earlier answer about this attempt was recorded (a re-drive, a webhook, the
			// customer's return), or the attempt is no longer the payment's current one.
			return err
		}
		changed = true
		if _, err := q.exec(ctx, `UPDATE payment_attempts SET outcome = ?,
			processor_reference = CASE WHEN ? = '' THEN processor_reference ELSE ? END,
			failure_code = ?, failure_message = ?, finished_at = ? WHERE payment_id = ? AND attempt_number = ?`,
			string(status), res.Reference, res.Reference, code, msg, finished, a.PaymentID, a.Number); err != nil {
			return err
		}
		if err := updateSubscriptionAfterPayment(ctx, q, a.PaymentID, status, now); err != nil {
			return err
		}
		return s.recordPaymentEvent(ctx, q, paymentStatusEvent(status), a.PaymentID)
	})
	if err != nil {
		return false, fmt.Errorf("record charge of payment %s attempt %d: %w", a.PaymentID, a.Number, err)
	}
	if changed && s.hooks.PaymentUpdated != nil {
		if p, err := s.getPayment(ctx, customerID, a.PaymentID); err == nil {
			s.hooks.PaymentUpdated(ctx, p)
		}
	}
	return changed, nil
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// EventSeen implements charging.Recorder.
func (s *Store) EventSeen(ctx context.Context, processor payments.ProcessorType, eventID string) (bool, error) {
	var one int
	err := s.read().queryRow(ctx, "SELECT 1 FROM processor_events WHERE processor = ? AND event_id = ?",
		string(processor), eventID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up processor event: %w", err)
	}
	return true, nil
}

// MarkEvent implements charging.Recorder.
func (s *Store) MarkEvent(ctx context.Context, processor payments.ProcessorType, eventID, eventType string) error {
	_, err := s.read().exec(ctx, `INSERT INTO processor_events (processor, event_id, event_type, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, string(processor), eventID, eventType, toMillis(s.nowMs()))
	if err != nil {
		return fmt.Errorf("mark processor event: %w", err)
	}
	return nil
}
