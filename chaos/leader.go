package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/localsys"
)

// LeaderHandover (scenario 6) runs two operator processes with leader election and creates a
// burst of PortalSessions; partway through, the leader is killed with SIGKILL (it cannot hand
// over: the standby waits out the lease). Every change to the sessions and to the link Secrets
// is watched from the start. Afterwards every session must be Active, each with one token
// (its tokenHash set once, never replaced) and one link Secret, created once and never
// rewritten with another token or deleted.
func LeaderHandover(ctx context.Context, cfg Config) Outcome {
	n := cfg.size(500, 60)
	return run("Leader handover", func(o *Outcome) error {
		sys, err := startSystem(ctx, cfg, "leader", systemOptions{})
		if err != nil {
			return err
		}
		defer sys.stop()
		if _, err := sys.createPortal(ctx, "shop", nil); err != nil {
			return err
		}
		dm, err := bench.ReadDeployedManager(cfg.Root)
		if err != nil {
			return err
		}
		type mgr struct {
			proc    *bench.Process
			metrics string
		}
		var mgrs []mgr
		for _, name := range []string{"manager-a", "manager-b"} {
			mp, err1 := bench.FreePort()
			pp, err2 := bench.FreePort()
			if err1 != nil || err2 != nil {
				return fmt.Errorf("free ports: %v %v", err1, err2)
			}
			p, err := bench.Spawn(sys.dir, name, append([]string{"KUBECONFIG=" + sys.cluster.Kubeconfig}, dm.Env...), filepath.Join(cfg.Bin, "manager"),
				fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mp), fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", pp),
				"--portal-image=portero-portal:chaos", "--kubeconfig="+sys.cluster.Kubeconfig,
				"--leader-elect", "--leader-election-namespace="+sys.ns)
			if err != nil {
				return err
			}
			defer p.Stop()
			if err := localsys.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", pp), time.Minute); err != nil {
				return fmt.Errorf("%s not ready (log %s): %w", name, p.LogPath, err)
			}
			mgrs = append(mgrs, mgr{p, fmt.Sprintf("http://127.0.0.1:%d/metrics", mp)})
		}
		isLeader := func(m mgr) bool {
			resp, err := http.Get(m.metrics)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "leader_election_master_status{") && strings.HasSuffix(l, " 1") {
					return true
				}
			}
			return false
		}
		leader, standby := -1, -1
		deadline := time.Now().Add(time.Minute)
		for leader < 0 && time.Now().Before(deadline) {
			for i, m := range mgrs {
				if isLeader(m) {
					leader, standby = i, 1-i
				}
			}
			waitFor(ctx, 100*time.Millisecond)
		}
		if leader < 0 {
			return fmt.Errorf("no manager became leader within a minute (logs %s, %s)", mgrs[0].proc.LogPath, mgrs[1].proc.LogPath)
		}

		// Everything that happens to sessions and Secrets, from before the first create.
		w := newSessionWatch()
		stopS, err := sys.cluster.Watch(ctx, &billingv1alpha1.PortalSessionList{}, sys.ns, nil, w.session)
		if err != nil {
			return err
		}
		defer stopS()
		stopL, err := sys.cluster.Watch(ctx, &corev1.SecretList{}, sys.ns, nil, w.secret)
		if err != nil {
			return err
		}
		defer stopL()

		cfg.step("leader: %d PortalSessions; the leader is killed after %d", n, n*2/5)
		var created atomic.Int64
		var killedAt time.Time
		var killOnce sync.Once
		err = bench.Parallel(ctx, 16, n, func(i int) error {
			s := &billingv1alpha1.PortalSession{
				ObjectMeta: metav1.ObjectMeta{Namespace: sys.ns, Name: fmt.Sprintf("s%04d", i)},
				Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "shop"},
					Customer: billingv1alpha1.CustomerReference{ID: fmt.Sprintf("cus_%04d", i)}, TTL: &metav1.Duration{Duration: time.Hour}},
			}
			if err := sys.cluster.Client.Create(ctx, s); err != nil {
				return fmt.Errorf("create %s: %w", s.Name, err)
			}
			if created.Add(1) == int64(n*2/5) {
				killOnce.Do(func() {
					killedAt = time.Now()
					_ = syscall.Kill(mgrs[leader].proc.Pid(), syscall.SIGKILL)
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		// The standby takes over once the dead leader's lease runs out (15 s by default).
		var tookOver time.Duration
		done := false
		deadline = time.Now().Add(3 * time.Minute)
		for !done && time.Now().Before(deadline) {
			if tookOver == 0 && isLeader(mgrs[standby]) {
				tookOver = time.Since(killedAt)
			}
			done = w.allActive(n)
			if !done {
				waitFor(ctx, 200*time.Millisecond)
			}
		}
		// The watches may trail the API server by a moment; read the final state directly too.
		var list billingv1alpha1.PortalSessionList
		if err := sys.cluster.Client.List(ctx, &list); err != nil {
			return err
		}
		active := 0
		for _, s := range list.Items {
			if s.Namespace == sys.ns && s.Status.Phase == billingv1alpha1.SessionActive && s.Status.TokenHash != "" {
				active++
			}
		}
		secrets, err := sys.linkSecrets(ctx)
		if err != nil {
			return err
		}
		oneSecret := 0
		for i := range n {
			if secrets[fmt.Sprintf("s%04d", i)] == 1 {
				oneSecret++
			}
		}
		st := w.summary()
		o.Faults = fmt.Sprintf("SIGKILL of the leader after %d of %d creations; the standby took over %s later", n*2/5, n, tookOver.Round(100*time.Millisecond))
		o.Attempted, o.Completed = n, active
		o.Lost = n - active
		o.Duplicated = st.tokenRemints + st.secretRecreated + st.secretRewritten
		o.check("every session Active", active == n, "%d of %d Active with a token hash", active, n)
		o.check("each session minted once", st.tokenRemints == 0 && st.activeTwice == 0,
			"%d sessions whose token hash changed after it was set; %d that became Active twice", st.tokenRemints, st.activeTwice)
		o.check("one link Secret each", oneSecret == n && st.secretRecreated == 0 && st.secretRewritten == 0 && st.secretDeleted == 0,
			"%d of %d sessions with exactly one link Secret; Secrets created again %d, rewritten with another link %d, deleted %d",
			oneSecret, n, st.secretRecreated, st.secretRewritten, st.secretDeleted)
		o.check("the standby took over", tookOver > 0, "leader metric on the standby after %s", tookOver.Round(100*time.Millisecond))
		o.figure("%d sessions; all Active %s after the kill; the standby led %s after it (lease 15 s)", n, time.Since(killedAt).Round(100*time.Millisecond), tookOver.Round(100*time.Millisecond))
		return nil
	})
}

