package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/internal/localsys"
)

// KilledPortal (scenario 2) signs customers in to a portal process and has them act at once —
// add a payment method, make one preferred, pay an incomplete payment, cancel a subscription,
// update billing data — while the portal is killed with SIGKILL at random instants and started
// again, on SQLite and on PostgreSQL. Afterwards, once the recovery the billing loop runs has
// run: every change the portal acknowledged is stored, one succeeded attempt per succeeded
// payment, exactly one preferred method per customer with methods, no attempt left processing,
// and every outbox event matches a committed change.
func KilledPortal(ctx context.Context, cfg Config) Outcome {
	customers := cfg.size(50, 12)
	actions := cfg.size(1000, 80)
	kills := cfg.size(8, 2)
	return run("Killed portal", func(o *Outcome) error {
		sys, err := startSystem(ctx, cfg, "killed", systemOptions{manager: true, mailpit: true})
		if err != nil {
			return err
		}
		defer sys.stop()
		engines := []string{"sqlite"}
		if cfg.Postgres != nil {
			engines = append(engines, "postgres")
		}
		var killed []string
		for _, engine := range engines {
			r, err := killedOn(ctx, cfg, sys, engine, customers, actions, kills)
			if err != nil {
				return fmt.Errorf("%s: %w", engine, err)
			}
			label := map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}[engine]
			killed = append(killed, fmt.Sprintf("%s %d", label, r.kills))
			o.Attempted += r.attempted
			o.Completed += r.acked
			o.Lost += r.lost
			o.Duplicated += r.doubled
			o.check(label+": acknowledged changes stored", r.lost == 0, "%d of %d acknowledged changes missing%s", r.lost, r.acked, r.lostWhat)
			o.check(label+": one succeeded attempt per succeeded payment", r.attemptsBad == 0 && r.doubled == 0, "%d payments break it, %d collected twice", r.attemptsBad, r.doubled)
			o.check(label+": exactly one preferred method", r.preferredBad == 0, "%d customers with methods and not exactly one preferred", r.preferredBad)
			o.check(label+": no attempt left processing", r.processing == 0, "%d attempts processing after recovery (%d before it)", r.processing, r.leftProcessing)
			o.check(label+": outbox events match committed changes", r.orphanEvents == 0 && r.missingEvents == 0,
				"%d events without their change, %d succeeded payments without exactly one payment.succeeded event", r.orphanEvents, r.missingEvents)
			o.figure("%s: %d actions by %d signed-in customers, %d acknowledged; %d kills; restart to ready %s (median); not acknowledged: %s",
				label, r.attempted, customers, r.acked, r.kills, r.restartMedian.Round(time.Millisecond), r.refusals)
		}
		o.Faults = "SIGKILL of the portal at random instants, restarted at once: " + strings.Join(killed, ", ") + " kills"
		return nil
	})
}

type killedResult struct {
	attempted, acked, lost, doubled       int
	attemptsBad, preferredBad, processing int
	orphanEvents, missingEvents, kills    int
	leftProcessing                        int // attempts the kills left processing, before recovery
	restartMedian                         time.Duration
	lostWhat, refusals                    string
}

// customerRun is what one browser did, for the checks against the stored state.
type customerRun struct {
	id         string
	b          *browser
	adds       int      // acknowledged method adds (pay included)
	addTries   int      // adds attempted (the portal allows 10 an hour per session)
	billing    int      // version of the last acknowledged billing update
	billingTry int      // versions attempted
	canceled   []string // acknowledged cancellations
	paid       []string // acknowledged payments of a due payment
	// preferred is the method the last acknowledged make-preferred chose, while no later
	// action could have changed the order.
	preferred string
	refused   map[string]int // why actions were not acknowledged
}

