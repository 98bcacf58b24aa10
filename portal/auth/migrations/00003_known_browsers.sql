-- Browsers that proved they can read an address's inbox (they signed in with a code sent to
-- it). Such a browser has a quota of code e-mails of its own for that address, outside the
-- address's shared one, so strangers who use that one up cannot lock the owner out.

-- +goose Up
CREATE TABLE auth_known_browsers (
    -- Hex SHA-256 of the random value the browser keeps in a cookie.
    id         TEXT NOT NULL,
    portal     TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (id, portal, email)
);
CREATE INDEX auth_known_browsers_address ON auth_known_browsers (portal, email, expires_at);

-- +goose Down
DROP TABLE auth_known_browsers;
