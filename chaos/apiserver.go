package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/bench"
)

// APIServerRestart (scenario 5) stops kube-apiserver and etcd (SIGTERM, as a control-plane
// restart does) and starts them again on the same data and port, while signed-in customers
// keep browsing and changing things, the merchant asks for new session links, and a few
// sessions have just been deleted. While it is down the portal must keep serving signed-in
// customers from its caches; once it is back, links asked for meanwhile are minted once (the
// merchant retries with the same key), new links resolve, the operator finishes the deletions
// (no link Secret left behind), and no session is minted twice.
func APIServerRestart(ctx context.Context, cfg Config) Outcome {
	customers := cfg.size(30, 5)
	down := time.Duration(cfg.size(20, 3)) * time.Second
	grace := time.Duration(cfg.size(10, 2)) * time.Second
	return run("API server restarted", func(o *Outcome) error {
		sys, err := startSystem(ctx, cfg, "apiserver", systemOptions{manager: true})
		if err != nil {
			return err
		}
		defer sys.stop()
		u, err := sys.createPortal(ctx, "shop", nil)
		if err != nil {
			return err
		}
		p, err := sys.runPortal(ctx, "shop", u, portalStorage{dataDir: filepath.Join(sys.dir, "shop")})
		if err != nil {
			return err
		}
		m := sys.merchant(u)
		ids := make([]string, customers)
		browsers := make([]*browser, customers)
		doomed := make([]string, customers) // a second session each, deleted just before the restart
		if err := bench.Parallel(ctx, 4, customers, func(i int) error {
			var err error
			if ids[i], err = m.customer(ctx, fmt.Sprintf("api%03d@chaos.example", i), "Cliente"); err != nil {
				return err
			}
			link, err := m.session(ctx, ids[i])
			if err != nil {
				return err
			}
			browsers[i] = newBrowser(u, net.IPv4(127, 0, 50, byte(1+i)))
			if err := browsers[i].openLink(ctx, link); err != nil {
				return err
			}
			var out idJSON
			err = m.call(ctx, http.MethodPost, "/portal_sessions", map[string]any{"customer_id": ids[i], "ttl": "1h"}, &out)
			doomed[i] = out.ID
			return err
		}); err != nil {
			return fmt.Errorf("seed (portal log %s): %w", p.proc.LogPath, err)
		}
		w := newSessionWatch()
		stopW, err := sys.cluster.Watch(ctx, &billingv1alpha1.PortalSessionList{}, sys.ns, nil, w.session)
		if err != nil {
			return err
		}
		defer stopW()
		stopL, err := sys.cluster.Watch(ctx, &corev1.SecretList{}, sys.ns, nil, w.secret)
		if err != nil {
			return err
		}
		defer stopL()
		for _, name := range doomed {
			if err := sys.cluster.Client.Delete(ctx, &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: sys.ns, Name: name}}); err != nil {
				return fmt.Errorf("delete session %s: %w", name, err)
			}
		}

		cfg.step("apiserver: deleted %d sessions; stopping kube-apiserver and etcd for %s", len(doomed), down)
		restart, err := sys.stopControlPlane(ctx, grace)
		if err != nil {
			return err
		}
		stoppedAt := time.Now()
		// While it is down: customers browse and change their billing data; the merchant asks
		// for a link per customer (which cannot be minted now).
		var served, failed atomic.Int64
		var wg sync.WaitGroup
		stopBrowsing := make(chan struct{})
		for i, b := range browsers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				paths := []string{"/", "/methods", "/payments", "/subscriptions", "/billing"}
				for k := 0; ; k++ {
					select {
					case <-stopBrowsing:
						return
					default:
					}
					var pg page
					var err error
					if k%5 == 4 {
						pg, err = b.post(ctx, "/billing", url.Values{"legal_name": {fmt.Sprintf("Cliente %d v%d", i, k)}, "line1": {"Calle 1"},
							"city": {"CABA"}, "province": {"Buenos Aires"}, "postal_code": {"C1000"}, "country": {"AR"}, "tax_condition": {"consumidor_final"}})
					} else {
						pg, err = b.get(ctx, paths[k%len(paths)])
					}
					if err == nil && pg.Status == http.StatusOK && !strings.HasPrefix(pg.Path, "/login") {
						served.Add(1)
					} else {
						failed.Add(1)
					}
					waitFor(ctx, 100*time.Millisecond)
				}
			}()
		}
		keys := make([]string, customers)
		refusedWhileDown := 0
		for i := range customers {
			keys[i] = "during-outage-" + ids[i]
			if err := m.callKey(ctx, http.MethodPost, "/portal_sessions", keys[i], map[string]any{"customer_id": ids[i], "ttl": "1h"}, nil); err != nil {
				refusedWhileDown++
			}
		}
		waitFor(ctx, down-time.Since(stoppedAt))
		close(stopBrowsing)
		wg.Wait()
		cfg.step("apiserver: starting etcd and kube-apiserver again")
		if err := restart(); err != nil {
			return err
		}
		backAfter := time.Since(stoppedAt)
		cfg.step("apiserver: back; the merchant retries its links")
		// The deleted sessions' Secrets go once the operator is back at it: timed from now, while
		// the merchant retries its links.
		type cleanup struct {
			after   time.Duration
			orphans int
			err     error
		}
		cleanedUp := make(chan cleanup, 1)
		go func() {
			deadline := time.Now().Add(3 * time.Minute)
			for {
				orphans, err := sys.orphanedLinkSecrets(ctx)
				if err == nil && orphans == 0 || time.Now().After(deadline) || ctx.Err() != nil {
					cleanedUp <- cleanup{time.Since(stoppedAt) - backAfter, orphans, err}
					return
				}
				waitFor(ctx, 100*time.Millisecond)
			}
		}()

		// The merchant retries the links it asked for with the same keys; each must be one
		// session, and must open the portal.
		resolved := 0
		sessionsOf := map[string]string{}
		for i := range customers {
			var out idJSON
			var err error
			for try := 0; try < 20; try++ { // the API server is still warming up its caches
				if err = m.callKey(ctx, http.MethodPost, "/portal_sessions", keys[i], map[string]any{"customer_id": ids[i], "ttl": "1h"}, &out); err == nil {
					break
				}
				waitFor(ctx, 500*time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("session after the restart (portal log %s): %w", p.proc.LogPath, err)
			}
			sessionsOf[keys[i]] = out.ID
			b := newBrowser(u, net.IPv4(127, 0, 51, byte(1+i)))
			if b.openLink(ctx, out.URL) == nil {
				resolved++
			}
		}
		cfg.step("apiserver: links resolved; waiting for the deleted sessions' Secrets to go")
		c := <-cleanedUp
		if c.err != nil {
			return c.err
		}
		orphans, cleaned := c.orphans, c.after
		perCustomer, err := sys.sessionsPerCustomer(ctx)
		if err != nil {
			return err
		}
		extra := 0
		for _, id := range ids {
			// One from the seed, one asked for during the outage (the doomed one is gone).
			if perCustomer[id] > 2 {
				extra += perCustomer[id] - 2
			}
		}
		st := w.summary()
		o.Faults = fmt.Sprintf("kube-apiserver and etcd stopped for %s (SIGTERM; SIGKILL after a %s grace: %d of 2), started again on the same data",
			backAfter.Round(100*time.Millisecond), grace, sys.sigkilled)
		o.Attempted = int(served.Load()+failed.Load()) + customers
		o.Completed = int(served.Load()) + resolved
		o.Lost = customers - resolved
		o.Duplicated = extra + st.tokenRemints
		o.check("signed-in customers served while it was down", failed.Load() == 0 && served.Load() > 0,
			"%d page views and billing updates served, %d failed", served.Load(), failed.Load())
		o.check("links asked for during the outage minted once it is back", resolved == customers && extra == 0,
			"%d of %d links opened the portal; %d extra sessions (the merchant's retries reuse their key); %d requests refused while down",
			resolved, customers, extra, refusedWhileDown)
		o.check("no session minted twice", st.tokenRemints == 0 && st.secretRewritten == 0,
			"%d token hashes replaced, %d link Secrets rewritten", st.tokenRemints, st.secretRewritten)
		o.check("no Secret orphaned", orphans == 0, "%d link Secrets without their PortalSession", orphans)
		o.figure("API server back %s after it stopped; %d page views served from the portal's caches meanwhile", backAfter.Round(100*time.Millisecond), served.Load())
		o.figure("the operator finished the deletions interrupted by the outage %s after the API server was back",
			cleaned.Round(100*time.Millisecond))
		return nil
	})
}

