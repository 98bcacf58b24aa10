package localsys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/scheme"
)

// LocalURLAnnotation is where the local run publishes the URL a portal's local process serves
// on. The operator uses it as the portal's status.url only when started with --local-urls
// (`make run`), where no Ingress or load balancer exists to reach the portal's Service.
const LocalURLAnnotation = controllers.LocalURLAnnotation

// runner plays the cluster's kubelet for CustomerPortals: every portal, in any namespace, gets a
// portal server process on a loopback port of its own, kept across runs in ports.json, and its
// Deployment is reported available while the process answers /readyz. A deleted portal's
// process stops.
type runner struct {
	sys    *System
	client client.Client
	out    io.Writer
	// shared names the portals that serve the demo's one customer base (one ledger directory).
	shared map[types.NamespacedName]bool

	mu      sync.Mutex
	ports   map[string]string // "namespace/name" → port, persisted
	claimed map[string]bool   // ports this run has taken (and checked free once)
	running map[types.NamespacedName]*localProc
	wake    chan struct{}
	// cancel ends the watch loop; Stop calls it first, so no portal is restarted while the
	// system is going down (against an API server that is gone).
	cancel context.CancelFunc
	// free offers an unused loopback port (freePort; tests script it).
	free func() string
}

type localProc struct {
	cmd     *exec.Cmd
	url     string
	metrics string
	done    chan struct{}
}

// logName is the portal's log file name in the state directory.
func logName(key types.NamespacedName) string {
	if key.Namespace == "default" {
		return key.Name
	}
	return key.Namespace + "_" + key.Name
}

// portFree reports whether nothing listens on the loopback port now.
func portFree(port string) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func newRunner(s *System, c client.Client, out io.Writer) (*runner, error) {
	r := &runner{sys: s, client: c, out: out, shared: map[types.NamespacedName]bool{},
		ports: map[string]string{}, claimed: map[string]bool{}, running: map[types.NamespacedName]*localProc{}, wake: make(chan struct{}, 1), free: freePort}
	b, err := os.ReadFile(r.portsFile())
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &r.ports); err != nil {
			return nil, fmt.Errorf("%s: %w (delete it to start over)", r.portsFile(), err)
		}
	case !os.IsNotExist(err):
		return nil, err
	}
	return r, nil
}

func (r *runner) portsFile() string { return filepath.Join(r.sys.opts.State, "ports.json") }

// port returns the portal's port: the one it had before while that is still free, else a new
// one, remembered for the next run.
func (r *runner) port(key string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.ports[key]; ok && (r.claimed[key] || portFree(p)) {
		r.claimed[key] = true
		return p, nil
	}
	// Never a port another portal remembers: it may not have started yet this run, and would
	// find its port taken and move (its URL, its links and the printed demo link with it).
	taken := map[string]bool{}
	for _, q := range r.ports {
		taken[q] = true
	}
	p := r.free()
	for taken[p] {
		p = r.free()
	}
	r.ports[key], r.claimed[key] = p, true
	b, _ := json.MarshalIndent(r.ports, "", "  ")
	return p, os.WriteFile(r.portsFile(), append(b, '\n'), 0o600)
}

// URL is the URL the portal key is (or will be) served on.
func (r *runner) url(key types.NamespacedName) (string, error) {
	p, err := r.port(key.String())
	if err != nil {
		return "", err
	}
	return "http://127.0.0.1:" + p + "/", nil
}

// watch runs the runner until ctx ends: an informer on every CustomerPortal, a pass over all of
// them on each change, and the kubelet's status reports every two seconds.
func (r *runner) watch(ctx context.Context, cfg *rest.Config) error {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	c, err := cache.New(cfg, cache.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	inf, err := c.GetInformer(ctx, &billingv1alpha1.CustomerPortal{})
	if err != nil {
		return err
	}
	kick := func(any) { r.kick() }
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: kick, UpdateFunc: func(_, o any) { kick(o) }, DeleteFunc: kick,
	}); err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("local runner: CustomerPortal informer did not sync")
	}
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				r.stopAll()
				return
			case <-r.wake:
			case <-tick.C:
			}
			var list billingv1alpha1.CustomerPortalList
			if err := c.List(ctx, &list); err != nil {
				continue
			}
			r.sync(ctx, list.Items)
		}
	}()
	return nil
}

