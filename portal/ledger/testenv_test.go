package ledger

// Test environment: every store test runs on SQLite (a temp file) and on a real PostgreSQL
// (see package ledgertest for where the server comes from).

import (
	"context"
	"errors"
	"github.com/portero-dev/portero/internal/testlog"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
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

// countingProcessor wraps the real sandbox adapter and counts charges per payment, which is how
// the tests prove "charged exactly once". Embedding keeps the sandbox's optional interfaces
// (card tokenizing, pending confirmation), which the charging driver looks for.
type countingProcessor struct {
	*sandbox.Adapter
	mu       sync.Mutex
	charges  map[string]int // payment id → Charge calls
	keys     map[string]int // idempotency key → Charge calls
	confirms int
	// beforeCharge, when set, runs before each charge; it may block or return an error.
	beforeCharge func(req payments.ChargeRequest) error
}

func newCountingProcessor(p *sandbox.Adapter) *countingProcessor {
	return &countingProcessor{Adapter: p, charges: map[string]int{}, keys: map[string]int{}}
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
	return c.Adapter.Charge(ctx, req)
}

func (c *countingProcessor) Confirm(ctx context.Context, ref string) (payments.ChargeResult, error) {
	c.mu.Lock()
	c.confirms++
	c.mu.Unlock()
	return c.Adapter.Confirm(ctx, ref)
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

// flow is the ledger as the portal uses it: the ledger records (and claims attempts), and a real
// charging.Driver over the sandbox charges the claims and records their outcomes through the
// ledger's Recorder methods, as portal/api, portal/web and portal/billing do. Its methods keep
// the shape the ledger's had when it charged by itself, so each test reads as the behaviour it
// proves: "create a payment" means create, claim, charge and record.
type flow struct {
	*Store
	drv *charging.Driver
}

func newFlow(s *Store, proc payments.Adapter, log *slog.Logger) *flow {
	d, err := charging.New(charging.Options{Adapter: proc, Recorder: s, Log: log})
	if err != nil {
		panic(err)
	}
	return &flow{Store: s, drv: d}
}

// processor is the type of the flow's processor (the sandbox).
func (f *flow) processor() payments.ProcessorType { return f.drv.Adapter().Type() }

// charged charges a claimed attempt (if any) and returns the payment as recorded after it, even
// if the caller went away meanwhile: the charge is driven to the end, and so is its answer.
func (f *flow) charged(ctx context.Context, p Payment, a *charging.Attempt) (Payment, error) {
	if a == nil {
		return p, nil
	}
	if _, err := f.drv.Charge(ctx, *a); err != nil {
		return Payment{}, err
	}
	return f.Store.GetPayment(context.WithoutCancel(ctx), p.ID)
}

func (f *flow) CreatePayment(ctx context.Context, in NewPayment) (Payment, error) {
	if in.Processor == "" {
		in.Processor = f.processor()
	}
	p, a, err := f.Store.CreatePayment(ctx, in)
	if err != nil {
		return Payment{}, err
	}
	return f.charged(ctx, p, a)
}

// methodIn is what a customer or merchant hands the portal to add a method: a card goes to the
// processor (charging.Driver.AddCard) and only its token reaches the ledger; anything else is
// recorded by the ledger (AddPaymentMethod). Either way the customer's incomplete payments are
// then settled.
type methodIn struct {
	Type    payments.MethodType
	Card    *payments.CardDetails
	Account string
	Wallet  string
	Limit   int
}

func (f *flow) AddPaymentMethod(ctx context.Context, customerID string, in methodIn) (PaymentMethod, error) {
	if in.Type != payments.MethodCard {
		m, err := f.Store.AddPaymentMethod(ctx, customerID, NewPaymentMethod{Type: in.Type, Account: in.Account, Wallet: in.Wallet, Limit: in.Limit})
		if err != nil {
			return PaymentMethod{}, err
		}
		f.settle(ctx, customerID)
		return m, nil
	}
	if in.Card == nil {
		return PaymentMethod{}, newError(KindInvalid, CodeRequired, "card", nil)
	}
	if _, err := f.Store.GetCustomer(ctx, customerID); err != nil {
		return PaymentMethod{}, err
	}
	// At the cap a card must not even reach the processor, or the form would still test cards.
	if err := f.Store.CheckMethodLimit(ctx, customerID, in.Limit); err != nil {
		return PaymentMethod{}, err
	}
	added, err := f.drv.AddCard(WithMethodLimit(ctx, in.Limit), customerID, *in.Card)
	var pe *payments.Error
	if errors.As(err, &pe) {
		field := "card"
		if pe.Field != "" {
			field += "." + pe.Field
		}
		return PaymentMethod{}, invalid(field, pe)
	}
	if err != nil {
		return PaymentMethod{}, err
	}
	return f.Store.GetPaymentMethod(context.WithoutCancel(ctx), customerID, added.MethodID)
}

// settle lets the customer's incomplete payments proceed after a method change, as the portal
// does; its failure leaves them incomplete for the next change or sweep.
func (f *flow) settle(ctx context.Context, customerID string) {
	_, _ = f.drv.SettleIncomplete(context.WithoutCancel(ctx), customerID)
}

func (f *flow) MakePreferred(ctx context.Context, customerID, methodID string) ([]PaymentMethod, error) {
	ms, err := f.Store.MakePreferred(ctx, customerID, methodID)
	if err == nil {
		f.settle(ctx, customerID)
	}
	return ms, err
}

func (f *flow) ReorderPaymentMethods(ctx context.Context, customerID string, ids []string) ([]PaymentMethod, error) {
	ms, err := f.Store.ReorderPaymentMethods(ctx, customerID, ids)
	if err == nil {
		f.settle(ctx, customerID)
	}
	return ms, err
}

// RemovePaymentMethod asks the ledger first, then detaches at the processor and records the
// removal (charging.Driver.RemoveMethod), as the portal does.
func (f *flow) RemovePaymentMethod(ctx context.Context, customerID, methodID string) error {
	if err := f.Store.CheckRemovePaymentMethod(ctx, customerID, methodID); err != nil {
		return err
	}
	return f.drv.RemoveMethod(ctx, customerID, methodID)
}

// SettleIncomplete returns the payments it charged, as recorded after their charge.
func (f *flow) SettleIncomplete(ctx context.Context, customerID string) ([]Payment, error) {
	res, err := f.drv.SettleIncomplete(ctx, customerID)
	var out []Payment
	for _, r := range res {
		p, gerr := f.Store.GetPayment(ctx, r.PaymentID)
		if gerr != nil {
			return out, gerr
		}
		out = append(out, p)
	}
	return out, err
}

// SettleStranded settles the stranded customers' payments and returns how many it charged.
func (f *flow) SettleStranded(ctx context.Context) (int, error) {
	customers, err := f.Store.StrandedCustomers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, c := range customers {
		res, err := f.drv.SettleIncomplete(ctx, c)
		n += len(res)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

func (f *flow) RetryPayment(ctx context.Context, customerID, paymentID string) (Payment, error) {
	p, a, err := f.Store.RetryPayment(ctx, customerID, paymentID, f.processor())
	if err != nil {
		return Payment{}, err
	}
	return f.charged(ctx, p, a)
}

// ConfirmPayment confirms a pending payment through the driver; a payment that does not wait for
// a confirmation is a state conflict, as the merchant API answers it.
func (f *flow) ConfirmPayment(ctx context.Context, paymentID string) (Payment, error) {
	_, err := f.drv.ConfirmPending(ctx, paymentID)
	if errors.Is(err, charging.ErrNotWaiting) {
		return Payment{}, newError(KindConflict, CodePaymentState, "", err)
	}
	if err != nil {
		return Payment{}, err
	}
	return f.Store.GetPayment(ctx, paymentID)
}

func (f *flow) RecoverProcessing(ctx context.Context, staleAfter time.Duration) (int, error) {
	return f.drv.Redrive(ctx, staleAfter)
}

func (f *flow) CreateSubscription(ctx context.Context, in NewSubscription) (Subscription, Payment, error) {
	c, err := f.CreateSubscriptionIdempotent(ctx, in)
	return c.Subscription, c.InitialPayment, err
}

func (f *flow) CreateSubscriptionIdempotent(ctx context.Context, in NewSubscription) (SubscriptionCreation, error) {
	if in.Processor == "" {
		in.Processor = f.processor()
	}
	c, err := f.Store.CreateSubscriptionIdempotent(ctx, in)
	if err != nil || c.Claim == nil {
		return c, err
	}
	if c.InitialPayment, err = f.charged(ctx, c.InitialPayment, c.Claim); err != nil {
		return SubscriptionCreation{}, err
	}
	c.Subscription, err = f.Store.GetSubscription(ctx, c.Subscription.ID)
	return c, err
}

// RenewDue renews and charges the claims; Payments are as recorded after their charge.
func (f *flow) RenewDue(ctx context.Context, now time.Time) (RenewalResult, error) {
	res, err := f.Store.RenewDue(ctx, now, f.processor())
	for _, a := range res.Claims {
		if _, cerr := f.drv.Charge(ctx, a); cerr != nil {
			return res, cerr
		}
	}
	for i, p := range res.Payments {
		got, gerr := f.Store.GetPayment(ctx, p.ID)
		if gerr != nil {
			return res, gerr
		}
		res.Payments[i] = got
	}
	return res, err
}

// env is one engine's test fixture.
type env struct {
	engine Engine
	dsn    string
	clock  *testClock
	proc   *countingProcessor
	store  *flow
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
	sb, err := sandbox.New([]byte(testSecret), e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.proc = newCountingProcessor(sb)
	e.store = e.open(t)
	return e
}

// open opens another Store (a replica) on the env's database, sharing clock and processor, with
// its own charging driver.
func (e *env) open(t testing.TB) *flow {
	t.Helper()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(e.ctx, e.dsn, Options{
		Now:    e.clock.Now,
		Logger: log,
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
	return newFlow(s, e.proc, log)
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

func card(number string) methodIn {
	cvc := "123"
	if strings.HasPrefix(number, "34") || strings.HasPrefix(number, "37") {
		cvc = "1234"
	}
	return methodIn{Type: payments.MethodCard, Card: &payments.CardDetails{
		Number: number, ExpMonth: 12, ExpYear: cardExpYear, CVC: cvc, HolderName: "Jane Doe"}}
}

func (e *env) addMethod(t testing.TB, customerID string, in methodIn) PaymentMethod {
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

// ChangeSubscription makes a change and charges what it bills at once, as the portal does.
func (f *flow) ChangeSubscription(ctx context.Context, customerID, id string, ch SubscriptionChange) (SubscriptionChangeResult, error) {
	if ch.Processor == "" {
		ch.Processor = f.processor()
	}
	res, err := f.Store.ChangeSubscription(ctx, customerID, id, ch)
	if err != nil || res.Claim == nil {
		return res, err
	}
	res.Payment, err = f.charged(ctx, res.Payment, res.Claim)
	return res, err
}
