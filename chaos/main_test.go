package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
)

// The short version of every scenario: the same code as `make chaos`, at sizes that take
// seconds. A scenario's outcome failing (anything lost or duplicated, any invariant broken)
// fails its subtest, with what broke.

var pg ledgertest.Postgres

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // the clients' chatter; outcomes say what went wrong
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// TestScenarios runs every scenario's short version at once — most of their time is spent
// waiting on something real (a lease to run out, a server's timeout, a backoff), which
// overlaps — and then checks each in a subtest named after it. CHAOS_ONLY=killed,leader runs
// only those.
func TestScenarios(t *testing.T) {
	var picked []Scenario
	only := os.Getenv("CHAOS_ONLY")
	for _, sc := range Scenarios {
		if only == "" || strings.Contains(","+only+",", ","+sc.Name+",") {
			picked = append(picked, sc)
		}
	}
	bin := ""
	for _, sc := range picked {
		if processes[sc.Name] {
			bin = buildBinaries(t)
			break
		}
	}
	start := time.Now()
	outs := make([]Outcome, len(picked))
	var wg sync.WaitGroup
	for i, sc := range picked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := Config{Root: testenv.RepoRoot(), Bin: bin, Work: filepath.Join(t.TempDir()), Postgres: &testPostgres{pg: &pg},
				Progress: testWriter{t, start}}
			if sc.Name == "pgrestart" {
				// A server of its own: the restart would cut the other scenarios' sessions too.
				own := &ledgertest.Postgres{}
				defer own.Stop()
				cfg.Postgres = &testPostgres{pg: own}
			}
			outs[i] = sc.Run(context.Background(), cfg)
		}()
	}
	wg.Wait()
	for i, sc := range picked {
		t.Run(sc.Name, func(t *testing.T) {
			o := outs[i]
			t.Logf("%s: %s", o.Elapsed.Round(100*time.Millisecond), o.Faults)
			for _, f := range o.Figures {
				t.Log(f)
			}
			for _, c := range o.Checks {
				t.Logf("check %s: ok=%v (%s)", c.Name, c.OK, c.Detail)
			}
			if !o.Passed() {
				t.Fatalf("%s: %s", o.Scenario, o.Failures())
			}
		})
	}
}

// processes are the scenarios that run bin/manager and bin/portal.
var processes = map[string]bool{"killed": true, "smtp": true, "apiserver": true, "leader": true, "load": true, "abuse": true}

// buildBinaries builds the manager and the portal from this tree, as e2e does: `make test` runs
// before `make build`.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, pkg := range map[string]string{"manager": "./cmd/manager", "portal": "./cmd/portal"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	return dir
}

// testPostgres hands out databases on a test server.
type testPostgres struct {
	pg *ledgertest.Postgres
	n  atomic.Int64
}

func (p *testPostgres) Database(name string) (string, error) {
	return p.pg.Database(fmt.Sprintf("%s_%d_%d", name, os.Getpid(), p.n.Add(1)))
}

func (p *testPostgres) Restart() error { return p.pg.Restart() }

type testWriter struct {
	t     *testing.T
	start time.Time
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%5.1fs %s", time.Since(w.start).Seconds(), strings.TrimSpace(string(b)))
	return len(b), nil
}
