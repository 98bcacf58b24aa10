package ledger

import (
	"context"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
)

// A ledger written before the processor layer (migration 8) keeps every row when it is
// migrated: payments and attempts get the requires_action status (SQLite rebuilds both tables,
// keeping their indexes, triggers and the foreign keys that name them), the attempts were the
// sandbox's, cards stay the sandbox's and the other methods belong to no processor.
func TestMigrationToProcessorsKeepsData(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		old, err := Open(ctx, e.dsn, Options{}) // fully migrated: roll back to 8, as an older portal left it
		if err != nil {
			t.Fatal(err)
		}
		shared, _ := fsSub(migrationsFS, "migrations")
		own, _ := fsSub(migrationsFS, "migrations/"+string(old.engine))
		dialect := goose.DialectSQLite3
		if old.engine == Postgres {
			dialect = goose.DialectPostgres
		}
		p, err := goose.NewProvider(dialect, old.db, engineMigrations{shared: shared, own: own}, goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.DownTo(ctx, 8); err != nil {
			t.Fatalf("down to 8: %v", err)
		}
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := old.read().exec(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		now := e.clock.Now().UnixMilli()
		exec(`INSERT INTO customers (id, email, created_at, updated_at) VALUES ('cus_old', 'old@example.com', ?, ?)`, now, now)
		exec(`INSERT INTO payment_methods (id, customer_id, ordinal, method_type, processor, card_token, card_brand, card_last4,
			card_exp_month, card_exp_year, created_at) VALUES ('pm_card', 'cus_old', 0, 'card', 'sandbox', 'tok_x', 'visa', '4242', 12, 2040, ?)`, now)
		exec(`INSERT INTO payment_methods (id, customer_id, ordinal, method_type, processor, account_number, created_at)
			VALUES ('pm_cbu', 'cus_old', 1, 'direct_debit', 'sandbox', '0110599552000000123456', ?)`, now)
		exec(`INSERT INTO payments (id, customer_id, amount, currency, payment_method_id, method_type, status, attempt_count,
			processor, processor_reference, credit_applied, created_at, updated_at)
			VALUES ('pay_old', 'cus_old', 1000, 'ARS', 'pm_card', 'card', 'succeeded', 1, 'sandbox', 'ch_1', 0, ?, ?)`, now, now)
		exec(`INSERT INTO payment_attempts (payment_id, attempt_number, payment_method_id, method_type, outcome,
			processor_reference, started_at, finished_at) VALUES ('pay_old', 1, 'pm_card', 'card', 'succeeded', 'ch_1', ?, ?)`, now, now)
		exec(`INSERT INTO credit_transactions (id, customer_id, currency, amount, kind, payment_id, created_at)
			VALUES ('cr_1', 'cus_old', 'ARS', 500, 'applied', 'pay_old', ?)`, now)
		old.Close()

		s := e.open(t).Store // migrates 9 and 10
		got, err := s.GetPayment(ctx, "pay_old")
		if err != nil || got.Status != PaymentSucceeded || got.Amount != 1000 || len(got.Attempts) != 1 ||
			got.Attempts[0].Processor != "sandbox" || got.Attempts[0].ProcessorReference != "ch_1" {
			t.Fatalf("payment after the migration = %+v, %v", got, err)
		}
		ms, err := s.ListPaymentMethods(ctx, "cus_old")
		if err != nil || len(ms) != 2 || ms[0].Processor != payments.ProcessorSandbox || ms[1].Processor != "" {
			t.Fatalf("methods after the migration = %+v, %v", ms, err)
		}
		// The new status is accepted where the old CHECK refused it, and the version triggers
		// still fire on the rebuilt tables.
		c, _ := s.GetCustomer(ctx, "cus_old")
		exec2 := func(q string) {
			t.Helper()
			if _, err := s.read().exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		exec2(`UPDATE payment_attempts SET outcome = 'requires_action' WHERE payment_id = 'pay_old'`)
		exec2(`UPDATE payments SET status = 'requires_action' WHERE id = 'pay_old'`)
		if after, _ := s.GetCustomer(ctx, "cus_old"); after.Version <= c.Version {
			t.Fatalf("version %d → %d: the rebuilt tables lost their triggers", c.Version, after.Version)
		}
		a, err := s.FindAttempt(ctx, charging.AttemptRef{PaymentID: "pay_old"})
		if err != nil || a.Status != charging.AttemptRequiresAction || a.Processor != payments.ProcessorSandbox || a.Method.Token != "tok_x" {
			t.Fatalf("FindAttempt = %+v, %v", a, err)
		}
		// Foreign keys still hold, from the rebuilt tables and to them.
		if s.engine == SQLite {
			rows, err := s.db.QueryContext(ctx, "PRAGMA foreign_key_check")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			if rows.Next() {
				t.Fatal("foreign_key_check reports violations after the rebuild")
			}
		}
		for _, q := range []string{
			`INSERT INTO payment_attempts (payment_id, attempt_number, method_type, outcome, started_at) VALUES ('pay_missing', 1, 'card', 'processing', 1)`,
			`INSERT INTO credit_transactions (id, customer_id, currency, amount, kind, payment_id, created_at) VALUES ('cr_2', 'cus_old', 'ARS', 1, 'applied', 'pay_missing', 1)`,
		} {
			if _, err := s.read().exec(ctx, q); err == nil {
				t.Errorf("a row naming a missing payment was accepted: %s", q)
			}
		}
		var n int
		if err := s.read().queryRow(ctx, "SELECT COUNT(*) FROM credit_transactions WHERE payment_id = 'pay_old'").Scan(&n); err != nil || n != 1 {
			t.Fatalf("credit rows naming the payment: %d, %v", n, err)
		}
	})
}
