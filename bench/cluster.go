package bench

import (
	"context"
	"fmt"
	"github.com/portero-dev/portero/internal/localsys"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/portero-dev/portero/internal/scheme"
	"github.com/portero-dev/portero/internal/testenv"
)

// Cluster is a fresh control plane (kube-apiserver + etcd, CRDs installed) and, once started,
// the operator running as its own process, as it runs in a cluster.
type Cluster struct {
	Config     *rest.Config // admin, without client-side rate limiting
	Client     client.Client
	Clientset  kubernetes.Interface
	Kubeconfig string
	Manager    *Process

	env            *envtest.Environment
	dir            string
	managerOpts    ManagerOptions
	managerMetrics string // http://127.0.0.1:port/metrics
	managerPprof   string // http://127.0.0.1:port/debug/pprof/ when the binary has the flag
	apiServerPid   int    // found on first use by APIServerCPU
	etcdPid        int    // found on first use by cpuUse
}

// StartCluster starts a control plane whose files live under dir.
func StartCluster(dir string) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(testenv.RepoRoot(), "bin", "k8s")
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// envtest's default service range (/24) holds 254 ClusterIPs; the scale run makes thousands.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	// The watch cache's consistency check (on by default since 1.34) lists every resource from
	// etcd every 5–7.5 minutes. At 60,000 sessions one pass took ≈ 6 s of the API server's CPU
	// (28% of it in a profile of the expiry window), landing at random in a figure's window or a
	// baseline's: off, so that figure and baseline see the same API server.
	env.ControlPlane.GetAPIServer().Configure().Append("feature-gates", "DetectCacheInconsistency=false")
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("start control plane (binaries from %s; `make envtest-assets` builds them): %w", assets, err)
	}
	c := &Cluster{env: env, dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	admin, err := env.AddUser(envtest.User{Name: "portero-bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("create admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	c.Config = rest.CopyConfig(admin.Config())
	// The load the benchmarks generate is the point: no client-side throttling in the driver.
	c.Config.QPS, c.Config.Burst = -1, -1
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return nil, err
	}
	if c.Clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// ManagerOptions start the operator.
type ManagerOptions struct {
	Bin string
	// Env is added to the process's environment (ReadDeployedManager: as the Deployment runs it).
	Env []string
	// MemoryLimit is the container's memory limit the environment was written for; reported only.
	MemoryLimit string
	// Pprof asks for --pprof-bind-address; used only if the binary has that flag.
	Pprof bool
}

// DeployedManager is what config/manager/manager.yaml gives the manager container: its plain
// environment (GOMEMLIMIT) and its memory limit. The benchmarks run the manager as it is deployed.
type DeployedManager struct {
	Env         []string
	MemoryLimit string
}

// ReadDeployedManager reads DeployedManager from the repository at root.
func ReadDeployedManager(root string) (DeployedManager, error) {
	var dm DeployedManager
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "manager.yaml"))
	if err != nil {
		return dm, err
	}
	for _, doc := range strings.Split(string(b), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			if ctr.Name != "manager" {
				continue
			}
			for _, e := range ctr.Env {
				if e.ValueFrom == nil {
					dm.Env = append(dm.Env, e.Name+"="+e.Value)
				}
			}
			if q, ok := ctr.Resources.Limits[corev1.ResourceMemory]; ok {
				dm.MemoryLimit = q.String()
			}
		}
	}
	if dm.MemoryLimit == "" {
		return dm, fmt.Errorf("config/manager/manager.yaml: no memory limit on the manager container")
	}
	return dm, nil
}

// StartManager runs bin/manager against the cluster and waits until it is ready.
func (c *Cluster) StartManager(ctx context.Context, o ManagerOptions) error {
	c.managerOpts = o
	metrics, err := FreePort()
	if err != nil {
		return err
	}
	probes, err := FreePort()
	if err != nil {
		return err
	}
	args := []string{
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probes),
		"--portal-image=portero-portal:bench", // never pulled: nothing runs pods here
		"--kubeconfig=" + c.Kubeconfig,
	}
	if o.Pprof && hasFlag(o.Bin, "pprof-bind-address") {
		port, err := FreePort()
		if err != nil {
			return err
		}
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", port))
		c.managerPprof = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", port)
	}
	name := "manager"
	if c.Manager != nil {
		name = "manager-restarted" // keep the first one's log
	}
	p, err := Spawn(c.dir, name, append([]string{"KUBECONFIG=" + c.Kubeconfig}, o.Env...), o.Bin, args...)
	if err != nil {
		return err
	}
	c.Manager = p
	c.managerMetrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)
	if err := localsys.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probes), time.Minute); err != nil {
		return fmt.Errorf("manager not ready (log: %s): %w", p.LogPath, err)
	}
	return nil
}

