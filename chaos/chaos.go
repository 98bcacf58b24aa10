// Package chaos is Portero's fault and abuse suite: each scenario starts the real parts it
// needs (the ledger on SQLite and PostgreSQL, the portal and operator processes, kube-apiserver
// and etcd, Mailpit, the sandbox processor), injects faults (processor timeouts and 5xx, SIGKILL,
// restarts, an SMTP server or webhook receiver that is down, a leader killed mid-burst, an
// attacker) and afterwards checks invariants against what was stored — the database read with
// SQL, the API server read with a client — rather than trusting what the parts reported.
//
// cmd/portero-chaos runs every scenario at full size (`make chaos`) and writes
// docs/reliability.md; this package's tests run a short version of each in `make test`.
package chaos

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config is what every scenario needs to know about the run.
type Config struct {
	Root string // repository root
	Bin  string // holds the manager and portal binaries
	Work string // scratch: logs, databases, kubeconfigs
	// Full runs the sizes the issue names (`make chaos`); otherwise the short version (tests).
	Full bool
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// Postgres supplies PostgreSQL databases; nil starts none (scenarios then say so).
	Postgres PostgresSource
}

// PostgresSource hands out fresh PostgreSQL databases and restarts the server behind them.
type PostgresSource interface {
	// Database returns the DSN of a new, empty database (or schema) named after name.
	Database(name string) (string, error)
	// Restart stops the server (fast shutdown: every session is cut) and starts it again on
	// the same data.
	Restart() error
}

func (c Config) step(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "--> "+format+"\n", args...)
	}
}

// size is full under Full, short otherwise.
func (c Config) size(full, short int) int {
	if c.Full {
		return full
	}
	return short
}

// Check is one invariant verified after the faults.
type Check struct {
	Name   string
	OK     bool
	Detail string // what was found, in numbers
}

// Outcome is what one scenario reports: one row of docs/reliability.md.
type Outcome struct {
	Scenario string
	// Faults says what was injected and how often.
	Faults string
	// Attempted, Completed, Lost and Duplicated count the scenario's operations (charges,
	// customer actions, renewals, e-mails, sessions, deliveries, requests): attempted by the
	// harness, completed as the stored state shows, lost (acknowledged or due but not in the
	// stored state) and duplicated (applied more than once: a double charge, a second e-mail).
	Attempted, Completed, Lost, Duplicated int
	// Figures are the scenario's measurements (time to settle, p99, CPU per request).
	Figures []string
	Checks  []Check
	// Err is set when the scenario could not run to its checks.
	Err     error
	Elapsed time.Duration
}

// check records an invariant.
func (o *Outcome) check(name string, ok bool, format string, args ...any) {
	o.Checks = append(o.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// figure records a measurement.
func (o *Outcome) figure(format string, args ...any) {
	o.Figures = append(o.Figures, fmt.Sprintf(format, args...))
}

// Passed reports whether the scenario ran, lost and duplicated nothing, and every check held.
func (o Outcome) Passed() bool {
	if o.Err != nil || o.Lost != 0 || o.Duplicated != 0 || len(o.Checks) == 0 {
		return false
	}
	for _, c := range o.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Failures lists what did not hold, for a test's error message.
func (o Outcome) Failures() string {
	var out []string
	if o.Err != nil {
		out = append(out, "error: "+o.Err.Error())
	}
	if o.Lost != 0 {
		out = append(out, fmt.Sprintf("%d lost", o.Lost))
	}
	if o.Duplicated != 0 {
		out = append(out, fmt.Sprintf("%d duplicated", o.Duplicated))
	}
	for _, c := range o.Checks {
		if !c.OK {
			out = append(out, fmt.Sprintf("%s: %s", c.Name, c.Detail))
		}
	}
	if len(o.Checks) == 0 && o.Err == nil {
		out = append(out, "no invariant was checked")
	}
	return strings.Join(out, "; ")
}

// Scenario is one fault or abuse scenario.
type Scenario struct {
	N     int    // its number in the issue and the table
	Name  string // what -only takes
	Title string
	// About says what the scenario does and checks, for docs/reliability.md.
	About string
	Run   func(ctx context.Context, cfg Config) Outcome
}

// Scenarios in the order of the table.
var Scenarios = []Scenario{
	{1, "ambiguous", "Ambiguous charges", "Payments charged as the portal charges them (the charging driver over the sandbox processor, the ledger recording) while a fifth of the processor calls time out after the processor collected, or answer 5xx, before collecting. Those attempts stay processing; the billing loop's recovery sweep re-drives them with the same idempotency key, on a simulated clock, until none is left. Checked in the database and at the processor (which counts the charges that moved money, per payment).", AmbiguousCharges},
	{2, "killed", "Killed portal", "Signed-in customers (each browser from its own loopback address) add methods, make one preferred, pay an incomplete payment, cancel a subscription and update billing data, all at once, while the portal process is killed with SIGKILL at random points and started again at once; on SQLite and on PostgreSQL. Afterwards the recovery of the billing loop runs (its clock past the five-minute stale threshold) and the database is checked: every change the portal acknowledged is stored, and the ledger's invariants hold.", KilledPortal},
	{3, "pgrestart", "PostgreSQL restarted", "Monthly subscriptions (each customer with a card, first period paid) fall due at once and two billing loops (two replicas) renew them, while PostgreSQL is restarted mid-run (fast shutdown: sessions cut, open transactions rolled back). The loops retry as the billing loop does; the recovery sweep re-drives charges whose recording the restart cut.", PostgresRestart},
	{4, "smtp", "SMTP down", "The SMTP server goes down (its port closed) while customers ask for sign-in codes and the merchant asks for session links to be e-mailed, then comes back. Counted in Mailpit.", SMTPDown},
	{5, "apiserver", "API server restarted", "kube-apiserver and etcd are stopped and started again (same data) while signed-in customers browse and the merchant creates sessions.", APIServerRestart},
	{6, "leader", "Leader handover", "Two operator processes with leader election; the leader is killed with SIGKILL during a burst of PortalSession creations. Every create and every change of a session and of its link Secret is watched.", LeaderHandover},
	{7, "webhooks", "Webhook receiver down", "Events written by the ledger (one merchant endpoint configured) are delivered by the portal's worker on a simulated clock while the endpoint's port is closed: one batch for the first seven attempts (back for the eighth and last), one for all eight (then redelivered by the merchant once it is back); then a further whole schedule runs with the endpoint up. The endpoint verifies every signature itself.", WebhookReceiverDown},
	{8, "load", "Load", "Signed-in customers mixing reads and writes against two portal replicas sharing PostgreSQL.", Load},
	{9, "abuse", "Abuse", "What an attacker gets from the public surfaces: distributed one-time-code guessing, an IDOR sweep, session fixation, oversized and malformed bodies, slow clients.", Abuse},
}

// run times fn and fills the outcome's title and elapsed time.
func run(title string, fn func(o *Outcome) error) Outcome {
	o := Outcome{Scenario: title}
	start := time.Now()
	if err := fn(&o); err != nil {
		o.Err = err
	}
	o.Elapsed = time.Since(start)
	return o
}
