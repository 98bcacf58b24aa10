package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/webhooks"
	"github.com/portero-dev/portero/portal/webhooks/signing"
)

// WebhookOptions size the webhook benchmark.
type WebhookOptions struct {
	// Rate is the events per second written during the latency run, for Duration.
	Rate     int
	Duration time.Duration
	// Backlog is the events written before the worker starts, for the throughput run.
	Backlog  int
	Dir      string
	Progress func(format string, args ...any)
}

// Webhooks measures merchant event delivery through the real ledger (SQLite) and delivery worker
// to a local receiver: event → delivered latency at a fixed event rate, and the throughput of a
// backlog against a bare loop of signed POSTs to the same receiver.
func Webhooks(ctx context.Context, o WebhookOptions) Section {
	sec := Section{Title: "Merchant webhooks", Method: []string{
		fmt.Sprintf("Latency: %d events/s for %s (customers created through the ledger, each writing customer.created in its transaction, SQLite); one endpoint, a local receiver that answers 204. Figure: from the ledger call that writes the event (it commits inside the call) to the receiver's arrival of that webhook-id; baseline: the round trip of one signed POST of the same body to the same receiver, sent from a plain loop at the same rate. Goal p99 ≤ 1 s.", o.Rate, o.Duration),
		fmt.Sprintf("Throughput: %d events written first, then the worker (at most 4 attempts in flight per endpoint, the default) delivers them all; deliveries per second until the last 2xx is recorded. Baseline: the same number of signed POSTs of stored bodies to the same receiver from 4 goroutines keeping one connection each, with nothing recorded. Three rounds, worker then baseline; the row shows the medians. Goal ≥ 0.5×.", o.Backlog),
		"Every delivery is checked: each event id arrives, and arrives once.",
	}}
	rcv := newBenchReceiver()
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ep := webhooks.Endpoint{Name: "bench", URL: srv.URL + "/hooks", Keys: [][]byte{secret}}

	o.Progress("webhooks: latency at %d events/s", o.Rate)
	lat, base, err := webhookLatency(ctx, o, rcv, ep)
	if err != nil {
		sec.Rows = append(sec.Rows, Row{Benchmark: "Event → delivered p99", Figure: "—", Result: Fail, Note: err.Error()})
	} else {
		p50, p99 := Percentile(lat, 50), Percentile(lat, 99)
		bp99 := Percentile(base, 99)
		sec.Rows = append(sec.Rows,
			Row{Benchmark: fmt.Sprintf("Event → delivered, %d events/s: p50", o.Rate), Figure: ms(p50), Baseline: ms(Percentile(base, 50)),
				Ratio: ratio(float64(p50), float64(Percentile(base, 50))), Target: "—", Result: Info, Note: fmt.Sprintf("%d events", len(lat))},
			Row{Benchmark: fmt.Sprintf("Event → delivered, %d events/s: p99", o.Rate), Figure: ms(p99), Baseline: ms(bp99),
				Ratio: ratio(float64(p99), float64(bp99)), Target: "p99 ≤ 1 s", Result: verdict(p99 <= time.Second)})
	}

	// Three rounds, each the worker then its baseline right after: a shared machine's load
	// moves both of a round alike; the row gives the medians and the note every round.
	var rates, baseRates, ratios []float64
	for round := range 3 {
		o.Progress("webhooks: throughput of a %d-event backlog, round %d", o.Backlog, round+1)
		rate, baseRate, err := webhookThroughput(ctx, o, rcv, ep, fmt.Sprintf("throughput%d", round))
		if err != nil {
			sec.Rows = append(sec.Rows, Row{Benchmark: "Delivery throughput", Figure: "—", Result: Fail, Note: err.Error()})
			return sec
		}
		rates, baseRates, ratios = append(rates, rate), append(baseRates, baseRate), append(ratios, rate/baseRate)
	}
	r := Median(ratios)
	sec.Rows = append(sec.Rows, Row{Benchmark: fmt.Sprintf("Delivery throughput, %d-event backlog", o.Backlog),
		Figure: fmt.Sprintf("%.0f/s", Median(rates)), Baseline: fmt.Sprintf("%.0f/s", Median(baseRates)), Ratio: fmt.Sprintf("%.2f×", r),
		Target: "≥ 0.5×", Result: verdict(r >= 0.5),
		Note: "rounds (worker/s, baseline/s, ratio): " + Runs(rates, "%.0f") + " / " + Runs(baseRates, "%.0f") + " / " + Runs(ratios, "%.2f")})
	return sec
}

// benchReceiver counts arrivals by webhook-id and notes when each first arrived.
type benchReceiver struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	dups    int
	total   atomic.Int64
}

func newBenchReceiver() *benchReceiver { return &benchReceiver{arrived: map[string]time.Time{}} }

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	now := time.Now()
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	if _, ok := r.arrived[id]; ok {
		r.dups++
	} else {
		r.arrived[id] = now
	}
	r.mu.Unlock()
	r.total.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (r *benchReceiver) reset() {
	r.mu.Lock()
	r.arrived, r.dups = map[string]time.Time{}, 0
	r.mu.Unlock()
}

// openWebhookStore opens a fresh SQLite ledger whose events go to the endpoint.
func openWebhookStore(ctx context.Context, dir, name string, written func([]string, bool)) (*ledger.Store, error) {
	return ledger.Open(ctx, "sqlite://"+filepath.Join(dir, name+".db"), ledger.Options{Events: ledger.EventOptions{
		Portal: "bench/webhooks", Subscribers: func() []ledger.Subscriber { return []ledger.Subscriber{{Name: "bench"}} },
		Written: written,
	}})
}

