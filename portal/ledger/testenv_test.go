package ledger

// Test environment: every store test runs on SQLite (a temp file) and on a real PostgreSQL
// (see package ledgertest for where the server comes from).

import (
	"context"
	"github.com/portero-dev/portero/internal/testlog"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"github.com/portero-dev/portero/portal/payments"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testPG.Stop()
	os.Exit(code)
}

// testPG is the package's PostgreSQL server, started on first use.
var testPG ledgertest.Postgres

// postgresDSN returns a DSN for a fresh schema, dropped when the test ends.
func postgresDSN(t testing.TB) string {
	t.Helper()
	return testPG.DSN(t)
}

// testStart is where every test's clock starts.
var testStart = time.Date(2026, time.January, 31, 15, 0, 0, 0, time.UTC)

// cardExpYear is when the test cards (card) expire, in December: derived from testStart, so the
// instants tests set past it stay in step with it.
var cardExpYear = testStart.Year() + 4

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: testStart}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingProcessor wraps a real processor and counts charges per payment, which is how the
// tests prove "charged exactly once".
type countingProcessor struct {
	payments.Processor
	mu       sync.Mutex
	charges  map[string]int // payment id → Charge calls
	keys     map[string]int // idempotency key → Charge calls
	confirms int
	// beforeCharge, when set, runs before each charge; it may block or return an error.
	beforeCharge func(req payments.ChargeRequest) error
}

func newCountingProcessor(p payments.Processor) *countingProcessor {
	return &countingProcessor{Processor: p, charges: map[string]int{}, keys: map[string]int{}}
}

func (c *countingProcessor) Charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	c.mu.Lock()
	id, _, _ := strings.Cut(req.IdempotencyKey, "/")
	c.charges[id]++
	c.keys[req.IdempotencyKey]++
	hook := c.beforeCharge
	c.mu.Unlock()
	if hook != nil {
		if err := hook(req); err != nil {
			return payments.ChargeResult{}, err
		}
	}
	return c.Processor.Charge(ctx, req)
}

func (c *countingProcessor) Confirm(ctx context.Context, ref string) (payments.ChargeResult, error) {
	c.mu.Lock()
	c.confirms++
	c.mu.Unlock()
	return c.Processor.Confirm(ctx, ref)
}

func (c *countingProcessor) chargesFor(paymentID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.charges[paymentID]
}

func (c *countingProcessor) setBeforeCharge(f func(req payments.ChargeRequest) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beforeCharge = f
}

// env is one engine's test fixture.
type env struct {
	engine Engine
	dsn    string
	clock  *testClock
	proc   *countingProcessor
	store  *Store
	logs   *testlog.Buffer
	ctx    context.Context

	hookMu     sync.Mutex
	incomplete []Payment
	updated    []Payment
}

const testSecret = "portero-test-sandbox-secret-0123456789"

// newEnv opens a Store on a fresh database of the given engine.
func newEnv(t testing.TB, engine Engine) *env {
	t.Helper()
	e := &env{engine: engine, clock: newTestClock(), logs: &testlog.Buffer{}, ctx: context.Background()}
	switch engine {
	case SQLite:
		e.dsn = ledgertest.SQLiteDSN(t)
	case Postgres:
		e.dsn = postgresDSN(t)
	}
	sb, err := payments.NewSandbox([]byte(testSecret), e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.proc = newCountingProcessor(sb)
	e.store = e.open(t)
	return e
}

// open opens another Store (a replica) on the env's database, sharing clock and processor.
func (e *env) open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(e.ctx, e.dsn, Options{
		Processor: e.proc,
		Now:       e.clock.Now,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hooks: Hooks{
			PaymentIncomplete: func(_ context.Context, p Payment) {
				e.hookMu.Lock()
				defer e.hookMu.Unlock()
				e.incomplete = append(e.incomplete, p)
			},
			PaymentUpdated: func(_ context.Context, p Payment) {
				e.hookMu.Lock()
				defer e.hookMu.Unlock()
				e.updated = append(e.updated, p)
			},
		},
	})
	if err != nil {
		t.Fatalf("open %s ledger: %v", e.engine, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (e *env) incompleteHooks() []Payment {
	e.hookMu.Lock()
	defer e.hookMu.Unlock()
	return append([]Payment(nil), e.incomplete...)
}

// forEachEngine runs fn as a subtest on SQLite and on PostgreSQL.
func forEachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, engine := range []Engine{SQLite, Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			fn(t, newEnv(t, engine))
		})
	}
}

// Fixture helpers.

func (e *env) customer(t testing.TB, email string) Customer {
	t.Helper()
	c, err := e.store.CreateCustomer(e.ctx, NewCustomer{Email: email, Name: "Test Customer"})
	if err != nil {
		t.Fatalf("CreateCustomer: %v", err)
	}
	return c
}

func card(number string) NewPaymentMethod {
	cvc := "123"
	if strings.HasPrefix(number, "34") || strings.HasPrefix(number, "37") {
		cvc = "1234"
	}
	return NewPaymentMethod{Type: payments.MethodCard, Card: &payments.CardDetails{
		Number: number, ExpMonth: 12, ExpYear: cardExpYear, CVC: cvc, HolderName: "Jane Doe"}}
}

func (e *env) addMethod(t testing.TB, customerID string, in NewPaymentMethod) PaymentMethod {
	t.Helper()
	m, err := e.store.AddPaymentMethod(e.ctx, customerID, in)
	if err != nil {
		t.Fatalf("AddPaymentMethod(%s): %v", in.Type, err)
	}
	return m
}

func (e *env) pay(t testing.TB, customerID string, amount int64) Payment {
	t.Helper()
	p, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: customerID, Amount: amount, Currency: ARS, Description: "test"})
	if err != nil {
		t.Fatalf("CreatePayment: %v", err)
	}
	return p
}
