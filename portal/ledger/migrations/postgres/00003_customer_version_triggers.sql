-- customers.version changes with every write to anything the customer's pages show: the customer
-- row itself and every row the customer owns. The portal reads it with the customer (one
-- primary-key read it makes on every signed-in request anyway) and reuses what it rendered
-- while the version stays the same, so the database, not each write path, must keep it: a
-- write that forgot to bump it would leave a customer looking at a stale page.
-- TestVersionTriggersCoverEveryTable fails for a table without these triggers.
--
-- The bump is an UPDATE of the customer's row in the writing transaction: it commits with the
-- write, and the row lock orders the bumps of concurrent writers, so a reader that sees version
-- n sees every write before it. Ledger transactions lock the customer row first
-- (lockCustomer), so taking it again here adds no lock and no new lock order.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION portero_customer_version_self() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version = OLD.version THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION portero_customer_version_owned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE customers SET version = version + 1 WHERE id = OLD.customer_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.customer_id IS DISTINCT FROM OLD.customer_id) THEN
        UPDATE customers SET version = version + 1 WHERE id = NEW.customer_id;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- payment_attempts belong to the customer through their payment.
-- +goose StatementBegin
CREATE FUNCTION portero_customer_version_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE customers SET version = version + 1
        WHERE id = (SELECT customer_id FROM payments WHERE id = OLD.payment_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.payment_id IS DISTINCT FROM OLD.payment_id) THEN
        UPDATE customers SET version = version + 1
        WHERE id = (SELECT customer_id FROM payments WHERE id = NEW.payment_id);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER customers_version BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION portero_customer_version_self();
CREATE TRIGGER payment_methods_version AFTER INSERT OR UPDATE OR DELETE ON payment_methods
    FOR EACH ROW EXECUTE FUNCTION portero_customer_version_owned();
CREATE TRIGGER subscriptions_version AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION portero_customer_version_owned();
CREATE TRIGGER payments_version AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION portero_customer_version_owned();
CREATE TRIGGER payment_attempts_version AFTER INSERT OR UPDATE OR DELETE ON payment_attempts
    FOR EACH ROW EXECUTE FUNCTION portero_customer_version_attempt();

-- +goose Down
DROP TRIGGER payment_attempts_version ON payment_attempts;
DROP TRIGGER payments_version ON payments;
DROP TRIGGER subscriptions_version ON subscriptions;
DROP TRIGGER payment_methods_version ON payment_methods;
DROP TRIGGER customers_version ON customers;
DROP FUNCTION portero_customer_version_attempt();
DROP FUNCTION portero_customer_version_owned();
DROP FUNCTION portero_customer_version_self();
