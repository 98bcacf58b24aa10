-- Plans, plan and quantity changes, and the customer's credit balance.
--
--  * plans: the merchant's catalogue (POST /api/v1/plans). A plan is never edited, only
--    archived: a subscription's price was the plan's when it was set, and stays so. The id is
--    the merchant's own (the CustomerPortal's spec.subscriptionUpdate.plans names plans by it).
--  * subscriptions.plan_id and quantity: a subscription may be on a plan, for quantity units;
--    its amount is then the plan's amount × quantity, fixed when set. Subscriptions without a
--    plan (the free-text plan of before) keep plan_id NULL and quantity 1. plan_en is the plan's
--    English name beside plan (its Spanish one), for English pages.
--  * pending_plan_id and pending_quantity: a change scheduled for the period's end, applied by
--    the renewal. change_revision counts the changes made to the subscription; the charge or
--    credit of a change is keyed by it, so a change is billed once however often it is sent.
--  * payments.credit_applied: the part of a subscription charge paid from the customer's credit
--    balance; amount is what is still collected through the payment method.
--  * credit_transactions: the credit balance of a customer in a currency is the sum of its rows:
--    a downgrade's proration adds (kind proration), a charge that consumed it subtracts (kind
--    applied), a charge closed unpaid gives back what it had consumed (kind restored). A charge
--    the balance covers whole is no payment at all: its applied row names the subscription and
--    period it paid. idempotency_key is the key of what made the row, scoped to the customer.

-- +goose Up
CREATE TABLE plans (
    id               TEXT PRIMARY KEY,
    name_es          TEXT NOT NULL,
    name_en          TEXT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    billing_interval TEXT NOT NULL CHECK (billing_interval IN ('week', 'month', 'year')),
    max_quantity     INTEGER CHECK (max_quantity IS NULL OR max_quantity >= 1),
    archived_at      BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX plans_created ON plans (created_at, id);

ALTER TABLE subscriptions ADD COLUMN plan_id TEXT REFERENCES plans (id);
ALTER TABLE subscriptions ADD COLUMN plan_en TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN quantity INTEGER NOT NULL DEFAULT 1 CHECK (quantity >= 1);
ALTER TABLE subscriptions ADD COLUMN pending_plan_id TEXT REFERENCES plans (id);
ALTER TABLE subscriptions ADD COLUMN pending_quantity INTEGER CHECK (pending_quantity IS NULL OR pending_quantity >= 1);
ALTER TABLE subscriptions ADD COLUMN change_revision BIGINT NOT NULL DEFAULT 0;

ALTER TABLE payments ADD COLUMN credit_applied BIGINT NOT NULL DEFAULT 0 CHECK (credit_applied >= 0);

CREATE TABLE credit_transactions (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    currency        TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount <> 0),
    kind            TEXT NOT NULL CHECK (kind IN ('proration', 'applied', 'restored')),
    subscription_id TEXT REFERENCES subscriptions (id),
    payment_id      TEXT REFERENCES payments (id),
    period_start    BIGINT,
    period_end      BIGINT,
    description     TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX credit_transactions_customer ON credit_transactions (customer_id, currency, created_at, id);
-- NULL keys never collide (both engines).
CREATE UNIQUE INDEX credit_transactions_key ON credit_transactions (customer_id, idempotency_key);

-- +goose Down
DROP INDEX credit_transactions_key;
DROP INDEX credit_transactions_customer;
DROP TABLE credit_transactions;
ALTER TABLE payments DROP COLUMN credit_applied;
ALTER TABLE subscriptions DROP COLUMN change_revision;
ALTER TABLE subscriptions DROP COLUMN pending_quantity;
ALTER TABLE subscriptions DROP COLUMN pending_plan_id;
ALTER TABLE subscriptions DROP COLUMN quantity;
ALTER TABLE subscriptions DROP COLUMN plan_en;
ALTER TABLE subscriptions DROP COLUMN plan_id;
DROP INDEX plans_created;
DROP TABLE plans;
