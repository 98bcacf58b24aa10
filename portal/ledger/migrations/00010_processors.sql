-- The processor layer (portal/charging): a portal names its processor (spec.processor) and may
-- switch it live, so what a processor gave us is kept per processor type.
--
--  * processor_customers: a customer's id at each processor (Stripe's cus_…), created lazily the
--    first time a processor-held method is added; the first writer wins, so replicas agree.
--  * payment_methods.processor names the processor holding a card (its card_token is that
--    processor's handle); methods no processor holds (a CBU, a QR payment) have ''. Before this
--    every method was written with 'sandbox', the only processor there was.
--  * payment_attempts.processor is the processor an attempt was charged through, so it is looked
--    up or re-driven only there (never charged again elsewhere after a switch). Every attempt
--    before this went through the sandbox.
--  * processor_events: the processor webhook events already acted on, so a redelivery is skipped.
--
-- No customer page shows these rows, so they need no version triggers.

-- +goose Up
CREATE TABLE processor_customers (
    customer_id           TEXT NOT NULL REFERENCES customers (id),
    processor             TEXT NOT NULL,
    processor_customer_id TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    PRIMARY KEY (customer_id, processor)
);
CREATE UNIQUE INDEX processor_customers_external ON processor_customers (processor, processor_customer_id);

UPDATE payment_methods SET processor = '' WHERE method_type <> 'card';
-- A webhook names a method by its processor id: find its holder without a scan.
CREATE INDEX payment_methods_processor_id ON payment_methods (processor, card_token) WHERE card_token <> '';

ALTER TABLE payment_attempts ADD COLUMN processor TEXT NOT NULL DEFAULT '';
UPDATE payment_attempts SET processor = 'sandbox';
-- A webhook names a charge by its processor reference.
CREATE INDEX payment_attempts_reference ON payment_attempts (processor_reference)
    WHERE processor_reference <> '';
-- Stale attempts are found by their payment's status and age (ClaimStale).
CREATE INDEX payments_processing ON payments (updated_at) WHERE status = 'processing';

CREATE TABLE processor_events (
    processor  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (processor, event_id)
);

-- +goose Down
DROP TABLE processor_events;
DROP INDEX payments_processing;
DROP INDEX payment_attempts_reference;
ALTER TABLE payment_attempts DROP COLUMN processor;
DROP INDEX payment_methods_processor_id;
UPDATE payment_methods SET processor = 'sandbox' WHERE method_type <> 'card';
DROP TABLE processor_customers;
