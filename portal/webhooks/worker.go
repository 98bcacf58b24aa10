// Package webhooks delivers the merchant's events to the endpoints of CustomerPortal.spec.webhooks,
// signed per the Standard Webhooks specification (https://www.standardwebhooks.com/): headers
// webhook-id (the event id, the same on every retry, so receivers deduplicate on it),
// webhook-timestamp (unix seconds of this attempt) and webhook-signature ("v1,<base64
// HMAC-SHA256 of id.timestamp.body>", one per secret, space-separated while a secret rotates).
//
// The events themselves are rows of the ledger's outbox (ledger/events.go), written in the
// transaction of the change they report; this package only sends them, at least once, and
// records each attempt.
package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/webhooks/signing"
)

// Schedule is the wait before each retry after a failed attempt: the first attempt goes at
// once, then these (each with ±20% jitter, so a recovering receiver is not hit by every portal
// at the same second). After the last one fails the delivery is failed: eight attempts over
// about 27 hours, as Svix and Stripe do.
var Schedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// MaxAttempts is how many times one event is sent to one endpoint before it is failed.
var MaxAttempts = len(Schedule) + 1

// Endpoint is a merchant endpoint as the worker sends to it.
type Endpoint struct {
	// Name is the endpoint's name in spec.webhooks (a DNS label).
	Name string
	URL  string
	// Keys sign each attempt: the current secret first, the previous one while it rotates.
	Keys [][]byte
	// Events are the types it wants; empty: every type.
	Events []string
	// Disabled endpoints keep their deliveries pending, unsent, until enabled.
	Disabled bool
}

// Store is the part of the ledger the worker uses.
type Store interface {
	ClaimDeliveries(ctx context.Context, owner, endpoint string, lease time.Duration, limit int) ([]ledger.DueDelivery, error)
	RecordAttempts(ctx context.Context, owner string, recs []ledger.AttemptRecord) ([]bool, error)
	ReleaseDeliveries(ctx context.Context, owner string, ds []ledger.DueDelivery) error
	DeliveryBacklog(ctx context.Context) (ledger.Backlog, error)
	PendingEndpoints(ctx context.Context) ([]string, error)
	AbandonDeliveries(ctx context.Context, endpoint, reason string) (int, error)
}

