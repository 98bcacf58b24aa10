package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// NewPayment is the input of CreatePayment.
type NewPayment struct {
	CustomerID string
	// Amount in minor units (centavos); must be positive.
	Amount      int64
	Currency    Currency
	Description string
	// SubscriptionID links the payment to one of the customer's subscriptions; its pinned
	// method, if any, is charged instead of the preferred one.
	SubscriptionID string
	// IdempotencyKey makes retries safe: the same key with the same parameters returns the
	// original payment without charging again; with other parameters, ErrIdempotencyConflict.
	// Keys are scoped to the customer.
	IdempotencyKey string
}

// ListPaymentsParams filter and page ListPayments.
type ListPaymentsParams struct {
	// CustomerID restricts the list to one customer; always set it when the caller is a
	// customer.
	CustomerID     string
	SubscriptionID string
	Status         PaymentStatus
	// Statuses restricts the list to payments in any of these statuses (on top of Status).
	Statuses []PaymentStatus
	// Due restricts the list to the payments that wait for the customer (Payment.Due).
	Due    bool
	Limit  int
	Cursor string
}

// knownStatus reports the statuses a payment can be in.
func knownStatus(s PaymentStatus) bool {
	switch s {
	case PaymentIncomplete, PaymentProcessing, PaymentPending, PaymentSucceeded, PaymentFailed:
		return true
	}
	return false
}

// Keys the ledger derives itself start with this prefix, which merchants may not use, so a
// merchant's key can never collide with a renewal's.
const internalKeyPrefix = "portero:"

const paymentColumns = `id, customer_id, amount, currency, description, subscription_id,
	period_start, period_end, payment_method_id, method_type, method_summary, status,
	idempotency_key, attempt_count, processor, processor_reference, instructions, failure_code,
	failure_message, created_at, updated_at, credit_applied`

type paymentRow struct {
	Payment
	attemptCount int
	requestHash  string
}

func scanPayment(row interface{ Scan(...any) error }) (paymentRow, error) {
	var p paymentRow
	var subID, methodID, key sql.NullString
	var periodStart, periodEnd sql.NullInt64
	var created, updated int64
	err := row.Scan(&p.ID, &p.CustomerID, &p.Amount, &p.Currency, &p.Description, &subID,
		&periodStart, &periodEnd, &methodID, &p.MethodType, &p.MethodSummary, &p.Status, &key,
		&p.attemptCount, &p.Processor, &p.ProcessorReference, &p.Instructions, &p.FailureCode,
		&p.FailureMessage, &created, &updated, &p.CreditApplied)
	p.SubscriptionID, p.PaymentMethodID, p.IdempotencyKey = subID.String, methodID.String, key.String
	p.PeriodStart, p.PeriodEnd = fromNullMillis(periodStart), fromNullMillis(periodEnd)
	p.CreatedAt, p.UpdatedAt = fromMillis(created), fromMillis(updated)
	return p, err
}

func validateIdempotencyKey(key string) error {
	if key == "" {
		return nil
	}
	if len(key) > 255 || strings.HasPrefix(key, internalKeyPrefix) {
		return newError(KindInvalid, CodeInvalidField, "idempotency_key", nil)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return newError(KindInvalid, CodeInvalidField, "idempotency_key", nil)
		}
	}
	return nil
}

// requestHash fingerprints the parameters a payment's idempotency key promises not to change.
func requestHash(amount int64, currency Currency, description, subscriptionID string, extra string) string {
	return fingerprint(amount, currency, description, subscriptionID, extra)
}

// fingerprint hashes the parameters an idempotency key promises not to change.
func fingerprint(params ...any) string {
	b, _ := json.Marshal(params)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// findIdempotent looks key up among the customer's rows of table ("payments", "subscriptions"):
// the id of the row an earlier request with the key created, "" if none did, or a conflict
// (naming resource, "" for a payment) when that request's hash differs from hash.
func findIdempotent(ctx context.Context, q querier, table, customerID, key, hash, resource string) (string, error) {
	var id, prior string
	err := q.queryRow(ctx, "SELECT id, request_hash FROM "+table+" WHERE customer_id = ? AND idempotency_key = ?",
		customerID, key).Scan(&id, &prior)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("look up idempotency key: %w", err)
	case prior != hash:
		return "", &Error{Kind: KindConflict, Code: CodeIdempotencyConflict, Field: "idempotency_key", Resource: resource}
	}
	return id, nil
}