// hasFlag reports whether bin's -help lists flag.
func hasFlag(bin, flag string) bool {
	out, _ := execOutput(bin, "-help")
	return strings.Contains(out, "-"+flag)
}

// CheckManager fails if the manager process has died.
func (c *Cluster) CheckManager() error {
	if c.Manager == nil {
		return nil
	}
	if done, err := c.Manager.Exited(); done {
		return fmt.Errorf("manager exited (%v); see %s", err, c.Manager.LogPath)
	}
	return nil
}

// ManagerMetric returns the text of the manager's metrics lines starting with prefix.
func (c *Cluster) ManagerMetric(prefix string) (string, error) {
	resp, err := http.Get(c.managerMetrics)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n"), nil
}

// Namespace creates a namespace.
func (c *Cluster) Namespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Stop saves the manager's metrics beside its log (for a look after the run), ends the
// manager, then the control plane.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	if c.Manager != nil {
		if done, _ := c.Manager.Exited(); !done {
			saveURL(context.Background(), c.managerMetrics, filepath.Join(c.dir, "manager-metrics.txt"))
		}
	}
	c.Manager.Stop()
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
		c.env = nil
	}
}

// APIServerCPU is the CPU time the cluster's kube-apiserver has used so far.
func (c *Cluster) APIServerCPU() (time.Duration, error) {
	if c.apiServerPid == 0 {
		u, err := c.apiServerURL()
		if err != nil {
			return 0, err
		}
		if c.apiServerPid, err = ProcessListening("kube-apiserver", "--secure-port="+u.Port()); err != nil {
			return 0, err
		}
	}
	return cpuTime(c.apiServerPid)
}

// cpuUse is the CPU time each process of the system under test had used at one moment, and the
// machine's busy time (all CPUs, not idle or waiting on I/O).
type cpuUse struct {
	api, etcd, manager, self, busy time.Duration
	at                             time.Time     // when it was read
	window                         time.Duration // in a difference (sub): the time between the readings
}

// cpuUse reads the CPU time used so far by the API server, etcd, the manager and this process,
// and the machine's busy time. A part it cannot read stays zero (in both readings of a window).
func (c *Cluster) cpuUse() cpuUse {
	u := cpuUse{at: time.Now()}
	u.api, _ = c.APIServerCPU()
	if c.etcdPid == 0 && c.env != nil && c.env.ControlPlane.Etcd != nil && c.env.ControlPlane.Etcd.URL != nil {
		c.etcdPid, _ = ProcessListening("etcd", "--listen-client-urls="+c.env.ControlPlane.Etcd.URL.String())
	}
	if c.etcdPid != 0 {
		u.etcd, _ = cpuTime(c.etcdPid)
	}
	if c.Manager != nil {
		u.manager, _ = c.Manager.CPUTime()
	}
	u.self, _ = cpuTime(os.Getpid())
	u.busy, _ = MachineBusy()
	return u
}

// sub is the CPU used between v and u.
func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{api: u.api - v.api, etcd: u.etcd - v.etcd, manager: u.manager - v.manager, self: u.self - v.self,
		busy: u.busy - v.busy, window: u.at.Sub(v.at)}
}

// apiServerURL is the API server's base URL (Config.Host may lack the scheme).
func (c *Cluster) apiServerURL() (*url.URL, error) {
	u, _, err := rest.DefaultServerUrlFor(c.Config)
	return u, err
}

// ControlPlanePids finds the process ids of the cluster's kube-apiserver and etcd (envtest does
// not expose them), for a harness that signals them: the fault suite restarts both.
func (c *Cluster) ControlPlanePids() (apiServer, etcd int, err error) {
	u, err := c.apiServerURL()
	if err != nil {
		return 0, 0, err
	}
	if apiServer, err = ProcessListening("kube-apiserver", "--secure-port="+u.Port()); err != nil {
		return 0, 0, err
	}
	if c.env == nil || c.env.ControlPlane.Etcd == nil || c.env.ControlPlane.Etcd.URL == nil {
		return 0, 0, fmt.Errorf("the control plane has no etcd URL")
	}
	etcd, err = ProcessListening("etcd", "--listen-client-urls="+c.env.ControlPlane.Etcd.URL.String())
	return apiServer, etcd, err
}
