package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"github.com/portero-dev/portero/internal/testlog"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/charging/live"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/rules"
)

// The web tests run against the real API server (the portal's rules and sessions come from its
// informers), a real SQLite ledger with the sandbox processor, and, for the login, a real
// Mailpit. Time is a fake clock shared by the ledger, the auth store and the handler.

var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	flag.Parse()
	if w := flag.Lookup("test.fuzzworker"); w != nil && w.Value.String() == "true" {
		// Fuzz workers run only the fuzz targets, which need no API server.
		os.Exit(m.Run())
	}
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	testPG.Stop()
	_ = env.Stop()
	os.Exit(code)
}

// testPG is the package's PostgreSQL server, started by the first test that asks for it
// (withPostgres).
var testPG ledgertest.Postgres

const testNamespace = "default"

var portalSeq atomic.Int64

type fixture struct {
	t      testing.TB
	ctx    context.Context
	clock  *clocktesting.FakeClock
	portal *billingv1alpha1.CustomerPortal
	rules  *rules.Rules
	// ledger is the ledger with a charging driver in front (sandbox), for fixtures; the
	// handler gets the ledger itself and the live processor (procs).
	ledger  *flowtest.Flow
	procs   *live.Processors
	auth    *auth.Store
	h       *Handler
	reg     *prometheus.Registry
	logs    *testlog.Buffer
	mailpit *testenv.Mailpit
	// dbDir holds the ledger's SQLite files.
	dbDir string
	// postgres puts the ledger (and auth) on PostgreSQL instead of SQLite.
	postgres bool
	// wrapRules, if set, stands between the handler and the rules informer.
	wrapRules func(Rules) Rules
}

type fixtureOption func(*fixture, *billingv1alpha1.CustomerPortalSpec)

// withMailpit starts a Mailpit and points the portal's SMTP Secret at it.
func withMailpit() fixtureOption {
	return func(f *fixture, spec *billingv1alpha1.CustomerPortalSpec) {
		f.mailpit = testenv.StartMailpit(f.t, testenv.MailpitOptions{})
	}
}

// withPostgres puts the ledger on a fresh PostgreSQL schema.
func withPostgres() fixtureOption {
	return func(f *fixture, _ *billingv1alpha1.CustomerPortalSpec) { f.postgres = true }
}

// withRules puts wrap between the handler and the informer, to show it objects the API server
// would no longer accept (stored under an older schema).
func withRules(wrap func(Rules) Rules) fixtureOption {
	return func(f *fixture, _ *billingv1alpha1.CustomerPortalSpec) { f.wrapRules = wrap }
}

func withSpec(fn func(*billingv1alpha1.CustomerPortalSpec)) fixtureOption {
	return func(_ *fixture, spec *billingv1alpha1.CustomerPortalSpec) { fn(spec) }
}

