package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The credit balance: what a customer is owed, per currency, from downgrades in the middle of a
// period (see proration.go). It is the sum of the customer's credit_transactions in that
// currency, never negative, and it is consumed by the next subscription charges in the same
// currency (period payments and the charges of plan changes) as they are created: a charge the
// balance covers whole is paid at once and never reaches a payment method; one it covers in part
// is created for the rest. One-off payments the merchant asks for (POST /payments) collect what
// they say and leave the balance alone.

// Credit transaction kinds.
const (
	creditProration = "proration"
	creditApplied   = "applied"
	creditRestored  = "restored"
)

// CreditBalance returns the customer's credit balance in cur, in minor units.
func (s *Store) CreditBalance(ctx context.Context, customerID string, cur Currency) (int64, error) {
	return creditBalance(ctx, s.read(), customerID, cur)
}

func creditBalance(ctx context.Context, q querier, customerID string, cur Currency) (int64, error) {
	var bal int64
	if err := q.queryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM credit_transactions
		WHERE customer_id = ? AND currency = ?`, customerID, string(cur)).Scan(&bal); err != nil {
		return 0, fmt.Errorf("credit balance of customer %s: %w", customerID, err)
	}
	return bal, nil
}

// creditRow is one credit transaction to write.
type creditRow struct {
	customerID     string
	currency       Currency
	amount         int64 // positive: credit given; negative: credit used
	kind           string
	subscriptionID string
	paymentID      string
	periodStart    time.Time
	periodEnd      time.Time
	description    string
	key            string
}

func insertCredit(ctx context.Context, q querier, c creditRow, now time.Time) error {
	_, err := q.exec(ctx, `INSERT INTO credit_transactions (id, customer_id, currency, amount, kind,
		subscription_id, payment_id, period_start, period_end, description, idempotency_key, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		newID(prefixCredit), c.customerID, string(c.currency), c.amount, c.kind, nullString(c.subscriptionID),
		nullString(c.paymentID), nullMillis(c.periodStart), nullMillis(c.periodEnd), c.description,
		nullString(c.key), toMillis(now))
	if err != nil {
		return fmt.Errorf("record credit: %w", err)
	}
	return nil
}

// creditKeyUsed reports whether a credit transaction of the customer carries key.
func creditKeyUsed(ctx context.Context, q querier, customerID, key string) (bool, error) {
	var id string
	err := q.queryRow(ctx, "SELECT id FROM credit_transactions WHERE customer_id = ? AND idempotency_key = ?",
		customerID, key).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up credit key: %w", err)
	}
	return true, nil
}

// applyCredit runs in insertPayment's transaction, under the customer lock, for a charge that
// may consume the credit balance. It reports covered when the balance pays the whole charge:
// then the use is recorded (keyed like the payment would have been, so a repeated request
// finds it) and no payment is made. Otherwise it lowers in.amount by the part the balance
// pays and sets in.creditApplied, which recordCreditUse writes once the payment exists.
func (s *Store) applyCredit(ctx context.Context, q querier, in *paymentInsert, now time.Time) (covered bool, err error) {
	if in.idempotencyKey != "" {
		if used, err := creditKeyUsed(ctx, q, in.customerID, in.idempotencyKey); err != nil || used {
			return used, err
		}
	}
	bal, err := creditBalance(ctx, q, in.customerID, in.currency)
	if err != nil || bal <= 0 {
		return false, err
	}
	use := min(bal, in.amount)
	if use < in.amount {
		in.amount -= use
		in.creditApplied = use
		return false, nil
	}
	if err := insertCredit(ctx, q, creditRow{customerID: in.customerID, currency: in.currency, amount: -use,
		kind: creditApplied, subscriptionID: in.subscriptionID, periodStart: in.periodStart, periodEnd: in.periodEnd,
		description: in.description, key: in.idempotencyKey}, now); err != nil {
		return false, err
	}
	// A period paid from the balance is paid: the subscription is in good standing, as a
	// succeeded period payment would leave it (updateSubscriptionAfterPayment).
	if in.subscriptionID != "" && !in.periodStart.IsZero() {
		if _, err := q.exec(ctx, `UPDATE subscriptions SET status = 'active', updated_at = ?
			WHERE id = ? AND status = 'past_due' AND current_period_start = ?`,
			toMillis(now), in.subscriptionID, toMillis(in.periodStart)); err != nil {
			return false, fmt.Errorf("update subscription status: %w", err)
		}
	}
	s.log.Info("charge paid from the credit balance", "customer", in.customerID, "subscription", in.subscriptionID,
		"amount", use, "currency", in.currency)
	return true, nil
}

// recordCreditUse records the part of a new payment paid from the balance (in.creditApplied).
func recordCreditUse(ctx context.Context, q querier, paymentID string, in paymentInsert, now time.Time) error {
	if in.creditApplied <= 0 {
		return nil
	}
	return insertCredit(ctx, q, creditRow{customerID: in.customerID, currency: in.currency, amount: -in.creditApplied,
		kind: creditApplied, subscriptionID: in.subscriptionID, paymentID: paymentID, periodStart: in.periodStart,
		periodEnd: in.periodEnd, description: in.description}, now)
}

// restoreCredit gives back what a payment closed unpaid had consumed of the balance (a
// subscription canceled at once closes its unpaid period payments): the customer paid nothing
// for it, so the credit is theirs again. Keyed by the payment, it is given back once.
func restoreCredit(ctx context.Context, q querier, paymentID string, now time.Time) error {
	var customerID, cur string
	var applied int64
	var subID sql.NullString
	if err := q.queryRow(ctx, "SELECT customer_id, currency, credit_applied, subscription_id FROM payments WHERE id = ?",
		paymentID).Scan(&customerID, &cur, &applied, &subID); err != nil {
		return fmt.Errorf("restore credit of payment %s: %w", paymentID, err)
	}
	if applied <= 0 {
		return nil
	}
	key := internalKeyPrefix + "restore:" + paymentID
	if used, err := creditKeyUsed(ctx, q, customerID, key); err != nil || used {
		return err
	}
	return insertCredit(ctx, q, creditRow{customerID: customerID, currency: Currency(cur), amount: applied,
		kind: creditRestored, subscriptionID: subID.String, paymentID: paymentID, key: key}, now)
}