// Options configure a Worker.
type Options struct {
	Store Store
	// Endpoints returns the endpoints configured now (read at every pass: changes apply live).
	Endpoints func() []Endpoint
	// Owner names this worker in delivery leases (pod name and a random suffix).
	Owner string
	// Client sends the requests; nil is a client with Timeout, following no redirect.
	Client *http.Client
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// PerEndpoint bounds the attempts in flight to one endpoint (default 4), so one slow endpoint
	// holds at most that many of the worker's goroutines and never delays another endpoint.
	PerEndpoint int
	// Lease is how long a claimed delivery is this worker's (default 1 min, above Timeout).
	Lease time.Duration
	// Poll is the longest the worker sleeps without being woken (default 2 s): it picks up
	// retries falling due and other replicas' events.
	Poll time.Duration
	// Now is the clock (default time.Now); the ledger must use the same one.
	Now func() time.Time
	// Jitter returns a factor in [0.8, 1.2) for a retry delay; nil is random.
	Jitter  func() float64
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// Worker sends due deliveries. Run it once per portal process; several replicas on one
// PostgreSQL share the work through the ledger's leases.
type Worker struct {
	o       Options
	wake    chan struct{}
	m       *metrics
	mu      sync.Mutex
	flying  map[string]int                  // senders running per endpoint
	queue   map[string][]ledger.DueDelivery // claimed, not yet sent, per endpoint
	results []result                        // attempts ended, not yet recorded
	// recorded wakes the recorder; flushMu keeps one flush at a time.
	recorded chan struct{}
	flushMu  sync.Mutex
	// ledgerMu takes this worker's claims and records one at a time: on SQLite two writers
	// contend for one lock, and the loser sleeps in the busy handler.
	ledgerMu sync.Mutex
	wg       sync.WaitGroup
	missing  map[string]time.Time // endpoints with pending deliveries but no configuration, since
	// current is each endpoint as the last pass read it. Senders send with it, not with the
	// configuration of the pass that started them: under steady traffic a sender never runs
	// dry, and a changed URL, rotated secret or disable would otherwise never reach it.
	current map[string]Endpoint
}

// abandonAfter is how long an endpoint must stay out of the configuration before its pending
// deliveries are failed (a brief gap while a spec is rewritten loses nothing).
const abandonAfter = time.Minute

// New returns a worker; start it with Run.
func New(o Options) (*Worker, error) {
	if o.Store == nil || o.Endpoints == nil {
		return nil, errors.New("webhooks: Store and Endpoints are required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 4
	}
	if o.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Keep a connection per sender: the default keeps two per host, so a third concurrent
		// sender would open (and a TLS endpoint handshake) a new connection for every delivery.
		t.MaxIdleConnsPerHost = o.PerEndpoint
		o.Client = &http.Client{
			Transport: t,
			Timeout:   o.Timeout,
			// A redirect is not a delivery: the merchant fixes the URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = func() float64 { return 0.8 + 0.4*rand.Float64() }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Owner == "" {
		o.Owner = "portal-" + strconv.FormatUint(rand.Uint64(), 36)
	}
	m, err := newMetrics(o.Metrics, o.Store)
	if err != nil {
		return nil, err
	}
	return &Worker{o: o, wake: make(chan struct{}, 1), m: m, flying: map[string]int{}, queue: map[string][]ledger.DueDelivery{},
		recorded: make(chan struct{}, 1), missing: map[string]time.Time{}, current: map[string]Endpoint{}}, nil
}

// Written is the ledger's EventOptions.Written: it counts the events a transaction committed
// and wakes the worker when they made deliveries.
func (w *Worker) Written(types []string, deliveries bool) {
	for _, t := range types {
		w.m.events.WithLabelValues(t).Inc()
	}
	if deliveries {
		w.Notify()
	}
}

// Notify wakes the worker: events were just committed (ledger.EventOptions.Written).
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends deliveries until ctx ends, then waits for the attempts in flight and records them.
func (w *Worker) Run(ctx context.Context) {
	recorded := make(chan struct{})
	go func() { defer close(recorded); w.recordLoop(ctx) }()
	defer func() {
		w.wg.Wait()
		<-recorded
		bg := context.WithoutCancel(ctx)
		w.flush(bg) // attempts that ended after the recorder stopped
		w.release(bg)
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
		w.pass(ctx)
		t.Reset(w.o.Poll)
	}
}

// Drain sends everything due now, waits for the attempts to end and records them: what Run does,
// synchronously (tests on a simulated clock, and shutdown).
func (w *Worker) Drain(ctx context.Context) {
	for {
		n := w.pass(ctx)
		w.wg.Wait()
		w.flush(ctx)
		if n == 0 {
			return
		}
	}
}

// claimAhead is how many deliveries to one endpoint a worker leases at a time: a few rounds of
// its PerEndpoint senders, so the ledger is asked once per batch rather than once per delivery.
const claimAhead = 64

// pass claims what is due for every endpoint whose queue runs low, starts senders up to
// PerEndpoint, and returns how many deliveries it claimed.
func (w *Worker) pass(ctx context.Context) int {
	claimed := 0
	configured := map[string]bool{}
	eps := w.o.Endpoints()
	current := make(map[string]Endpoint, len(eps))
	for _, ep := range eps {
		current[ep.Name] = ep
	}
	// Deliveries claimed for an endpoint that is now disabled or gone are not sent: their
	// leases are given back, so they wait (or are abandoned) like the rest of its deliveries.
	w.mu.Lock()
	w.current = current
	var unsendable []ledger.DueDelivery
	for name, q := range w.queue {
		if ep, ok := current[name]; !ok || ep.Disabled {
			unsendable = append(unsendable, q...)
			delete(w.queue, name)
		}
	}
	w.mu.Unlock()
	if len(unsendable) > 0 {
		w.ledgerMu.Lock()
		err := w.o.Store.ReleaseDeliveries(ctx, w.o.Owner, unsendable)
		w.ledgerMu.Unlock()
		if err != nil && ctx.Err() == nil {
			w.o.Logger.Warn("release deliveries of a disabled or removed endpoint; they wait until their leases run out",
				"deliveries", len(unsendable), "error", err)
		}
	}
	for _, ep := range eps {
		configured[ep.Name] = true
		if ep.Disabled {
			continue
		}
		w.mu.Lock()
		queued, flying := len(w.queue[ep.Name]), w.flying[ep.Name]
		w.mu.Unlock()
		if want := w.o.PerEndpoint*claimAhead - queued - flying; queued <= w.lowWater() && want > 0 {
			// A claimed delivery waits its turn behind everything already queued or in flight to
			// this endpoint, not only behind its own batch: the lease covers that whole line with
			// every sender timing out, and the usual margin. A shorter lease runs out while the
			// delivery is still queued, and another replica sends the same attempt again.
			rounds := (queued + flying + want + w.o.PerEndpoint - 1) / w.o.PerEndpoint
			lease := w.o.Lease + time.Duration(rounds)*w.o.Timeout
			w.ledgerMu.Lock()
			due, err := w.o.Store.ClaimDeliveries(ctx, w.o.Owner, ep.Name, lease, want)
			w.ledgerMu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					w.o.Logger.Warn("claim webhook deliveries", "endpoint", ep.Name, "error", err)
				}
			} else {
				claimed += len(due)
				w.mu.Lock()
				w.queue[ep.Name] = append(w.queue[ep.Name], due...)
				w.mu.Unlock()
			}
		}
		w.startSenders(ctx, ep)
	}
	w.abandonRemoved(ctx, configured)
	return claimed
}