func killedOn(ctx context.Context, cfg Config, sys *system, engine string, customers, actions, kills int) (killedResult, error) {
	var r killedResult
	name := "shop-" + engine
	cfg.step("killed portal: %s portal, %d customers", engine, customers)
	u, err := sys.createPortal(ctx, name, nil)
	if err != nil {
		return r, err
	}
	st := portalStorage{dataDir: filepath.Join(sys.dir, name)}
	dsn := "sqlite://" + filepath.Join(st.dataDir, "ledger.db")
	if engine == "postgres" {
		if dsn, err = cfg.Postgres.Database("chaos_killed"); err != nil {
			return r, err
		}
		st = portalStorage{postgresDSN: dsn}
	}
	p, err := sys.runPortal(ctx, name, u, st)
	if err != nil {
		return r, err
	}
	m := sys.merchant(u)
	runs := make([]*customerRun, customers)
	err = bench.Parallel(ctx, 8, customers, func(i int) error {
		id, err := m.customer(ctx, fmt.Sprintf("k%s%03d@chaos.example", engine[:2], i), fmt.Sprintf("Cliente %d", i))
		if err != nil {
			return fmt.Errorf("create customer: %w", err)
		}
		// Without a method both are incomplete: the subscription's first period and a payment.
		if _, err := m.subscription(ctx, id); err != nil {
			return fmt.Errorf("create subscription: %w", err)
		}
		if _, err := m.payment(ctx, id, "k-"+id, 120000); err != nil {
			return fmt.Errorf("create payment: %w", err)
		}
		link, err := m.session(ctx, id)
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		b := newBrowser(u, loopbackIP(i))
		if err := b.openLink(ctx, link); err != nil {
			return fmt.Errorf("sign in: %w", err)
		}
		runs[i] = &customerRun{id: id, b: b}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("seed (portal log %s): %w", p.proc.LogPath, err)
	}

	cfg.step("killed portal: %d actions on %s while the portal is killed at random", actions, engine)
	var next, acked atomic.Int64
	stopKiller := make(chan struct{})
	killerDone := make(chan error, 1)
	var restarts []time.Duration
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 2))
	// Kills land at random points of the run: each after a random number of further actions
	// has started since the portal was last ready (on average an equal share of the run), and
	// a random few milliseconds more, so they hit requests in every stage.
	gap := actions / (kills + 1)
	go func() {
		for range kills {
			at := next.Load() + int64(gap/2+rng.IntN(gap/2+1))
			for next.Load() < at {
				select {
				case <-stopKiller:
					killerDone <- nil
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
			waitFor(ctx, time.Duration(rng.IntN(40))*time.Millisecond)
			if err := p.kill(); err != nil {
				killerDone <- err
				return
			}
			r.kills++
			t0 := time.Now()
			if err := p.start(ctx); err != nil {
				killerDone <- err
				return
			}
			restarts = append(restarts, time.Since(t0))
		}
		<-stopKiller
		killerDone <- nil
	}()
	var wg sync.WaitGroup
	for w, cr := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil && next.Add(1) <= int64(actions) {
				if cr.act(ctx, rng) {
					acked.Add(1)
					continue
				}
				// Cut or refused: as a person would, wait for the portal to answer again.
				_ = localsys.WaitHTTP(ctx, u+"readyz", 30*time.Second)
			}
		}()
	}
	wg.Wait()
	close(stopKiller)
	if err := <-killerDone; err != nil {
		return r, fmt.Errorf("kill and restart (log %s): %w", p.proc.LogPath, err)
	}
	r.attempted, r.acked = actions, int(acked.Load())
	r.restartMedian = medianDuration(restarts)
	r.refusals = refusals(runs)

	db, err := openDB(dsn)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if r.leftProcessing, err = processingAttempts(ctx, db); err != nil {
		return r, err
	}
	// The portal is up again; the recovery its billing loop runs on start takes over charges
	// only once they are five minutes stale. The same recovery runs here with its clock that far
	// ahead, as the loop would a few minutes from now.
	if err := recoverAsBillingLoop(ctx, dsn, processorSecret(st)); err != nil {
		return r, fmt.Errorf("recovery: %w", err)
	}
	return r, judgeKilled(ctx, db, runs, &r)
}

// act runs one random customer action and reports whether the portal acknowledged it (the
// POST's redirect landed on the page it names, 200).
func (cr *customerRun) act(ctx context.Context, rng *mrand.Rand) bool {
	switch k := rng.IntN(5); {
	case k == 0 && cr.addTries < 8:
		return cr.add(ctx, rng)
	case k == 1:
		return cr.makePreferred(ctx, rng)
	case k == 2 && cr.addTries < 8:
		return cr.pay(ctx)
	case k == 3:
		return cr.cancel(ctx)
	default:
		return cr.updateBilling(ctx)
	}
}

