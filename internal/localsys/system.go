// Package localsys runs the whole Portero system on one machine with no cluster: a real
// kube-apiserver and etcd (built by hack/build-tools.sh) with the CRDs, the operator, Mailpit,
// stripe-mock (Stripe's API stub, for the portal whose processor is Stripe), one portal server
// process per sample portal, demo data seeded through the merchant API and a demo PortalSession. `make run` (hack/localrun) and the browser journeys (e2e/) both use it.
package localsys

import (
	"bytes"
	"context"
	"encoding/base64"
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
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
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
	Name    string
	URL     string // with a trailing slash
	Metrics string // its Prometheus /metrics, on a port of its own
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
	// WebhookCatcherURL is the local receiver of the general portal's webhooks (trailing slash).
	WebhookCatcherURL string
	// StripeAPIBase is the local stripe-mock the tarjetas portal charges through (no slash).
	StripeAPIBase string

	opts          Options
	runner        *runner
	webhookSecret string
	env           *envtest.Environment
	children      []*exec.Cmd

	mu     sync.Mutex
	logged map[string]bool // log files (re)started this run: later starts append
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
	if s.runner, err = newRunner(s, s.Client, o.Progress); err != nil {
		return nil, err
	}
	s.step("starting the webhook catcher (the general portal's endpoint)")
	if err := s.startCatcher(ctx); err != nil {
		return nil, err
	}
	s.step("starting stripe-mock (Stripe's API stub, the tarjetas portal's processor)")
	if err := s.startStripeMock(ctx); err != nil {
		return nil, err
	}
	stripeWebhookSecret, err := loadOrCreate(filepath.Join(o.State, "stripe-webhook-secret"), func() string { return "whsec_" + randomHex(24) })
	if err != nil {
		return nil, err
	}
	var ports []string
	for _, name := range []string{"general", "estrategicas", "tarjetas"} {
		key := types.NamespacedName{Namespace: "default", Name: name}
		// general and estrategicas serve the same customers; tarjetas keeps its own ledger
		// (its cards are Stripe's, its customers Stripe customers).
		s.runner.shared[key] = name != "tarjetas"
		port, err := s.runner.port(key.String())
		if err != nil {
			return nil, err
		}
		ports = append(ports, port)
	}
	portals := localPortals(ports, s.WebhookCatcherURL+"hooks")
	s.step("applying the local portals: general (every method), estrategicas (bank transfer and direct debit only) and tarjetas (cards through Stripe, at stripe-mock)")
	if err := applyLocalPortals(ctx, s.Client, portals, localSecrets{smtpPort: smtpPort, apiKey: s.MerchantAPIKey,
		webhookSecret: s.webhookSecret, stripeAPIBase: s.StripeAPIBase, stripeWebhookSecret: stripeWebhookSecret}); err != nil {
		return nil, err
	}
	s.step("serving every CustomerPortal, in any namespace, with a local portal process (apply one and it appears here)")
	if err := s.runner.watch(ctx, s.Config); err != nil {
		return nil, err
	}
	for _, p := range portals {
		if err := WaitHTTP(ctx, p.url()+"readyz", 2*time.Minute); err != nil {
			return nil, fmt.Errorf("portal %s did not become ready (see %s): %w", p.name, filepath.Join(o.State, p.name+".log"), err)
		}
		metrics, _ := s.runner.port("default/" + p.name + "#metrics")
		s.Portals = append(s.Portals, Portal{Name: p.name, URL: p.url(), Metrics: "http://127.0.0.1:" + metrics + "/metrics"})
	}

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
	metrics := make([]string, len(s.Portals))
	for i, p := range s.Portals {
		metrics[i] = p.Metrics
	}
	return []string{
		"KUBECONFIG=" + s.Kubeconfig,
		"PORTAL_URLS=" + strings.Join(urls, ","),
		"PORTAL_METRICS_URLS=" + strings.Join(metrics, ","),
		"WEBHOOK_CATCHER_URL=" + s.WebhookCatcherURL,
		"STRIPE_API_BASE=" + s.StripeAPIBase,
		"MAILPIT_URL=" + s.MailpitURL,
		"MERCHANT_API_URL=" + s.MerchantAPIURL,
		"MERCHANT_API_KEY=" + s.MerchantAPIKey,
		"DEMO_SESSION_URL=" + s.DemoSessionURL,
	}
}

// Stop ends the portals, every other process in reverse start order, then the control plane.
func (s *System) Stop() {
	if s.runner != nil {
		s.runner.stopAll()
	}
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
		"--local-urls", // portals are served by local processes (see runner), not through a Service
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

// startStripeMock runs stripe-mock (bin/k8s/stripe-mock, built by hack/build-tools.sh) on ports
// remembered in ports.json like the portals', so the tarjetas portal's api_base stays the same
// across runs. It keeps no state: it checks requests against Stripe's OpenAPI document and
// answers with its fixtures.
func (s *System) startStripeMock(ctx context.Context) error {
	httpPort, err := s.runner.port("stripe-mock")
	if err != nil {
		return err
	}
	httpsPort, err := s.runner.port("stripe-mock#https")
	if err != nil {
		return err
	}
	if _, err := s.spawn(ctx, "stripe-mock", nil, filepath.Join(s.opts.Assets, "stripe-mock"),
		"-http-addr", "127.0.0.1:"+httpPort, "-https-addr", "127.0.0.1:"+httpsPort); err != nil {
		return err
	}
	s.StripeAPIBase = "http://127.0.0.1:" + httpPort
	// It answers only authenticated requests; any test key will do.
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.StripeAPIBase+"/v1/balance", nil)
		req.SetBasicAuth("sk_test_PorteroLocal", "")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v1/balance: %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("stripe-mock did not answer (see %s): %w", filepath.Join(s.opts.State, "stripe-mock.log"), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startCatcher runs the webhook catcher on its remembered port, with the signing secret kept in
// the state directory.
func (s *System) startCatcher(ctx context.Context) error {
	secret, err := loadOrCreate(filepath.Join(s.opts.State, "webhook-secret"), func() string {
		return "whsec_" + base64.StdEncoding.EncodeToString([]byte(randomHex(16)))
	})
	if err != nil {
		return err
	}
	c, err := newCatcher(secret)
	if err != nil {
		return err
	}
	port, err := s.runner.port("webhook-catcher")
	if err != nil {
		return err
	}
	if err := c.serve(ctx, port); err != nil {
		return fmt.Errorf("webhook catcher: %w", err)
	}
	s.webhookSecret = secret
	s.WebhookCatcherURL = "http://127.0.0.1:" + port + "/"
	return nil
}