func (r *runner) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// sync makes the running processes match the portals, and reports their Deployments.
func (r *runner) sync(ctx context.Context, portals []billingv1alpha1.CustomerPortal) {
	want := map[types.NamespacedName]bool{}
	sort.Slice(portals, func(i, j int) bool {
		return portals[i].Namespace+"/"+portals[i].Name < portals[j].Namespace+"/"+portals[j].Name
	})
	for i := range portals {
		p := &portals[i]
		key := client.ObjectKeyFromObject(p)
		if p.DeletionTimestamp != nil {
			continue
		}
		want[key] = true
		if err := r.ensure(ctx, p); err != nil && ctx.Err() == nil {
			fmt.Fprintf(r.out, "    local portal %s: %v\n", key, err)
		}
	}
	r.mu.Lock()
	var gone []types.NamespacedName
	for key := range r.running {
		if !want[key] {
			gone = append(gone, key)
		}
	}
	r.mu.Unlock()
	for _, key := range gone {
		r.stop(key)
		fmt.Fprintf(r.out, "==> portal %s deleted: its local process stopped\n", key)
	}
	r.mu.Lock()
	procs := make(map[types.NamespacedName]*localProc, len(r.running))
	for k, v := range r.running {
		procs[k] = v
	}
	r.mu.Unlock()
	for key, lp := range procs {
		reportDeployment(ctx, r.client, key, lp.url)
	}
}

// ensure publishes the portal's local URL and starts its process if none runs.
func (r *runner) ensure(ctx context.Context, p *billingv1alpha1.CustomerPortal) error {
	key := client.ObjectKeyFromObject(p)
	url, err := r.url(key)
	if err != nil {
		return err
	}
	if p.Annotations[LocalURLAnnotation] != url {
		patch := client.MergeFrom(p.DeepCopy())
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[LocalURLAnnotation] = url
		if err := r.client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("publish its URL: %w", err)
		}
	}
	r.mu.Lock()
	lp := r.running[key]
	r.mu.Unlock()
	if lp != nil {
		select {
		case <-lp.done: // exited: start it again below
		default:
			return nil
		}
	}
	dataDir := filepath.Join(r.sys.opts.State, "portals", key.Namespace, key.Name)
	if r.shared[key] {
		dataDir = filepath.Join(r.sys.opts.State, "ledger")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	port := url[len("http://127.0.0.1:") : len(url)-1]
	metrics, err := r.port(key.String() + "#metrics")
	if err != nil {
		return err
	}
	cmd, err := r.sys.spawnDetached(ctx, logName(key), []string{"KUBECONFIG=" + r.sys.Kubeconfig},
		filepath.Join(r.sys.opts.Bin, "portal"),
		"--portal="+key.String(), "--listen=127.0.0.1:"+port, "--data-dir="+dataDir,
		"--metrics-listen=127.0.0.1:"+metrics, "--kubeconfig="+r.sys.Kubeconfig)
	if err != nil {
		return err
	}
	nlp := &localProc{cmd: cmd, url: url, metrics: "http://127.0.0.1:" + metrics + "/metrics", done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(nlp.done) }()
	r.mu.Lock()
	r.running[key] = nlp
	r.mu.Unlock()
	fmt.Fprintf(r.out, "==> portal %s: %s (metrics %s, log %s)\n", key, url, nlp.metrics,
		filepath.Join(r.sys.opts.State, logName(key)+".log"))
	return nil
}

func (r *runner) stop(key types.NamespacedName) {
	r.mu.Lock()
	lp := r.running[key]
	delete(r.running, key)
	r.mu.Unlock()
	if lp == nil {
		return
	}
	_ = lp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-lp.done:
	case <-time.After(10 * time.Second):
		_ = lp.cmd.Process.Kill()
		<-lp.done
	}
}

func (r *runner) stopAll() {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	keys := make([]types.NamespacedName, 0, len(r.running))
	for k := range r.running {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.stop(k)
	}
}

// reportDeployment stands in for the kubelet and the Deployment controller: while the portal's
// process answers /readyz, its Deployment is reported available, so the CustomerPortal turns
// Ready as it would in a cluster.
func reportDeployment(ctx context.Context, c client.Client, key types.NamespacedName, url string) {
	ready := WaitHTTP(ctx, url+"readyz", 500*time.Millisecond) == nil
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name + "-portal"}, d); err != nil {
		return
	}
	var n int32
	avail := corev1.ConditionFalse
	if ready {
		n, avail = 1, corev1.ConditionTrue
	}
	if d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == n && len(d.Status.Conditions) > 0 && d.Status.Conditions[0].Status == avail {
		return
	}
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: avail, Reason: "LocalProcess",
			Message: "portal process on " + url, LastUpdateTime: now, LastTransitionTime: now}},
	}
	_ = c.Status().Update(ctx, d)
}