// lowWater is the queue length at which the next batch is claimed: early enough that the
// senders do not run dry while the ledger answers.
func (w *Worker) lowWater() int { return w.o.PerEndpoint * claimAhead * 3 / 4 }

// startSenders starts senders for ep's queue until PerEndpoint are running. Each sends one
// queued delivery after another and stops when the queue is empty.
func (w *Worker) startSenders(ctx context.Context, ep Endpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flying[ep.Name] < w.o.PerEndpoint && len(w.queue[ep.Name]) > w.flying[ep.Name] {
		w.flying[ep.Name]++
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				w.mu.Lock()
				q := w.queue[ep.Name]
				cur, ok := w.current[ep.Name]
				if len(q) == 0 || ctx.Err() != nil || !ok || cur.Disabled { // shutting down: Run releases the rest
					w.flying[ep.Name]--
					w.mu.Unlock()
					w.Notify() // the queue ran dry: claim more, if any is due
					return
				}
				d := q[0]
				w.queue[ep.Name] = q[1:]
				refill := len(q)-1 == w.lowWater()
				w.mu.Unlock()
				if refill {
					w.Notify() // claim the next batch while this one is still being sent
				}
				w.attempt(ctx, cur, d)
			}
		}()
	}
}

// abandonRemoved fails the pending deliveries of endpoints that left the configuration more
// than abandonAfter ago, so they do not sit in the backlog for ever.
func (w *Worker) abandonRemoved(ctx context.Context, configured map[string]bool) {
	pending, err := w.o.Store.PendingEndpoints(ctx)
	if err != nil {
		return
	}
	now := w.o.Now()
	seen := map[string]bool{}
	for _, name := range pending {
		if configured[name] {
			continue
		}
		seen[name] = true
		since, ok := w.missing[name]
		if !ok {
			w.missing[name] = now
			continue
		}
		if now.Sub(since) < abandonAfter {
			continue
		}
		n, err := w.o.Store.AbandonDeliveries(ctx, name, "endpoint no longer in spec.webhooks")
		if err == nil {
			w.o.Logger.Info("abandoned deliveries of a removed webhook endpoint", "endpoint", name, "deliveries", n)
			delete(w.missing, name)
		}
	}
	for name := range w.missing {
		if !seen[name] {
			delete(w.missing, name)
		}
	}
}

