// Package testenv starts the real control plane (kube-apiserver + etcd built by hack/build-tools.sh)
// with Portero's CRDs installed, for tests that must run against the real API server.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/scheme"
)

// Env is a running control plane.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Scheme *k8sruntime.Scheme
}

// RepoRoot returns the repository's root directory, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Scheme returns a scheme with the built-in Kubernetes types and Portero's API.
func Scheme() *k8sruntime.Scheme { return scheme.New() }

// Start starts kube-apiserver and etcd from KUBEBUILDER_ASSETS (or bin/k8s) and installs the CRDs
// and the admission policies of config/default. It refuses to run without the binaries rather
// than skip: `make envtest-assets` builds them.
func Start() (*Env, error) { return start(true) }

// StartBare is Start with the CRDs only, for a test that installs the rest itself (make deploy).
func StartBare() (*Env, error) { return start(false) }

func start(policies bool) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin", "k8s")
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("control plane binary %s not found in %s: run `make envtest-assets` (or `make test`) first", bin, assets)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // whatever did start (etcd, say) must not outlive the test binary
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	e := &Env{Environment: env, Config: cfg, Scheme: Scheme()}
	if !policies {
		return e, nil
	}
	if err := installPolicies(cfg, filepath.Join(assets, "kubectl")); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// installPolicies creates the admission policies of the install (config/default, rendered by
// kubectl kustomize as `make deploy` renders it), so every test meets them as a cluster would.
func installPolicies(cfg *rest.Config, kubectl string) error {
	var out, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", filepath.Join(RepoRoot(), "config", "default"))
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("render config/default: %v: %s", err, stderr.String())
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	dec := yaml.NewYAMLOrJSONDecoder(&out, 4096)
	n := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("read config/default: %w", err)
		}
		if u.GetAPIVersion() != "admissionregistration.k8s.io/v1" {
			continue
		}
		u.SetNamespace("") // cluster-scoped; kustomize's namespace does not apply
		if err := c.Create(context.Background(), u); err != nil {
			return fmt.Errorf("install %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		n++
	}
	if n == 0 {
		return errors.New("config/default holds no admission policy")
	}
	return nil
}

// ServerVersion returns the API server's reported git version, e.g. v1.37.2.
func (e *Env) ServerVersion() (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// GVK returns the GroupVersionKind of a Portero kind.
func GVK(kind string) schema.GroupVersionKind { return billingv1alpha1.GroupVersion.WithKind(kind) }

// Main is the body of an envtest suite's TestMain: it starts the control plane, sets *env and a
// client for it in *c, runs the tests and stops the control plane, returning the exit code.
func Main(m interface{ Run() int }, env **Env, c *client.Client) int {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	cl, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env, *c = e, cl
	return m.Run()
}

// StartManager creates a manager with opts, lets setup register reconcilers, starts it and waits
// for its cache. The returned stop ends the manager and waits for it.
func StartManager(cfg *rest.Config, opts manager.Options, setup func(manager.Manager) error) (manager.Manager, func() error, error) {
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := setup(mgr); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			return fmt.Errorf("manager did not stop within a minute")
		}
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		_ = stop()
		return nil, nil, fmt.Errorf("manager cache did not sync")
	}
	return mgr, stop, nil
}
