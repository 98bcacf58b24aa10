package billing

// Tests run against a real kube-apiserver and etcd with the operator's real PortalSession
// reconciler (which mints links and "e-mails" them through a fake mailer), a real ledger on an
// SQLite file, and a fake clock driving both the ledger and the loops.

import (
	"context"
	"errors"
	"fmt"
	"github.com/portero-dev/portero/internal/testlog"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/mail"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/rules"
)

var (
	env    *testenv.Env
	k8s    client.Client
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
		if stop, err = startSessionController(); err == nil {
			code = m.Run()
			stop()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = env.Stop()
	os.Exit(code)
}

// startSessionController runs the operator's PortalSession reconciler as cmd/manager does.
func startSessionController() (func(), error) {
	_, stop, err := testenv.StartManager(env.Config, controllers.ManagerOptions(env.Scheme, true), func(m manager.Manager) error {
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

func (f *fakeMailer) to(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.sent {
		if m.To == addr {
			n++
		}
	}
	return n
}

// eventually polls f until it returns nil or 30 s pass; it sleeps only between polls.
func eventually(t *testing.T, what string, f func() error) {
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
	portalName  = "acme"
	testSandbox = "portero-billing-test-sandbox-secret-0123456789"
)

// start is the fake clock's first instant: the last day of a month, where period arithmetic is
// most likely to go wrong.
var start = time.Date(2026, time.January, 31, 15, 0, 0, 0, time.UTC)

// fixture is one test's namespace, portal, ledger and loops.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	clock *testingclock.FakeClock
	proc  *flakyProcessor
	// store is the ledger with a charging driver over proc in front (as the portal has it):
	// the loops get its ledger (store.Store) and its driver (store.Processors()).
	store  *flowtest.Flow
	rules  *rules.Rules
	loops  *Loops
	dsn    string
	logger *slog.Logger
}

// newFixture creates the namespace and a portal with a URL (as the CustomerPortal controller
// would publish it), and opens a ledger whose hooks feed the fixture's loops (not yet running).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	f := &fixture{t: t, ctx: ctx, clock: testingclock.NewFakeClock(start),
		logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "billing-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.ns = ns.Name
	p := &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: portalName},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme Billing",
			Email:       &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: "smtp"}, From: "Acme <billing@acme.example>"},
			Access: billingv1alpha1.Access{Sessions: billingv1alpha1.SessionAccess{
				DefaultTTL: &metav1.Duration{Duration: time.Hour}, MaxTTL: &metav1.Duration{Duration: 72 * time.Hour}}},
		},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status.URL = "https://billing.acme.example/"
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.rules, err = rules.Start(ctx, env.Config, types.NamespacedName{Namespace: f.ns, Name: portalName}); err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.New([]byte(testSandbox), f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	f.proc = &flakyProcessor{Adapter: sb, charges: map[string]int{}}
	f.dsn = "sqlite://" + filepath.Join(t.TempDir(), "ledger.db")
	f.loops = f.newLoops()
	f.store = f.openStore(f.loops.Hooks())
	return f
}

func (f *fixture) newLoops() *Loops {
	return New(Options{Clock: f.clock, Log: f.logger, Registry: prometheus.NewRegistry(),
		RenewEvery: time.Minute, SweepEvery: 10 * time.Minute})
}

// openStore opens (another replica of) the ledger with the given hooks, on the fake clock.
func (f *fixture) openStore(hooks ledger.Hooks) *flowtest.Flow {
	f.t.Helper()
	s, err := ledger.Open(f.ctx, f.dsn, ledger.Options{Now: f.clock.Now, Logger: f.logger, Hooks: hooks})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return flowtest.New(s, f.proc)
}

// run starts loops until the test ends and waits for its start-up pass and tickers.
func (f *fixture) run(l *Loops, store *flowtest.Flow) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	runs := testutil.ToFloat64(l.metrics.renewalRuns.WithLabelValues("ok"))
	sweeps := testutil.ToFloat64(l.metrics.sweeps)
	go func() { done <- l.Run(ctx, store.Store, f.rules, store.Processors()) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	})
	eventually(f.t, "start-up pass done", func() error {
		if testutil.ToFloat64(l.metrics.renewalRuns.WithLabelValues("ok")) <= runs || testutil.ToFloat64(l.metrics.sweeps) <= sweeps {
			return errors.New("not yet")
		}
		return nil
	})
}

// tick moves the fake clock to at and waits until the loops finished a renewal pass after it.
func (f *fixture) tick(l *Loops, at time.Time) {
	f.t.Helper()
	eventually(f.t, "tickers waiting on the fake clock", func() error {
		if !f.clock.HasWaiters() {
			return errors.New("no tickers yet")
		}
		return nil
	})
	runs := testutil.ToFloat64(l.metrics.renewalRuns.WithLabelValues("ok"))
	f.clock.SetTime(at)
	eventually(f.t, "renewal pass after the tick", func() error {
		if testutil.ToFloat64(l.metrics.renewalRuns.WithLabelValues("ok")) <= runs {
			return errors.New("not yet")
		}
		return nil
	})
}

func (f *fixture) customer(email string) ledger.Customer {
	f.t.Helper()
	c, err := f.store.CreateCustomer(f.ctx, ledger.NewCustomer{Email: email, Name: "Test"})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) addCard(customerID string) {
	f.t.Helper()
	if _, err := f.store.AddPaymentMethod(f.ctx, customerID, flowtest.Method{Type: payments.MethodCard,
		Card: &payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: start.Year() + 4, CVC: "123"}}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) payments(customerID string) []ledger.Payment {
	f.t.Helper()
	page, err := f.store.ListPayments(f.ctx, ledger.ListPaymentsParams{CustomerID: customerID, Limit: ledger.MaxPageSize})
	if err != nil {
		f.t.Fatal(err)
	}
	return page.Items
}

func (f *fixture) sessions() []billingv1alpha1.PortalSession {
	f.t.Helper()
	list := &billingv1alpha1.PortalSessionList{}
	if err := k8s.List(f.ctx, list, client.InNamespace(f.ns)); err != nil {
		f.t.Fatal(err)
	}
	return list.Items
}

// flakyProcessor counts charges per payment and can make the next charges' outcome unknown (a
// processor that cannot be reached), which leaves payments processing. Embedding the sandbox
// keeps its optional interfaces (card tokenizing), which the charging driver looks for.
type flakyProcessor struct {
	*sandbox.Adapter
	mu      sync.Mutex
	charges map[string]int
	down    atomic.Bool
}

func (p *flakyProcessor) Charge(ctx context.Context, r payments.ChargeRequest) (payments.ChargeResult, error) {
	p.mu.Lock()
	id, _, _ := strings.Cut(r.IdempotencyKey, "/")
	p.charges[id]++
	p.mu.Unlock()
	if p.down.Load() {
		return payments.ChargeResult{}, errors.New("processor unreachable")
	}
	return p.Adapter.Charge(ctx, r)
}

func (p *flakyProcessor) chargesFor(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.charges[id]
}