// claim is a payment this process owns for one charge attempt: the conditional UPDATE that
// created it succeeded, so no other goroutine or replica can charge the same attempt.
type claim struct {
	paymentID      string
	customerID     string
	subscriptionID string
	attempt        int
	amount         int64
	currency       Currency
	description    string
	method         PaymentMethod
	// restore marks a finish that puts a payment back as it was (a failed confirmation).
	restore bool
}

func (c claim) chargeRequest() payments.ChargeRequest {
	ref := payments.MethodRef{Type: c.method.Type, Account: c.method.Account, Wallet: c.method.Wallet}
	if c.method.Card != nil {
		ref.Token = c.method.Card.Token
	}
	return payments.ChargeRequest{
		// Stable per attempt: a re-driven attempt (RecoverProcessing) reuses it, so a processor
		// that honours idempotency keys never collects twice.
		IdempotencyKey: c.paymentID + "/" + strconv.Itoa(c.attempt),
		Amount:         c.amount,
		Currency:       string(c.currency),
		Description:    c.description,
		Method:         ref,
	}
}

// CreatePayment records a payment and charges it: to the subscription's pinned method, else
// the customer's preferred usable method. Without one the payment is left incomplete and
// Hooks.PaymentIncomplete fires; it then completes by itself when a method is added.
func (s *Store) CreatePayment(ctx context.Context, in NewPayment) (Payment, error) {
	if in.Amount <= 0 {
		return Payment{}, newError(KindInvalid, CodeInvalidAmount, "amount", nil)
	}
	cur, err := ParseCurrency(string(in.Currency))
	if err != nil {
		return Payment{}, err
	}
	desc, err := checkText("description", in.Description, 500)
	if err != nil {
		return Payment{}, err
	}
	if err := validateIdempotencyKey(in.IdempotencyKey); err != nil {
		return Payment{}, err
	}
	return s.createPayment(ctx, paymentInsert{
		customerID:     in.CustomerID,
		amount:         in.Amount,
		currency:       cur,
		description:    desc,
		subscriptionID: in.SubscriptionID,
		idempotencyKey: in.IdempotencyKey,
		requestHash:    requestHash(in.Amount, cur, desc, in.SubscriptionID, ""),
	})
}

type paymentInsert struct {
	customerID     string
	amount         int64
	currency       Currency
	description    string
	subscriptionID string
	periodStart    time.Time
	periodEnd      time.Time
	idempotencyKey string
	requestHash    string
	// applyCredit lets the customer's credit balance pay the charge, all or part (credits.go);
	// creditApplied is the part it pays.
	applyCredit   bool
	creditApplied int64
}

// createPayment inserts and charges a validated payment. The insert, the method choice and the
// claim of the first attempt are one transaction under the customer lock.
func (s *Store) createPayment(ctx context.Context, in paymentInsert) (Payment, error) {
	var r inserted
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, in.customerID); err != nil {
			return err
		}
		var err error
		r, err = s.insertPayment(ctx, q, in, s.nowMs())
		return err
	})
	if err != nil {
		return Payment{}, fmt.Errorf("create payment for customer %s: %w", in.customerID, err)
	}
	return s.afterInsert(ctx, in.customerID, r)
}

// inserted is what insertPayment did, for afterInsert to act on once committed.
type inserted struct {
	id     string
	replay bool
	claim  *claim
	// covered: the credit balance paid the charge whole, and no payment was made.
	covered bool
}

