// Package billing runs a portal's background billing work: renewing subscriptions whose period
// ended (the ledger records the payments, the portal's processor charges them through
// portal/charging), re-driving charges whose outcome was lost, and e-mailing customers whose
// payment waits for them — for a payment method, or to authenticate a charge with their bank — a
// portal link to complete it (a PortalSession with flow complete_payment).
//
// Every step is safe to run on several replicas at once and to repeat: renewals are keyed by
// subscription and period in the ledger, and the completion link of a payment is a PortalSession
// whose name derives from the payment id, so it exists at most once.
package billing

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

// Defaults of Options.
const (
	DefaultRenewEvery   = time.Minute
	DefaultSweepEvery   = 5 * time.Minute
	DefaultNotifyWindow = 24 * time.Hour
	// DefaultStaleAfter must exceed the charging driver's processor timeout
	// (charging.DefaultCallTimeout), so live charges are never taken for abandoned ones.
	DefaultStaleAfter = 5 * time.Minute
)

// Options configure the loops. Zero values take the defaults.
type Options struct {
	// Clock drives the tickers and is the "now" renewals use; tests inject a fake one. Give the
	// ledger the same clock (ledger.Options.Now = Clock.Now).
	Clock clock.WithTicker
	// Log receives what the loops did and why they failed; nil discards.
	Log *slog.Logger
	// Registry receives the loops' metrics; nil registers nowhere.
	Registry prometheus.Registerer
	// RenewEvery is how often due subscriptions are renewed and stale charges re-driven.
	RenewEvery time.Duration
	// SweepEvery is how often incomplete payments are checked for a missing completion link,
	// which catches notifications lost to a crash or a full queue.
	SweepEvery time.Duration
	// NotifyWindow bounds the sweep to payments that became incomplete this recently. It must be
	// shorter than a completion link's life plus its retention (ttlSecondsAfterExpired), so a
	// sweep never re-sends a link whose session was already cleaned up.
	NotifyWindow time.Duration
	// StaleAfter is how long a charge may stay processing before it is re-driven.
	StaleAfter time.Duration
}

// Loops is the portal's background billing work. Create it before the ledger (its Hooks go into
// ledger.Options), then Run it once the ledger and the rules exist.
type Loops struct {
	opts    Options
	log     *slog.Logger
	clock   clock.WithTicker
	queue   chan ledger.Payment
	metrics *metrics
}

// queueSize bounds the notifications waiting for the worker. A burst beyond it (a mass renewal
// with no methods) is not lost: the sweep finds those payments.
const queueSize = 1024

// New returns the loops, not yet running.
func New(opts Options) *Loops {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.RenewEvery <= 0 {
		opts.RenewEvery = DefaultRenewEvery
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = DefaultSweepEvery
	}
	if opts.NotifyWindow <= 0 {
		opts.NotifyWindow = DefaultNotifyWindow
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	return &Loops{
		opts:    opts,
		log:     opts.Log,
		clock:   opts.Clock,
		queue:   make(chan ledger.Payment, queueSize),
		metrics: newMetrics(opts.Registry),
	}
}

// Hooks are the ledger hooks the loops need: an incomplete payment is queued for its completion
// link, and every outcome is counted. They only enqueue and count, as the ledger asks of hooks,
// and never block a request.
func (l *Loops) Hooks() ledger.Hooks {
	return ledger.Hooks{
		PaymentIncomplete: func(_ context.Context, p ledger.Payment) {
			l.metrics.payment(ledger.PaymentIncomplete)
			l.enqueue(p)
		},
		PaymentUpdated: func(_ context.Context, p ledger.Payment) {
			l.metrics.payment(p.Status)
			if p.Status == ledger.PaymentRequiresAction {
				// The customer must authenticate it with their bank: the link takes them there.
				l.enqueue(p)
			}
		},
	}
}

// Processors gives the charging driver of the processor the portal names now
// (portal/charging/live in production).
type Processors interface {
	Driver(ctx context.Context) (*charging.Driver, error)
}

func (l *Loops) enqueue(p ledger.Payment) {
	select {
	case l.queue <- p:
	default:
		l.metrics.queueFull.Inc()
		l.log.Warn("completion link queue full; the sweep will send it", "payment", p.ID)
	}
}

// worker is the loops bound to their dependencies for one Run.
type worker struct {
	*Loops
	store      *ledger.Store
	rules      *rules.Rules
	processors Processors
}

// Run works until ctx ends, then returns nil (once both of its goroutines have stopped); it
// never stops on its own, since every failure is retried by a later pass. Stop it before closing
// the ledger. On start it re-drives charges a previous process left processing, renews what fell
// due while nothing ran, and sweeps for missing completion links; then it repeats renewals every
// RenewEvery and sweeps every SweepEvery, and sends completion links as payments become
// incomplete. Completion links talk to the API server, which may hang: they have a goroutine of
// their own, so renewals and recovery never wait for them.
func (l *Loops) Run(ctx context.Context, store *ledger.Store, rl *rules.Rules, procs Processors) error {
	ctx = ledger.WithSource(ctx, ledger.SourceBilling) // renewals and settlements are the portal's own
	w := &worker{Loops: l, store: store, rules: rl, processors: procs}
	renew := l.clock.NewTicker(l.opts.RenewEvery)
	defer renew.Stop()
	sweep := l.clock.NewTicker(l.opts.SweepEvery)
	defer sweep.Stop()

	sweepNow := make(chan struct{}, 1)
	requestSweep := func() {
		select {
		case sweepNow <- struct{}{}:
		default: // one is already waiting
		}
	}
	notifier := make(chan struct{})
	go func() { defer close(notifier); w.notifyLoop(ctx, sweepNow) }()
	defer func() { <-notifier }()

	requestSweep()
	w.recoverStale(ctx)
	w.renewDue(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C():
			w.recoverStale(ctx)
			w.renewDue(ctx)
		case <-sweep.C():
			requestSweep()
		}
	}
}