// newFixture creates a CustomerPortal of its own (so tests can change its rules freely), its
// rules informer, a ledger and an auth store on a fresh SQLite file, and the handler.
func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, clock: clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Second)), logs: &testlog.Buffer{}}
	name := fmt.Sprintf("portal-%d", portalSeq.Add(1))
	spec := billingv1alpha1.CustomerPortalSpec{
		DisplayName:  "Acme Billing",
		Permissions:  billingv1alpha1.Permissions{CancelSubscriptions: ptr.To(true)},
		Cancellation: billingv1alpha1.Cancellation{CollectReason: true},
		ReturnURL:    "https://acme.example/account",
		Branding:     billingv1alpha1.Branding{SupportEmail: "ayuda@acme.example", PrimaryColor: "#0a7cff", LogoURL: "https://cdn.acme.example/logo.png"},
		Email:        &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: name + "-smtp"}, From: "Acme <billing@acme.example>"},
		OTP:          billingv1alpha1.OTP{Length: 6, MaxAttempts: 3, TTL: &metav1.Duration{Duration: 10 * time.Minute}, ResendCooldown: &metav1.Duration{Duration: 30 * time.Second}},
	}
	for _, o := range opts {
		o(f, &spec)
	}
	smtp := map[string][]byte{"host": []byte("127.0.0.1"), "port": []byte("1"), "tls": []byte("none")}
	if f.mailpit != nil {
		smtp["port"] = []byte(fmt.Sprint(f.mailpit.SMTPPort))
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name + "-smtp"}, Data: smtp}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.portal = &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name}, Spec: spec}
	if err := k8s.Create(ctx, f.portal); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), f.portal)
		_ = k8s.Delete(context.Background(), sec)
	})
	var err error
	if f.rules, err = rules.Start(ctx, env.Config, types.NamespacedName{Namespace: testNamespace, Name: name}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var dsn string
	if f.postgres {
		dsn = testPG.DSN(t)
	} else {
		dsn = ledgertest.SQLiteDSN(t)
		f.dbDir = filepath.Dir(strings.TrimPrefix(dsn, "sqlite://"))
	}
	st, err := ledger.Open(ctx, dsn, ledger.Options{Now: f.clock.Now, Logger: log.With("component", "ledger")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if f.ledger, err = flowtest.NewSandbox(st, []byte(testSandboxSecret), f.clock.Now); err != nil {
		t.Fatal(err)
	}
	// The portal's processor as production reads it: spec.processor and its Secret, live.
	if f.procs, err = live.New(live.Options{Rules: f.rules, Secrets: f.rules.Client, Recorder: st,
		SandboxSecret: []byte(testSandboxSecret), Log: log.With("component", "charging"), Now: f.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if f.auth, err = auth.OpenLedger(ctx, st, auth.Options{Clock: f.clock, Logger: log}); err != nil {
		t.Fatal(err)
	}
	f.reg = prometheus.NewRegistry()
	var r Rules = f.rules
	if f.wrapRules != nil {
		r = f.wrapRules(r)
	}
	f.h, err = New(Options{Ledger: f.ledger.Store, Processors: f.procs, Auth: f.auth, Rules: r, Mailer: SecretMailer{Reader: f.rules.Client},
		Registry: f.reg, Clock: f.clock, Logger: log, SendTimeout: 10 * time.Second,
		// f.session waits for the informer, so only made-up tokens wait: briefly, to keep tests quick.
		LinkWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.h.Close(context.Background()) })
	return f
}

// updatePortal changes the CustomerPortal and waits until the informer has the change: what a
// `kubectl patch` does, with the portal still running.
func (f *fixture) updatePortal(fn func(*billingv1alpha1.CustomerPortalSpec)) {
	f.t.Helper()
	cur := &billingv1alpha1.CustomerPortal{}
	if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(f.portal), cur); err != nil {
		f.t.Fatal(err)
	}
	base := cur.DeepCopy()
	fn(&cur.Spec)
	if err := k8s.Patch(f.ctx, cur, client.MergeFrom(base)); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the informer sees the portal change", func() bool {
		p := f.rules.Portal(f.ctx)
		return p != nil && p.Generation == cur.Generation
	})
}

// waitFor polls an informer-backed condition (the API server's watch is asynchronous).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// customer creates a ledger customer.
func (f *fixture) customer(email, name string) ledger.Customer {
	f.t.Helper()
	c, err := f.ledger.CreateCustomer(f.ctx, ledger.NewCustomer{Email: email, Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// testSandboxSecret is the key of the portal's sandbox (and of the fixtures' cards).
const testSandboxSecret = "portero-web-test-sandbox-secret-0123456789"

func (f *fixture) addMethod(c ledger.Customer, in flowtest.Method) ledger.PaymentMethod {
	f.t.Helper()
	m, err := f.ledger.AddPaymentMethod(f.ctx, c.ID, in)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func cardInput(number string) flowtest.Method {
	return flowtest.Method{Type: payments.MethodCard, Card: &payments.CardDetails{Number: number, ExpMonth: 12, ExpYear: cardExpYear(), CVC: "123"}}
}

const (
	goodCBU = "0110599552000000123456"
	goodCVU = "0000003110000000123456"
)

// session creates a PortalSession for the portal with an Active status, as the controller
// would, and returns it with its raw token.
func (f *fixture) session(name string, ref billingv1alpha1.CustomerReference, flow *billingv1alpha1.Flow, ttl time.Duration) (*billingv1alpha1.PortalSession, string) {
	f.t.Helper()
	tok := auth.NewPreSession() // any 256-bit base64url value is a valid token
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: f.portal.Name + "-" + name},
		Spec:       billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: f.portal.Name}, Customer: ref, Flow: flow},
	}
	if err := k8s.Create(f.ctx, s); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
	s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hashToken(tok),
		ExpiresAt: &metav1.Time{Time: f.clock.Now().Add(ttl)}}
	if err := k8s.Status().Update(f.ctx, s); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the informer sees the session", func() bool {
		got := f.rules.SessionByTokenHash(f.ctx, hashToken(tok))
		return got != nil && got.Status.Phase == billingv1alpha1.SessionActive
	})
	return s, tok
}