// insertPayment runs inside a transaction that holds the customer lock: it resolves an
// idempotent replay, picks the method, inserts the payment and, with a method, claims its first
// attempt. Without a method the payment is incomplete (and its subscription past due).
func (s *Store) insertPayment(ctx context.Context, q querier, in paymentInsert, now time.Time) (inserted, error) {
	if in.idempotencyKey != "" {
		id, err := findIdempotent(ctx, q, "payments", in.customerID, in.idempotencyKey, in.requestHash, "")
		if err != nil || id != "" {
			return inserted{id: id, replay: id != ""}, err
		}
	}
	if in.applyCredit {
		if covered, err := s.applyCredit(ctx, q, &in, now); err != nil || covered {
			return inserted{covered: covered}, err
		}
	}
	if in.subscriptionID != "" {
		var owner string
		err := q.queryRow(ctx, "SELECT customer_id FROM subscriptions WHERE id = ?", in.subscriptionID).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != in.customerID) {
			return inserted{}, notFound("subscription")
		}
		if err != nil {
			return inserted{}, fmt.Errorf("look up subscription: %w", err)
		}
	}
	m, err := resolveMethod(ctx, q, in.customerID, in.subscriptionID, now)
	if err != nil {
		return inserted{}, err
	}
	id := newID(prefixPayment)
	status, attempts := PaymentIncomplete, 0
	var methodID, summary string
	var methodType payments.MethodType
	if m != nil {
		status, attempts = PaymentProcessing, 1
		methodID, methodType, summary = m.ID, m.Type, m.Summary()
	}
	_, err = q.exec(ctx, `INSERT INTO payments (id, customer_id, amount, currency, description,
		subscription_id, period_start, period_end, payment_method_id, method_type, method_summary,
		status, idempotency_key, request_hash, attempt_count, created_at, updated_at, credit_applied)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, in.customerID, in.amount, string(in.currency), in.description, nullString(in.subscriptionID),
		nullMillis(in.periodStart), nullMillis(in.periodEnd), nullString(methodID), string(methodType),
		summary, string(status), nullString(in.idempotencyKey), in.requestHash, attempts,
		toMillis(now), toMillis(now), in.creditApplied)
	if err != nil {
		return inserted{}, fmt.Errorf("insert payment: %w", err)
	}
	if err := recordCreditUse(ctx, q, id, in, now); err != nil {
		return inserted{}, err
	}
	if m == nil {
		if err := updateSubscriptionAfterPayment(ctx, q, id, PaymentIncomplete, now); err != nil {
			return inserted{}, err
		}
		if err := s.recordPaymentEvent(ctx, q, EventPaymentCreated, id); err != nil {
			return inserted{}, err
		}
		return inserted{id: id}, s.recordPaymentEvent(ctx, q, EventPaymentIncomplete, id)
	}
	if err := insertAttempt(ctx, q, id, 1, *m, now); err != nil {
		return inserted{}, err
	}
	if err := s.recordPaymentEvent(ctx, q, EventPaymentCreated, id); err != nil {
		return inserted{}, err
	}
	return inserted{id: id, claim: &claim{paymentID: id, customerID: in.customerID,
		subscriptionID: in.subscriptionID, attempt: 1, amount: in.amount, currency: in.currency,
		description: in.description, method: *m}}, nil
}

// recordPaymentEvent records an event of type typ about the payment as the transaction q sees it.
func (s *Store) recordPaymentEvent(ctx context.Context, q querier, typ, paymentID string) error {
	p, err := getPaymentQ(ctx, q, "", paymentID)
	if err != nil {
		return err
	}
	return s.recordEvent(ctx, q, typ, p.CustomerID, p.ID, p)
}

// paymentStatusEvent is the event of a payment reaching status st ("" for none).
func paymentStatusEvent(st PaymentStatus) string {
	switch st {
	case PaymentSucceeded:
		return EventPaymentSucceeded
	case PaymentFailed:
		return EventPaymentFailed
	case PaymentPending:
		return EventPaymentPending
	case PaymentIncomplete:
		return EventPaymentIncomplete
	}
	return ""
}

// afterInsert acts on a committed insertPayment: replays return the stored payment, incomplete
// payments fire the hook, claimed ones are charged.
func (s *Store) afterInsert(ctx context.Context, customerID string, r inserted) (Payment, error) {
	switch {
	case r.covered:
		return Payment{}, nil
	case r.replay:
		s.log.Info("payment request replayed", "customer", customerID, "payment", r.id)
		return s.getPayment(ctx, customerID, r.id)
	case r.claim == nil:
		p, err := s.getPayment(ctx, customerID, r.id)
		if err != nil {
			return Payment{}, err
		}
		s.log.Info("payment incomplete: no usable payment method", "customer", customerID, "payment", r.id)
		if s.hooks.PaymentIncomplete != nil {
			s.hooks.PaymentIncomplete(ctx, p)
		}
		return p, nil
	}
	return s.charge(ctx, *r.claim)
}

func insertAttempt(ctx context.Context, q querier, paymentID string, n int, m PaymentMethod, now time.Time) error {
	_, err := q.exec(ctx, `INSERT INTO payment_attempts (payment_id, attempt_number, payment_method_id,
		method_type, method_summary, outcome, started_at) VALUES (?, ?, ?, ?, ?, 'processing', ?)`,
		paymentID, n, m.ID, string(m.Type), m.Summary(), toMillis(now))
	if err != nil {
		return fmt.Errorf("insert payment attempt: %w", err)
	}
	return nil
}

// chargeTimeout bounds one processor call. Keep RecoverProcessing's staleAfter above it.
const chargeTimeout = time.Minute

// charge calls the processor for a claimed attempt and records the outcome. It runs outside any
// transaction: a slow processor holds no lock. Once claimed, an attempt is driven to the end
// even if the caller goes away (a customer closing the tab right after adding a card), since
// an abandoned claim would wait for RecoverProcessing.
func (s *Store) charge(ctx context.Context, c claim) (Payment, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chargeTimeout)
	defer cancel()
	res, err := s.processor.Charge(ctx, c.chargeRequest())
	if err != nil {
		// The outcome is unknown (the processor may have collected): the payment stays
		// processing for RecoverProcessing to re-drive with the same idempotency key, rather
		// than being marked failed and retried as a new charge.
		s.log.Error("charge outcome unknown; payment left processing", "payment", c.paymentID,
			"attempt", c.attempt, "processor", s.processor.Name(), "err", err)
		return s.getPayment(ctx, c.customerID, c.paymentID)
	}
	return s.finish(ctx, c, res)
}

// finish records a processor result for a claimed attempt. It runs even if ctx was canceled
// while the processor answered: money may have moved, so the record must be written.
func (s *Store) finish(ctx context.Context, c claim, res payments.ChargeResult) (Payment, error) {
	ctx = context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	status := PaymentFailed
	switch res.Status {
	case payments.ChargeSucceeded:
		status = PaymentSucceeded
	case payments.ChargePending:
		status = PaymentPending
	}
	var code, msg string
	if status == PaymentFailed {
		code = payments.CodeProcessingError
		if res.Failure != nil {
			code = res.Failure.Code
		}
		msg = (&payments.Error{Code: code}).Message("en")
	}
	now := s.nowMs()
	finished := false
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, c.customerID); err != nil {
			return err
		}
		ok, err := q.execOne(ctx, `UPDATE payments SET status = ?, processor = ?,
			processor_reference = ?, instructions = ?, failure_code = ?, failure_message = ?, updated_at = ?
			WHERE id = ? AND status = 'processing' AND attempt_count = ?`,
			string(status), s.processor.Name(), res.Reference, res.Instructions, code, msg,
			toMillis(now), c.paymentID, c.attempt)
		if err != nil || !ok {
			// !ok: another process already recorded this attempt (a RecoverProcessing re-drive).
			return err
		}
		finished = true
		if _, err := q.exec(ctx, `UPDATE payment_attempts SET outcome = ?, processor_reference = ?,
			failure_code = ?, failure_message = ?, finished_at = ? WHERE payment_id = ? AND attempt_number = ?`,
			string(status), res.Reference, code, msg, toMillis(now), c.paymentID, c.attempt); err != nil {
			return err
		}
		if err := updateSubscriptionAfterPayment(ctx, q, c.paymentID, status, now); err != nil {
			return err
		}
		if c.restore {
			return nil // back to where it was: nothing happened the merchant must hear of
		}
		return s.recordPaymentEvent(ctx, q, paymentStatusEvent(status), c.paymentID)
	})
	if err != nil {
		return Payment{}, fmt.Errorf("record charge of payment %s: %w", c.paymentID, err)
	}
	p, err := s.getPayment(ctx, c.customerID, c.paymentID)
	if err != nil {
		return Payment{}, err
	}
	if finished {
		s.log.Info("payment charged", "customer", c.customerID, "payment", c.paymentID,
			"attempt", c.attempt, "method_type", c.method.Type, "status", status, "failure_code", code)
		if s.hooks.PaymentUpdated != nil {
			s.hooks.PaymentUpdated(ctx, p)
		}
	}
	return p, nil
}

// updateSubscriptionAfterPayment keeps a subscription's status in line with the payment of its
// current period: paid → active, failed → past_due. Payments of earlier periods do not move it.
func updateSubscriptionAfterPayment(ctx context.Context, q querier, paymentID string, status PaymentStatus, now time.Time) error {
	var from, to SubscriptionStatus
	switch status {
	case PaymentSucceeded:
		from, to = SubscriptionPastDue, SubscriptionActive
	case PaymentFailed, PaymentIncomplete:
		from, to = SubscriptionActive, SubscriptionPastDue
	default:
		return nil
	}
	_, err := q.exec(ctx, `UPDATE subscriptions SET status = ?, updated_at = ?
		WHERE status = ? AND id = (SELECT subscription_id FROM payments WHERE id = ?)
		AND current_period_start = (SELECT period_start FROM payments WHERE id = ?)`,
		string(to), toMillis(now), string(from), paymentID, paymentID)
	if err != nil {
		return fmt.Errorf("update subscription status: %w", err)
	}
	return nil
}

// claimPayment takes an attempt on a payment that is in status from (incomplete or failed):
// under the customer lock it picks the method to charge and moves the payment to processing
// with a conditional UPDATE. Only the caller whose UPDATE matched gets a claim; everyone else
// gets nil. A failed payment with no usable method becomes incomplete (madeIncomplete).
func (s *Store) claimPayment(ctx context.Context, paymentID string, from PaymentStatus) (c *claim, madeIncomplete bool, err error) {
	now := s.nowMs()
	err = s.inTx(ctx, func(q querier) error {
		var customerID string
		if err := q.queryRow(ctx, "SELECT customer_id FROM payments WHERE id = ?", paymentID).Scan(&customerID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("payment")
			}
			return err
		}
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		p, err := scanPayment(q.queryRow(ctx, "SELECT "+paymentColumns+" FROM payments WHERE id = ?", paymentID))
		if err != nil {
			return err
		}
		if p.Status != from || p.Closed() {
			return nil
		}
		m, err := resolveMethod(ctx, q, customerID, p.SubscriptionID, now)
		if err != nil {
			return err
		}
		if m == nil {
			if from == PaymentFailed {
				madeIncomplete, err = q.execOne(ctx, `UPDATE payments SET status = 'incomplete', updated_at = ?
					WHERE id = ? AND status = 'failed'`, toMillis(now), paymentID)
				if err == nil && madeIncomplete {
					err = s.recordPaymentEvent(ctx, q, EventPaymentIncomplete, paymentID)
				}
			}
			return err
		}
		n := p.attemptCount + 1
		ok, err := q.execOne(ctx, `UPDATE payments SET status = 'processing', payment_method_id = ?,
			method_type = ?, method_summary = ?, attempt_count = ?, processor_reference = '',
			instructions = '', failure_code = '', failure_message = '', updated_at = ?
			WHERE id = ? AND status = ? AND attempt_count = ?`,
			m.ID, string(m.Type), m.Summary(), n, toMillis(now), paymentID, string(from), p.attemptCount)
		if err != nil || !ok {
			return err
		}
		if err := insertAttempt(ctx, q, paymentID, n, *m, now); err != nil {
			return err
		}
		c = &claim{paymentID: paymentID, customerID: customerID, subscriptionID: p.SubscriptionID,
			attempt: n, amount: p.Amount, currency: p.Currency, description: p.Description, method: *m}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("claim payment %s: %w", paymentID, err)
	}
	return c, madeIncomplete, nil
}

// SettleIncomplete charges the customer's incomplete payments if the customer now has a usable
// method, each exactly once however many callers (goroutines or replicas) race: every payment
// is claimed by a conditional UPDATE and only the winner charges it. It returns the payments
// this call charged. AddPaymentMethod and MakePreferred call it; call it directly to sweep.
func (s *Store) SettleIncomplete(ctx context.Context, customerID string) ([]Payment, error) {
	ids, err := s.read().strings(ctx, `SELECT id FROM payments WHERE customer_id = ? AND status = 'incomplete'
		ORDER BY created_at, id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list incomplete payments of customer %s: %w", customerID, err)
	}
	// One payment's failure (a database hiccup, a processor outage) must not strand the others:
	// every payment gets its try, and the errors are reported together.
	var settled []Payment
	var errs []error
	for _, id := range ids {
		c, _, err := s.claimPayment(ctx, id, PaymentIncomplete)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c == nil {
			continue // someone else claimed it, or there is still no usable method
		}
		p, err := s.charge(ctx, *c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		settled = append(settled, p)
	}
	return settled, errors.Join(errs...)
}

