-- A link session stands on one PortalSession object, not on a name: deleting the object and
-- creating another with the same name must not bring old browser sessions back. Sessions made
-- before this column existed have '' and are ended on their next request (see loadSession).

-- +goose Up
ALTER TABLE auth_sessions ADD COLUMN portal_session_uid TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE auth_sessions DROP COLUMN portal_session_uid;
