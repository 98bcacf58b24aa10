package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/charging"
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
	// Processor is the portal's processor now: the first attempt is claimed for a method it can
	// charge, and the caller charges it through that processor. Required.
	Processor payments.ProcessorType
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
	case PaymentIncomplete, PaymentProcessing, PaymentRequiresAction, PaymentPending, PaymentSucceeded, PaymentFailed:
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

// newAttempt is the claim of attempt n of a payment, charging m through processor: what the
// charging driver needs to call the processor, and its idempotency key (payment id + n).
func newAttempt(p paymentRow, n int, m PaymentMethod, processor payments.ProcessorType) *charging.Attempt {
	ref := payments.MethodRef{Type: m.Type, Token: m.handle(), Account: m.Account, Wallet: m.Wallet}
	return &charging.Attempt{PaymentID: p.ID, CustomerID: p.CustomerID, Number: n, Amount: p.Amount,
		Currency: string(p.Currency), Description: p.Description, Method: ref, Processor: processor,
		Status: charging.AttemptProcessing}
}

// CreatePayment records a payment and, when the customer has a method the processor named in
// in.Processor can charge (the subscription's pinned one, else the preferred usable one), claims
// its first attempt: the payment is processing and the returned attempt is the caller's to
// charge (charging.Driver.Charge, which records the outcome). The ledger never calls a
// processor. Without a usable method the payment is incomplete, the attempt is nil and
// Hooks.PaymentIncomplete fires; the customer's next method settles it. A replay of an
// idempotency key returns the stored payment and no attempt.
func (s *Store) CreatePayment(ctx context.Context, in NewPayment) (Payment, *charging.Attempt, error) {
	if in.Amount <= 0 {
		return Payment{}, nil, newError(KindInvalid, CodeInvalidAmount, "amount", nil)
	}
	cur, err := ParseCurrency(string(in.Currency))
	if err != nil {
		return Payment{}, nil, err
	}
	desc, err := checkText("description", in.Description, 500)
	if err != nil {
		return Payment{}, nil, err
	}
	if err := validateIdempotencyKey(in.IdempotencyKey); err != nil {
		return Payment{}, nil, err
	}
	if in.Processor == "" {
		return Payment{}, nil, errNoProcessor
	}
	return s.createPayment(ctx, paymentInsert{
		customerID:     in.CustomerID,
		amount:         in.Amount,
		currency:       cur,
		description:    desc,
		subscriptionID: in.SubscriptionID,
		idempotencyKey: in.IdempotencyKey,
		requestHash:    requestHash(in.Amount, cur, desc, in.SubscriptionID, ""),
		processor:      in.Processor,
	})
}

// errNoProcessor is a caller's mistake: claims are made for one processor.
var errNoProcessor = errors.New("ledger: no processor named for the payment's charge")

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
	// processor is the one the first attempt is claimed for.
	processor payments.ProcessorType
}

// createPayment inserts a validated payment and claims its first attempt. The insert, the method
// choice and the claim are one transaction under the customer lock.
func (s *Store) createPayment(ctx context.Context, in paymentInsert) (Payment, *charging.Attempt, error) {
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
		return Payment{}, nil, fmt.Errorf("create payment for customer %s: %w", in.customerID, err)
	}
	p, err := s.afterInsert(ctx, in.customerID, r)
	return p, r.claim, err
}

// inserted is what insertPayment did, for afterInsert to act on once committed.
type inserted struct {
	id     string
	replay bool
	claim  *charging.Attempt
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
	m, err := resolveMethod(ctx, q, in.customerID, in.subscriptionID, now, in.processor)
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
	if err := insertAttempt(ctx, q, id, 1, *m, in.processor, now); err != nil {
		return inserted{}, err
	}
	if err := s.recordPaymentEvent(ctx, q, EventPaymentCreated, id); err != nil {
		return inserted{}, err
	}
	row := paymentRow{Payment: Payment{ID: id, CustomerID: in.customerID, Amount: in.amount,
		Currency: in.currency, Description: in.description}}
	return inserted{id: id, claim: newAttempt(row, 1, *m, in.processor)}, nil
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
	case PaymentRequiresAction:
		return EventPaymentRequiresAction
	}
	return ""
}

// afterInsert acts on a committed insertPayment: replays return the stored payment, incomplete
// payments fire the hook; a claimed one is returned processing, for the caller to charge.
func (s *Store) afterInsert(ctx context.Context, customerID string, r inserted) (Payment, error) {
	if r.covered {
		return Payment{}, nil
	}
	p, err := s.getPayment(ctx, customerID, r.id)
	if err != nil {
		return Payment{}, err
	}
	switch {
	case r.replay:
		s.log.Info("payment request replayed", "customer", customerID, "payment", r.id)
	case r.claim == nil:
		s.log.Info("payment incomplete: no usable payment method", "customer", customerID, "payment", r.id)
		if s.hooks.PaymentIncomplete != nil {
			s.hooks.PaymentIncomplete(ctx, p)
		}
	}
	return p, nil
}