// SettleStranded settles the incomplete payments of customers who added a payment method after
// the payment became incomplete. The settlement that follows a method change runs after the
// change commits, so a process stopped in between (a rollout, an OOM kill) or a failure on the
// way leaves payments incomplete beside a usable method, and nothing else would ever charge
// them. Run it periodically (the billing loop does, with the renewals). Each payment is still
// charged exactly once; it returns how many this call charged.
func (s *Store) SettleStranded(ctx context.Context) (int, error) {
	customers, err := s.read().strings(ctx, `SELECT DISTINCT p.customer_id FROM payments p
		WHERE p.status = 'incomplete' AND EXISTS (SELECT 1 FROM payment_methods m
			WHERE m.customer_id = p.customer_id AND m.detached_at IS NULL AND m.created_at >= p.updated_at)`)
	if err != nil {
		return 0, fmt.Errorf("find stranded incomplete payments: %w", err)
	}
	n := 0
	var errs []error
	for _, c := range customers {
		if ctx.Err() != nil {
			break
		}
		settled, err := s.SettleIncomplete(ctx, c)
		n += len(settled)
		if err != nil {
			errs = append(errs, fmt.Errorf("customer %s: %w", c, err))
		}
	}
	if n > 0 {
		s.log.Info("settled stranded incomplete payments", "payments", n, "customers", len(customers))
	}
	return n, errors.Join(errs...)
}

