package auth

// Every store test runs on SQLite (a temp file) and on a real PostgreSQL (see ledgertest for
// where the server comes from), with the ledger's tables beside auth's as in production.

import (
	"context"
	"os"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
)

var testPG ledgertest.Postgres

func TestMain(m *testing.M) {
	code := m.Run()
	testPG.Stop()
	os.Exit(code)
}

// env is one engine's fixture: a ledger and an auth store on the same fresh database.
type env struct {
	engine ledger.Engine
	dsn    string
	clock  *clocktesting.FakeClock
	ledger *ledger.Store
	store  *Store
	ctx    context.Context
}

func newEnv(t testing.TB, engine ledger.Engine) *env {
	t.Helper()
	e := &env{engine: engine, clock: clocktesting.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), ctx: context.Background()}
	switch engine {
	case ledger.SQLite:
		e.dsn = ledgertest.SQLiteDSN(t)
	case ledger.Postgres:
		e.dsn = testPG.DSN(t)
	}
	var err error
	e.ledger, err = ledger.Open(e.ctx, e.dsn, ledger.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("open %s ledger: %v", engine, err)
	}
	t.Cleanup(func() { e.ledger.Close() })
	e.store = e.open(t, Options{})
	return e
}

// open opens another auth Store (a replica) on the env's database.
func (e *env) open(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = e.clock
	}
	s, err := OpenLedger(e.ctx, e.ledger, opts)
	if err != nil {
		t.Fatalf("open %s auth store: %v", e.engine, err)
	}
	return s
}

// forEachEngine runs fn as a subtest on SQLite and on PostgreSQL.
func forEachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, engine := range []ledger.Engine{ledger.SQLite, ledger.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			fn(t, newEnv(t, engine))
		})
	}
}
