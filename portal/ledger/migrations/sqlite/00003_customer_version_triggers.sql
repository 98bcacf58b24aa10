-- customers.version changes with every write to anything the customer's pages show: the customer
-- row itself and every row the customer owns. The portal reads it with the customer (one
-- primary-key read it makes on every signed-in request anyway) and reuses what it rendered
-- while the version stays the same, so the database, not each write path, must keep it: a
-- write that forgot to bump it would leave a customer looking at a stale page.
-- TestVersionTriggersCoverEveryTable fails for a table without these triggers.
--
-- SQLite runs these in the writing statement's transaction; recursive triggers are off, and
-- the customers trigger only acts on an update that left the version alone.

-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER customers_version_upd AFTER UPDATE ON customers
WHEN NEW.version = OLD.version BEGIN
    UPDATE customers SET version = version + 1 WHERE id = NEW.id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_methods_version_ins AFTER INSERT ON payment_methods BEGIN
    UPDATE customers SET version = version + 1 WHERE id = NEW.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_methods_version_upd AFTER UPDATE ON payment_methods BEGIN
    UPDATE customers SET version = version + 1 WHERE id IN (OLD.customer_id, NEW.customer_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER payment_methods_version_del AFTER DELETE ON payment_methods BEGIN
    UPDATE customers SET version = version + 1 WHERE id = OLD.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subscriptions_version_ins AFTER INSERT ON subscriptions BEGIN
    UPDATE customers SET version = version + 1 WHERE id = NEW.customer_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subscriptions_version_upd AFTER UPDATE ON subscriptions BEGIN
    UPDATE customers SET version = version + 1 WHERE id IN (OLD.customer_id, NEW.customer_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subscriptions_version_del AFTER DELETE ON subscriptions BEGIN
    UPDATE customers SET version = version + 1 WHERE id = OLD.customer_id;
END;
-- +goose StatementEnd
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
-- payment_attempts belong to the customer through their payment.
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

-- +goose Down
DROP TRIGGER payment_attempts_version_del;
DROP TRIGGER payment_attempts_version_upd;
DROP TRIGGER payment_attempts_version_ins;
DROP TRIGGER payments_version_del;
DROP TRIGGER payments_version_upd;
DROP TRIGGER payments_version_ins;
DROP TRIGGER subscriptions_version_del;
DROP TRIGGER subscriptions_version_upd;
DROP TRIGGER subscriptions_version_ins;
DROP TRIGGER payment_methods_version_del;
DROP TRIGGER payment_methods_version_upd;
DROP TRIGGER payment_methods_version_ins;
DROP TRIGGER customers_version_upd;