// browser keeps cookies between requests to the handler, like a real one (minus the network).
type browser struct {
	f       *fixture
	host    string
	ip      string
	cookies map[string]string
	last    *response
}

type response struct {
	Code   int
	Body   string
	Header http.Header
}

func (r *response) location() string { return r.Header.Get("Location") }

func (f *fixture) browser() *browser {
	return &browser{f: f, host: "billing.acme.example", ip: "203.0.113.7", cookies: map[string]string{}}
}

func (b *browser) do(method, path string, form url.Values, hdr http.Header) *response {
	b.f.t.Helper()
	return b.doOn(b.f.h, method, path, form, hdr)
}

// doOn is do against another handler (of the same fixture's stores).
func (b *browser) doOn(h http.Handler, method, path string, form url.Values, hdr http.Header) *response {
	b.f.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, "http://"+b.host+path, body)
	req.RemoteAddr = b.ip + ":40000"
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	r := &response{Code: rec.Code, Body: rec.Body.String(), Header: rec.Header()}
	if method == http.MethodGet {
		b.last = r
	}
	return r
}

func (b *browser) get(path string) *response {
	b.f.t.Helper()
	return b.do(http.MethodGet, path, nil, nil)
}

// submit posts a form with the CSRF token of the last page fetched, as a browser submitting
// that page's form would.
func (b *browser) submit(path string, form url.Values) *response {
	b.f.t.Helper()
	form = cloneForm(form) // the caller's form stays without a token: a later forge of it is one
	form.Set("csrf", b.csrf())
	return b.do(http.MethodPost, path, form, nil)
}

// forge posts a hand-made form without any CSRF token (one in form is dropped).
func (b *browser) forge(path string, form url.Values) *response {
	b.f.t.Helper()
	form = cloneForm(form)
	form.Del("csrf")
	return b.do(http.MethodPost, path, form, nil)
}

func cloneForm(form url.Values) url.Values {
	out := url.Values{}
	for k, vs := range form {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	b.f.t.Helper()
	if b.last == nil {
		b.f.t.Fatal("no page fetched yet to take a CSRF token from")
	}
	m := csrfRE.FindStringSubmatch(b.last.Body)
	if m == nil {
		b.f.t.Fatalf("the last page has no CSRF token:\n%s", b.last.Body)
	}
	return m[1]
}

// signIn gives the browser a session for the customer, as the e-mail login would.
func (b *browser) signIn(c ledger.Customer) {
	b.f.t.Helper()
	cookie, _, err := b.f.auth.CreateSession(b.f.ctx, auth.NewSession{Portal: b.f.portal.Namespace + "/" + b.f.portal.Name,
		CustomerID: c.ID, Email: c.Email, Method: auth.MethodCode})
	if err != nil {
		b.f.t.Fatal(err)
	}
	b.cookies["__Host-portero"] = cookie
	if r := b.get("/"); r.Code != http.StatusOK {
		b.f.t.Fatalf("signed-in overview: %d\n%s", r.Code, r.Body)
	}
}

func wantStatus(t *testing.T, r *response, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("status %d, want %d; Location %q\n%s", r.Code, code, r.location(), r.Body)
	}
}

func wantRedirect(t *testing.T, r *response, to string) {
	t.Helper()
	if r.Code != http.StatusSeeOther || r.location() != to {
		t.Fatalf("got %d to %q, want 303 to %q\n%s", r.Code, r.location(), to, r.Body)
	}
}

func wantBody(t *testing.T, r *response, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.Body, p) {
			t.Fatalf("page lacks %q:\n%s", p, r.Body)
		}
	}
}

func wantNoBody(t *testing.T, r *response, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(r.Body, p) {
			t.Fatalf("page unexpectedly has %q:\n%s", p, r.Body)
		}
	}
}

// fieldInvalid reports whether the form field is marked invalid with its error shown.
func wantFieldError(t *testing.T, r *response, field string) {
	t.Helper()
	re := regexp.MustCompile(`id="` + regexp.QuoteMeta(field) + `"[^>]*aria-invalid="true"`)
	if !re.MatchString(r.Body) || !strings.Contains(r.Body, `id="`+field+`-error"`) {
		t.Fatalf("field %s is not marked invalid:\n%s", field, r.Body)
	}
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
