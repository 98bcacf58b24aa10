-- The customer's credit balance shows on their pages, so its rows change the customer's version
-- like every other row the customer owns (see 00003).

-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER credit_transactions_version_ins AFTER INSERT ON credit_transactions BEGIN
    UPDATE customers SET version = version + 1 WHERE id = NEW.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER credit_transactions_version_upd AFTER UPDATE ON credit_transactions BEGIN
    UPDATE customers SET version = version + 1 WHERE id IN (OLD.customer_id, NEW.customer_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER credit_transactions_version_del AFTER DELETE ON credit_transactions BEGIN
    UPDATE customers SET version = version + 1 WHERE id = OLD.customer_id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER credit_transactions_version_del;
DROP TRIGGER credit_transactions_version_upd;
DROP TRIGGER credit_transactions_version_ins;