// RetryPayment charges a failed payment again with the customer's current method choice (a new
// attempt). Without a usable method it becomes incomplete and completes when one is added.
func (s *Store) RetryPayment(ctx context.Context, customerID, paymentID string) (Payment, error) {
	p, err := s.getPayment(ctx, customerID, paymentID)
	if err != nil {
		return Payment{}, err
	}
	if p.Status != PaymentFailed || p.Closed() {
		return Payment{}, newError(KindConflict, CodePaymentState, "", nil)
	}
	c, madeIncomplete, err := s.claimPayment(ctx, paymentID, PaymentFailed)
	if err != nil {
		return Payment{}, err
	}
	if c != nil {
		return s.charge(ctx, *c)
	}
	p, err = s.getPayment(ctx, customerID, paymentID)
	if err == nil && madeIncomplete && s.hooks.PaymentIncomplete != nil {
		s.hooks.PaymentIncomplete(ctx, p)
	}
	return p, err
}

// ConfirmPayment settles a pending payment (bank transfer, QR) once the processor confirms the
// money arrived. Confirming a payment that already succeeded returns it unchanged.
func (s *Store) ConfirmPayment(ctx context.Context, paymentID string) (Payment, error) {
	now := s.nowMs()
	var c *claim
	var current paymentRow
	err := s.inTx(ctx, func(q querier) error {
		var err error
		current, err = scanPayment(q.queryRow(ctx, "SELECT "+paymentColumns+" FROM payments WHERE id = ?", paymentID))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("payment")
		}
		if err != nil {
			return err
		}
		if err := lockCustomer(ctx, q, current.CustomerID); err != nil {
			return err
		}
		ok, err := q.execOne(ctx, `UPDATE payments SET status = 'processing', updated_at = ?
			WHERE id = ? AND status = 'pending'`, toMillis(now), paymentID)
		if err != nil || !ok {
			return err
		}
		c = &claim{paymentID: paymentID, customerID: current.CustomerID, attempt: current.attemptCount}
		return nil
	})
	if err != nil {
		return Payment{}, fmt.Errorf("confirm payment %s: %w", paymentID, err)
	}
	if c == nil {
		if current.Status == PaymentSucceeded {
			return s.getPayment(ctx, current.CustomerID, paymentID)
		}
		return Payment{}, newError(KindConflict, CodePaymentState, "", nil)
	}
	res, err := s.processor.Confirm(ctx, current.ProcessorReference)
	if err != nil {
		// Nothing is known to have changed at the processor: put the payment back to pending so
		// the confirmation can simply be retried.
		res = payments.ChargeResult{Status: payments.ChargePending, Reference: current.ProcessorReference, Instructions: current.Instructions}
		c.restore = true
		if _, ferr := s.finish(ctx, *c, res); ferr != nil {
			s.log.Error("restore pending payment after failed confirmation", "payment", paymentID, "err", ferr)
		}
		return Payment{}, fmt.Errorf("confirm payment %s with %s: %w", paymentID, s.processor.Name(), err)
	}
	if res.Reference == "" {
		res.Reference = current.ProcessorReference
	}
	return s.finish(ctx, *c, res)
}

