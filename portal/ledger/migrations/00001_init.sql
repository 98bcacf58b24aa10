-- The one schema for SQLite and PostgreSQL: only portable types (TEXT, INTEGER, BIGINT),
-- timestamps as BIGINT Unix milliseconds (UTC), booleans as INTEGER 0/1, optional timestamps
-- and references as NULL.

-- +goose Up
CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    legal_name    TEXT NOT NULL DEFAULT '',
    tax_id        TEXT NOT NULL DEFAULT '',
    tax_condition TEXT NOT NULL DEFAULT ''
        CHECK (tax_condition IN ('', 'consumidor_final', 'responsable_inscripto', 'monotributista', 'exento')),
    address_line1 TEXT NOT NULL DEFAULT '',
    address_line2 TEXT NOT NULL DEFAULT '',
    city          TEXT NOT NULL DEFAULT '',
    province      TEXT NOT NULL DEFAULT '',
    postal_code   TEXT NOT NULL DEFAULT '',
    country       TEXT NOT NULL DEFAULT '',
    -- Bumped by every write that concerns the customer's money: the UPDATE doubles as the
    -- per-customer lock that serialises method changes, payment creation and claims.
    version       BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX customers_email ON customers (email);
CREATE INDEX customers_created ON customers (created_at, id);

CREATE TABLE payment_methods (
    id               TEXT PRIMARY KEY,
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    ordinal          INTEGER NOT NULL,
    method_type      TEXT NOT NULL
        CHECK (method_type IN ('card', 'direct_debit', 'cvu', 'bank_transfer', 'qr', 'wallet')),
    processor        TEXT NOT NULL DEFAULT '',
    -- Cards: only what the processor returned. The number and the CVC have no column.
    card_token       TEXT NOT NULL DEFAULT '',
    card_brand       TEXT NOT NULL DEFAULT '',
    card_last4       TEXT NOT NULL DEFAULT '',
    card_exp_month   INTEGER NOT NULL DEFAULT 0,
    card_exp_year    INTEGER NOT NULL DEFAULT 0,
    card_fingerprint TEXT NOT NULL DEFAULT '',
    -- CBU (direct_debit) or CVU (cvu): not a secret in Argentina, masked on display.
    account_number   TEXT NOT NULL DEFAULT '',
    wallet           TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    -- Removed methods are detached, not deleted, so payment history keeps its references.
    detached_at      BIGINT
);
CREATE INDEX payment_methods_customer ON payment_methods (customer_id, ordinal);

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    customer_id          TEXT NOT NULL REFERENCES customers (id),
    plan                 TEXT NOT NULL,
    amount               BIGINT NOT NULL CHECK (amount > 0),
    currency             TEXT NOT NULL,
    billing_interval     TEXT NOT NULL CHECK (billing_interval IN ('week', 'month', 'year')),
    status               TEXT NOT NULL CHECK (status IN ('active', 'past_due', 'canceled')),
    billing_anchor       BIGINT NOT NULL,
    current_period_start BIGINT NOT NULL,
    current_period_end   BIGINT NOT NULL,
    payment_method_id    TEXT REFERENCES payment_methods (id),
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    canceled_at          BIGINT,
    cancellation_reason  TEXT NOT NULL DEFAULT '',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);
CREATE INDEX subscriptions_due ON subscriptions (status, current_period_end);

CREATE TABLE payments (
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
    updated_at          BIGINT NOT NULL
);
-- NULL keys never collide (both engines), so only keyed requests are deduplicated.
CREATE UNIQUE INDEX payments_idempotency ON payments (customer_id, idempotency_key);
CREATE INDEX payments_customer_status ON payments (customer_id, status);
CREATE INDEX payments_customer_created ON payments (customer_id, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_subscription ON payments (subscription_id);

CREATE TABLE payment_attempts (
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

-- +goose Down
DROP TABLE payment_attempts;
DROP TABLE payments;
DROP TABLE subscriptions;
DROP TABLE payment_methods;
DROP TABLE customers;
