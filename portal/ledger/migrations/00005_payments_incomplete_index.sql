-- The billing loop looks for incomplete payments that a method added since could settle
-- (SettleStranded); this keeps that look from scanning every payment.

-- +goose Up
CREATE INDEX payments_incomplete ON payments (customer_id, updated_at) WHERE status = 'incomplete';

-- +goose Down
DROP INDEX payments_incomplete;
