-- The merchant's event log and its webhook deliveries (a transactional outbox). An event row is
-- written in the same transaction as the change it reports, so a crash can neither lose an event
-- of a committed change nor leave one for a change that rolled back. `body` is the whole
-- envelope as it is sent, fixed at creation: every attempt sends the same bytes.
--
-- One delivery row per event and endpoint that wanted it when the event was written. A worker
-- leases due rows (lease_owner, lease_until) so several replicas never send the same attempt
-- at once; a lease that expires (a killed pod) makes the row due again.

-- +goose Up
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('portal', 'merchant_api', 'billing', 'processor')),
    customer_id TEXT NOT NULL DEFAULT '',
    object_id   TEXT NOT NULL DEFAULT '',
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at, id);
CREATE INDEX events_type_created ON events (event_type, created_at, id);

CREATE TABLE event_deliveries (
    event_id         TEXT NOT NULL REFERENCES events (id),
    endpoint         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_attempt_at  BIGINT,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    delivered_at     BIGINT,
    lease_owner      TEXT NOT NULL DEFAULT '',
    lease_until      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (event_id, endpoint)
);
-- A worker claims one endpoint's due deliveries in due order: this index answers it without a sort.
CREATE INDEX event_deliveries_due ON event_deliveries (endpoint, next_attempt_at, created_at, event_id) WHERE status = 'pending';

-- +goose Down
DROP INDEX event_deliveries_due;
DROP TABLE event_deliveries;
DROP INDEX events_type_created;
DROP INDEX events_created;
DROP TABLE events;
