-- A subscription is created with an Idempotency-Key like a payment, because creating one charges
-- its first period: a retried POST /subscriptions must find the subscription it made, not start
-- (and bill) a second one. The key and the fingerprint of the request it promised are stored on
-- the subscription itself, in the transaction that inserts it, and scoped to the customer as
-- payment keys are. Existing subscriptions have no key (NULL), and NULL keys never collide.
-- Plain columns and an index: one file serves both engines.

-- +goose Up
ALTER TABLE subscriptions ADD COLUMN idempotency_key TEXT;
ALTER TABLE subscriptions ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX subscriptions_idempotency ON subscriptions (customer_id, idempotency_key);

-- +goose Down
DROP INDEX subscriptions_idempotency;
ALTER TABLE subscriptions DROP COLUMN request_hash;
ALTER TABLE subscriptions DROP COLUMN idempotency_key;
