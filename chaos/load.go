package chaos

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/bench"
)

// Load (scenario 8) signs in many customers to a portal of two replicas sharing PostgreSQL
// (each customer on one replica, half on each) and has them all browse and change things at
// once, each with a think time between requests, for a while: pages, billing data, a preferred
// method, a new method. It reports the error rate, p50 and p99 and the portals' CPU per request,
// and checks afterwards that every acknowledged change is stored and the ledger's invariants
// hold.
func Load(ctx context.Context, cfg Config) Outcome {
	customers := cfg.size(1000, 20)
	duration := time.Duration(cfg.size(300, 5)) * time.Second
	return run("Load", func(o *Outcome) error {
		if cfg.Postgres == nil {
			return errors.New("PostgreSQL is not available (Debian's postgresql package)")
		}
		sys, err := startSystem(ctx, cfg, "load", systemOptions{manager: true})
		if err != nil {
			return err
		}
		defer sys.stop()
		dsn, err := cfg.Postgres.Database("chaos_load")
		if err != nil {
			return err
		}
		if err := sys.cluster.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: sys.ns, Name: "shop-db"},
			StringData: map[string]string{"dsn": dsn}}); err != nil {
			return err
		}
		u, err := sys.createPortal(ctx, "shop", func(s *billingv1alpha1.CustomerPortalSpec) {
			s.Replicas = ptr.To[int32](2)
			s.Storage = &billingv1alpha1.Storage{Postgres: &billingv1alpha1.PostgresStorage{SecretRef: billingv1alpha1.DSNSecretReference{Name: "shop-db", Key: "dsn"}}}
		})
		if err != nil {
			return err
		}
		port, err := bench.FreePort()
		if err != nil {
			return err
		}
		u2 := fmt.Sprintf("http://127.0.0.1:%d/", port)
		replicas := make([]*portalProc, 2)
		for i, ru := range []string{u, u2} {
			if replicas[i], err = sys.runPortal(ctx, "shop", ru, portalStorage{postgresDSN: dsn}); err != nil {
				return err
			}
		}
		m := sys.merchant(u)
		cfg.step("load: signing in %d customers", customers)
		runs := make([]*customerRun, customers)
		if err := bench.Parallel(ctx, 16, customers, func(i int) error {
			id, err := m.customer(ctx, fmt.Sprintf("load%04d@chaos.example", i), fmt.Sprintf("Cliente %d", i))
			if err != nil {
				return err
			}
			if _, err := m.card(ctx, id); err != nil {
				return err
			}
			if _, err := m.subscription(ctx, id); err != nil {
				return err
			}
			link, err := m.session(ctx, id)
			if err != nil {
				return err
			}
			b := newBrowser([]string{u, u2}[i%2], loopbackIP(i))
			if err := b.openLink(ctx, strings.Replace(link, u, b.base, 1)); err != nil {
				return err
			}
			runs[i] = &customerRun{id: id, b: b}
			return nil
		}); err != nil {
			return fmt.Errorf("sign in: %w", err)
		}

		cfg.step("load: %d customers for %s", customers, duration)
		var mu sync.Mutex
		var lat []time.Duration
		var reqs, errs, writes atomic.Int64
		cpu0 := [2]time.Duration{}
		for i, r := range replicas {
			cpu0[i], _ = r.proc.CPUTime()
		}
		start := time.Now()
		end := start.Add(duration)
		var wg sync.WaitGroup
		for i, cr := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := mrand.New(mrand.NewPCG(uint64(i), 8))
				// Customers start spread over the first seconds, then think 1–3 s between clicks.
				waitFor(ctx, time.Duration(rng.IntN(2000))*time.Millisecond)
				for time.Now().Before(end) && ctx.Err() == nil {
					t0 := time.Now()
					ok := cr.loadStep(ctx, rng, &writes)
					d := time.Since(t0)
					reqs.Add(1)
					if !ok {
						errs.Add(1)
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					waitFor(ctx, time.Duration(1000+rng.IntN(2000))*time.Millisecond)
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		var cpu time.Duration
		for i, r := range replicas {
			c, _ := r.proc.CPUTime()
			cpu += c - cpu0[i]
		}

		db, err := openDB(dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		var kr killedResult
		if err := judgeKilled(ctx, db, runs, &kr); err != nil {
			return err
		}
		n := int(reqs.Load())
		o.Faults = fmt.Sprintf("%d signed-in customers on 2 replicas sharing PostgreSQL, think time 1–3 s, for %s", customers, duration)
		o.Attempted, o.Completed = n, n-int(errs.Load())
		o.Lost, o.Duplicated = kr.lost, kr.doubled
		errRate := float64(errs.Load()) / float64(max(n, 1))
		o.check("error rate under 1%", errRate < 0.01, "%d of %d requests failed (%.2f%%)", errs.Load(), n, 100*errRate)
		o.check("acknowledged changes stored", kr.lost == 0, "%d of the acknowledged writes missing%s", kr.lost, kr.lostWhat)
		o.check("ledger invariants", kr.attemptsBad == 0 && kr.preferredBad == 0 && kr.processing == 0 && kr.orphanEvents == 0 && kr.missingEvents == 0,
			"attempts %d, preferred %d, processing %d, events %d/%d", kr.attemptsBad, kr.preferredBad, kr.processing, kr.orphanEvents, kr.missingEvents)
		o.figure("%d requests in %s (%.0f/s, %d writes): p50 %s, p99 %s; error rate %.2f%%",
			n, took.Round(time.Second), float64(n)/took.Seconds(), writes.Load(), ms(bench.Percentile(lat, 50)), ms(bench.Percentile(lat, 99)), 100*errRate)
		o.figure("CPU per request: %.2f ms in the two portal processes together (PostgreSQL's not included)",
			float64(cpu.Microseconds())/1000/float64(max(n, 1)))
		return nil
	})
}

// loadStep is one click of a customer under load: mostly pages, sometimes a change. A step that
// posts counts as one request (its redirect's page load included).
func (cr *customerRun) loadStep(ctx context.Context, rng *mrand.Rand, writes *atomic.Int64) bool {
	switch k := rng.IntN(20); {
	case k < 16:
		p, err := cr.b.get(ctx, []string{"/", "/methods", "/payments", "/subscriptions", "/billing"}[k%5])
		return err == nil && p.Status == http.StatusOK && !strings.HasPrefix(p.Path, "/login")
	case k == 16 && cr.addTries < 6:
		writes.Add(1)
		cr.addTries++
		p, err := cr.b.post(ctx, "/methods", url.Values{"type": {"wallet"}, "wallet": {"mercadopago"}})
		if cr.acked(p, err, "/methods") {
			cr.adds++
			return true
		}
		return false
	case k == 17:
		writes.Add(1)
		p, err := cr.b.get(ctx, "/methods")
		if err != nil || p.Status != http.StatusOK {
			return false
		}
		if ms := ids(p.Body, "/methods/"); len(ms) > 1 {
			target := ms[1+rng.IntN(len(ms)-1)]
			cr.preferred = ""
			p, err = cr.b.post(ctx, "/methods/"+target+"/move", url.Values{"to": {"top"}})
			if !cr.acked(p, err, "/methods") {
				return false
			}
			cr.preferred = target
		}
		return true
	default:
		writes.Add(1)
		return cr.updateBilling(ctx)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
