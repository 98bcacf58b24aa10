// Package bench holds Portero's system benchmarks: each puts a Portero figure beside a baseline
// measured in the same run on the same machine (the floor the figure cannot beat), so a reader
// can tell Portero's overhead from the machine's speed and from the noise of a shared machine.
// cmd/portero-bench runs them and writes docs/benchmarks.md; the Go micro-benchmarks of the hot
// paths are in this package's tests.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Config is what every benchmark needs to know about the run.
type Config struct {
	Root string // repository root
	Bin  string // holds manager and portal
	Work string // scratch: logs, kubeconfigs, databases
	Self string // this executable: the constant page server and the load generator
	// Quick shrinks every size for a smoke test of the harness.
	Quick bool
	// Portals, Sessions and Expiring override the operator benchmark's sizes when non-zero.
	Portals, Sessions, Expiring int
	// ProfileDir receives manager profiles when the manager serves pprof.
	ProfileDir string
	Progress   io.Writer
}

func (c Config) step(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "--> "+format+"\n", args...)
	}
}

// scaled returns full, or quick under -quick.
func (c Config) scaled(full, quick int) int {
	if c.Quick {
		return quick
	}
	return full
}

// size is override if set, else full or quick.
func (c Config) size(override, full, quick int) int {
	if override > 0 {
		return override
	}
	return c.scaled(full, quick)
}

// LoadAvg is /proc/loadavg's three averages.
func LoadAvg() string { return loadAvg() }

// Suites are the benchmarks by the name -only takes. Each starts what it needs (a fresh
// control plane, the manager, a portal, a database) and stops it before returning.
var Suites = map[string]func(context.Context, Config) []Section{
	"sessions":  runSessions,
	"portal":    runPortal,
	"operator":  runOperator,
	"ledger":    runLedger,
	"webhooks":  runWebhooks,
	"processor": runProcessor,
}

// withCluster starts a control plane (and the manager, if asked) in a subdirectory of the work
// dir, runs fn and stops everything.
func withCluster(ctx context.Context, cfg Config, name string, manager bool, fn func(*Cluster) []Section, title string) []Section {
	dir := filepath.Join(cfg.Work, name)
	cfg.step("%s: starting kube-apiserver and etcd", name)
	c, err := StartCluster(dir)
	if err != nil {
		return []Section{{Title: title, Err: err}}
	}
	defer c.Stop()
	if manager {
		cfg.step("%s: starting the operator (%s)", name, filepath.Join(cfg.Bin, "manager"))
		dm, err := ReadDeployedManager(cfg.Root)
		if err != nil {
			return []Section{{Title: title, Err: err}}
		}
		if err := c.StartManager(ctx, ManagerOptions{Bin: filepath.Join(cfg.Bin, "manager"), Env: dm.Env, MemoryLimit: dm.MemoryLimit, Pprof: cfg.ProfileDir != ""}); err != nil {
			return []Section{{Title: title, Err: err}}
		}
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return []Section{{Title: title, Err: err}}
		}
	}
	return fn(c)
}

func runSessions(ctx context.Context, cfg Config) []Section {
	return withCluster(ctx, cfg, "sessions", true, func(c *Cluster) []Section {
		o := SessionLatencyOptions{N: cfg.scaled(1000, 100), Warmup: cfg.scaled(50, 10), Rate: 50}
		cfg.step("sessions: %d PortalSessions and %d ConfigMaps, interleaved at %.0f/s each", o.N+o.Warmup, o.N+o.Warmup, o.Rate)
		return []Section{SessionLatency(ctx, c, o)}
	}, "Session link latency")
}

func runPortal(ctx context.Context, cfg Config) []Section {
	return withCluster(ctx, cfg, "portal", true, func(c *Cluster) []Section {
		o := PortalThroughputOptions{Bin: cfg.Bin, Self: cfg.Self, Dir: filepath.Join(cfg.Work, "portal"),
			Rounds: cfg.scaled(3, 1), Duration: time.Duration(cfg.scaled(8, 3)) * time.Second, Warmup: 2 * time.Second,
			Conns: 32, Rate: 1000}
		cfg.step("portal: seeding the ledger, starting the portal, signing in through a session link")
		return []Section{PortalThroughput(ctx, c, o)}
	}, "Portal throughput")
}

func runOperator(ctx context.Context, cfg Config) []Section {
	return withCluster(ctx, cfg, "operator", true, func(c *Cluster) []Section {
		o := OperatorOptions{Portals: cfg.size(cfg.Portals, 1000, 50), Sessions: cfg.size(cfg.Sessions, 50000, 500), Expiring: cfg.size(cfg.Expiring, 10000, 300),
			Workers: 16, ScaleBudget: 10 * time.Minute, ExpiryBudget: 5 * time.Minute, ProfileDir: cfg.ProfileDir, Progress: cfg.step}
		return Operator(ctx, c, o)
	}, "Operator scale")
}

func runLedger(ctx context.Context, cfg Config) []Section {
	dir := filepath.Join(cfg.Work, "ledger")
	for _, d := range []string{dir, cfg.ProfileDir} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return []Section{{Title: "Ledger settlement", Err: err}}
		}
	}
	o := LedgerOptions{Payments: cfg.scaled(10000, 500), Workers: 8, Dir: dir, ProfileDir: cfg.ProfileDir, Progress: cfg.step}
	return []Section{Ledger(ctx, o)}
}

func runProcessor(ctx context.Context, cfg Config) []Section {
	o := ProcessorOptions{Charges: cfg.scaled(300, 20), Rounds: cfg.scaled(21, 2), Progress: cfg.step}
	return []Section{Processor(ctx, o)}
}

func runWebhooks(ctx context.Context, cfg Config) []Section {
	dir := filepath.Join(cfg.Work, "webhooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return []Section{{Title: "Merchant webhooks", Err: err}}
	}
	o := WebhookOptions{Rate: 100, Duration: time.Duration(cfg.scaled(30, 3)) * time.Second,
		Backlog: cfg.scaled(5000, 300), Dir: dir, Progress: cfg.step}
	return []Section{Webhooks(ctx, o)}
}
