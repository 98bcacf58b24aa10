package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
)

// The short version of every scenario: the same code as `make chaos`, at sizes that take
// seconds. A scenario's outcome failing (anything lost or duplicated, any invariant broken)
// fails its test, with what broke.

var pg ledgertest.Postgres

// binDir holds the manager and portal built for the scenarios that run them as processes.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds bin/manager and bin/portal from this tree once per test binary, as e2e does:
// `make test` runs before `make build`.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "portero-chaos-bin-"); binErr != nil {
			return
		}
		for name, pkg := range map[string]string{"manager": "./cmd/manager", "portal": "./cmd/portal"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = testenv.RepoRoot()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("build %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// testPostgres hands each scenario a fresh schema of the shared test server.
type testPostgres struct {
	t  *testing.T
	pg *ledgertest.Postgres
}

func (p testPostgres) Database(string) (string, error) { return p.pg.DSN(p.t), nil }
func (p testPostgres) Restart() error                  { return p.pg.Restart() }

func shortConfig(t *testing.T) Config {
	return Config{Root: testenv.RepoRoot(), Work: t.TempDir(), Postgres: testPostgres{t, &pg}, Progress: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

func requirePassed(t *testing.T, o Outcome) {
	t.Helper()
	for _, f := range o.Figures {
		t.Log(f)
	}
	for _, c := range o.Checks {
		t.Logf("check %s: ok=%v (%s)", c.Name, c.OK, c.Detail)
	}
	if !o.Passed() {
		t.Fatalf("%s: %s", o.Scenario, o.Failures())
	}
}

func TestAmbiguousCharges(t *testing.T) {
	t.Parallel()
	requirePassed(t, AmbiguousCharges(context.Background(), shortConfig(t)))
}

func TestWebhookReceiverDown(t *testing.T) {
	t.Parallel()
	requirePassed(t, WebhookReceiverDown(context.Background(), shortConfig(t)))
}

func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	// A server of its own: the restart would cut the other scenarios' sessions too.
	var own ledgertest.Postgres
	t.Cleanup(own.Stop)
	cfg := shortConfig(t)
	cfg.Postgres = testPostgres{t, &own}
	requirePassed(t, PostgresRestart(context.Background(), cfg))
}

func TestKilledPortal(t *testing.T) {
	t.Parallel()
	cfg := shortConfig(t)
	cfg.Bin = binaries(t)
	requirePassed(t, KilledPortal(context.Background(), cfg))
}

func TestAbuse(t *testing.T) {
	t.Parallel()
	cfg := shortConfig(t)
	cfg.Bin = binaries(t)
	requirePassed(t, Abuse(context.Background(), cfg))
}
