-- The customer's credit balance shows on their pages, so its rows change the customer's version
-- like every other row the customer owns (see 00003).

-- +goose Up
CREATE TRIGGER credit_transactions_version AFTER INSERT OR UPDATE OR DELETE ON credit_transactions
    FOR EACH ROW EXECUTE FUNCTION portero_customer_version_owned();

-- +goose Down
DROP TRIGGER credit_transactions_version ON credit_transactions;
