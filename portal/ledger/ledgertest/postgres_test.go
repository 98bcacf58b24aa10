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

// TestRestart: committed rows survive a restart, and a pool opened before it works after it
// (once its dead connections are replaced).
func TestRestart(t *testing.T) {
	dsn := pg.DSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE kept (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Restart(); err != nil {
		if os.Getenv(EnvDSN) != "" {
			t.Skip("an external server is not restarted:", err)
		}
		t.Fatal(err)
	}
	var x int
	var last error
	for range 3 { // the pool's connection to the old server fails once
		if last = db.QueryRow("SELECT x FROM kept").Scan(&x); last == nil {
			break
		}
	}
	if last != nil || x != 7 {
		t.Fatalf("after restart: x = %d, %v", x, last)
	}
}
