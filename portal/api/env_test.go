package api

// Test environment: a real kube-apiserver and etcd (internal/testenv) with the operator's two
// real reconcilers running (CustomerPortal: the portal's Role and status.url; PortalSession: the
// link Secret), a real ledger on an SQLite file, and the API talking to Kubernetes as the portal's
// own ServiceAccount, so the tests see exactly the permissions a portal pod has.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/portero-dev/portero/internal/testlog"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/charging/live"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/mail"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/payments/stripe"
	"github.com/portero-dev/portero/portal/rules"
)

var (
	env    *testenv.Env
	k8s    client.Client // admin: for fixtures and for checking what the API wrote
	mailer = &fakeMailer{}
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err == nil {
		var stop func()
		if stop, err = startOperator(); err == nil {
			code = m.Run()
			stop()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = env.Stop()
	pg.Stop()
	os.Exit(code)
}

// startOperator runs the CustomerPortal and PortalSession reconcilers as cmd/manager does.
func startOperator() (func(), error) {
	_, stop, err := testenv.StartManager(env.Config, controllers.ManagerOptions(env.Scheme, true), func(m manager.Manager) error {
		if err := (&controllers.CustomerPortalReconciler{PortalImage: "portero:test", Client: m.GetClient(),
			APIReader: m.GetAPIReader(), Scheme: m.GetScheme(), Recorder: m.GetEventRecorder("customerportal")}).SetupWithManager(m); err != nil {
			return err
		}
		if err := (&controllers.PortalSessionReconciler{Mailer: mailer}).SetupWithManager(m); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = stop() }, nil
}

// fakeMailer records the link e-mails the PortalSession controller sends.
type fakeMailer struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (f *fakeMailer) Send(_ context.Context, m mail.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	return nil
}

func (f *fakeMailer) to(addr string) []mail.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mail.Message
	for _, m := range f.sent {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// eventually polls f until it returns nil or 30 s pass; it never sleeps for timing, only
// between polls.
func eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still not true after 30s: %v", what, err)
}

const (
	testKey     = "pk_test_0123456789abcdefghijklmnopqrstuvwxyz"
	portalName  = "acme"
	portalURL   = "https://billing.acme.example/"
	keySecret   = "acme-api-key"
	smtpSecret  = "acme-smtp"
	testSandbox = "portero-api-test-sandbox-secret-0123456789"
)

// fixture is one test's portal: its namespace, CustomerPortal, ledger and API server.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	ns      string
	portal  types.NamespacedName
	api     *API
	server  *httptest.Server
	store   *ledger.Store
	dbPath  string
	proc    *countingProcessor
	logs    *testlog.Buffer
	reg     *prometheus.Registry
	rules   *rules.Rules
	clock   *testClock
	bodies  *testlog.Buffer // every response body, for the card-data search
	checker *docChecker
}

// newFixture creates a namespace with a portal (mutated by mutate) whose merchant API key is
// testKey, waits for the operator to give it its Role and URL, and starts the API as the portal's
// ServiceAccount.
func newFixture(t testing.TB, mutate func(*billingv1alpha1.CustomerPortal)) *fixture {
	t.Helper()
	return newFixtureOn(t, ledger.SQLite, mutate)
}

// newFixtureOn is newFixture with the ledger on the given engine.
func newFixtureOn(t testing.TB, engine ledger.Engine, mutate func(*billingv1alpha1.CustomerPortal)) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, logs: &testlog.Buffer{}, bodies: &testlog.Buffer{}, reg: prometheus.NewRegistry(),
		clock: &testClock{}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "api-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.ns = ns.Name
	f.portal = types.NamespacedName{Namespace: f.ns, Name: portalName}
	f.createSecret(keySecret, map[string]string{"key": testKey})
	f.createSecret(smtpSecret, map[string]string{"host": "smtp.acme.example"})
	p := &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: portalName},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme Billing",
			Email:       &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: smtpSecret}, From: "Acme <billing@acme.example>"},
			MerchantAPI: &billingv1alpha1.MerchantAPI{KeySecretRef: billingv1alpha1.APIKeySecretReference{Name: keySecret}},
			Exposure:    &billingv1alpha1.Exposure{PublicURL: portalURL},
			Access: billingv1alpha1.Access{Sessions: billingv1alpha1.SessionAccess{
				DefaultTTL: &metav1.Duration{Duration: time.Hour}, MaxTTL: &metav1.Duration{Duration: 24 * time.Hour}}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	f.waitForOperator()
	f.startRules()
	f.openLedger(engine)
	f.startAPI()
	return f
}

func (f *fixture) createSecret(name string, data map[string]string) {
	f.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, StringData: data}
	if err := k8s.Create(f.ctx, s); err != nil {
		f.t.Fatal(err)
	}
}