// stopControlPlane stops kube-apiserver, then etcd, with SIGTERM and returns a function that
// starts them again with the same arguments (same ports, certificates and data).
func (s *system) stopControlPlane(ctx context.Context, grace time.Duration) (restart func() error, err error) {
	apiPid, etcdPid, err := s.cluster.ControlPlanePids()
	if err != nil {
		return nil, err
	}
	apiArgs, err := cmdline(apiPid)
	if err != nil {
		return nil, err
	}
	etcdArgs, err := cmdline(etcdPid)
	if err != nil {
		return nil, err
	}
	for _, pid := range []int{apiPid, etcdPid} {
		killed, err := stopPid(ctx, pid, grace)
		if err != nil {
			return nil, err
		}
		if killed {
			s.sigkilled++
		}
	}
	return func() error {
		etcd, err := s.spawnControlPlane("etcd", etcdArgs)
		if err != nil {
			return err
		}
		_ = etcd
		if _, err := s.spawnControlPlane("kube-apiserver", apiArgs); err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			var ns corev1.Namespace
			if err := s.cluster.Client.Get(ctx, clientKey("", s.ns), &ns); err == nil {
				return nil
			}
			waitFor(ctx, 200*time.Millisecond)
		}
		return errors.New("the API server did not answer within 2 minutes of its restart")
	}, nil
}

