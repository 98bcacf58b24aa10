package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/portal/billing"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// PostgresRestart (scenario 3) renews N monthly subscriptions — each customer with a card and a
// subscription whose first period was paid — on PostgreSQL, with two billing loops at once (two
// replicas), and restarts PostgreSQL (fast shutdown: every session cut, open transactions
// rolled back) while the renewals run. The loops retry as the billing loop does, and the
// recovery sweep re-drives charges whose recording the restart interrupted. Afterwards every
// subscription must have exactly one payment for its new period, collected once.
func PostgresRestart(ctx context.Context, cfg Config) Outcome {
	n := cfg.size(10000, 300)
	restarts := cfg.size(2, 1)
	return run("PostgreSQL restarted", func(o *Outcome) error {
		o.Faults = fmt.Sprintf("%d PostgreSQL restart(s) during the run", restarts)
		if cfg.Postgres == nil {
			return errors.New("PostgreSQL is not available (Debian's postgresql package)")
		}
		dsn, err := cfg.Postgres.Database("chaos_renewals")
		if err != nil {
			return err
		}
		clk := clocktesting.NewFakeClock(time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC))
		proc, err := newFaultyProcessor(clk.Now, 0, 3)
		if err != nil {
			return err
		}
		st, err := ledger.Open(ctx, dsn, ledger.Options{Now: clk.Now})
		if err != nil {
			return err
		}
		defer st.Close()
		// The ledger records; the charging driver calls the processor, as in the portal.
		drv, err := charging.New(charging.Options{Adapter: proc, Recorder: st})
		if err != nil {
			return err
		}

		cfg.step("pgrestart: %d customers, each with a card and a monthly subscription", n)
		year := clk.Now().Year() + 3
		err = bench.Parallel(ctx, 8, n, func(i int) error {
			c, err := st.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("ren%05d@chaos.example", i), Name: "Cliente"})
			if err != nil {
				return err
			}
			if _, err := drv.AddCard(ctx, c.ID, payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: year, CVC: "123"}); err != nil {
				return err
			}
			_, _, claim, err := st.CreateSubscription(ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Plan Pro", Amount: 250000,
				Currency: ledger.ARS, Interval: ledger.Month, Processor: proc.Type()})
			if err != nil {
				return err
			}
			if claim == nil {
				return errors.New("the first period's payment was not charged")
			}
			r, err := drv.Charge(ctx, *claim)
			if err == nil && r.Status != charging.AttemptSucceeded {
				err = fmt.Errorf("first period's payment is %s", r.Status)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		initial := proc.total()

		clk.Step(32 * 24 * time.Hour) // every period has ended
		cfg.step("pgrestart: renewing %d subscriptions with two billing loops; %d restart(s) on the way", n, restarts)
		start := time.Now()
		var renewErrs atomic.Int64
		var wg sync.WaitGroup
		loopCtx, stopLoops := context.WithCancel(ctx)
		defer stopLoops()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The billing loop's retry, compressed: it tries again a minute later.
				for loopCtx.Err() == nil {
					res, err := st.RenewDue(loopCtx, clk.Now(), proc.Type())
					for _, a := range res.Claims {
						// A charge whose recording the restart cuts stays processing for the sweep.
						if _, cerr := drv.Charge(loopCtx, a); cerr != nil && err == nil {
							err = cerr
						}
					}
					if err != nil {
						renewErrs.Add(1)
						waitFor(loopCtx, 100*time.Millisecond)
						continue
					}
					if len(res.Payments) == 0 {
						due, err := count(loopCtx, st.DB(), fmt.Sprintf(`SELECT COUNT(*) FROM subscriptions
							WHERE status IN ('active', 'past_due') AND current_period_end <= %d`, clk.Now().UnixMilli()))
						if err == nil && due == 0 {
							return
						}
						waitFor(loopCtx, 100*time.Millisecond)
					}
				}
			}()
		}
		var restartErr error
		var restartTimes []time.Duration
		for k := 1; k <= restarts; k++ {
			// Restart once k/(restarts+1) of the renewals exist, so each lands mid-run.
			target := n * k / (restarts + 1)
			for ctx.Err() == nil {
				done, err := count(ctx, st.DB(), "SELECT COUNT(*) FROM payments WHERE period_start > (SELECT MIN(created_at) FROM payments)")
				if err == nil && done >= target {
					break
				}
				waitFor(ctx, 20*time.Millisecond)
			}
			t0 := time.Now()
			if restartErr = cfg.Postgres.Restart(); restartErr != nil {
				break
			}
			restartTimes = append(restartTimes, time.Since(t0))
		}
		wg.Wait()
		if restartErr != nil {
			return fmt.Errorf("restart PostgreSQL: %w", restartErr)
		}
		// Charges whose recording the restart cut are left processing; the billing loop's sweep
		// takes them over once they are stale.
		sweeps := 0
		for ; sweeps < 20; sweeps++ {
			left, err := countWhere(ctx, st, "status = 'processing'")
			if err != nil {
				return err
			}
			if left == 0 {
				break
			}
			clk.Step(billing.DefaultStaleAfter + time.Second)
			for {
				k, err := drv.Redrive(ctx, billing.DefaultStaleAfter)
				if err != nil {
					return fmt.Errorf("recover: %w", err)
				}
				if k < 100 {
					break
				}
			}
		}
		took := time.Since(start)

		db := st.DB()
		skipped, err := count(ctx, db, `SELECT COUNT(*) FROM subscriptions s WHERE
			(SELECT COUNT(*) FROM payments p WHERE p.subscription_id = s.id AND p.period_start = s.current_period_start) = 0`)
		if err != nil {
			return err
		}
		doubled, err := count(ctx, db, `SELECT COALESCE(SUM(k - 1), 0) FROM (SELECT COUNT(*) AS k FROM payments
			WHERE subscription_id IS NOT NULL GROUP BY subscription_id, period_start HAVING COUNT(*) > 1) AS d`)
		if err != nil {
			return err
		}
		behind, err := count(ctx, db, fmt.Sprintf(`SELECT COUNT(*) FROM subscriptions WHERE current_period_end <= %d`, clk.Now().UnixMilli()))
		if err != nil {
			return err
		}
		renewals, err := count(ctx, db, `SELECT COUNT(*) FROM payments p JOIN subscriptions s ON s.id = p.subscription_id
			WHERE p.period_start = s.current_period_start`)
		if err != nil {
			return err
		}
		succeeded, err := count(ctx, db, `SELECT COUNT(*) FROM payments p JOIN subscriptions s ON s.id = p.subscription_id
			WHERE p.period_start = s.current_period_start AND p.status = 'succeeded'`)
		if err != nil {
			return err
		}
		var r ambiguousResult
		proc.mu.Lock()
		collected := proc.collected
		proc.mu.Unlock()
		if err := judgeCharges(ctx, st, collected, &r); err != nil {
			return err
		}
		renewedCollected := proc.total() - initial

		o.Attempted, o.Completed = n, succeeded
		o.Lost = skipped + r.lost
		o.Duplicated = doubled + r.doubled
		o.check("none skipped", skipped == 0 && behind == 0, "%d subscriptions without a payment for their new period; %d still due", skipped, behind)
		o.check("none doubled", doubled == 0, "%d extra payments for a subscription's period", doubled)
		o.check("each renewal collected once", r.doubled == 0 && renewedCollected == renewals,
			"%d renewal payments, %d collections at the processor since the seed, %d payments collected more than once", renewals, renewedCollected, r.doubled)
		o.check("every renewal terminal", r.processing == 0 && succeeded == renewals, "%d of %d renewals succeeded; %d processing", succeeded, renewals, r.processing)
		o.check("one succeeded attempt per succeeded payment", r.attemptsBad == 0, "%d payments break it", r.attemptsBad)
		o.figure("%d renewals in %s; PostgreSQL down ≈ %s per restart; %d billing-loop passes failed and were retried; %d recovery sweep(s)",
			n, took.Round(time.Millisecond), roundAll(restartTimes), renewErrs.Load(), sweeps)
		o.Faults = fmt.Sprintf("%d PostgreSQL restart(s) (fast shutdown) mid-run; %d billing-loop passes failed", len(restartTimes), renewErrs.Load())
		return nil
	})
}

// total is every charge that moved money.
func (p *faultyProcessor) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range p.collected {
		n += k
	}
	return n
}

func roundAll(ds []time.Duration) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += d.Round(time.Millisecond).String()
	}
	return s
}

// waitFor waits d or until ctx ends. The waits it is used for pace retries against a real
// process (a database coming back), not the timing of what is checked.
func waitFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