// sessionWatch records, per session, every token hash and phase it showed and, per link
// Secret, every creation, link and deletion.
type sessionWatch struct {
	mu      sync.Mutex
	hashes  map[string][]string // session → distinct token hashes, in order
	actives map[string]int      // session → transitions into Active
	phase   map[string]billingv1alpha1.SessionPhase
	added   map[string]int
	urls    map[string][]string
	deleted map[string]int
}

func newSessionWatch() *sessionWatch {
	return &sessionWatch{hashes: map[string][]string{}, actives: map[string]int{}, phase: map[string]billingv1alpha1.SessionPhase{},
		added: map[string]int{}, urls: map[string][]string{}, deleted: map[string]int{}}
}

func (w *sessionWatch) session(ev watch.Event, _ time.Time) {
	s, ok := ev.Object.(*billingv1alpha1.PortalSession)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if h := s.Status.TokenHash; h != "" {
		hs := w.hashes[s.Name]
		if len(hs) == 0 || hs[len(hs)-1] != h {
			w.hashes[s.Name] = append(hs, h)
		}
	}
	if s.Status.Phase == billingv1alpha1.SessionActive && w.phase[s.Name] != billingv1alpha1.SessionActive {
		w.actives[s.Name]++
	}
	w.phase[s.Name] = s.Status.Phase
}

func (w *sessionWatch) secret(ev watch.Event, _ time.Time) {
	sec, ok := ev.Object.(*corev1.Secret)
	if !ok || !strings.HasSuffix(sec.Name, "-link") {
		return
	}
	name := strings.TrimSuffix(sec.Name, "-link")
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Type {
	case watch.Added:
		w.added[name]++
	case watch.Deleted:
		w.deleted[name]++
	}
	if u := string(sec.Data[controllers.LinkSecretKeyURL]); u != "" {
		us := w.urls[name]
		if len(us) == 0 || us[len(us)-1] != u {
			w.urls[name] = append(us, u)
		}
	}
}

func (w *sessionWatch) allActive(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for _, p := range w.phase {
		if p == billingv1alpha1.SessionActive {
			k++
		}
	}
	return k >= n
}

type watchSummary struct {
	tokenRemints, activeTwice                       int
	secretRecreated, secretRewritten, secretDeleted int
}

func (w *sessionWatch) summary() watchSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s watchSummary
	for _, hs := range w.hashes {
		s.tokenRemints += len(hs) - 1
	}
	for _, k := range w.actives {
		if k > 1 {
			s.activeTwice++
		}
	}
	for _, k := range w.added {
		if k > 1 {
			s.secretRecreated += k - 1
		}
	}
	for _, us := range w.urls {
		s.secretRewritten += len(us) - 1
	}
	for _, k := range w.deleted {
		s.secretDeleted += k
	}
	return s
}