// notifyLoop sends completion links: for payments queued as they became incomplete, and for the
// ones a sweep finds without one.
func (w *worker) notifyLoop(ctx context.Context, sweepNow <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweepNow:
			w.sweepIncomplete(ctx)
		case p := <-w.queue:
			_ = w.notify(ctx, p)
		}
	}
}

// recoverStale re-drives charges whose outcome was lost (a process died mid-charge, the
// processor did not answer), each with its own idempotency key, and settles incomplete payments
// whose settlement after a method change was lost the same way. Without a usable processor it
// waits for the next pass.
func (w *worker) recoverStale(ctx context.Context) {
	d, err := w.processors.Driver(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("re-drive stale charges: the payment processor is not usable now", "err", err)
		}
		return
	}
	n, err := d.Redrive(ctx, w.opts.StaleAfter)
	if err != nil && ctx.Err() == nil {
		w.log.Error("re-drive stale charges", "err", err)
	}
	if n > 0 {
		w.log.Info("re-drove stale charges", "count", n)
	}
	customers, err := w.store.StrandedCustomers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("settle stranded incomplete payments", "err", err)
		}
		return
	}
	settled := 0
	for _, c := range customers {
		if ctx.Err() != nil {
			return
		}
		res, err := d.SettleIncomplete(ctx, c)
		settled += len(res)
		if err != nil {
			w.log.Error("settle stranded incomplete payments", "customer", c, "err", err)
		}
	}
	if settled > 0 {
		w.log.Info("settled stranded incomplete payments", "payments", settled, "customers", len(customers))
	}
}

// renewDue renews every subscription whose period ended and queues links for the payments that
// were left incomplete (the ledger's hook queues them too; the link is made once either way).
func (w *worker) renewDue(ctx context.Context) {
	d, err := w.processors.Driver(ctx)
	if err != nil {
		// Renewing without a processor would leave every new payment waiting for a charge;
		// the subscriptions stay due until the processor is usable again.
		w.metrics.renewalRuns.WithLabelValues("error").Inc()
		if ctx.Err() == nil {
			w.log.Warn("renew due subscriptions: the payment processor is not usable now", "err", err)
		}
		return
	}
	res, err := w.store.RenewDue(ctx, w.clock.Now(), d.Adapter().Type())
	result := "ok"
	if err != nil {
		result = "error"
		if ctx.Err() == nil {
			w.log.Error("renew due subscriptions", "err", err)
		}
	}
	for _, a := range res.Claims {
		// A lost answer is no error: the payment stays processing for the next re-drive.
		if _, err := d.Charge(ctx, a); err != nil && ctx.Err() == nil {
			w.log.Error("charge a renewal", "payment", a.PaymentID, "err", err)
		}
	}
	w.metrics.renewalRuns.WithLabelValues(result).Inc()
	w.metrics.renewals.Add(float64(len(res.Payments)))
	if len(res.Payments)+len(res.Canceled) > 0 {
		w.log.Info("renewed subscriptions", "payments", len(res.Payments),
			"incomplete", len(res.Incomplete), "ended", len(res.Canceled))
	}
	for _, p := range res.Incomplete {
		w.enqueue(p) // the notifier's, never this loop's time
	}
}