// attempt sends one delivery and records its outcome.
func (w *Worker) attempt(ctx context.Context, ep Endpoint, d ledger.DueDelivery) {
	start := time.Now()
	code, err := w.send(ctx, ep, d)
	if err != nil && ctx.Err() != nil {
		// Shutting down cut the attempt short: no answer came, so it is not one of the
		// schedule's tries. It goes back to the queue, whose leases Run releases: the next
		// replica sends it at once as the same attempt.
		w.mu.Lock()
		w.queue[ep.Name] = append([]ledger.DueDelivery{d}, w.queue[ep.Name]...)
		w.mu.Unlock()
		return
	}
	w.m.attemptDuration.Observe(time.Since(start).Seconds())
	var o ledger.AttemptOutcome
	switch {
	case err == nil && code >= 200 && code < 300:
		o.Delivered = true
		o.StatusCode = code
	case err != nil:
		o.Error = err.Error()
	default:
		o.StatusCode = code
		o.Error = "endpoint answered " + strconv.Itoa(code) + " " + http.StatusText(code)
	}
	outcome := "delivered"
	if !o.Delivered {
		if d.Attempt < MaxAttempts {
			delay := time.Duration(float64(Schedule[d.Attempt-1]) * w.o.Jitter())
			o.RetryAt = w.o.Now().Add(delay)
			outcome = "retrying"
		} else {
			outcome = "failed"
		}
	}
	w.mu.Lock()
	w.results = append(w.results, result{d: d, o: o, endpoint: ep.Name, outcome: outcome})
	w.mu.Unlock()
	select {
	case w.recorded <- struct{}{}:
	default:
	}
}

// release gives back the leases of deliveries claimed but not sent (at shutdown), so another
// replica or the next start sends them at once rather than when the leases run out.
func (w *Worker) release(ctx context.Context) {
	w.mu.Lock()
	var rest []ledger.DueDelivery
	for name, q := range w.queue {
		rest = append(rest, q...)
		delete(w.queue, name)
	}
	w.mu.Unlock()
	if len(rest) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.o.Store.ReleaseDeliveries(rctx, w.o.Owner, rest); err != nil {
		w.o.Logger.Warn("release unsent webhook deliveries; they go out when their leases run out", "deliveries", len(rest), "error", err)
	}
}

// result is one attempt's outcome, waiting to be recorded.
type result struct {
	d        ledger.DueDelivery
	o        ledger.AttemptOutcome
	endpoint string
	outcome  string
}

// recordLoop records attempts as they end, a batch per transaction: under load the batches
// grow, so the ledger's writes do not bound the delivery rate; idle, each result is recorded at
// once.
func (w *Worker) recordLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.recorded:
			w.flush(ctx)
		}
	}
}

// flush records every attempt that ended. It records even if ctx ended (shutdown): the
// attempts happened.
func (w *Worker) flush(ctx context.Context) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	for {
		w.mu.Lock()
		batch := w.results
		w.results = nil
		w.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		recs := make([]ledger.AttemptRecord, len(batch))
		for i, r := range batch {
			recs[i] = ledger.AttemptRecord{Delivery: r.d, Outcome: r.o}
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		w.ledgerMu.Lock()
		kept, err := w.o.Store.RecordAttempts(rctx, w.o.Owner, recs)
		w.ledgerMu.Unlock()
		cancel()
		if err != nil {
			w.o.Logger.Warn("record webhook attempts", "attempts", len(batch), "error", err)
			continue // the leases run out and the deliveries are tried again
		}
		now := w.o.Now()
		for i, r := range batch {
			if !kept[i] {
				w.o.Logger.Warn("webhook attempt not recorded: its lease had run out", "event", r.d.EventID, "endpoint", r.endpoint)
				continue
			}
			w.m.deliveries.WithLabelValues(r.endpoint, r.outcome).Inc()
			if r.o.Delivered {
				w.m.latency.Observe(now.Sub(r.d.EventCreatedAt).Seconds())
			}
			w.o.Logger.Debug("webhook attempt", "event", r.d.EventID, "type", r.d.Type, "endpoint", r.endpoint,
				"attempt", r.d.Attempt, "status", r.o.StatusCode, "outcome", r.outcome)
		}
	}
}

// send makes one signed POST and returns the status code. The error names what failed
// (timeout, refused connection) without the URL's query or any secret.
func (w *Worker) send(ctx context.Context, ep Endpoint, d ledger.DueDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, errors.New("invalid endpoint url")
	}
	ts := w.o.Now().Unix()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Portero-Webhooks/1")
	h.Set("webhook-id", d.EventID)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", signing.Sign(ep.Keys, d.EventID, ts, d.Body))
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return 0, describe(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// describe turns a transport error into a short sentence for the merchant.
func describe(err error) error {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timed out waiting for the endpoint")
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("portal shutting down")
	}
	return fmt.Errorf("could not reach the endpoint: %s", rootCause(err))
}

func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