// waitForOperator waits for the portal's RoleBinding (its Role is applied just before) and URL.
func (f *fixture) waitForOperator() {
	f.t.Helper()
	eventually(f.t, "operator set up the portal", func() error {
		rb := &rbacv1.RoleBinding{}
		if err := k8s.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: portalName + "-portal"}, rb); err != nil {
			return err
		}
		p := &billingv1alpha1.CustomerPortal{}
		if err := k8s.Get(f.ctx, f.portal, p); err != nil {
			return err
		}
		if p.Status.URL == "" {
			return fmt.Errorf("no status.url yet")
		}
		return nil
	})
}

// startRules starts the portal's informers with the portal ServiceAccount's identity.
func (f *fixture) startRules() {
	f.t.Helper()
	user, err := env.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + f.ns + ":" + portalName + "-portal",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + f.ns, "system:authenticated"},
	}, env.Config)
	if err != nil {
		f.t.Fatal(err)
	}
	cfg := user.Config()
	cfg.QPS, cfg.Burst = 200, 400
	if f.rules, err = rules.Start(f.ctx, cfg, f.portal); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) openLedger(engine ledger.Engine) {
	f.t.Helper()
	sb, err := sandbox.New([]byte(testSandbox), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.proc = newCountingProcessor(sb)
	f.dbPath = filepath.Join(f.t.TempDir(), "ledger.db")
	dsn := "sqlite://" + f.dbPath
	if engine == ledger.Postgres {
		dsn = postgresDSN(f.t)
	}
	f.store, err = ledger.Open(f.ctx, dsn, ledger.Options{
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { f.store.Close() })
}

// processors is the portal's processor as production reads it (spec.processor and its Secret,
// live), with the sandbox counting its charges.
func (f *fixture) processors() *live.Processors {
	f.t.Helper()
	reg := payments.NewRegistry()
	reg.Register(sandbox.Type, func(payments.Config) (payments.Adapter, error) { return f.proc, nil })
	reg.Register(stripe.Type, stripe.Factory)
	p, err := live.New(live.Options{Rules: f.rules, Secrets: f.rules.Client, Recorder: f.store, Registry: reg,
		SandboxSecret: []byte(testSandbox), Log: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) startAPI() {
	f.api = newAPI(Deps{
		Store:      f.store,
		Processors: f.processors(),
		Rules:      f.rules,
		Now:        f.clock.now,
		Log:        slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:   f.reg,
	})
	// Mounted as cmd/portal mounts it.
	mux := http.NewServeMux()
	mux.Handle(Prefix, f.api)
	f.server = httptest.NewServer(mux)
	f.t.Cleanup(f.server.Close)
	f.checker = loadDoc(f.t)
}

// pg is a throwaway PostgreSQL server (Debian's binaries) shared by this test binary, or the
// database PORTERO_TEST_POSTGRES_DSN names; see portal/ledger/ledgertest.
var pg ledgertest.Postgres

// postgresDSN returns a DSN for a fresh schema, dropped when the test ends.
func postgresDSN(t testing.TB) string { return pg.DSN(t) }

// testClock is the API's clock: real time unless a test pins it.
type testClock struct {
	mu     sync.Mutex
	pinned time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pinned.IsZero() {
		return c.pinned
	}
	return time.Now()
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errBody decodes an error response.
func (r response) err(t testing.TB) errorBody {
	t.Helper()
	var e errorBody
	r.json(t, &e)
	return e
}

// req describes one request; zero values mean: the right key, JSON content type, no extras.
type req struct {
	method, path string
	body         any    // marshalled as JSON, or sent as is when a string or []byte
	key          string // "-" for no Authorization header
	contentType  string
	headers      map[string]string
}

// do sends a request and checks every error response against the OpenAPI document.
func (f *fixture) do(r req) response {
	f.t.Helper()
	res, err := f.send(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// send is do for goroutines other than the test's: it reports what went wrong instead of failing
// the test, which only the test's goroutine may do.
func (f *fixture) send(r req) (response, error) {
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return response{}, fmt.Errorf("%s %s: encode the body: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(f.ctx, r.method, f.server.URL+r.path, body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if r.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	switch r.key {
	case "":
		hr.Header.Set("Authorization", "Bearer "+testKey)
	case "-":
	default:
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read the answer: %w", r.method, r.path, err)
	}
	f.bodies.Write(append(raw, '\n'))
	if res.StatusCode >= 400 {
		if err := f.checker.check("Error", raw); err != nil {
			return response{}, fmt.Errorf("%s %s: the %d answer does not match the documented Error schema: %w\n%s", r.method, r.path, res.StatusCode, err, raw)
		}
	}
	return response{status: res.StatusCode, header: res.Header, body: raw}, nil
}

// expect sends a request and fails unless it got status (and, for errors, code).
func (f *fixture) expect(r req, status int, code string) response {
	f.t.Helper()
	res := f.do(r)
	if res.status != status {
		f.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, res.status, status, res.body)
	}
	if code != "" {
		if got := res.err(f.t).Code; got != code {
			f.t.Fatalf("%s %s: code %q, want %q: %s", r.method, r.path, got, code, res.body)
		}
	}
	return res
}

// Fixture helpers on the API itself: tests build state the way a merchant would.

func (f *fixture) customer(email string) customerJSON {
	f.t.Helper()
	var c customerJSON
	f.expect(req{method: "POST", path: "/api/v1/customers", body: map[string]any{"email": email, "name": "Test"}}, 201, "").json(f.t, &c)
	return c
}

// cardExpYear is an expiry year a few years ahead. The sandbox and the ledger behind the API
// check expiry on the real clock, so a year written out would fail every card once it passed.
func cardExpYear() int { return time.Now().Year() + 4 }

func (f *fixture) addCard(customerID, number, cvc string) paymentMethodJSON {
	f.t.Helper()
	var m paymentMethodJSON
	f.expect(req{method: "POST", path: "/api/v1/customers/" + customerID + "/payment_methods",
		body: map[string]any{"type": "card", "card": map[string]any{"number": number, "exp_month": 12, "exp_year": cardExpYear(), "cvc": cvc}}},
		201, "").json(f.t, &m)
	return m
}

func (f *fixture) addMethod(customerID string, body map[string]any) paymentMethodJSON {
	f.t.Helper()
	var m paymentMethodJSON
	f.expect(req{method: "POST", path: "/api/v1/customers/" + customerID + "/payment_methods", body: body}, 201, "").json(f.t, &m)
	return m
}

var keySeq struct {
	mu sync.Mutex
	n  int
}

func newKey() string {
	keySeq.mu.Lock()
	defer keySeq.mu.Unlock()
	keySeq.n++
	return fmt.Sprintf("test-key-%d-%d", time.Now().UnixNano(), keySeq.n)
}

func (f *fixture) pay(customerID string, amount int64) paymentJSON {
	f.t.Helper()
	var p paymentJSON
	f.expect(req{method: "POST", path: "/api/v1/payments", headers: map[string]string{"Idempotency-Key": newKey()},
		body: map[string]any{"customer_id": customerID, "amount": amount, "currency": "ARS", "description": "test"}},
		201, "").json(f.t, &p)
	return p
}

func (f *fixture) payments(customerID string) []paymentJSON {
	f.t.Helper()
	var l listResponse[paymentJSON]
	f.expect(req{method: "GET", path: "/api/v1/payments?customer_id=" + customerID + "&limit=100"}, 200, "").json(f.t, &l)
	return l.Data
}

// patchPortal changes the portal's spec and waits until the API's informer sees it.
func (f *fixture) patchPortal(mutate func(*billingv1alpha1.CustomerPortal), seen func(*billingv1alpha1.CustomerPortal) bool) {
	f.t.Helper()
	p := &billingv1alpha1.CustomerPortal{}
	if err := k8s.Get(f.ctx, f.portal, p); err != nil {
		f.t.Fatal(err)
	}
	base := p.DeepCopy()
	mutate(p)
	if err := k8s.Patch(f.ctx, p, client.MergeFrom(base)); err != nil {
		f.t.Fatal(err)
	}
	eventually(f.t, "portal change seen by the API", func() error {
		if cur := f.rules.Portal(f.ctx); cur == nil || !seen(cur) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// countingProcessor wraps the sandbox and counts charges per payment: how the tests prove
// "charged exactly once".
// countingProcessor is the sandbox counting its charges per payment. Embedding keeps the
// sandbox's optional interfaces (card tokenizing, pending confirmation), which the charging
// driver looks for.
type countingProcessor struct {
	*sandbox.Adapter
	mu      sync.Mutex
	charges map[string]int
}

func newCountingProcessor(p *sandbox.Adapter) *countingProcessor {
	return &countingProcessor{Adapter: p, charges: map[string]int{}}
}

func (c *countingProcessor) Charge(ctx context.Context, r payments.ChargeRequest) (payments.ChargeResult, error) {
	c.mu.Lock()
	id, _, _ := strings.Cut(r.IdempotencyKey, "/")
	c.charges[id]++
	c.mu.Unlock()
	return c.Adapter.Charge(ctx, r)
}

func (c *countingProcessor) chargesFor(paymentID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.charges[paymentID]
}
