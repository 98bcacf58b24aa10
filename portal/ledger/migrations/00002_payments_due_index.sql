-- The payments waiting for the customer (incomplete, failed, pending), newest first: every
-- signed-in page reads them (the banner's count, the overview's list). Without this index the
-- query walks all of the customer's payments by date and reads each row to check its status;
-- the partial index holds only those payments, in the order the page shows them. Both engines
-- use it for a query whose WHERE carries the same IN list (ledger.ListPayments writes the
-- statuses as literals, in this order: see dueStatuses in portal/web).

-- +goose Up
CREATE INDEX payments_customer_due ON payments (customer_id, created_at, id)
    WHERE status IN ('incomplete', 'failed', 'pending');

-- +goose Down
DROP INDEX payments_customer_due;
