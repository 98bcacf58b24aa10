// Package localsys runs the whole Portero system on one machine with no cluster: a real
// kube-apiserver and etcd (built by hack/build-tools.sh) with the CRDs, the operator, Mailpit, one
// portal server process per sample portal, demo data seeded through the merchant API and a demo
// PortalSession. `make run` (hack/localrun) and the browser journeys (e2e/) both use it.
package localsys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portero-dev/portero/internal/scheme"
)

// Options locate the binaries and the state directory.
type Options struct {
	// Assets holds kube-apiserver, etcd, kubectl and mailpit (bin/k8s).
	Assets string
	// Bin holds the manager and portal binaries (bin).
	Bin string
	// State is where data lives between runs (bin/local).
	State string
	// Root is the repository root (for config/).
	Root string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

// Portal is one running sample portal.
type Portal struct {
	Name string
	URL  string // with a trailing slash
}

// System is a running local Portero.
type System struct {
	Kubeconfig     string
	Config         *rest.Config
	Client         client.Client
	Portals        []Portal
	MailpitURL     string // with a trailing slash
	MerchantAPIURL string // .../api/v1
	MerchantAPIKey string
	DemoCustomerID string
	DemoSessionURL string

	opts     Options
	env      *envtest.Environment
	children []*exec.Cmd
}

// Start brings the system up. On error it stops whatever it had started.
func Start(ctx context.Context, o Options) (_ *System, err error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	for _, p := range []*string{&o.Assets, &o.Bin, &o.State, &o.Root} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.State, 0o755); err != nil {
		return nil, err
	}
	s := &System{opts: o}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	s.step("starting the control plane (kube-apiserver + etcd)")
	if err := s.startControlPlane(); err != nil {
		return nil, err
	}
	if s.Client, err = client.New(s.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return nil, err
	}
	s.step("starting the operator")
	if err := s.startManager(ctx); err != nil {
		return nil, err
	}
	s.step("applying config/samples")
	if err := applySamples(ctx, s.Client, filepath.Join(o.Root, "config", "samples")); err != nil {
		return nil, err
	}
	s.step("starting Mailpit (the mail catcher)")
	smtpPort, err := s.startMailpit(ctx)
	if err != nil {
		return nil, err
	}
	if s.MerchantAPIKey, err = loadOrCreate(filepath.Join(o.State, "merchant-api-key"), func() string { return randomHex(32) }); err != nil {
		return nil, err
	}
	portals := localPortals([]string{freePort(), freePort()})
	s.step("applying the local portals: general (every method) and estrategicas (bank transfer and direct debit only)")
	if err := applyLocalPortals(ctx, s.Client, portals, smtpPort, s.MerchantAPIKey); err != nil {
		return nil, err
	}
	s.step("starting one portal server per portal")
	ledgerDir := filepath.Join(o.State, "ledger") // both profiles serve the same customers
	for _, p := range portals {
		if err := s.startPortal(ctx, ledgerDir, p); err != nil {
			return nil, err
		}
		s.Portals = append(s.Portals, Portal{Name: p.name, URL: p.url()})
	}
	for _, p := range portals {
		if err := WaitHTTP(ctx, p.url()+"readyz", 2*time.Minute); err != nil {
			return nil, fmt.Errorf("portal %s did not become ready (see %s): %w", p.name, filepath.Join(o.State, p.name+".log"), err)
		}
	}
	go playKubelet(ctx, s.Client, portals)

	s.MerchantAPIURL = portals[0].url() + "api/v1"
	api := merchant{base: portals[0].url(), key: s.MerchantAPIKey, http: &http.Client{Timeout: 30 * time.Second}}
	s.step("seeding demo data through the merchant API (first run only)")
	if s.DemoCustomerID, err = seedDemo(ctx, api, filepath.Join(o.State, "seeded")); err != nil {
		return nil, err
	}
	s.step("creating a PortalSession for the demo customer")
	if s.DemoSessionURL, err = demoSession(ctx, s.Client, portals[0].name, s.DemoCustomerID); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *System) step(msg string) { fmt.Fprintf(s.opts.Progress, "==> %s\n", msg) }

// Env returns the variables a person (or a test) needs, as NAME=value pairs.
func (s *System) Env() []string {
	urls := make([]string, len(s.Portals))
	for i, p := range s.Portals {
		urls[i] = p.URL
	}
	return []string{
		"KUBECONFIG=" + s.Kubeconfig,
		"PORTAL_URLS=" + strings.Join(urls, ","),
		"MAILPIT_URL=" + s.MailpitURL,
		"MERCHANT_API_URL=" + s.MerchantAPIURL,
		"MERCHANT_API_KEY=" + s.MerchantAPIKey,
		"DEMO_SESSION_URL=" + s.DemoSessionURL,
	}
}

// Stop ends every process in reverse start order, then the control plane.
func (s *System) Stop() {
	for i := len(s.children) - 1; i >= 0; i-- {
		c := s.children[i]
		if c.Process == nil || c.ProcessState != nil {
			continue
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	s.children = nil
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
		s.env = nil
	}
}

func (s *System) startControlPlane() error {
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl", "mailpit"} {
		if _, err := os.Stat(filepath.Join(s.opts.Assets, bin)); err != nil {
			return fmt.Errorf("%s missing in %s: run `make envtest-assets`", bin, s.opts.Assets)
		}
	}
	etcdDir := filepath.Join(s.opts.State, "etcd")
	certDir := filepath.Join(s.opts.State, "apiserver")
	_ = os.RemoveAll(certDir) // fresh serving certificates each run; etcd data persists
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	s.env = &envtest.Environment{
		BinaryAssetsDirectory:    s.opts.Assets,
		CRDDirectoryPaths:        []string{filepath.Join(s.opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	s.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	s.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	if _, err := s.env.Start(); err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	admin, err := s.env.AddUser(envtest.User{Name: "portero-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	s.Kubeconfig = filepath.Join(s.opts.State, "kubeconfig")
	if err := os.WriteFile(s.Kubeconfig, kc, 0o600); err != nil {
		return err
	}
	s.Config = admin.Config()
	return nil
}

// startManager runs the operator as its own process, as it runs in a cluster.
func (s *System) startManager(ctx context.Context) error {
	metrics, probes := freePort(), freePort()
	cmd, err := s.spawn(ctx, "manager", []string{"KUBECONFIG=" + s.Kubeconfig}, filepath.Join(s.opts.Bin, "manager"),
		"--metrics-bind-address=127.0.0.1:"+metrics,
		"--health-probe-bind-address=127.0.0.1:"+probes,
		"--portal-image=portero-portal:local", // never pulled: the portals run as local processes
		"--kubeconfig="+s.Kubeconfig)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.opts.Progress, "    operator pid %d, metrics http://127.0.0.1:%s/metrics, log %s\n", cmd.Process.Pid, metrics, filepath.Join(s.opts.State, "manager.log"))
	return WaitHTTP(ctx, "http://127.0.0.1:"+probes+"/readyz", time.Minute)
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// applySamples creates every object in dir in the default namespace; a rerun keeps what a person
// changed since.
func applySamples(ctx context.Context, c client.Client, dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetNamespace() == "" {
				u.SetNamespace("default")
			}
			if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("apply %s %s from %s: %w", u.GetKind(), u.GetName(), filepath.Base(f), err)
			}
		}
	}
	return nil
}
