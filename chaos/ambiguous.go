package chaos

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/portal/billing"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// faultyProcessor is the sandbox processor with a share of its calls made to misbehave through
// its own fault injection (sandbox.InjectFault): the charge collects and its answer is lost
// (timeout after collect), or it fails with a 5xx before collecting. It counts, per payment,
// how many times money moved, which is what "double charge" means at a processor.
type faultyProcessor struct {
	*sandbox.Adapter
	rate float64 // share of first calls for a key that fault

	mu        sync.Mutex
	rng       *mrand.Rand
	seen      map[string]bool // keys the sandbox booked: a repeat is an idempotent replay
	collected map[string]int  // payment id → charges that moved money
	timeouts  int
	errors5xx int
	calls     int
}

func (p *faultyProcessor) setRate(r float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = r
}

func newFaultyProcessor(now func() time.Time, rate float64, seed uint64) (*faultyProcessor, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	a, err := sandbox.New(secret, now)
	if err != nil {
		return nil, err
	}
	return &faultyProcessor{Adapter: a, rate: rate, rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		seen: map[string]bool{}, collected: map[string]int{}}, nil
}

// Charge injects a fault into a share of the calls the sandbox has not answered before (its
// replays of a booked key never fault, as a real processor's stored response does not) and
// records whether money moved. Calls are serialised, so each injected fault is the one the
// call consumes.
func (p *faultyProcessor) Charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	var fault sandbox.Fault
	if !p.seen[req.IdempotencyKey] && p.rng.Float64() < p.rate {
		fault = sandbox.FaultServerError
		if p.rng.IntN(2) == 0 {
			fault = sandbox.FaultTimeoutAfterCollect
		}
		p.Adapter.InjectFault(fault)
	}
	before := p.Adapter.Collected()
	res, err := p.Adapter.Charge(ctx, req)
	if p.Adapter.Collected() > before {
		payment, _, _ := strings.Cut(req.IdempotencyKey, "/")
		p.collected[payment]++
	}
	switch fault {
	case sandbox.FaultServerError:
		p.errors5xx++
	case sandbox.FaultTimeoutAfterCollect:
		p.timeouts++
		p.seen[req.IdempotencyKey] = true
	default:
		if err == nil {
			p.seen[req.IdempotencyKey] = true
		}
	}
	return res, err
}

// AmbiguousCharges (scenario 1) charges N payments, one per customer with a card, through the
// charging driver and the ledger (as the portal does) while a fifth of the processor calls time
// out after the processor collected or answer 5xx. Those attempts stay processing; the recovery
// sweep the billing loop runs (the driver's Redrive) re-drives them with the same idempotency key
// on a simulated clock until none is left. Checked afterwards, in the database and at the processor: every payment
// settled, each collected exactly once and recorded succeeded with one succeeded attempt.
func AmbiguousCharges(ctx context.Context, cfg Config) Outcome {
	n := cfg.size(1000, 150)
	return run("Ambiguous charges", func(o *Outcome) error {
		o.Faults = fmt.Sprintf("20%% of processor calls: timeout after collecting, or 5xx; on SQLite and PostgreSQL")
		engines := []struct{ name, dsn string }{{"SQLite", "sqlite://" + filepath.Join(cfg.Work, "ambiguous.db")}}
		if cfg.Postgres != nil {
			dsn, err := cfg.Postgres.Database("chaos_ambiguous")
			if err != nil {
				return err
			}
			engines = append(engines, struct{ name, dsn string }{"PostgreSQL", dsn})
		} else {
			o.Faults += " (PostgreSQL unavailable: SQLite only)"
		}
		var faults []string
		for i, e := range engines {
			cfg.step("ambiguous charges: %d payments on %s", n, e.name)
			r, err := ambiguousOn(ctx, e.dsn, n, uint64(i+1))
			if err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
			o.Attempted += n
			o.Completed += r.settled
			o.Lost += r.lost
			o.Duplicated += r.doubled
			faults = append(faults, fmt.Sprintf("%s %d timeouts + %d 5xx of %d calls", e.name, r.timeouts, r.errors5xx, r.calls))
			o.figure("%s: every payment settled %s after the first charge (%d recovery sweeps, each after the 5 min stale threshold on the simulated clock)",
				e.name, r.settleWall.Round(time.Millisecond), r.sweeps)
			o.check(e.name+": faults injected", r.timeouts > 0 && r.errors5xx > 0, "%d timeouts after collecting, %d 5xx", r.timeouts, r.errors5xx)
			o.check(e.name+": every payment terminal", r.settled == n, "%d of %d succeeded or failed; %d still processing", r.settled, n, r.processing)
			o.check(e.name+": 0 double charges", r.doubled == 0, "%d payments collected more than once at the processor", r.doubled)
			o.check(e.name+": processor and ledger agree", r.lost == 0 && r.collectedTotal == r.succeeded,
				"%d collected at the processor, %d succeeded in the ledger, %d collected but not recorded or recorded but not collected", r.collectedTotal, r.succeeded, r.lost)
			o.check(e.name+": one succeeded attempt per succeeded payment", r.attemptsBad == 0, "%d payments break it", r.attemptsBad)
		}
		o.Faults += ": " + strings.Join(faults, "; ")
		return nil
	})
}