func insertAttempt(ctx context.Context, q querier, paymentID string, n int, m PaymentMethod, processor payments.ProcessorType, now time.Time) error {
	_, err := q.exec(ctx, `INSERT INTO payment_attempts (payment_id, attempt_number, payment_method_id,
		method_type, method_summary, outcome, processor, started_at) VALUES (?, ?, ?, ?, ?, 'processing', ?, ?)`,
		paymentID, n, m.ID, string(m.Type), m.Summary(), string(processor), toMillis(now))
	if err != nil {
		return fmt.Errorf("insert payment attempt: %w", err)
	}
	return nil
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

// claimPayment takes an attempt on a payment that is in status from (incomplete or failed) for
// the processor: under the customer lock it picks the method to charge and moves the payment to
// processing with a conditional UPDATE. Only the caller whose UPDATE matched gets the attempt;
// everyone else gets nil. A failed payment with no usable method becomes incomplete
// (madeIncomplete).
func (s *Store) claimPayment(ctx context.Context, paymentID string, from PaymentStatus, processor payments.ProcessorType) (c *charging.Attempt, madeIncomplete bool, err error) {
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
		c, madeIncomplete, err = s.claimLocked(ctx, q, paymentID, from, processor, now)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("claim payment %s: %w", paymentID, err)
	}
	return c, madeIncomplete, nil
}

// claimLocked is claimPayment inside a transaction that holds the payment's customer lock.
func (s *Store) claimLocked(ctx context.Context, q querier, paymentID string, from PaymentStatus, processor payments.ProcessorType, now time.Time) (*charging.Attempt, bool, error) {
	p, err := scanPayment(q.queryRow(ctx, "SELECT "+paymentColumns+" FROM payments WHERE id = ?", paymentID))
	if err != nil {
		return nil, false, err
	}
	if p.Status != from || p.Closed() {
		return nil, false, nil
	}
	m, err := resolveMethod(ctx, q, p.CustomerID, p.SubscriptionID, now, processor)
	if err != nil {
		return nil, false, err
	}
	if m == nil {
		if from != PaymentFailed {
			return nil, false, nil
		}
		made, err := q.execOne(ctx, `UPDATE payments SET status = 'incomplete', updated_at = ?
			WHERE id = ? AND status = 'failed'`, toMillis(now), paymentID)
		if err == nil && made {
			err = s.recordPaymentEvent(ctx, q, EventPaymentIncomplete, paymentID)
		}
		return nil, made, err
	}
	n := p.attemptCount + 1
	ok, err := q.execOne(ctx, `UPDATE payments SET status = 'processing', payment_method_id = ?,
		method_type = ?, method_summary = ?, attempt_count = ?, processor_reference = '',
		instructions = '', failure_code = '', failure_message = '', updated_at = ?
		WHERE id = ? AND status = ? AND attempt_count = ?`,
		m.ID, string(m.Type), m.Summary(), n, toMillis(now), paymentID, string(from), p.attemptCount)
	if err != nil || !ok {
		return nil, false, err
	}
	if err := insertAttempt(ctx, q, paymentID, n, *m, processor, now); err != nil {
		return nil, false, err
	}
	return newAttempt(p, n, *m, processor), false, nil
}

// StrandedCustomers lists the customers with incomplete payments who added a payment method
// after the payment became incomplete. The settlement that follows a method change runs after
// the change commits, so a process stopped in between (a rollout, an OOM kill) or a failure on
// the way leaves payments incomplete beside a usable method, and nothing else would ever charge
// them: the billing loop settles these customers' payments periodically
// (charging.Driver.SettleIncomplete), each still exactly once.
func (s *Store) StrandedCustomers(ctx context.Context) ([]string, error) {
	customers, err := s.read().strings(ctx, `SELECT DISTINCT p.customer_id FROM payments p
		WHERE p.status = 'incomplete' AND EXISTS (SELECT 1 FROM payment_methods m
			WHERE m.customer_id = p.customer_id AND m.detached_at IS NULL AND m.created_at >= p.updated_at)`)
	if err != nil {
		return nil, fmt.Errorf("find stranded incomplete payments: %w", err)
	}
	return customers, nil
}

// RetryPayment claims a new attempt on a failed payment, with the customer's current method
// choice, for the processor: the returned attempt is the caller's to charge
// (charging.Driver.Charge). Without a method that processor can charge the payment becomes
// incomplete (no attempt) and completes when one is added.
func (s *Store) RetryPayment(ctx context.Context, customerID, paymentID string, processor payments.ProcessorType) (Payment, *charging.Attempt, error) {
	if processor == "" {
		return Payment{}, nil, errNoProcessor
	}
	p, err := s.getPayment(ctx, customerID, paymentID)
	if err != nil {
		return Payment{}, nil, err
	}
	if p.Status != PaymentFailed || p.Closed() {
		return Payment{}, nil, newError(KindConflict, CodePaymentState, "", nil)
	}
	c, madeIncomplete, err := s.claimPayment(ctx, paymentID, PaymentFailed, processor)
	if err != nil {
		return Payment{}, nil, err
	}
	p, err = s.getPayment(ctx, customerID, paymentID)
	if err != nil {
		return Payment{}, nil, err
	}
	if madeIncomplete && s.hooks.PaymentIncomplete != nil {
		s.hooks.PaymentIncomplete(ctx, p)
	}
	return p, c, nil
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
	rows, err := q.query(ctx, `SELECT attempt_number, processor, payment_method_id, method_type, method_summary,
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
		if err := rows.Scan(&a.Number, &a.Processor, &methodID, &a.MethodType, &a.MethodSummary, &a.Outcome,
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
		// incomplete, requires_action, failed, pending (the portal's payments due) matches the
		// partial index payments_customer_due, which both engines then use.
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
		where = append(where, "status IN ('incomplete', 'requires_action', 'failed', 'pending')",
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
