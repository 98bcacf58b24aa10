// Command portero-chaos runs Portero's fault and abuse scenarios (package chaos) against real
// processes — kube-apiserver and etcd from KUBEBUILDER_ASSETS or bin/k8s, the operator and portal
// binaries in bin/, Mailpit, SQLite and Debian's PostgreSQL — checks their invariants, prints a
// summary and writes docs/reliability.md with the machine and the commit.
//
//	go run ./chaos/cmd/portero-chaos [-only ambiguous,killed,…] [-short] [-out docs/reliability.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/chaos"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
)

func main() {
	root := testenv.RepoRoot()
	var (
		out, only, binDir, work string
		short, keep             bool
	)
	var names []string
	for _, s := range chaos.Scenarios {
		names = append(names, s.Name)
	}
	flag.StringVar(&out, "out", "", "Write the results to this Markdown file (e.g. docs/reliability.md).")
	flag.StringVar(&only, "only", strings.Join(names, ","), "Comma-separated scenarios to run.")
	flag.StringVar(&binDir, "bin", filepath.Join(root, "bin"), "Directory holding the manager and portal binaries (`make build`).")
	flag.StringVar(&work, "work", "", "Directory for logs and data (default: a temporary one, removed unless -keep).")
	flag.BoolVar(&short, "short", false, "Run the short versions (the sizes `make test` uses).")
	flag.BoolVar(&keep, "keep", false, "Keep the work directory.")
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if work == "" {
		d, err := os.MkdirTemp("", "portero-chaos-")
		if err != nil {
			exit(err)
		}
		work = d
		if !keep {
			defer os.RemoveAll(work)
		}
	}
	machine := bench.DescribeMachine()
	began := time.Now()
	var outs []chaos.Outcome
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		var sc *chaos.Scenario
		for i := range chaos.Scenarios {
			if chaos.Scenarios[i].Name == name {
				sc = &chaos.Scenarios[i]
			}
		}
		if sc == nil {
			exit(fmt.Errorf("unknown scenario %q; choose from %s", name, strings.Join(names, ", ")))
		}
		fmt.Fprintf(os.Stderr, "=== %d. %s\n", sc.N, sc.Title)
		dir := filepath.Join(work, sc.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			exit(err)
		}
		// Each scenario gets a PostgreSQL server of its own: one restarts it, and none should
		// pay for another's leftovers.
		pg := &pgSource{}
		o := sc.Run(ctx, chaos.Config{Root: root, Bin: binDir, Work: dir, Full: !short, Progress: os.Stderr, Postgres: pg})
		pg.stop()
		chaos.WriteTable(os.Stderr, []chaos.Outcome{o})
		outs = append(outs, o)
		if ctx.Err() != nil {
			break
		}
	}
	machine.LoadEnd = bench.LoadAvg()
	elapsed := time.Since(began)
	fmt.Println()
	chaos.WriteTable(os.Stdout, outs)
	fmt.Printf("\n%s, %d cores, %.1f GiB, %s, load %s → %s, %s\n", machine.CPU, machine.Cores, machine.MemoryGiB, machine.Go,
		machine.LoadStart, machine.LoadEnd, elapsed.Round(time.Second))
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			exit(err)
		}
		command := "portero-chaos"
		flag.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "short", "only":
				command += fmt.Sprintf(" -%s=%s", f.Name, f.Value)
			}
		})
		chaos.WriteMarkdown(f, machine, outs, command, elapsed)
		if err := f.Close(); err != nil {
			exit(err)
		}
		fmt.Printf("wrote %s\n", out)
	}
	for _, o := range outs {
		if !o.Passed() {
			os.Exit(1)
		}
	}
}

// pgSource starts Debian's PostgreSQL (durable, as deployed) on first use.
type pgSource struct {
	pg *ledgertest.Postgres
	n  atomic.Int64
}

func (p *pgSource) Database(name string) (string, error) {
	if p.pg == nil {
		pg, err := bench.StartPostgres()
		if err != nil {
			return "", err
		}
		p.pg = pg
	}
	return p.pg.Database(fmt.Sprintf("%s_%d", name, p.n.Add(1)))
}

func (p *pgSource) Restart() error {
	if p.pg == nil {
		return fmt.Errorf("no PostgreSQL server started")
	}
	return p.pg.Restart()
}

func (p *pgSource) stop() { p.pg.Stop() }

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "portero-chaos:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