type ambiguousResult struct {
	settled, processing, succeeded, lost, doubled, attemptsBad int
	collectedTotal                                             int
	timeouts, errors5xx, calls, sweeps                         int
	settleWall                                                 time.Duration
}

func ambiguousOn(ctx context.Context, dsn string, n int, seed uint64) (ambiguousResult, error) {
	var r ambiguousResult
	clk := clocktesting.NewFakeClock(time.Now())
	proc, err := newFaultyProcessor(clk.Now, 0.2, seed)
	if err != nil {
		return r, err
	}
	st, err := ledger.Open(ctx, dsn, ledger.Options{Now: clk.Now})
	if err != nil {
		return r, err
	}
	defer st.Close()
	// The ledger records; the charging driver calls the processor, as in the portal.
	drv, err := charging.New(charging.Options{Adapter: proc, Recorder: st})
	if err != nil {
		return r, err
	}

	// Customers with a card each, while the processor is healthy: only the charges are the test.
	proc.setRate(0)
	customers := make([]string, n)
	year := clk.Now().Year() + 3
	err = bench.Parallel(ctx, 8, n, func(i int) error {
		c, err := st.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("amb%05d@chaos.example", i), Name: fmt.Sprintf("Cliente %d", i)})
		if err != nil {
			return err
		}
		if _, err := drv.AddCard(ctx, c.ID, payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: year, CVC: "123"}); err != nil {
			return err
		}
		customers[i] = c.ID
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("seed customers: %w", err)
	}
	proc.setRate(0.2)

	start := time.Now()
	err = bench.Parallel(ctx, 8, n, func(i int) error {
		// An error here is the ledger failing, not the processor: an unknown outcome is a
		// payment left processing, which is what the sweep is for.
		_, claim, err := st.CreatePayment(ctx, ledger.NewPayment{CustomerID: customers[i], Amount: 150000, Currency: ledger.ARS,
			Description: "Cuota", IdempotencyKey: fmt.Sprintf("amb-%d", i), Processor: proc.Type()})
		if err != nil || claim == nil {
			return err
		}
		_, err = drv.Charge(ctx, *claim)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("charge: %w", err)
	}
	// The billing loop's sweep, as often as it takes, each time past the stale threshold.
	for r.sweeps = 0; r.sweeps < 50; r.sweeps++ {
		left, err := countWhere(ctx, st, "status = 'processing'")
		if err != nil {
			return r, err
		}
		if left == 0 {
			break
		}
		clk.Step(billing.DefaultStaleAfter + time.Second)
		for {
			k, err := drv.Redrive(ctx, billing.DefaultStaleAfter)
			if err != nil {
				return r, fmt.Errorf("recover: %w", err)
			}
			if k < 100 { // one page; more pages wait for the next pass of this sweep
				break
			}
		}
	}
	r.settleWall = time.Since(start)

	proc.mu.Lock()
	collected := proc.collected
	r.timeouts, r.errors5xx, r.calls = proc.timeouts, proc.errors5xx, proc.calls
	proc.mu.Unlock()
	return r, judgeCharges(ctx, st, collected, &r)
}

// judgeCharges compares the ledger's payments with what the processor collected.
func judgeCharges(ctx context.Context, st *ledger.Store, collected map[string]int, r *ambiguousResult) error {
	rows, err := st.DB().QueryContext(ctx, `SELECT id, status FROM payments`)
	if err != nil {
		return err
	}
	status := map[string]string{}
	for rows.Next() {
		var id, s string
		if err := rows.Scan(&id, &s); err != nil {
			rows.Close()
			return err
		}
		status[id] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for id, s := range status {
		switch s {
		case "succeeded":
			r.succeeded++
			r.settled++
			if collected[id] == 0 {
				r.lost++ // recorded as paid, never collected
			}
		case "failed":
			r.settled++
			if collected[id] > 0 {
				r.lost++ // collected, recorded as failed: the customer would be asked again
			}
		case "processing":
			r.processing++
		}
		if collected[id] > 1 {
			r.doubled++
		}
	}
	for id, k := range collected {
		r.collectedTotal += k
		if _, ok := status[id]; !ok {
			r.lost++ // money moved for a payment the ledger does not have
		}
	}
	r.attemptsBad, err = paymentsBreakingAttempts(ctx, st.DB())
	return err
}
