package webhooks

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"github.com/portero-dev/portero/portal/webhooks/signing"
)

var testPG ledgertest.Postgres

func TestMain(m *testing.M) {
	code := m.Run()
	testPG.Stop()
	os.Exit(code)
}

const (
	secret   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes
	previous = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD" // 24 bytes
)

func key(t testing.TB, s string) []byte {
	t.Helper()
	k, err := signing.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// clock is a settable clock shared by the ledger and the worker.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

// openStore opens a ledger on dsn whose events go to the named endpoints.
func openStore(t *testing.T, dsn string, now func() time.Time, notify func(), endpoints ...string) *ledger.Store {
	t.Helper()
	var subs []ledger.Subscriber
	for _, e := range endpoints {
		subs = append(subs, ledger.Subscriber{Name: e})
	}
	s, err := ledger.Open(context.Background(), dsn, ledger.Options{Now: now, Events: ledger.EventOptions{
		Portal:      "shop/general",
		Subscribers: func() []ledger.Subscriber { return subs },
		Written: func(_ []string, deliveries bool) {
			if deliveries && notify != nil {
				notify()
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// receiver records what it is sent and answers what status tells it.
type receiver struct {
	mu       sync.Mutex
	got      []received
	status   func(id string) int
	verifier *standardwebhooks.Webhook
	hold     chan struct{} // when set, requests wait for it to close
}

type received struct {
	id, ts string
	code   int
	body   []byte
}

func newReceiver(t *testing.T, status func(id string) int) (*receiver, *httptest.Server) {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{status: status, verifier: v}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.hold != nil {
			select {
			case <-r.hold:
			case <-req.Context().Done():
				return
			}
		}
		// The reference library must accept every request (timestamps may be simulated).
		if err := r.verifier.VerifyIgnoringTimestamp(body, req.Header); err != nil {
			t.Errorf("signature of %s does not verify: %v", req.Header.Get("webhook-id"), err)
		}
		id := req.Header.Get("webhook-id")
		code := r.status(id)
		r.mu.Lock()
		r.got = append(r.got, received{id: id, ts: req.Header.Get("webhook-timestamp"), code: code, body: body})
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func newWorker(t *testing.T, s *ledger.Store, now func() time.Time, eps ...Endpoint) *Worker {
	t.Helper()
	w, err := New(Options{Store: s, Endpoints: func() []Endpoint { return eps }, Now: now,
		Jitter: func() float64 { return 1 }, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A signature the portal makes verifies with the Standard Webhooks reference library, under the
// current secret and, while it rotates, under the previous one; a wrong secret does not.
func TestSignatureVerifiesWithStandardWebhooksLibrary(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"customer.created"}`)
	now := time.Now()
	h := http.Header{}
	h.Set("webhook-id", "evt_1")
	h.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
	h.Set("webhook-signature", signing.Sign([][]byte{key(t, secret), key(t, previous)}, "evt_1", now.Unix(), body))
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
		t.Fatalf("two secrets gave %d signatures", n)
	}
	for _, s := range []string{secret, previous} {
		v, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(body, h); err != nil {
			t.Errorf("verify under %s…: %v", s[:10], err)
		}
		if err := v.Verify(append(body, ' '), h); err == nil {
			t.Error("a changed body verified")
		}
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("another-secret-of-24-byt")))
	if err := other.Verify(body, h); err == nil {
		t.Error("a signature verified under a secret that did not sign")
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		if _, err := signing.ParseSecret(s); err == nil {
			t.Errorf("signing.ParseSecret(%q) accepted", s)
		} else if len(s) > len(signing.SecretPrefix)+4 && strings.Contains(err.Error(), s) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
	if k := key(t, secret); len(k) != 24 {
		t.Errorf("key length %d", len(k))
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://acme.example/hooks":              true,
		"http://127.0.0.1:8080/hooks":             true,
		"http://localhost/hooks":                  true,
		"http://[::1]/hooks":                      true,
		"http://crm.shop.svc:8080/hooks":          true,
		"http://crm.shop.svc.cluster.local/hooks": true,
		"http://acme.example/hooks":               false,
		"ftp://acme.example/hooks":                false,
		"https://user:pass@acme.example/hooks":    false,
		"/relative":                               false,
		"http://127.0.0.1.nip.io/hooks":           false,
		"http://svc.attacker.example/hooks":       false,
	} {
		if err := signing.CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

// A receiver that answers 500 once gets the same event again, with the same webhook-id.
func TestFailedAttemptIsRetriedWithTheSameID(t *testing.T) {
	clk := &clock{now: time.Now()}
	s := openStore(t, ledgertest.SQLiteDSN(t), clk.Now, nil, "backend")
	var mu sync.Mutex
	answered := map[string]int{}
	rcv, srv := newReceiver(t, func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		answered[id]++
		if answered[id] == 1 {
			return 500
		}
		return 204
	})
	w := newWorker(t, s, clk.Now, Endpoint{Name: "backend", URL: srv.URL, Keys: [][]byte{key(t, secret)}})
	c, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: "retry@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	w.Drain(context.Background())
	clk.Set(clk.Now().Add(Schedule[0]))
	w.Drain(context.Background())
	got := rcv.received()
	if len(got) != 2 || got[0].id != got[1].id || got[0].code != 500 || got[1].code != 204 {
		t.Fatalf("received %+v, want the same event twice: 500 then 204", got)
	}
	if string(got[0].body) != string(got[1].body) {
		t.Error("the retry's body differs from the first attempt's")
	}
	page, _ := s.ListEvents(context.Background(), ledger.ListEventsParams{})
	if len(page.Items) != 1 || page.Items[0].ObjectID != c.ID || page.Items[0].ID != got[0].id {
		t.Fatalf("events %+v", page.Items)
	}
	ev, _ := s.GetEvent(context.Background(), got[0].id)
	if d := ev.Deliveries[0]; d.Status != ledger.DeliveryDelivered || d.Attempts != 2 || d.LastStatusCode != 204 {
		t.Errorf("delivery %+v", d)
	}
	// Delivered: nothing more is sent, however long the worker runs.
	clk.Set(clk.Now().Add(48 * time.Hour))
	w.Drain(context.Background())
	if n := len(rcv.received()); n != 2 {
		t.Errorf("%d requests after the 2xx, want none", n-2)
	}
}

// runSchedule drives the worker on the simulated clock: each round jumps to the next due
// delivery and sends it, until nothing is pending or rounds run out.
func runSchedule(t *testing.T, s *ledger.Store, w *Worker, clk *clock, before func(round int, now time.Time)) {
	t.Helper()
	ctx := context.Background()
	for round := range 100 {
		b, err := s.DeliveryBacklog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending == 0 {
			return
		}
		clk.Set(b.NextDue)
		if before != nil {
			before(round, clk.Now())
		}
		w.Drain(ctx)
	}
	t.Fatal("deliveries still pending after 100 rounds")
}

// A receiver down for the whole retry schedule but the last attempt gets every event when it
// comes back, in retry order, and nothing after its 2xx; one down through the last attempt gets
// the events failed, and a redelivery sends them.
func TestReceiverDownThroughTheSchedule(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			dsn := ledgertest.SQLiteDSN(t)
			if engine == "postgres" {
				dsn = testPG.DSN(t)
			}
			start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			clk := &clock{now: start}
			s := openStore(t, dsn, clk.Now, nil, "backend")
			var (
				mu sync.Mutex
				up bool
			)
			rcv, srv := newReceiver(t, func(string) int {
				mu.Lock()
				defer mu.Unlock()
				if up {
					return 200
				}
				return 503
			})
			w := newWorker(t, s, clk.Now, Endpoint{Name: "backend", URL: srv.URL, Keys: [][]byte{key(t, secret)}})
			var ids []string
			for i := range 3 {
				c, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: fmt.Sprintf("down%d@example.com", i)})
				if err != nil {
					t.Fatal(err)
				}
				_ = c
				w.Drain(context.Background()) // the first attempt goes at once, as Notify makes it
				clk.Set(clk.Now().Add(time.Second))
			}
			page, _ := s.ListEvents(context.Background(), ledger.ListEventsParams{})
			for _, e := range page.Items {
				ids = append(ids, e.ID)
			}
			var last time.Duration
			for _, d := range Schedule {
				last += d
			}
			runSchedule(t, s, w, clk, func(_ int, now time.Time) {
				if now.Sub(start) >= last { // the eighth and last attempts
					mu.Lock()
					up = true
					mu.Unlock()
				}
			})
			got := rcv.received()
			if len(got) != 3*MaxAttempts {
				t.Fatalf("%d requests, want %d (3 events × %d attempts)", len(got), 3*MaxAttempts, MaxAttempts)
			}
			var delivered []string
			for i, r := range got {
				if r.code == 200 {
					delivered = append(delivered, r.id)
					for _, later := range got[i+1:] {
						if later.id == r.id {
							t.Errorf("%s sent again after its 2xx", r.id)
						}
					}
				}
			}
			if !slices.Equal(delivered, ids) {
				t.Errorf("delivered in order %v, want the retry order %v", delivered, ids)
			}
			// Each attempt came at its scheduled time (jitter fixed at 1).
			var perEvent = map[string][]string{}
			for _, r := range got {
				perEvent[r.id] = append(perEvent[r.id], r.ts)
			}
			for id, tss := range perEvent {
				if len(tss) != MaxAttempts || !slices.IsSorted(tss) {
					t.Errorf("%s attempted at %v", id, tss)
				}
			}

			// Down through the last attempt: failed, then redelivered on request.
			mu.Lock()
			up = false
			mu.Unlock()
			c, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: "never@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			runSchedule(t, s, w, clk, nil)
			evs, _ := s.ListEvents(context.Background(), ledger.ListEventsParams{Type: ledger.EventCustomerCreated, Limit: 100})
			lastEv := evs.Items[len(evs.Items)-1]
			if lastEv.ObjectID != c.ID {
				t.Fatalf("last event is about %s", lastEv.ObjectID)
			}
			ev, _ := s.GetEvent(context.Background(), lastEv.ID)
			if d := ev.Deliveries[0]; d.Status != ledger.DeliveryFailed || d.Attempts != MaxAttempts || d.LastStatusCode != 503 {
				t.Fatalf("after the whole schedule: %+v", d)
			}
			mu.Lock()
			up = true
			mu.Unlock()
			if _, err := s.RedeliverEvent(context.Background(), lastEv.ID, ""); err != nil {
				t.Fatal(err)
			}
			w.Drain(context.Background())
			ev, _ = s.GetEvent(context.Background(), lastEv.ID)
			if d := ev.Deliveries[0]; d.Status != ledger.DeliveryDelivered {
				t.Fatalf("after redelivery: %+v", d)
			}
		})
	}
}

// Two portal replicas on one PostgreSQL deliver each event once: the leases keep them from
// sending the same attempt.
func TestTwoReplicasDeliverEachAttemptOnce(t *testing.T) {
	dsn := testPG.DSN(t)
	var mu sync.Mutex
	counts := map[string]int{}
	rcv, srv := newReceiver(t, func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		counts[id]++
		return 200
	})
	_ = rcv
	ep := Endpoint{Name: "backend", URL: srv.URL, Keys: [][]byte{key(t, secret)}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var workers []*Worker
	var stores []*ledger.Store
	var wg sync.WaitGroup
	for i := range 2 {
		var w *Worker
		s := openStore(t, dsn, time.Now, func() {
			if w != nil {
				w.Notify()
			}
		}, "backend")
		w = newWorker(t, s, time.Now, ep)
		w.o.Owner = fmt.Sprintf("replica-%d", i)
		w.o.Poll = 20 * time.Millisecond
		workers, stores = append(workers, w), append(stores, s)
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}
	const n = 120
	var cw sync.WaitGroup
	for i := range n {
		cw.Add(1)
		go func() {
			defer cw.Done()
			if _, err := stores[i%2].CreateCustomer(context.Background(), ledger.NewCustomer{Email: fmt.Sprintf("r%d@example.com", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	cw.Wait()
	deadline := time.After(60 * time.Second)
	for {
		b, err := stores[0].DeliveryBacklog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending == 0 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("%d deliveries still pending", b.Pending)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(counts) != n {
		t.Fatalf("received %d distinct events, want %d", len(counts), n)
	}
	for id, c := range counts {
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
}

// One endpoint that hangs holds only its own share of the worker: another endpoint's events
// keep flowing.
func TestSlowEndpointDoesNotStarveAnother(t *testing.T) {
	clk := &clock{now: time.Now()}
	s := openStore(t, ledgertest.SQLiteDSN(t), clk.Now, nil, "slow", "fast")
	slowRcv, slowSrv := newReceiver(t, func(string) int { return 200 })
	slowRcv.hold = make(chan struct{})
	fastRcv, fastSrv := newReceiver(t, func(string) int { return 200 })
	w, err := New(Options{Store: s, Now: clk.Now, PerEndpoint: 2, Jitter: func() float64 { return 1 }, Timeout: 30 * time.Second,
		Endpoints: func() []Endpoint {
			return []Endpoint{{Name: "slow", URL: slowSrv.URL, Keys: [][]byte{key(t, secret)}},
				{Name: "fast", URL: fastSrv.URL, Keys: [][]byte{key(t, secret)}}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: fmt.Sprintf("s%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	deadline := time.After(30 * time.Second)
	for len(fastRcv.received()) < 10 {
		select {
		case <-deadline:
			t.Fatalf("fast endpoint got %d of 10 while the slow one hung", len(fastRcv.received()))
		case <-time.After(10 * time.Millisecond):
			w.Notify()
		}
	}
	w.mu.Lock()
	inflight := w.flying["slow"]
	w.mu.Unlock()
	if inflight != 2 {
		t.Errorf("slow endpoint has %d attempts in flight, want its limit 2", inflight)
	}
	close(slowRcv.hold)
	cancel()
	<-done
}

// A redirect is not a delivery, and the worker does not follow it.
func TestRedirectIsNotFollowed(t *testing.T) {
	clk := &clock{now: time.Now()}
	s := openStore(t, ledgertest.SQLiteDSN(t), clk.Now, nil, "backend")
	followed := false
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	w := newWorker(t, s, clk.Now, Endpoint{Name: "backend", URL: redirect.URL, Keys: [][]byte{key(t, secret)}})
	if _, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: "redirect@example.com"}); err != nil {
		t.Fatal(err)
	}
	w.Drain(context.Background())
	if followed {
		t.Error("the redirect was followed")
	}
	page, _ := s.ListEvents(context.Background(), ledger.ListEventsParams{})
	ev, _ := s.GetEvent(context.Background(), page.Items[0].ID)
	if d := ev.Deliveries[0]; d.Status != ledger.DeliveryPending || d.LastStatusCode != http.StatusFound || d.Attempts != 1 {
		t.Errorf("after a redirect: %+v", d)
	}
}

// At shutdown a worker gives back the deliveries it claimed and did not send: another replica
// (or the next start) sends them at once, not when their leases run out.
func TestShutdownReleasesUnsentDeliveries(t *testing.T) {
	clk := &clock{now: time.Now()}
	s := openStore(t, ledgertest.SQLiteDSN(t), clk.Now, nil, "slow")
	rcv, srv := newReceiver(t, func(string) int { return 200 })
	rcv.hold = make(chan struct{})
	w, err := New(Options{Store: s, Now: clk.Now, PerEndpoint: 1, Jitter: func() float64 { return 1 }, Timeout: 30 * time.Second,
		Endpoints: func() []Endpoint { return []Endpoint{{Name: "slow", URL: srv.URL, Keys: [][]byte{key(t, secret)}}} }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: fmt.Sprintf("rel%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	deadline := time.After(30 * time.Second)
	for { // one delivery in flight (held by the receiver), the other four queued behind it
		w.mu.Lock()
		queued := len(w.queue["slow"])
		w.mu.Unlock()
		if queued == 4 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("queue never filled: %d", queued)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	close(rcv.hold)
	<-done
	again, err := s.ClaimDeliveries(context.Background(), "other-replica", "slow", time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) < 4 {
		t.Errorf("another replica could claim %d deliveries right after the shutdown, want the 4 unsent", len(again))
	}
}

// claimStore hands out as many deliveries as asked for and remembers the lease of each claim:
// it shows what the worker asks of the ledger, whatever a real ledger holds.
type claimStore struct {
	mu     sync.Mutex
	n      int
	leases []time.Duration
}

func (c *claimStore) ClaimDeliveries(_ context.Context, _, endpoint string, lease time.Duration, limit int) ([]ledger.DueDelivery, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leases = append(c.leases, lease)
	out := make([]ledger.DueDelivery, limit)
	for i := range out {
		c.n++
		out[i] = ledger.DueDelivery{EventID: fmt.Sprintf("evt_%d", c.n), Endpoint: endpoint, Type: "customer.created", Attempt: 1, Body: []byte("{}")}
	}
	return out, nil
}
func (c *claimStore) RecordAttempts(_ context.Context, _ string, recs []ledger.AttemptRecord) ([]bool, error) {
	return make([]bool, len(recs)), nil
}
func (c *claimStore) ReleaseDeliveries(context.Context, string, []ledger.DueDelivery) error {
	return nil
}
func (c *claimStore) DeliveryBacklog(context.Context) (ledger.Backlog, error) {
	return ledger.Backlog{}, nil
}
func (c *claimStore) PendingEndpoints(context.Context) ([]string, error) { return nil, nil }
func (c *claimStore) AbandonDeliveries(context.Context, string, string) (int, error) {
	return 0, nil
}

// A claimed delivery waits in line behind everything queued or in flight to its endpoint: its
// lease must outlast that whole line when every attempt ahead of it times out, or the lease runs
// out while it is still queued and another replica (or this worker's next claim) sends the same
// attempt a second time. The refill claimed while half a batch is still queued is the case.
func TestLeaseCoversTheWholeLine(t *testing.T) {
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hold) })
	st := &claimStore{}
	const timeout, perEndpoint = 10 * time.Second, 4
	w, err := New(Options{Store: st, PerEndpoint: perEndpoint, Timeout: timeout, Lease: time.Minute,
		Endpoints: func() []Endpoint { return []Endpoint{{Name: "slow", URL: srv.URL, Keys: [][]byte{key(t, secret)}}} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer w.wg.Wait()
	defer cancel()
	for pass := range 2 {
		w.mu.Lock()
		if pass > 0 { // the senders got through half the batch: the worker claims the next
			w.queue["slow"] = w.queue["slow"][:w.lowWater()]
		}
		ahead := len(w.queue["slow"]) + w.flying["slow"]
		w.mu.Unlock()
		if n := w.pass(ctx); n == 0 {
			t.Fatalf("pass %d claimed nothing", pass)
		}
		w.mu.Lock()
		line := len(w.queue["slow"]) + w.flying["slow"]
		w.mu.Unlock()
		st.mu.Lock()
		lease := st.leases[len(st.leases)-1]
		st.mu.Unlock()
		// The last delivery claimed ends, at worst, after every round of senders ahead of it.
		rounds := (line + perEndpoint - 1) / perEndpoint
		if worst := time.Duration(rounds) * timeout; lease <= worst {
			t.Errorf("pass %d: %d deliveries ahead, %d in line: lease %v, but the last may be sent %v after its claim",
				pass, ahead, line, lease, worst)
		}
	}
}

// A portal shutting down cancels the attempts in flight; those never got an answer, so they are
// not attempts of the schedule: they are released with the unsent ones, due at once for the next
// replica as the same attempt number, rather than recorded as failures that wait 5 s and use up
// one of the eight tries (every rollout would otherwise eat into a slow endpoint's schedule).
func TestShutdownDoesNotCountTheInterruptedAttempt(t *testing.T) {
	clk := &clock{now: time.Now()}
	s := openStore(t, ledgertest.SQLiteDSN(t), clk.Now, nil, "slow")
	rcv, srv := newReceiver(t, func(string) int { return 200 })
	rcv.hold = make(chan struct{})
	defer close(rcv.hold)
	w, err := New(Options{Store: s, Now: clk.Now, PerEndpoint: 1, Jitter: func() float64 { return 1 }, Timeout: 30 * time.Second,
		Endpoints: func() []Endpoint { return []Endpoint{{Name: "slow", URL: srv.URL, Keys: [][]byte{key(t, secret)}}} }})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: "inflight@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	deadline := time.After(30 * time.Second)
	for { // the one delivery is in flight, held by the receiver
		w.mu.Lock()
		flying := w.flying["slow"]
		w.mu.Unlock()
		if flying == 1 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the delivery never went out")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	page, err := s.ListEvents(context.Background(), ledger.ListEventsParams{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("events: %v %v", page.Items, err)
	}
	ev, err := s.GetEvent(context.Background(), page.Items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := ev.Deliveries[0]; d.Status != ledger.DeliveryPending || d.Attempts != 0 {
		t.Errorf("after a shutdown mid-attempt the delivery is %s after %d attempts (%q), want pending after 0",
			d.Status, d.Attempts, d.LastError)
	}
	again, err := s.ClaimDeliveries(context.Background(), "other-replica", "slow", time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Attempt != 1 || again[0].EventID != ev.ID {
		t.Errorf("another replica claims %+v right after the shutdown, want attempt 1 of %s (customer %s)", again, ev.ID, c.ID)
	}
}

// A change to an endpoint applies to the next delivery, even while its senders are busy: the
// deliveries already claimed go to the new URL, and none goes out once it is disabled (they are
// released, not held for ever). Senders outlive any one pass under steady traffic (the queue is
// refilled before it runs dry), so what they send with must not be the pass that started them.
func TestEndpointChangeAppliesToQueuedDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(Endpoint, string) Endpoint
	}{
		{"new url", func(ep Endpoint, newURL string) Endpoint { ep.URL = newURL; return ep }},
		{"disabled", func(ep Endpoint, _ string) Endpoint { ep.Disabled = true; return ep }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{now: time.Now()}
			s := openStore(t, ledgertest.SQLiteDSN(t), clk.Now, nil, "backend")
			old, oldSrv := newReceiver(t, func(string) int { return 200 })
			old.hold = make(chan struct{})
			moved, movedSrv := newReceiver(t, func(string) int { return 200 })
			var mu sync.Mutex
			ep := Endpoint{Name: "backend", URL: oldSrv.URL, Keys: [][]byte{key(t, secret)}}
			w, err := New(Options{Store: s, Now: clk.Now, PerEndpoint: 1, Jitter: func() float64 { return 1 }, Timeout: 30 * time.Second,
				Endpoints: func() []Endpoint { mu.Lock(); defer mu.Unlock(); return []Endpoint{ep} }})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := s.CreateCustomer(context.Background(), ledger.NewCustomer{Email: fmt.Sprintf("live%d@example.com", i)}); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if n := w.pass(ctx); n != 3 {
				t.Fatalf("claimed %d, want 3", n)
			}
			deadline := time.After(30 * time.Second)
			for { // the first is in flight, held by the old receiver; two are queued behind it
				w.mu.Lock()
				queued, flying := len(w.queue["backend"]), w.flying["backend"]
				w.mu.Unlock()
				if queued == 2 && flying == 1 {
					break
				}
				select {
				case <-deadline:
					t.Fatal("the first delivery never went out")
				case <-time.After(5 * time.Millisecond):
				}
			}
			mu.Lock()
			ep = tc.change(ep, movedSrv.URL)
			mu.Unlock()
			w.pass(ctx)
			close(old.hold)
			w.wg.Wait()
			w.flush(ctx)
			if got := len(old.received()); got != 1 {
				t.Errorf("the old endpoint got %d deliveries, want only the one in flight when it changed", got)
			}
			if tc.name == "new url" {
				w.Drain(ctx)
				if got := len(moved.received()); got != 2 {
					t.Errorf("the new URL got %d deliveries, want the 2 claimed before the change", got)
				}
				return
			}
			again, err := s.ClaimDeliveries(ctx, "other-replica", "backend", time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 2 {
				t.Errorf("%d deliveries released when the endpoint was disabled, want the 2 unsent", len(again))
			}
		})
	}
}
