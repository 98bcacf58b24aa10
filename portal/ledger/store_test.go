package ledger

import (
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/portero-dev/portero/portal/payments"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn     string
		engine  Engine
		prefix  string
		wantErr bool
	}{
		{dsn: "postgres://u:p@db:5432/portero?sslmode=require", engine: Postgres, prefix: "postgres://u:p@db"},
		{dsn: "postgresql://db/portero", engine: Postgres, prefix: "postgresql://db"},
		{dsn: "sqlite:///var/lib/portero/ledger.db", engine: SQLite, prefix: "file:/var/lib/portero/ledger.db?"},
		{dsn: "sqlite://ledger.db", engine: SQLite, prefix: "file:ledger.db?"},
		{dsn: "/data/ledger.db", engine: SQLite, prefix: "file:/data/ledger.db?"},
		{dsn: "", wantErr: true},
		{dsn: ":memory:", wantErr: true},
		{dsn: "sqlite://", wantErr: true},
		{dsn: "mysql://u:secret@db/x", wantErr: true},
		{dsn: "/data/ledger.db?_pragma=foo", wantErr: true},
	}
	for _, tt := range tests {
		engine, driverDSN, err := parseDSN(tt.dsn)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseDSN(%q) accepted", tt.dsn)
			} else if strings.Contains(err.Error(), "secret") {
				t.Errorf("parseDSN(%q) error leaks the password: %v", tt.dsn, err)
			}
			continue
		}
		if err != nil || engine != tt.engine || !strings.HasPrefix(driverDSN, tt.prefix) {
			t.Errorf("parseDSN(%q) = %s, %q, %v", tt.dsn, engine, driverDSN, err)
		}
		if engine == SQLite {
			for _, want := range []string{"_txlock=immediate", "journal_mode%28WAL%29", "foreign_keys%281%29", "busy_timeout"} {
				if !strings.Contains(driverDSN, want) {
					t.Errorf("SQLite DSN %q lacks %s", driverDSN, want)
				}
			}
		}
	}
}

func TestRebindDollar(t *testing.T) {
	got := rebindDollar("SELECT a FROM t WHERE x = ? AND y = '?' AND z IN (?, ?)")
	want := "SELECT a FROM t WHERE x = $1 AND y = '?' AND z IN ($2, $3)"
	if got != want {
		t.Fatalf("rebindDollar = %q, want %q", got, want)
	}
}

func TestOpenMigratesOnceAndReopens(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "jane@example.com")
		// A second Store (restart or replica) finds the schema current and the data there.
		s2 := e.open(t)
		if got, err := s2.GetCustomer(e.ctx, c.ID); err != nil || got.Email != c.Email {
			t.Fatalf("reopened store: %+v %v", got, err)
		}
		shared, err := fs.Glob(migrationsFS, "migrations/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		own, err := fs.Glob(migrationsFS, "migrations/"+string(e.engine)+"/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		files := append(shared, own...)
		var version int64
		if err := s2.read().queryRow(e.ctx, "SELECT MAX(version_id) FROM goose_db_version").Scan(&version); err != nil || version != int64(len(files)) {
			t.Fatalf("goose version = %d, %v; want %d (one per migration)", version, err, len(files))
		}
		if s2.Engine() != e.engine {
			t.Fatalf("Engine() = %s", s2.Engine())
		}
		if err := s2.Ping(e.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSQLiteSettings(t *testing.T) {
	e := newEnv(t, SQLite)
	q := e.store.read()
	var mode string
	var fk, busy int
	if err := q.queryRow(e.ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	if err := q.queryRow(e.ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v", fk, err)
	}
	if err := q.queryRow(e.ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy < 1000 {
		t.Errorf("busy_timeout = %d, %v", busy, err)
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		_, err := e.store.read().exec(e.ctx, `INSERT INTO payment_methods (id, customer_id, ordinal,
			method_type, created_at) VALUES ('pm_x', 'cus_missing', 0, 'qr', 0)`)
		if err == nil {
			t.Fatal("insert referencing a missing customer succeeded")
		}
		_, err = e.store.read().exec(e.ctx, `INSERT INTO customers (id, email, created_at, updated_at)
			VALUES ('cus_x', 'x@example.com', 0, 0)`)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.store.read().exec(e.ctx, `INSERT INTO payment_methods (id, customer_id, ordinal,
			method_type, created_at) VALUES ('pm_y', 'cus_x', 0, 'cash', 0)`)
		if err == nil {
			t.Fatal("CHECK constraint on method_type not enforced")
		}
	})
}

func TestErrorsAreCodedAndLocalized(t *testing.T) {
	err := notFound("payment")
	if !strings.Contains(err.Message("es"), "el pago") || !strings.Contains(err.Message("en"), "payment") {
		t.Fatalf("messages: %q / %q", err.Message("es"), err.Message("en"))
	}
	wrapped := invalid("billing.tax_id", &payments.Error{Code: payments.CodeInvalidCUITCheckDigit, Field: "tax_id"})
	var le *Error
	if !errors.As(wrapped, &le) || le.Kind != KindInvalid || le.Field != "billing.tax_id" ||
		!strings.Contains(le.Message("es"), "CUIT") {
		t.Fatalf("wrapped validation error: %+v", le)
	}
	if CodeOf(wrapped) != payments.CodeInvalidCUITCheckDigit {
		t.Fatalf("CodeOf = %s", CodeOf(wrapped))
	}
}

// TestConcurrentOpen starts several replicas at once on a new database: migrations run once
// and every replica comes up.
func TestConcurrentOpen(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		var dsn string
		switch e.engine {
		case SQLite:
			dsn = "sqlite://" + t.TempDir() + "/fresh.db"
		case Postgres:
			dsn = postgresDSN(t)
		}
		const replicas = 4
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		for i := 0; i < replicas; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(e.ctx, dsn, Options{Now: e.clock.Now})
				if err == nil {
					_, err = s.CreateCustomer(e.ctx, NewCustomer{Email: "r@example.com"})
					s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}
	})
}

// TestDueQueryUsesPartialIndex: the payments due, as the portal asks for them on every signed-in
// page, are read from payments_customer_due, not by walking all of a customer's payments. SQLite
// uses a partial index only for a WHERE that repeats its IN list, in its order.
func TestDueQueryUsesPartialIndex(t *testing.T) {
	e := newEnv(t, SQLite)
	q := "EXPLAIN QUERY PLAN SELECT " + paymentColumns + " FROM payments WHERE 1 = 1 AND customer_id = ? AND " +
		"status IN ('incomplete', 'requires_action', 'failed', 'pending') ORDER BY created_at DESC, id DESC LIMIT ?"
	rows, err := e.store.db.QueryContext(e.ctx, q, "cus_x", 21)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if !strings.Contains(plan.String(), "payments_customer_due") || strings.Contains(plan.String(), "TEMP B-TREE") {
		t.Fatalf("plan of the due query:\n%s\nwant a search of payments_customer_due with no sort", plan.String())
	}
}
