package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// LedgerOptions size the ledger benchmark.
type LedgerOptions struct {
	Payments int // incomplete payments to settle, one per customer
	Workers  int // concurrent callers, as concurrent portal requests
	Dir      string
	// ProfileDir, when set, receives a CPU profile of each engine's settle phase (in-process).
	ProfileDir string
	Progress   func(format string, args ...any)
}

// Ledger settles Payments incomplete payments — one per customer, each settled by adding a card
// to that customer — on SQLite and on PostgreSQL, checks that each was charged exactly once, and
// compares the rate with the floor of the same engine: one conditional UPDATE per payment in its
// own transaction, the least a correct "claim exactly once" can write.
func Ledger(ctx context.Context, o LedgerOptions) Section {
	sec := Section{Title: "Ledger settlement", Method: []string{
		fmt.Sprintf("%d customers, each with one payment left incomplete (created with no payment method), through the ledger's API. Figure: %d concurrent callers each add a card (`AddPaymentMethod`, sandbox processor) to one customer after another, which charges that customer's incomplete payment; payments settled per second, from the first call to the last return.", o.Payments, o.Workers),
		fmt.Sprintf("Exactly-once check on the result: the processor (wrapped to count) saw exactly %d charges with %d distinct idempotency keys; every payment is `succeeded` with attempt_count 1 and exactly one payment_attempts row.", o.Payments, o.Payments),
		fmt.Sprintf("Baseline: the same engine and schema, %d payments, the same %d callers each running one transaction per payment with the conditional UPDATE that claims it (`UPDATE payments SET status = 'succeeded' … WHERE id = ? AND status = 'incomplete'`) — the floor for settling exactly once. Run before and after the ledger; the baseline is their mean.", o.Payments, o.Workers),
		"SQLite: a file on local disk, WAL, synchronous=NORMAL (the ledger's settings). PostgreSQL 15 from Debian, started for the run on a unix socket, fsync on, synchronous_commit=off (comparable durability).",
	}}
	type engine struct {
		name string
		dsn  func(db string) (string, error)
	}
	var pg *ledgertest.Postgres
	defer func() { pg.Stop() }()
	engines := []engine{
		{"SQLite", func(db string) (string, error) { return "sqlite://" + filepath.Join(o.Dir, db+".db"), nil }},
		{"PostgreSQL", func(db string) (string, error) {
			if pg == nil {
				var err error
				if pg, err = StartPostgres(); err != nil {
					return "", err
				}
			}
			return pg.Database(db)
		}},
	}
	for _, e := range engines {
		o.Progress("ledger: %s", e.name)
		row, err := ledgerEngine(ctx, o, e.name, e.dsn)
		if err != nil {
			sec.Rows = append(sec.Rows, Row{Benchmark: "Ledger settle, " + e.name, Figure: "—", Baseline: "—", Ratio: "—",
				Target: "exactly once", Result: Fail, Note: err.Error()})
			continue
		}
		sec.Rows = append(sec.Rows, row)
	}
	return sec
}

func ledgerEngine(ctx context.Context, o LedgerOptions, name string, dsn func(db string) (string, error)) (Row, error) {
	var base []float64
	runBase := func(db string) error {
		d, err := dsn(db)
		if err != nil {
			return err
		}
		r, err := settleFloor(ctx, d, o.Payments, o.Workers)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		base = append(base, r)
		return nil
	}
	if err := runBase("floor1"); err != nil {
		return Row{}, err
	}
	d, err := dsn("ledger")
	if err != nil {
		return Row{}, err
	}
	rate, err := settleLedger(ctx, d, o)
	if err != nil {
		return Row{}, err
	}
	if err := runBase("floor2"); err != nil {
		return Row{}, err
	}
	b := Mean(base)
	return Row{
		Benchmark: "Ledger settle, " + name, Figure: fmt.Sprintf("%.0f payments/s", rate),
		Baseline: fmt.Sprintf("%.0f /s (claim UPDATE only)", b), Ratio: ratio(rate, b),
		Target: "exactly once (no rate target)", Result: Pass,
		Note: fmt.Sprintf("exactly-once check passed for %d payments; baseline runs %.0f and %.0f /s", o.Payments, base[0], base[1]),
	}, nil
}

// startCPUProfile profiles this process into dir/name until stop is called; a no-op without dir.
func startCPUProfile(dir, name string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// countingProcessor counts charges per idempotency key. Embedding the sandbox adapter keeps its
// optional interfaces (card tokenizing), which the charging driver looks for.
type countingProcessor struct {
	*sandbox.Adapter
	mu      sync.Mutex
	charges map[string]int
}

func (p *countingProcessor) Charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	p.mu.Lock()
	p.charges[req.IdempotencyKey]++
	p.mu.Unlock()
	return p.Adapter.Charge(ctx, req)
}