// RecoverProcessing re-drives payments left processing for longer than staleAfter, which only
// happens when a process died or lost the processor mid-charge. The same attempt is charged
// again with the same idempotency key (or its confirmation repeated), so a processor that
// honours keys never collects twice. Each stale payment is taken over by a compare-and-set on
// its updated_at, so two replicas sweeping together do not both re-drive it. staleAfter must
// exceed the processor call timeout (one minute) so live charges are left alone. It returns
// how many payments it re-drove; run it periodically, e.g. next to RenewDue.
func (s *Store) RecoverProcessing(ctx context.Context, staleAfter time.Duration) (int, error) {
	cutoff := toMillis(s.nowMs().Add(-staleAfter))
	rows, err := s.read().query(ctx, `SELECT id, customer_id, updated_at FROM payments
		WHERE status = 'processing' AND updated_at < ? ORDER BY updated_at LIMIT 100`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("list stale payments: %w", err)
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
			return 0, fmt.Errorf("list stale payments: %w", err)
		}
		list = append(list, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("list stale payments: %w", err)
	}
	n := 0
	for _, st := range list {
		var c *claim
		var p paymentRow
		var m PaymentMethod
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
			if p, err = scanPayment(q.queryRow(ctx, "SELECT "+paymentColumns+" FROM payments WHERE id = ?", st.id)); err != nil {
				return err
			}
			// The method may have been removed since; the attempt still charges what it chose.
			m, err = scanMethod(q.queryRow(ctx, "SELECT "+methodColumns+" FROM payment_methods WHERE id = ?", p.PaymentMethodID))
			if err != nil {
				return err
			}
			c = &claim{paymentID: p.ID, customerID: p.CustomerID, subscriptionID: p.SubscriptionID,
				attempt: p.attemptCount, amount: p.Amount, currency: p.Currency, description: p.Description, method: m}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("take over stale payment %s: %w", st.id, err)
		}
		if c == nil {
			continue
		}
		s.log.Warn("re-driving stale processing payment", "payment", c.paymentID, "attempt", c.attempt)
		n++
		if p.ProcessorReference != "" {
			// A confirmation of a pending charge was interrupted.
			res, err := s.processor.Confirm(ctx, p.ProcessorReference)
			if err != nil {
				continue // stays processing; the next sweep tries again
			}
			if res.Reference == "" {
				res.Reference = p.ProcessorReference
			}
			if _, err := s.finish(ctx, *c, res); err != nil {
				return n, err
			}
			continue
		}
		if _, err := s.charge(ctx, *c); err != nil {
			return n, err
		}
	}
	return n, nil
}

