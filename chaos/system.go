package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/internal/localsys"
	"github.com/portero-dev/portero/internal/testenv"
)

// system is the real Portero of one scenario: a fresh kube-apiserver + etcd with the CRDs, the
// operator (bin/manager) and portal servers (bin/portal) as processes, and Mailpit when asked.
type system struct {
	cfg     Config
	dir     string
	cluster *bench.Cluster
	ns      string
	apiKey  string
	mail    *testenv.Mailpit
	smtp    *switchable // with systemOptions.smtpProxy
	portals []*portalProc
	// restarted are control-plane processes started again by the harness (scenario 5), which
	// envtest does not know of.
	restarted []*exec.Cmd
	sigkilled int // of the control-plane processes stopped, those that needed SIGKILL
}

type systemOptions struct {
	manager bool
	mailpit bool
	// smtpProxy puts a switchable proxy in front of Mailpit and names it in the SMTP Secret,
	// so SMTP can be taken down and brought back.
	smtpProxy bool
}

func startSystem(ctx context.Context, cfg Config, name string, o systemOptions) (_ *system, err error) {
	dir := filepath.Join(cfg.Work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, b := range []string{"manager", "portal"} {
		if _, err := os.Stat(filepath.Join(cfg.Bin, b)); err != nil {
			return nil, fmt.Errorf("%s binary missing in %s (make build): %w", b, cfg.Bin, err)
		}
	}
	s := &system{cfg: cfg, dir: dir, ns: "chaos", apiKey: randomHex(24)}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	cfg.step("%s: starting kube-apiserver and etcd", name)
	if s.cluster, err = bench.StartCluster(filepath.Join(dir, "cluster")); err != nil {
		return nil, err
	}
	if err := s.cluster.Namespace(ctx, s.ns); err != nil {
		return nil, err
	}
	if o.manager {
		cfg.step("%s: starting the operator", name)
		dm, err := bench.ReadDeployedManager(cfg.Root)
		if err != nil {
			return nil, err
		}
		if err := s.cluster.StartManager(ctx, bench.ManagerOptions{Bin: filepath.Join(cfg.Bin, "manager"), Env: dm.Env, MemoryLimit: dm.MemoryLimit}); err != nil {
			return nil, err
		}
	}
	smtpPort := ""
	if o.mailpit {
		if s.mail, err = testenv.StartMailpitIn(dir, testenv.MailpitOptions{}); err != nil {
			return nil, err
		}
		smtpPort = fmt.Sprint(s.mail.SMTPPort)
		if o.smtpProxy {
			if s.smtp, err = newSwitchableProxy(fmt.Sprintf("127.0.0.1:%d", s.mail.SMTPPort)); err != nil {
				return nil, err
			}
			smtpPort = s.smtp.Port()
		}
	}
	if err := bench.CreatePortalSecrets(ctx, s.cluster.Client, s.ns, smtpPort, s.apiKey); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *system) stop() {
	for _, p := range s.portals {
		p.proc.Stop()
	}
	for _, c := range s.restarted {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range s.restarted {
		done := make(chan struct{})
		go func() { _, _ = c.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
		}
	}
	if s.smtp != nil {
		s.smtp.Close()
	}
	if s.mail != nil {
		_ = s.mail.Stop()
	}
	s.cluster.Stop()
}

// portalProc is one portal server process; it may be killed and started again on the same
// port and storage.
type portalProc struct {
	name, url string
	env, args []string
	bin, dir  string
	proc      *bench.Process
	starts    int
}

// portalStorage is where a portal keeps its ledger: a data directory (SQLite) or a PostgreSQL
// DSN (shared by replicas, with the processor secret they must share too).
type portalStorage struct {
	dataDir     string
	postgresDSN string
}

// createPortal makes a CustomerPortal served at a free loopback port and waits for the
// operator's status.url.
func (s *system) createPortal(ctx context.Context, name string, mutate func(*billingv1alpha1.CustomerPortalSpec)) (string, error) {
	port, err := bench.FreePort()
	if err != nil {
		return "", err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	spec := bench.PortalSpec(url)
	if mutate != nil {
		mutate(&spec)
	}
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name}, Spec: spec}
	if err := s.cluster.Client.Create(ctx, p); err != nil {
		return "", fmt.Errorf("create CustomerPortal %s: %w", name, err)
	}
	return url, nil
}

// runPortal starts a portal server for the CustomerPortal name listening at url.
func (s *system) runPortal(ctx context.Context, name, url string, st portalStorage) (*portalProc, error) {
	listen := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	p := &portalProc{name: name, url: url, bin: filepath.Join(s.cfg.Bin, "portal"), dir: s.dir,
		env:  []string{"KUBECONFIG=" + s.cluster.Kubeconfig},
		args: []string{"--portal=" + s.ns + "/" + name, "--listen=" + listen, "--kubeconfig=" + s.cluster.Kubeconfig, "--log-level=warn"}}
	switch {
	case st.postgresDSN != "":
		p.env = append(p.env, "PORTERO_DATABASE_DSN="+st.postgresDSN, "PORTERO_PROCESSOR_SECRET="+sharedProcessorSecret)
		p.args = append(p.args, "--database-dsn-env=PORTERO_DATABASE_DSN")
	default:
		p.args = append(p.args, "--data-dir="+st.dataDir)
	}
	s.portals = append(s.portals, p)
	return p, p.start(ctx)
}

// sharedProcessorSecret is the sandbox secret every replica of a PostgreSQL portal shares.
var sharedProcessorSecret = randomHex(32)

func (p *portalProc) start(ctx context.Context) error {
	p.starts++
	proc, err := bench.Spawn(p.dir, fmt.Sprintf("portal-%s-%d", p.name, p.starts), p.env, p.bin, p.args...)
	if err != nil {
		return err
	}
	p.proc = proc
	if err := localsys.WaitHTTP(ctx, p.url+"readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("portal %s not ready (log %s): %w", p.name, proc.LogPath, err)
	}
	return nil
}

// kill ends the portal with SIGKILL, as the OOM killer or a node failure does: no shutdown.
func (p *portalProc) kill() error {
	if err := syscall.Kill(p.proc.Pid(), syscall.SIGKILL); err != nil {
		return err
	}
	_ = p.proc.Wait(context.Background())
	return nil
}

// merchant is the merchant's backend calling the portal's API.
type merchant struct {
	base, key string
	c         *http.Client
}

func (s *system) merchant(portalURL string) merchant {
	return merchant{base: strings.TrimSuffix(portalURL, "/") + "/api/v1", key: s.apiKey, c: &http.Client{Timeout: 30 * time.Second}}
}

// apiError is a non-2xx answer of the merchant API.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// call sends in as JSON and decodes the answer into out. A POST carries an Idempotency-Key:
// key, or a fresh one.
func (m merchant) call(ctx context.Context, method, path string, in, out any) error {
	return m.callKey(ctx, method, path, "", in, out)
}

func (m merchant) callKey(ctx context.Context, method, path, key string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.key)
	if method == http.MethodPost {
		if key == "" {
			key = randomHex(16)
		}
		req.Header.Set("Idempotency-Key", key)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &apiError{Status: resp.StatusCode, Body: string(raw)}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

type idJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	URL    string `json:"url"`
}

// customer creates a customer and returns its id.
func (m merchant) customer(ctx context.Context, email, name string) (string, error) {
	var out idJSON
	err := m.call(ctx, http.MethodPost, "/customers", map[string]any{"email": email, "name": name}, &out)
	return out.ID, err
}

// card adds a Visa test card to a customer.
func (m merchant) card(ctx context.Context, customerID string) (string, error) {
	var out idJSON
	err := m.call(ctx, http.MethodPost, "/customers/"+customerID+"/payment_methods", map[string]any{"type": "card",
		"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123"}}, &out)
	return out.ID, err
}

