package ledgertest

import (
	"database/sql"
	"os"
	"testing"
)

var pg Postgres

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// TestSchemasAreIsolated checks what every ledger test relies on: two DSNs from DSN see
// different, empty schemas.
func TestSchemasAreIsolated(t *testing.T) {
	a, b := pg.DSN(t), pg.DSN(t)
	if a == b {
		t.Fatal("DSN returned the same schema twice")
	}
	dbA, err := sql.Open("pgx", a)
	if err != nil {
		t.Fatal(err)
	}
	defer dbA.Close()
	dbB, err := sql.Open("pgx", b)
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	if _, err := dbA.Exec("CREATE TABLE only_in_a (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := dbA.Exec("INSERT INTO only_in_a VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := dbB.Exec("SELECT x FROM only_in_a"); err == nil {
		t.Fatal("a table created through one DSN is visible through another")
	}
	var schema string
	if err := dbB.QueryRow("SELECT current_schema()").Scan(&schema); err != nil || schema == "public" {
		t.Fatalf("current_schema = %q, %v", schema, err)
	}
}

func TestSQLiteDSN(t *testing.T) {
	if a, b := SQLiteDSN(t), SQLiteDSN(t); a == b || len(a) < len("sqlite://x") {
		t.Fatalf("SQLiteDSN: %q %q", a, b)
	}
}