// acked reports whether the portal acknowledged a change — the POST's redirect landed, 200, on
// the page it names — and counts why not.
func (cr *customerRun) acked(p page, err error, path string) bool {
	if err == nil && p.Status == http.StatusOK && p.Path == path {
		return true
	}
	var why string
	if err != nil {
		// The transport's last words (connection refused, reset, EOF), without the URL.
		why = err.Error()
		if i := strings.LastIndex(why, ": "); i > 0 {
			why = why[i+2:]
		}
	} else {
		why = fmt.Sprintf("%d at %s", p.Status, pathKind(p.Path))
	}
	if cr.refused == nil {
		cr.refused = map[string]int{}
	}
	cr.refused[why]++
	return false
}

// pathKind is a path with its ids folded, so reasons group.
func pathKind(path string) string {
	return idSegment.ReplaceAllString(path, "/{id}")
}

var idSegment = regexp.MustCompile(`/[a-z]+_[A-Za-z0-9]+`)

// refusals sums why the customers' actions were not acknowledged.
func refusals(runs []*customerRun) string {
	total := map[string]int{}
	for _, cr := range runs {
		for why, n := range cr.refused {
			total[why] += n
		}
	}
	var parts []string
	for why, n := range total {
		parts = append(parts, fmt.Sprintf("%d × %s", n, why))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func methodForm(rng *mrand.Rand) url.Values {
	switch rng.IntN(3) {
	case 0:
		return url.Values{"type": {"card"}, "number": {"4242 4242 4242 4242"}, "exp_month": {"12"},
			"exp_year": {fmt.Sprint(time.Now().Year() + 3)}, "cvc": {"123"}, "holder": {"Cliente Caos"}}
	case 1:
		return url.Values{"type": {"direct_debit"}, "account": {"0110599552000000123456"}}
	}
	return url.Values{"type": {"wallet"}, "wallet": {"mercadopago"}}
}

func (cr *customerRun) add(ctx context.Context, rng *mrand.Rand) bool {
	cr.addTries++
	p, err := cr.b.post(ctx, "/methods", methodForm(rng))
	if !cr.acked(p, err, "/methods") {
		return false
	}
	cr.adds++
	return true
}

func (cr *customerRun) makePreferred(ctx context.Context, rng *mrand.Rand) bool {
	p, err := cr.b.get(ctx, "/methods")
	if !cr.acked(p, err, "/methods") {
		return false
	}
	ms := ids(p.Body, "/methods/")
	if len(ms) < 2 {
		cr.preferred = ""
		return cr.updateBilling(ctx)
	}
	target := ms[1+rng.IntN(len(ms)-1)]
	cr.preferred = "" // unknown until acknowledged
	p, err = cr.b.post(ctx, "/methods/"+target+"/move", url.Values{"to": {"top"}})
	if !cr.acked(p, err, "/methods") {
		return false
	}
	cr.preferred = target
	return true
}

func (cr *customerRun) pay(ctx context.Context) bool {
	p, err := cr.b.get(ctx, "/payments/due")
	if !cr.acked(p, err, "/payments/due") {
		return false
	}
	due := ids(p.Body, "/payments/")
	if len(due) == 0 {
		return cr.updateBilling(ctx)
	}
	cr.addTries++
	cr.preferred = "" // a payment may make its method preferred
	id := due[0]
	p, err = cr.b.post(ctx, "/payments/"+id+"/pay", url.Values{"type": {"wallet"}, "wallet": {"mercadopago"}})
	if !cr.acked(p, err, "/payments/"+id) {
		return false
	}
	cr.adds++
	cr.paid = append(cr.paid, id)
	return true
}

func (cr *customerRun) cancel(ctx context.Context) bool {
	p, err := cr.b.get(ctx, "/subscriptions")
	if !cr.acked(p, err, "/subscriptions") {
		return false
	}
	subs := ids(p.Body, "/subscriptions/")
	if len(subs) == 0 || len(cr.canceled) > 0 {
		return cr.updateBilling(ctx)
	}
	p, err = cr.b.post(ctx, "/subscriptions/"+subs[0]+"/cancel", url.Values{"reason": {"prueba de caos"}})
	if !cr.acked(p, err, "/subscriptions/"+subs[0]) {
		return false
	}
	cr.canceled = append(cr.canceled, subs[0])
	return true
}

func (cr *customerRun) updateBilling(ctx context.Context) bool {
	cr.billingTry++
	v := cr.billingTry
	p, err := cr.b.post(ctx, "/billing", url.Values{"legal_name": {fmt.Sprintf("Cliente v%d", v)}, "line1": {"Av. Corrientes 1234"},
		"city": {"CABA"}, "province": {"Buenos Aires"}, "postal_code": {"C1043"}, "country": {"AR"}, "tax_condition": {"consumidor_final"}})
	if !cr.acked(p, err, "/billing") {
		return false
	}
	cr.billing = v
	return true
}

// judgeKilled checks the stored state against what was acknowledged, and the ledger's
// invariants.
func judgeKilled(ctx context.Context, db *sql.DB, runs []*customerRun, r *killedResult) error {
	var what []string
	for _, cr := range runs {
		c := lit(cr.id)
		methods, err := count(ctx, db, "SELECT COUNT(*) FROM payment_methods WHERE customer_id = "+c)
		if err != nil {
			return err
		}
		if methods < cr.adds {
			r.lost += cr.adds - methods
			what = append(what, fmt.Sprintf("%s: %d methods for %d acknowledged adds", cr.id, methods, cr.adds))
		}
		if cr.billing > 0 {
			var legal string
			if err := db.QueryRowContext(ctx, "SELECT legal_name FROM customers WHERE id = "+c).Scan(&legal); err != nil {
				return err
			}
			var v int
			if _, err := fmt.Sscanf(legal, "Cliente v%d", &v); err != nil || v < cr.billing {
				r.lost++
				what = append(what, fmt.Sprintf("%s: billing %q after v%d was acknowledged", cr.id, legal, cr.billing))
			}
		}
		for _, s := range cr.canceled {
			n, err := count(ctx, db, "SELECT COUNT(*) FROM subscriptions WHERE (cancel_at_period_end = 1 OR status = 'canceled') AND id = "+lit(s))
			if err != nil {
				return err
			}
			if n != 1 {
				r.lost++
				what = append(what, fmt.Sprintf("%s: acknowledged cancellation not stored", s))
			}
		}
		for _, p := range cr.paid {
			n, err := count(ctx, db, "SELECT COUNT(*) FROM payments WHERE status = 'succeeded' AND id = "+lit(p))
			if err != nil {
				return err
			}
			if n != 1 {
				r.lost++
				what = append(what, fmt.Sprintf("%s: acknowledged payment not succeeded", p))
			}
		}
		if cr.preferred != "" {
			var first string
			err := db.QueryRowContext(ctx, `SELECT id FROM payment_methods WHERE detached_at IS NULL AND customer_id = `+c+`
				ORDER BY ordinal LIMIT 1`).Scan(&first)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if first != cr.preferred {
				r.lost++
				what = append(what, fmt.Sprintf("%s: preferred %s, acknowledged %s", cr.id, first, cr.preferred))
			}
		}
	}
	if len(what) > 0 {
		if len(what) > 5 {
			what = append(what[:5], "…")
		}
		r.lostWhat = " (" + strings.Join(what, "; ") + ")"
	}
	var err error
	if r.attemptsBad, err = paymentsBreakingAttempts(ctx, db); err != nil {
		return err
	}
	if r.doubled, err = count(ctx, db, `SELECT COUNT(*) FROM payments p WHERE
		(SELECT COUNT(*) FROM payment_attempts a WHERE a.payment_id = p.id AND a.outcome = 'succeeded') > 1`); err != nil {
		return err
	}
	if r.preferredBad, err = customersWithoutOnePreferred(ctx, db); err != nil {
		return err
	}
	if r.processing, err = processingAttempts(ctx, db); err != nil {
		return err
	}
	r.orphanEvents, r.missingEvents, err = eventsWithoutChange(ctx, db)
	return err
}

func medianDuration(ds []time.Duration) time.Duration {
	return bench.Percentile(ds, 50)
}
