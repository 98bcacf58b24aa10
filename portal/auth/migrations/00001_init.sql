-- Tables of portal/auth, in the ledger's database but versioned separately
-- (goose table portero_auth_db_version). Same portable subset as the ledger: TEXT, INTEGER,
-- BIGINT Unix milliseconds (UTC), NULL for "not yet". No secret is stored in clear: login codes,
-- challenge handles and browser-session ids are kept only as hashes.

-- +goose Up
-- One HMAC key per purpose, created on first start and shared by every replica on the database.
CREATE TABLE auth_keys (
    name       TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A login challenge: one browser asking for a one-time code for one e-mail on one portal.
CREATE TABLE auth_login_challenges (
    -- Hex SHA-256 of the random handle the browser keeps in a cookie.
    id          TEXT PRIMARY KEY,
    portal      TEXT NOT NULL,
    email       TEXT NOT NULL,
    -- HMAC of salt, id and the current code; '' until a code is issued.
    salt        TEXT NOT NULL,
    code_hash   TEXT NOT NULL DEFAULT '',
    -- Every verification counts, right or wrong, before the code is compared.
    attempts    INTEGER NOT NULL DEFAULT 0,
    sends       INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX auth_login_challenges_email ON auth_login_challenges (portal, email, sent_at);
CREATE INDEX auth_login_challenges_expires ON auth_login_challenges (expires_at);

-- A signed-in browser. customer_id is '' while the person must still choose an account.
CREATE TABLE auth_sessions (
    -- Hex SHA-256 of the cookie value.
    id             TEXT PRIMARY KEY,
    portal         TEXT NOT NULL,
    customer_id    TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL DEFAULT '',
    -- Name of the PortalSession a link session stands on; '' for e-mail logins.
    portal_session TEXT NOT NULL DEFAULT '',
    method         TEXT NOT NULL CHECK (method IN ('code', 'link')),
    csrf_token     TEXT NOT NULL,
    flash          TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX auth_sessions_portal_session ON auth_sessions (portal, portal_session);
CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at);

-- Fixed-window counters (per IP, per e-mail); keys are HMACs, not addresses.
CREATE TABLE auth_rate_limits (
    bucket       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
);

-- +goose Down
DROP TABLE auth_rate_limits;
DROP TABLE auth_sessions;
DROP TABLE auth_login_challenges;
DROP TABLE auth_keys;
