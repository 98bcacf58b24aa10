package chaos

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/portero-dev/portero/portal/ledger"
)

// The invariants are read from the ledger's tables with plain SQL that both engines run, so
// they hold whatever code path wrote the rows (see portal/ledger/migrations).

// countWhere counts the payments matching cond.
func countWhere(ctx context.Context, st *ledger.Store, cond string) (int, error) {
	return count(ctx, st.DB(), "SELECT COUNT(*) FROM payments WHERE "+cond)
}

func count(ctx context.Context, db *sql.DB, q string, args ...any) (int, error) {
	var n int
	if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	return n, nil
}

// paymentsBreakingAttempts counts payments whose attempts disagree with their status: a
// succeeded payment needs exactly one succeeded attempt, any other payment none, and no
// payment may have an attempt still processing unless the payment itself is.
func paymentsBreakingAttempts(ctx context.Context, db *sql.DB) (int, error) {
	return count(ctx, db, `SELECT COUNT(*) FROM payments p WHERE
		(p.status = 'succeeded' AND (SELECT COUNT(*) FROM payment_attempts a WHERE a.payment_id = p.id AND a.outcome = 'succeeded') <> 1)
		OR (p.status <> 'succeeded' AND EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_id = p.id AND a.outcome = 'succeeded'))
		OR (p.status <> 'processing' AND EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_id = p.id AND a.outcome = 'processing'))`)
}

// processingAttempts counts attempts left processing.
func processingAttempts(ctx context.Context, db *sql.DB) (int, error) {
	return count(ctx, db, `SELECT COUNT(*) FROM payment_attempts WHERE outcome = 'processing'`)
}

// customersWithoutOnePreferred counts customers with payment methods whose preferred method
// (the lowest ordinal among those not removed) is not exactly one method.
func customersWithoutOnePreferred(ctx context.Context, db *sql.DB) (int, error) {
	return count(ctx, db, `SELECT COUNT(*) FROM (
		SELECT m.customer_id FROM payment_methods m
		WHERE m.detached_at IS NULL AND m.ordinal = (SELECT MIN(o.ordinal) FROM payment_methods o
			WHERE o.customer_id = m.customer_id AND o.detached_at IS NULL)
		GROUP BY m.customer_id HAVING COUNT(*) <> 1) AS bad`)
}

// eventsWithoutChange counts outbox events that do not match the committed state: a payment
// status event for a payment that never reached that status (its attempts say so), an event
// about an object that does not exist, and succeeded payments without exactly one
// payment.succeeded event.
func eventsWithoutChange(ctx context.Context, db *sql.DB) (orphans, missing int, err error) {
	orphans, err = count(ctx, db, `SELECT COUNT(*) FROM events e WHERE
		(e.event_type LIKE 'payment.%' AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = e.object_id))
		OR (e.event_type LIKE 'payment_method.%' AND NOT EXISTS (SELECT 1 FROM payment_methods m WHERE m.id = e.object_id))
		OR (e.event_type LIKE 'subscription.%' AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = e.object_id))
		OR (e.event_type LIKE 'customer.%' AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = e.object_id))
		OR (e.event_type = 'payment.succeeded' AND NOT EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_id = e.object_id AND a.outcome = 'succeeded'))
		OR (e.event_type = 'payment.failed' AND NOT EXISTS (SELECT 1 FROM payment_attempts a WHERE a.payment_id = e.object_id AND a.outcome = 'failed'))
		OR (e.event_type = 'payment_method.removed' AND NOT EXISTS (SELECT 1 FROM payment_methods m WHERE m.id = e.object_id AND m.detached_at IS NOT NULL))`)
	if err != nil {
		return 0, 0, err
	}
	missing, err = count(ctx, db, `SELECT COUNT(*) FROM payments p WHERE p.status = 'succeeded' AND
		(SELECT COUNT(*) FROM events e WHERE e.object_id = p.id AND e.event_type = 'payment.succeeded') <> 1`)
	return orphans, missing, err
}