// settleLedger seeds o.Payments customers with an incomplete payment each, settles them all by
// adding a card to each customer, checks the result and returns payments settled per second.
func settleLedger(ctx context.Context, dsn string, o LedgerOptions) (float64, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	sb, err := sandbox.New(secret, nil)
	if err != nil {
		return 0, err
	}
	proc := &countingProcessor{Adapter: sb, charges: map[string]int{}}
	st, err := ledger.Open(ctx, dsn, ledger.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	drv, err := charging.New(charging.Options{Adapter: proc, Recorder: st})
	if err != nil {
		return 0, err
	}

	ids := make([]string, o.Payments)
	payIDs := make([]string, o.Payments)
	err = Parallel(ctx, o.Workers, o.Payments, func(i int) error {
		c, err := st.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("c%06d@bench.example", i), Name: fmt.Sprintf("Customer %d", i)})
		if err != nil {
			return err
		}
		p, _, err := st.CreatePayment(ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 120000, Currency: ledger.ARS,
			Description: "Cuota", IdempotencyKey: "bench-" + c.ID, Processor: proc.Type()})
		if err != nil {
			return err
		}
		if p.Status != ledger.PaymentIncomplete {
			return fmt.Errorf("payment of a customer with no method is %s, want incomplete", p.Status)
		}
		ids[i], payIDs[i] = c.ID, p.ID
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	if n := len(proc.charges); n != 0 {
		return 0, fmt.Errorf("seeding charged %d payments", n)
	}

	card := payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}
	stopProfile := startCPUProfile(o.ProfileDir, "ledger-"+string(st.Engine())+".cpu.pprof")
	start := time.Now()
	err = Parallel(ctx, o.Workers, o.Payments, func(i int) error {
		// The card is tokenized, recorded, and the customer's incomplete payment claimed,
		// charged and recorded: the portal's whole "add a card" path.
		_, err := drv.AddCard(ctx, ids[i], card)
		return err
	})
	took := time.Since(start)
	stopProfile()
	if err != nil {
		return 0, fmt.Errorf("settle: %w", err)
	}
	if err := checkExactlyOnce(ctx, st.DB(), st.Engine() == ledger.Postgres, payIDs, proc); err != nil {
		return 0, err
	}
	return float64(o.Payments) / took.Seconds(), nil
}

// checkExactlyOnce verifies every payment was charged once and recorded once.
func checkExactlyOnce(ctx context.Context, db *sql.DB, pg bool, payIDs []string, proc *countingProcessor) error {
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if len(proc.charges) != len(payIDs) {
		return fmt.Errorf("exactly-once: the processor saw %d distinct charges for %d payments", len(proc.charges), len(payIDs))
	}
	for key, n := range proc.charges {
		if n != 1 {
			return fmt.Errorf("exactly-once: charge %s sent %d times", key, n)
		}
	}
	var total, succeeded, attempts, attemptRows, oneAttempt int
	q := `SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END), 0), COALESCE(SUM(attempt_count), 0) FROM payments`
	if err := db.QueryRowContext(ctx, q).Scan(&total, &succeeded, &attempts); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM payment_attempts`).Scan(&attemptRows); err != nil {
		return err
	}
	q = `SELECT COUNT(*) FROM (SELECT payment_id FROM payment_attempts WHERE outcome = 'succeeded' GROUP BY payment_id HAVING COUNT(*) = 1) AS once`
	if err := db.QueryRowContext(ctx, q).Scan(&oneAttempt); err != nil {
		return err
	}
	n := len(payIDs)
	if total != n || succeeded != n || attempts != n || attemptRows != n || oneAttempt != n {
		return fmt.Errorf("exactly-once: %d payments, %d succeeded, %d attempts counted, %d attempt rows, %d with exactly one successful attempt; want %d of each",
			total, succeeded, attempts, attemptRows, oneAttempt, n)
	}
	return nil
}

// settleFloor seeds n incomplete payments with plain SQL and times workers claiming each with one
// conditional UPDATE in its own transaction.
func settleFloor(ctx context.Context, dsn string, n, workers int) (float64, error) {
	st, err := ledger.Open(ctx, dsn, ledger.Options{}) // for the schema and the pool settings
	if err != nil {
		return 0, err
	}
	defer st.Close()
	db, pg := st.DB(), st.Engine() == ledger.Postgres
	bind := func(q string) string {
		if !pg {
			return q
		}
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
		return q
	}
	now := time.Now().UnixMilli()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	for i := range n {
		id := fmt.Sprintf("%06d", i)
		if _, err := tx.ExecContext(ctx, bind(`INSERT INTO customers (id, email, created_at, updated_at) VALUES (?, ?, ?, ?)`),
			"cus_"+id, id+"@bench.example", now, now); err != nil {
			tx.Rollback()
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, bind(`INSERT INTO payments (id, customer_id, amount, currency, status, created_at, updated_at)
			VALUES (?, ?, 120000, 'ARS', 'incomplete', ?, ?)`), "pay_"+id, "cus_"+id, now, now); err != nil {
			tx.Rollback()
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	claim := bind(`UPDATE payments SET status = 'succeeded', attempt_count = attempt_count + 1, updated_at = ?
		WHERE id = ? AND status = 'incomplete'`)
	start := time.Now()
	err = Parallel(ctx, workers, n, func(i int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, claim, time.Now().UnixMilli(), fmt.Sprintf("pay_%06d", i))
		if err != nil {
			tx.Rollback()
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			tx.Rollback()
			return fmt.Errorf("claim of pay_%06d affected %d rows", i, k)
		}
		return tx.Commit()
	})
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