func webhookLatency(ctx context.Context, o WebhookOptions, rcv *benchReceiver, ep webhooks.Endpoint) (lat, base []time.Duration, err error) {
	rcv.reset()
	var worker *webhooks.Worker
	store, err := openWebhookStore(ctx, o.Dir, "latency", func(t []string, d bool) { worker.Written(t, d) })
	if err != nil {
		return nil, nil, err
	}
	defer store.Close()
	if worker, err = webhooks.New(webhooks.Options{Store: store, Endpoints: func() []webhooks.Endpoint { return []webhooks.Endpoint{ep} }}); err != nil {
		return nil, nil, err
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { worker.Run(wctx); close(done) }()
	defer func() { stop(); <-done }()

	n := int(o.Duration.Seconds() * float64(o.Rate))
	committed := make(map[string]time.Time, n)
	var mu sync.Mutex
	tick := time.NewTicker(time.Second / time.Duration(o.Rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range n {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// From the call: the event exists only once the call's transaction commits, and the
			// worker may deliver it before the call returns.
			at := time.Now()
			c, err := store.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("bench%d@example.com", i)})
			if err != nil {
				return
			}
			mu.Lock()
			committed[c.ID] = at
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Map customers to their events, then wait for every event to arrive.
	ids := map[string]time.Time{}
	params := ledger.ListEventsParams{Limit: ledger.MaxPageSize}
	for {
		page, err := store.ListEvents(ctx, params)
		if err != nil {
			return nil, nil, err
		}
		for _, ev := range page.Items {
			if t, ok := committed[ev.ObjectID]; ok {
				ids[ev.ID] = t
			}
		}
		if page.NextCursor == "" {
			break
		}
		params.Cursor = page.NextCursor
	}
	if len(ids) != n {
		return nil, nil, fmt.Errorf("%d events written, want %d", len(ids), n)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rcv.mu.Lock()
		got := len(rcv.arrived)
		rcv.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%d of %d events delivered after a minute", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rcv.mu.Lock()
	for id, at := range ids {
		arr, ok := rcv.arrived[id]
		if !ok {
			rcv.mu.Unlock()
			return nil, nil, fmt.Errorf("event %s never arrived", id)
		}
		lat = append(lat, arr.Sub(at))
	}
	dups := rcv.dups
	rcv.mu.Unlock()
	if dups > 0 {
		return nil, nil, fmt.Errorf("%d events arrived twice", dups)
	}

	// Baseline: a plain loop of signed POSTs at the same rate, one round trip each.
	body := []byte(`{"id":"evt_baseline","type":"customer.created","data":{"object":{"id":"cus_x"}}}`)
	client := &http.Client{Timeout: 10 * time.Second}
	btick := time.NewTicker(time.Second / time.Duration(o.Rate))
	defer btick.Stop()
	var bmu sync.Mutex
	for i := range n {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-btick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := signedPost(ctx, client, ep, "evt_base_"+strconv.Itoa(i), body); err != nil {
				return
			}
			bmu.Lock()
			base = append(base, time.Since(start))
			bmu.Unlock()
		}()
	}
	wg.Wait()
	return lat, base, nil
}

func signedPost(ctx context.Context, c *http.Client, ep webhooks.Endpoint, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", signing.Sign(ep.Keys, id, ts, body))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

func webhookThroughput(ctx context.Context, o WebhookOptions, rcv *benchReceiver, ep webhooks.Endpoint, db string) (rate, baseRate float64, err error) {
	rcv.reset()
	store, err := openWebhookStore(ctx, o.Dir, db, nil)
	if err != nil {
		return 0, 0, err
	}
	defer store.Close()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range o.Backlog {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _ = store.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("backlog%d@example.com", i)})
		}()
	}
	wg.Wait()
	worker, err := webhooks.New(webhooks.Options{Store: store, Endpoints: func() []webhooks.Endpoint { return []webhooks.Endpoint{ep} },
		Poll: 10 * time.Millisecond})
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { worker.Run(wctx); close(done) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, err := store.DeliveryBacklog(ctx)
		if err != nil {
			stop()
			<-done
			return 0, 0, err
		}
		if b.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			<-done
			return 0, 0, fmt.Errorf("%d deliveries still pending after 5 minutes", b.Pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stop()
	<-done
	rcv.mu.Lock()
	got, dups := len(rcv.arrived), rcv.dups
	rcv.mu.Unlock()
	if got != o.Backlog || dups > 0 {
		return 0, 0, fmt.Errorf("%d distinct events arrived (%d twice), want %d once each", got, dups, o.Backlog)
	}
	rate = float64(o.Backlog) / elapsed.Seconds()

	// Baseline: the same bodies, signed and POSTed from 4 goroutines, nothing recorded.
	page, err := store.ListEvents(ctx, ledger.ListEventsParams{Limit: ledger.MaxPageSize})
	if err != nil || len(page.Items) == 0 {
		return 0, 0, fmt.Errorf("no events for the baseline: %v", err)
	}
	bodies := page.Items
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4 // one kept connection per goroutine, as the worker keeps
	client := &http.Client{Transport: t, Timeout: 10 * time.Second}
	var next atomic.Int64
	start = time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.Backlog || ctx.Err() != nil {
					return
				}
				ev := bodies[i%len(bodies)]
				_ = signedPost(ctx, client, ep, ev.ID+"-"+strconv.Itoa(i), ev.Body)
			}
		}()
	}
	wg.Wait()
	baseRate = float64(o.Backlog) / time.Since(start).Seconds()
	return rate, baseRate, nil
}