// GetPayment returns a payment by id with its attempts, for the merchant (any customer).
func (s *Store) GetPayment(ctx context.Context, paymentID string) (Payment, error) {
	return s.getPayment(ctx, "", paymentID)
}

// GetPaymentForCustomer returns the customer's payment; another customer's payment is not
// found, exactly like a missing one, so ids cannot be probed.
func (s *Store) GetPaymentForCustomer(ctx context.Context, customerID, paymentID string) (Payment, error) {
	if customerID == "" {
		return Payment{}, notFound("payment")
	}
	return s.getPayment(ctx, customerID, paymentID)
}

// getPayment reads a payment and its attempts; customerID "" means merchant scope.
func (s *Store) getPayment(ctx context.Context, customerID, paymentID string) (Payment, error) {
	return getPaymentQ(ctx, s.read(), customerID, paymentID)
}

// getPaymentQ is getPayment on q (in a transaction: the payment as this transaction sees it).
func getPaymentQ(ctx context.Context, q querier, customerID, paymentID string) (Payment, error) {
	query := "SELECT " + paymentColumns + " FROM payments WHERE id = ?"
	args := []any{paymentID}
	if customerID != "" {
		query += " AND customer_id = ?"
		args = append(args, customerID)
	}
	p, err := scanPayment(q.queryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, notFound("payment")
	}
	if err != nil {
		return Payment{}, fmt.Errorf("get payment %s: %w", paymentID, err)
	}
	rows, err := q.query(ctx, `SELECT attempt_number, payment_method_id, method_type, method_summary,
		outcome, processor_reference, failure_code, failure_message, started_at, finished_at
		FROM payment_attempts WHERE payment_id = ? ORDER BY attempt_number`, paymentID)
	if err != nil {
		return Payment{}, fmt.Errorf("get attempts of payment %s: %w", paymentID, err)
	}
	defer rows.Close()
	p.Attempts = []Attempt{}
	for rows.Next() {
		var a Attempt
		var methodID sql.NullString
		var started int64
		var finished sql.NullInt64
		if err := rows.Scan(&a.Number, &methodID, &a.MethodType, &a.MethodSummary, &a.Outcome,
			&a.ProcessorReference, &a.FailureCode, &a.FailureMessage, &started, &finished); err != nil {
			return Payment{}, fmt.Errorf("get attempts of payment %s: %w", paymentID, err)
		}
		a.PaymentMethodID, a.StartedAt, a.FinishedAt = methodID.String, fromMillis(started), fromNullMillis(finished)
		p.Attempts = append(p.Attempts, a)
	}
	if err := rows.Err(); err != nil {
		return Payment{}, fmt.Errorf("get attempts of payment %s: %w", paymentID, err)
	}
	return p.Payment, nil
}

