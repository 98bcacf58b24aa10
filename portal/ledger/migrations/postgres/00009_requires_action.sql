-- A charge the customer's bank wants authenticated (SCA, 3-D Secure) waits for the customer:
-- payments and their attempts gain the status requires_action, and such a payment waits for the
-- customer like an incomplete one (it joins the payments_customer_due index). PostgreSQL changes
-- the constraints in place (SQLite rebuilds the tables: see migrations/sqlite).

-- +goose Up
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('incomplete', 'processing', 'requires_action', 'pending', 'succeeded', 'failed'));
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_outcome_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_outcome_check
    CHECK (outcome IN ('processing', 'requires_action', 'pending', 'succeeded', 'failed'));
DROP INDEX payments_customer_due;
CREATE INDEX payments_customer_due ON payments (customer_id, created_at, id)
    WHERE status IN ('incomplete', 'requires_action', 'failed', 'pending');

-- +goose Down
-- Payments waiting for authentication go back to processing: the charge they hold is re-driven
-- with its idempotency key, which finds it at the processor.
UPDATE payment_attempts SET outcome = 'processing' WHERE outcome = 'requires_action';
UPDATE payments SET status = 'processing' WHERE status = 'requires_action';
DROP INDEX payments_customer_due;
CREATE INDEX payments_customer_due ON payments (customer_id, created_at, id)
    WHERE status IN ('incomplete', 'failed', 'pending');
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_outcome_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_outcome_check
    CHECK (outcome IN ('processing', 'pending', 'succeeded', 'failed'));
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('incomplete', 'processing', 'pending', 'succeeded', 'failed'));
