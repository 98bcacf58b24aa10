package charttest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The Prometheus Operator whose CRDs the monitoring objects are checked against: its module from
// the Go module proxy (checked against the checksum database), so the real schemas.
const promOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// warnings collects the API server's warnings (Pod Security's among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// Every object the chart renders, for each value set, passes a server-side apply dry run on the
// real kube-apiserver and etcd that make run and make test use (bin/k8s): the CRDs of crds/ are
// installed first, as Helm does, and so are the Prometheus Operator's for the monitoring objects.
// The operator's namespace enforces and warns at Pod Security "restricted", and the API server
// must not warn about anything.
func TestServerSideDryRun(t *testing.T) {
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Fatalf("no kube-apiserver in %s: run make envtest-assets", assets)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: append([]string{filepath.Join(chartDir, "crds")}, promOperatorCRDs(t)...),
		},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the API server: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	warned := &warnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warned
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "billing"}},
	} {
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	dryRun := func(u *unstructured.Unstructured) error {
		return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
			client.FieldOwner("helm"), client.ForceOwnership, client.DryRunAll)
	}

	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values)
			for _, u := range r.objs {
				if err := dryRun(u); err != nil {
					t.Errorf("%s: %v", keyOf(u), err)
				}
				for _, w := range warned.take() {
					t.Errorf("%s: the API server warns: %s", keyOf(u), w)
				}
			}
			for _, crd := range r.crds {
				if err := dryRun(crd); err != nil {
					t.Errorf("%s (installed, applied again as on an upgrade): %v", keyOf(crd), err)
				}
			}
		})
	}

	// What README shows a platform team: the helm CLI's template through kubectl's server-side
	// dry run, both built from the Go module proxy.
	t.Run("helm template | kubectl apply --dry-run=server", func(t *testing.T) {
		admin, err := env.AddUser(envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := admin.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
			t.Fatal(err)
		}
		tmpl := exec.Command(helmCLI(t), "template", release, chartDir, "--namespace", namespace, "--set", "watchNamespaces={shop,billing}")
		tmpl.Env = append(os.Environ(), helmEnv(t)...)
		manifest, err := tmpl.Output()
		if err != nil {
			t.Fatalf("helm template: %v", err)
		}
		apply := exec.Command(kubectl(t), "--kubeconfig", kubeconfig, "apply", "--server-side", "--dry-run=server",
			"--field-manager=helm", "-f", "-")
		apply.Stdin = bytes.NewReader(manifest)
		out, err := apply.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --server-side --dry-run=server: %v\n%s", err, out)
		}
		objs, _ := parseObjects(string(manifest))
		if n := strings.Count(string(out), "(server dry run)"); n != len(objs) {
			t.Errorf("kubectl dry-ran %d objects, helm template rendered %d:\n%s", n, len(objs), out)
		}
		if strings.Contains(strings.ToLower(string(out)), "warning") {
			t.Errorf("kubectl printed warnings:\n%s", out)
		}
	})

	// The checks above mean something: a dry run stores nothing, and Pod Security does warn
	// about an operator pod that is not restricted.
	t.Run("controls", func(t *testing.T) {
		r := mustRender(t, "")
		var dep *unstructured.Unstructured
		for _, u := range r.objs {
			if u.GetKind() == "Deployment" {
				dep = u.DeepCopy()
			}
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(dep.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), got); !apierrors.IsNotFound(err) {
			t.Errorf("after the dry runs, get %s: %v; want NotFound", keyOf(dep), err)
		}
		unstructured.RemoveNestedField(dep.Object, "spec", "template", "spec", "securityContext")
		if err := dryRun(dep); err != nil {
			t.Fatal(err)
		}
		if w := warned.take(); len(w) == 0 || !strings.Contains(strings.Join(w, "\n"), "restricted") {
			t.Errorf("a pod without runAsNonRoot and seccompProfile: warnings %q, want Pod Security's", w)
		}
	})
}

// promOperatorCRDs downloads the Prometheus Operator's module and returns its ServiceMonitor,
// PodMonitor and PrometheusRule CRDs.
func promOperatorCRDs(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", promOperator)
	cmd.Dir = t.TempDir() // outside any module: nothing to add to a go.sum
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", promOperator, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Error != "" || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", promOperator, err, mod.Error)
	}
	var paths []string
	for _, kind := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		paths = append(paths, filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml"))
	}
	return paths
}