func (s *system) spawnControlPlane(name string, args []string) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(s.dir, name+"-restarted.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s again: %w", name, err)
	}
	s.restarted = append(s.restarted, cmd)
	go func() { _ = cmd.Wait(); logf.Close() }()
	return cmd, nil
}

func cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// stopPid stops a process as a kubelet stops a container: SIGTERM, then SIGKILL when the grace
// period runs out (kube-apiserver drains its watches for longer than 10 s). It waits until the
// process is gone (envtest reaps it) and reports whether SIGKILL was needed.
func stopPid(ctx context.Context, pid int, grace time.Duration) (killed bool, err error) {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return false, err
	}
	deadline := time.Now().Add(grace)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return killed, nil
		}
		if time.Now().After(deadline) {
			if killed {
				return true, fmt.Errorf("process %d still there 10 s after SIGKILL", pid)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed, deadline = true, time.Now().Add(10*time.Second)
		}
		waitFor(ctx, 50*time.Millisecond)
	}
}

// orphanedLinkSecrets counts link Secrets whose PortalSession is gone.
func (s *system) orphanedLinkSecrets(ctx context.Context) (int, error) {
	secrets, err := s.linkSecrets(ctx)
	if err != nil {
		return 0, err
	}
	var list billingv1alpha1.PortalSessionList
	if err := s.cluster.Client.List(ctx, &list); err != nil {
		return 0, err
	}
	live := map[string]bool{}
	for _, ps := range list.Items {
		if ps.Namespace == s.ns && ps.DeletionTimestamp.IsZero() {
			live[ps.Name] = true
		}
	}
	n := 0
	for name := range secrets {
		if !live[name] {
			n++
		}
	}
	return n, nil
}

// sessionsPerCustomer counts the usable PortalSessions of each customer id: neither deleted nor
// revoked (the merchant API revokes a session whose link it could not hand over in time, and
// answers with an error: the merchant's retry makes the one that counts).
func (s *system) sessionsPerCustomer(ctx context.Context) (map[string]int, error) {
	var list billingv1alpha1.PortalSessionList
	if err := s.cluster.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, ps := range list.Items {
		if ps.Namespace == s.ns && ps.DeletionTimestamp.IsZero() && !ps.Spec.Revoked {
			out[ps.Spec.Customer.ID]++
		}
	}
	return out, nil
}
