-- A charge the customer's bank wants authenticated (SCA, 3-D Secure) waits for the customer:
-- payments and their attempts gain the status requires_action, and such a payment waits for the
-- customer like an incomplete one (it joins the payments_customer_due index).
--
-- SQLite cannot change a CHECK constraint in place, so both tables are rebuilt (the procedure
-- of https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys are switched off on
-- this one connection (they cannot be inside a transaction), the copy and the swap run in one
-- transaction, and every index and trigger of the two tables is made again (the columns are
-- those of 00001 and 00007). The foreign keys of payment_attempts and credit_transactions name
-- payments, and find the rebuilt table under the same name. payment_attempts
-- goes first: its triggers name payments, and SQLite refuses to rename a table while a trigger
-- names one that is missing. Running it again after a crash between COMMIT and goose's own
-- bookkeeping rebuilds the same tables once more.

-- +goose NO TRANSACTION
-- +goose Up
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
DROP TABLE IF EXISTS payment_attempts_new;
CREATE TABLE payment_attempts_new (
    payment_id          TEXT NOT NULL REFERENCES payments (id),
    attempt_number      INTEGER NOT NULL,
    payment_method_id   TEXT REFERENCES payment_methods (id),
    method_type         TEXT NOT NULL,
    method_summary      TEXT NOT NULL DEFAULT '',
    outcome             TEXT NOT NULL
        CHECK (outcome IN ('processing', 'requires_action', 'pending', 'succeeded', 'failed')),
    processor_reference TEXT NOT NULL DEFAULT '',
    failure_code        TEXT NOT NULL DEFAULT '',
    failure_message     TEXT NOT NULL DEFAULT '',
    started_at          BIGINT NOT NULL,
    finished_at         BIGINT,
    PRIMARY KEY (payment_id, attempt_number)
);
INSERT INTO payment_attempts_new (payment_id, attempt_number, payment_method_id, method_type,
    method_summary, outcome, processor_reference, failure_code, failure_message, started_at, finished_at)
SELECT payment_id, attempt_number, payment_method_id, method_type, method_summary, outcome,
    processor_reference, failure_code, failure_message, started_at, finished_at FROM payment_attempts;
DROP TABLE payment_attempts;
ALTER TABLE payment_attempts_new RENAME TO payment_attempts;

DROP TABLE IF EXISTS payments_new;
CREATE TABLE payments_new (
    id                  TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    amount              BIGINT NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    subscription_id     TEXT REFERENCES subscriptions (id),
    period_start        BIGINT,
    period_end          BIGINT,
    payment_method_id   TEXT REFERENCES payment_methods (id),
    method_type         TEXT NOT NULL DEFAULT '',
    method_summary      TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL
        CHECK (status IN ('incomplete', 'processing', 'requires_action', 'pending', 'succeeded', 'failed')),
    idempotency_key     TEXT,
    request_hash        TEXT NOT NULL DEFAULT '',
    attempt_count       INTEGER NOT NULL DEFAULT 0,
    processor           TEXT NOT NULL DEFAULT '',
    processor_reference TEXT NOT NULL DEFAULT '',
    instructions        TEXT NOT NULL DEFAULT '',
    failure_code        TEXT NOT NULL DEFAULT '',
    failure_message     TEXT NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    credit_applied      BIGINT NOT NULL DEFAULT 0 CHECK (credit_applied >= 0)
);
INSERT INTO payments_new (id, customer_id, amount, currency, description, subscription_id,
    period_start, period_end, payment_method_id, method_type, method_summary, status,
    idempotency_key, request_hash, attempt_count, processor, processor_reference, instructions,
    failure_code, failure_message, created_at, updated_at, credit_applied)
SELECT id, customer_id, amount, currency, description, subscription_id, period_start, period_end,
    payment_method_id, method_type, method_summary, status, idempotency_key, request_hash,
    attempt_count, processor, processor_reference, instructions, failure_code, failure_message,
    created_at, updated_at, credit_applied FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;

CREATE UNIQUE INDEX payments_idempotency ON payments (customer_id, idempotency_key);
CREATE INDEX payments_customer_status ON payments (customer_id, status);
CREATE INDEX payments_customer_created ON payments (customer_id, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_subscription ON payments (subscription_id);
CREATE INDEX payments_customer_due ON payments (customer_id, created_at, id)
    WHERE status IN ('incomplete', 'requires_action', 'failed', 'pending');
CREATE INDEX payments_incomplete ON payments (customer_id, updated_at) WHERE status = 'incomplete';

-- +goose StatementBegin
CREATE TRIGGER payments_version_ins AFTER INSERT ON payments BEGIN
    UPDATE customers SET version = version + 1 WHERE id = NEW.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payments_version_upd AFTER UPDATE ON payments BEGIN
    UPDATE customers SET version = version + 1 WHERE id IN (OLD.customer_id, NEW.customer_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payments_version_del AFTER DELETE ON payments BEGIN
    UPDATE customers SET version = version + 1 WHERE id = OLD.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_attempts_version_ins AFTER INSERT ON payment_attempts BEGIN
    UPDATE customers SET version = version + 1
    WHERE id = (SELECT customer_id FROM payments WHERE id = NEW.payment_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_attempts_version_upd AFTER UPDATE ON payment_attempts BEGIN
    UPDATE customers SET version = version + 1
    WHERE id IN (SELECT customer_id FROM payments WHERE id IN (OLD.payment_id, NEW.payment_id));
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_attempts_version_del AFTER DELETE ON payment_attempts BEGIN
    UPDATE customers SET version = version + 1
    WHERE id = (SELECT customer_id FROM payments WHERE id = OLD.payment_id);
END;
-- +goose StatementEnd
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
-- Payments waiting for authentication go back to processing: the charge they hold is re-driven
-- with its idempotency key, which finds it at the processor.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
UPDATE payment_attempts SET outcome = 'processing' WHERE outcome = 'requires_action';
UPDATE payments SET status = 'processing' WHERE status = 'requires_action';
DROP TABLE IF EXISTS payment_attempts_old;
CREATE TABLE payment_attempts_old (
    payment_id          TEXT NOT NULL REFERENCES payments (id),
    attempt_number      INTEGER NOT NULL,
    payment_method_id   TEXT REFERENCES payment_methods (id),
    method_type         TEXT NOT NULL,
    method_summary      TEXT NOT NULL DEFAULT '',
    outcome             TEXT NOT NULL CHECK (outcome IN ('processing', 'pending', 'succeeded', 'failed')),
    processor_reference TEXT NOT NULL DEFAULT '',
    failure_code        TEXT NOT NULL DEFAULT '',
    failure_message     TEXT NOT NULL DEFAULT '',
    started_at          BIGINT NOT NULL,
    finished_at         BIGINT,
    PRIMARY KEY (payment_id, attempt_number)
);
INSERT INTO payment_attempts_old (payment_id, attempt_number, payment_method_id, method_type,
    method_summary, outcome, processor_reference, failure_code, failure_message, started_at, finished_at)
SELECT payment_id, attempt_number, payment_method_id, method_type, method_summary, outcome,
    processor_reference, failure_code, failure_message, started_at, finished_at FROM payment_attempts;
DROP TABLE payment_attempts;
ALTER TABLE payment_attempts_old RENAME TO payment_attempts;
DROP TABLE IF EXISTS payments_old;
CREATE TABLE payments_old (
    id                  TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    amount              BIGINT NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    subscription_id     TEXT REFERENCES subscriptions (id),
    period_start        BIGINT,
    period_end          BIGINT,
    payment_method_id   TEXT REFERENCES payment_methods (id),
    method_type         TEXT NOT NULL DEFAULT '',
    method_summary      TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL
        CHECK (status IN ('incomplete', 'processing', 'pending', 'succeeded', 'failed')),
    idempotency_key     TEXT,
    request_hash        TEXT NOT NULL DEFAULT '',
    attempt_count       INTEGER NOT NULL DEFAULT 0,
    processor           TEXT NOT NULL DEFAULT '',
    processor_reference TEXT NOT NULL DEFAULT '',
    instructions        TEXT NOT NULL DEFAULT '',
    failure_code        TEXT NOT NULL DEFAULT '',
    failure_message     TEXT NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    credit_applied      BIGINT NOT NULL DEFAULT 0 CHECK (credit_applied >= 0)
);
INSERT INTO payments_old (id, customer_id, amount, currency, description, subscription_id,
    period_start, period_end, payment_method_id, method_type, method_summary, status,
    idempotency_key, request_hash, attempt_count, processor, processor_reference, instructions,
    failure_code, failure_message, created_at, updated_at, credit_applied)
SELECT id, customer_id, amount, currency, description, subscription_id, period_start, period_end,
    payment_method_id, method_type, method_summary, status, idempotency_key, request_hash,
    attempt_count, processor, processor_reference, instructions, failure_code, failure_message,
    created_at, updated_at, credit_applied FROM payments;
DROP TABLE payments;
ALTER TABLE payments_old RENAME TO payments;
CREATE UNIQUE INDEX payments_idempotency ON payments (customer_id, idempotency_key);
CREATE INDEX payments_customer_status ON payments (customer_id, status);
CREATE INDEX payments_customer_created ON payments (customer_id, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_subscription ON payments (subscription_id);
CREATE INDEX payments_customer_due ON payments (customer_id, created_at, id)
    WHERE status IN ('incomplete', 'failed', 'pending');
CREATE INDEX payments_incomplete ON payments (customer_id, updated_at) WHERE status = 'incomplete';
-- +goose StatementBegin
CREATE TRIGGER payments_version_ins AFTER INSERT ON payments BEGIN
    UPDATE customers SET version = version + 1 WHERE id = NEW.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payments_version_upd AFTER UPDATE ON payments BEGIN
    UPDATE customers SET version = version + 1 WHERE id IN (OLD.customer_id, NEW.customer_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payments_version_del AFTER DELETE ON payments BEGIN
    UPDATE customers SET version = version + 1 WHERE id = OLD.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_attempts_version_ins AFTER INSERT ON payment_attempts BEGIN
    UPDATE customers SET version = version + 1
    WHERE id = (SELECT customer_id FROM payments WHERE id = NEW.payment_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_attempts_version_upd AFTER UPDATE ON payment_attempts BEGIN
    UPDATE customers SET version = version + 1
    WHERE id IN (SELECT customer_id FROM payments WHERE id IN (OLD.payment_id, NEW.payment_id));
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_attempts_version_del AFTER DELETE ON payment_attempts BEGIN
    UPDATE customers SET version = version + 1
    WHERE id = (SELECT customer_id FROM payments WHERE id = OLD.payment_id);
END;
-- +goose StatementEnd
COMMIT;
PRAGMA foreign_keys = ON;