// ListPayments pages through payments, newest first.
func (s *Store) ListPayments(ctx context.Context, p ListPaymentsParams) (Page[Payment], error) {
	return s.listPayments(ctx, p, paymentColumns, func(rows *sql.Rows) (Payment, error) {
		pr, err := scanPayment(rows)
		return pr.Payment, err
	})
}

// summaryColumns are what a list of payments shows (see ListPaymentSummaries).
const summaryColumns = `id, customer_id, amount, currency, description, method_type, method_summary, status, failure_code, created_at`

// ListPaymentSummaries is ListPayments with only what a list of payments shows filled in: ID,
// CustomerID, Amount, Currency, Description, MethodType, MethodSummary, Status, FailureCode (so
// Closed and Due answer right) and CreatedAt;
// every other field is zero. Cursors are interchangeable with ListPayments'.
//
// The portal lists payments on every signed-in page (the payments due) and on the overview;
// SQLite's driver reads, converts and allocates per column, and the other eleven columns are
// most of a full read's cost.
func (s *Store) ListPaymentSummaries(ctx context.Context, p ListPaymentsParams) (Page[Payment], error) {
	return s.listPayments(ctx, p, summaryColumns, func(rows *sql.Rows) (Payment, error) {
		var pay Payment
		var created int64
		err := rows.Scan(&pay.ID, &pay.CustomerID, &pay.Amount, &pay.Currency, &pay.Description,
			&pay.MethodType, &pay.MethodSummary, &pay.Status, &pay.FailureCode, &created)
		pay.CreatedAt = fromMillis(created)
		return pay, err
	})
}

func (s *Store) listPayments(ctx context.Context, p ListPaymentsParams, columns string, scan func(*sql.Rows) (Payment, error)) (Page[Payment], error) {
	limit, err := pageLimit(p.Limit)
	if err != nil {
		return Page[Payment]{}, err
	}
	where := []string{"1 = 1"}
	var args []any
	if p.CustomerID != "" {
		where = append(where, "customer_id = ?")
		args = append(args, p.CustomerID)
	}
	if p.SubscriptionID != "" {
		where = append(where, "subscription_id = ?")
		args = append(args, p.SubscriptionID)
	}
	if p.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(p.Status))
	}
	if len(p.Statuses) > 0 {
		// Written as literals, not parameters: only known statuses get here, and SQLite then
		// plans the prepared query once instead of again for every new set of values. The list
		// incomplete, failed, pending (the portal's payments due) matches the partial index
		// payments_customer_due, which both engines then use.
		lits := make([]string, len(p.Statuses))
		for i, st := range p.Statuses {
			if !knownStatus(st) {
				return Page[Payment]{}, newError(KindInvalid, CodeInvalidField, "status", nil)
			}
			lits[i] = "'" + string(st) + "'"
		}
		where = append(where, "status IN ("+strings.Join(lits, ", ")+")")
	}
	if p.Due {
		// The same literals as the partial index payments_customer_due, which both engines use.
		where = append(where, "status IN ('incomplete', 'failed', 'pending')",
			"NOT (status = 'failed' AND failure_code = '"+payments.CodeSubscriptionCanceled+"')")
	}
	if p.Cursor != "" {
		c, err := decodeCursor(p.Cursor)
		if err != nil {
			return Page[Payment]{}, err
		}
		where = append(where, "(created_at < ? OR (created_at = ? AND id < ?))")
		args = append(args, c.createdAt, c.createdAt, c.id)
	}
	args = append(args, limit+1)
	rows, err := s.read().query(ctx, "SELECT "+columns+" FROM payments WHERE "+
		strings.Join(where, " AND ")+" ORDER BY created_at DESC, id DESC LIMIT ?", args...)
	if err != nil {
		return Page[Payment]{}, fmt.Errorf("list payments: %w", err)
	}
	defer rows.Close()
	var page Page[Payment]
	for rows.Next() {
		pay, err := scan(rows)
		if err != nil {
			return Page[Payment]{}, fmt.Errorf("list payments: %w", err)
		}
		page.Items = append(page.Items, pay)
	}
	if err := rows.Err(); err != nil {
		return Page[Payment]{}, fmt.Errorf("list payments: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = cursor{createdAt: toMillis(last.CreatedAt), id: last.ID}.encode()
	}
	return page, nil
}