// payment creates a payment for the customer (charged at once, or incomplete without a method).
func (m merchant) payment(ctx context.Context, customerID, key string, amount int64) (idJSON, error) {
	var out idJSON
	err := m.callKey(ctx, http.MethodPost, "/payments", key, map[string]any{"customer_id": customerID, "amount": amount,
		"currency": "ARS", "description": "Cuota"}, &out)
	return out, err
}

// subscription creates a monthly subscription.
func (m merchant) subscription(ctx context.Context, customerID string) (string, error) {
	var out idJSON
	err := m.call(ctx, http.MethodPost, "/subscriptions", map[string]any{"customer_id": customerID, "plan": "Plan Pro",
		"amount": 250000, "currency": "ARS", "interval": "month"}, &out)
	return out.ID, err
}

// session asks for a session link for the customer (the operator mints it).
func (m merchant) session(ctx context.Context, customerID string) (string, error) {
	var out idJSON
	if err := m.call(ctx, http.MethodPost, "/portal_sessions", map[string]any{"customer_id": customerID, "ttl": "2h"}, &out); err != nil {
		return "", err
	}
	if out.URL == "" {
		return "", errors.New("portal session without a url")
	}
	return out.URL, nil
}

// linkSecrets counts, per PortalSession, the link Secrets in the namespace.
func (s *system) linkSecrets(ctx context.Context) (map[string]int, error) {
	var list corev1.SecretList
	if err := s.cluster.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, sec := range list.Items {
		if sec.Namespace != s.ns || !strings.HasSuffix(sec.Name, "-link") {
			continue
		}
		out[strings.TrimSuffix(sec.Name, "-link")]++
	}
	return out, nil
}

func clientKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}
