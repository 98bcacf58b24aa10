// Command portero-bench runs Portero's benchmarks against the real control plane (kube-apiserver
// and etcd from KUBEBUILDER_ASSETS or bin/k8s), the operator and portal binaries in bin/, and real
// SQLite and PostgreSQL, each figure beside a baseline measured in the same run. It prints one
// table and writes it, with the machine it ran on, to docs/benchmarks.md.
//
//	go run ./bench/cmd/portero-bench [-only sessions,portal,operator,ledger,webhooks,processor] [-quick] [-out docs/benchmarks.md]
//
// It also serves as its own helper processes: `portero-bench serve-constant` (the baseline page
// server) and `portero-bench loadgen` (the fixed-rate load generator).
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/internal/testenv"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve-constant":
			exit(bench.ServeConstantMain(os.Args[2:]))
		case "loadgen":
			exit(bench.LoadgenMain(os.Args[2:]))
		}
	}
	root := testenv.RepoRoot()
	var (
		out, only, binDir, work, profileDir string
		quick, keep                         bool
		portals, sessions, expiring         int
	)
	flag.StringVar(&out, "out", "", "Write the table and the method notes to this Markdown file (e.g. docs/benchmarks.md).")
	flag.StringVar(&only, "only", "sessions,portal,operator,ledger,webhooks,processor", "Comma-separated benchmarks to run.")
	flag.StringVar(&binDir, "bin", filepath.Join(root, "bin"), "Directory holding the manager and portal binaries (`make build`).")
	flag.StringVar(&work, "work", "", "Directory for logs, kubeconfigs and data (default: a temporary one, removed unless -keep).")
	flag.StringVar(&profileDir, "profile-dir", "", "Write CPU and heap profiles of the manager here (needs a manager with --pprof-bind-address).")
	flag.BoolVar(&quick, "quick", false, "Smaller sizes, for a smoke test of the harness; the table is not comparable with a full run.")
	flag.BoolVar(&keep, "keep", false, "Keep the work directory.")
	flag.IntVar(&portals, "portals", 0, "CustomerPortals in the operator benchmark (default 1000).")
	flag.IntVar(&sessions, "sessions", 0, "PortalSessions for the operator's memory figure (default 50000).")
	flag.IntVar(&expiring, "expiring", 0, "Sessions expiring at once in the operator benchmark (default 10000).")
	flag.Parse()

	// controller-runtime's clients log through this; only their errors are worth seeing here.
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if work == "" {
		d, err := os.MkdirTemp("", "portero-bench-")
		if err != nil {
			exit(err)
		}
		work = d
		if !keep {
			defer os.RemoveAll(work)
		}
	}
	self, err := os.Executable()
	if err != nil {
		exit(err)
	}
	cfg := bench.Config{
		Root:       root,
		Bin:        binDir,
		Work:       work,
		Self:       self,
		Quick:      quick,
		Portals:    portals,
		Sessions:   sessions,
		Expiring:   expiring,
		ProfileDir: profileDir,
		Progress:   os.Stderr,
	}
	machine := bench.DescribeMachine()
	began := time.Now()
	var sections []bench.Section
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		run, ok := bench.Suites[name]
		if !ok {
			exit(fmt.Errorf("unknown benchmark %q; choose from %s", name, strings.Join(slices.Sorted(maps.Keys(bench.Suites)), ", ")))
		}
		fmt.Fprintf(os.Stderr, "=== %s\n", name)
		secs := run(ctx, cfg)
		for _, s := range secs {
			if s.Err != nil {
				fmt.Fprintf(os.Stderr, "    %s: ERROR: %v\n", s.Title, s.Err)
			}
		}
		sections = append(sections, secs...)
		if ctx.Err() != nil {
			break
		}
	}
	machine.LoadEnd = bench.LoadAvg()
	elapsed := time.Since(began)

	fmt.Println()
	bench.WriteTable(os.Stdout, sections)
	fmt.Printf("\n%s, %d cores, %.1f GiB, %s, load %s → %s, %s\n", machine.CPU, machine.Cores, machine.MemoryGiB, machine.Go,
		machine.LoadStart, machine.LoadEnd, elapsed.Round(time.Second))
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			exit(err)
		}
		// Only the flags that change what is measured; paths and profiling do not.
		command := "portero-bench"
		flag.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "quick", "only", "portals", "sessions", "expiring", "out":
				command += fmt.Sprintf(" -%s=%s", f.Name, f.Value)
			}
		})
		bench.WriteMarkdown(f, machine, sections, command, elapsed)
		if err := f.Close(); err != nil {
			exit(err)
		}
		fmt.Printf("wrote %s\n", out)
	}
	for _, s := range sections {
		if s.Err != nil {
			os.Exit(1)
		}
	}
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "portero-bench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
