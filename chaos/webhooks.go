package chaos

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/portal/api"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/webhooks"
)

// receiver is a merchant's webhook endpoint: it verifies each request's Standard Webhooks
// signature itself (not with Portero's code) and counts, per event id, the requests and the
// 2xx answers it gave, and the requests that came after a 2xx.
type receiver struct {
	key []byte

	mu          sync.Mutex
	requests    int
	badSig      int
	ok          map[string]int // event id → 2xx answers
	afterOK     int            // requests for an event already answered 2xx
	firstOKTime map[string]time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, rc.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	valid := false
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		valid = valid || hmac.Equal([]byte(sig), []byte(want))
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if !valid {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.ok[id] > 0 {
		rc.afterOK++
	}
	rc.ok[id]++
	w.WriteHeader(http.StatusNoContent)
}

// WebhookReceiverDown (scenario 7) writes events through the ledger (customers, methods,
// payments) with one merchant endpoint configured, and delivers them with the portal's worker
// on a simulated clock while the endpoint is down (its port closed). First batch: down for
// the first seven attempts, back for the eighth and last. Second batch: down for all eight,
// so every delivery fails; the merchant then asks for each event again (RedeliverEvent, the
// API's POST /events/{id}/redeliver) once the endpoint is back. Afterwards the clock runs on
// another full schedule. Every event must reach the endpoint with a valid signature, and none
// may be sent again after the endpoint answered 2xx.
func WebhookReceiverDown(ctx context.Context, cfg Config) Outcome {
	customers := cfg.size(200, 20)
	return run("Webhook receiver down", func(o *Outcome) error {
		o.Faults = fmt.Sprintf("merchant endpoint's port closed: batch 1 for attempts 1–7 of %d (≈ %.0f h simulated), batch 2 for all %d; SQLite and PostgreSQL",
			webhooks.MaxAttempts, scheduleSpan(webhooks.MaxAttempts-1).Hours(), webhooks.MaxAttempts)
		engines := []struct{ name, dsn string }{{"SQLite", "sqlite://" + filepath.Join(cfg.Work, "webhooks.db")}}
		if cfg.Postgres != nil {
			dsn, err := cfg.Postgres.Database("chaos_webhooks")
			if err != nil {
				return err
			}
			engines = append(engines, struct{ name, dsn string }{"PostgreSQL", dsn})
		}
		for _, e := range engines {
			cfg.step("webhooks: %d customers' events on %s", customers, e.name)
			if err := webhooksOn(ctx, e.name, e.dsn, customers, o); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
		return nil
	})
}

// scheduleSpan is the nominal time the first n retries of the schedule take.
func scheduleSpan(n int) time.Duration {
	var d time.Duration
	for _, s := range webhooks.Schedule[:n] {
		d += s
	}
	return d
}

func webhooksOn(ctx context.Context, engine, dsn string, customers int, o *Outcome) error {
	clk := clocktesting.NewFakeClock(time.Now())
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	rc := &receiver{key: key, ok: map[string]int{}}
	srv, err := newSwitchableHTTP(rc)
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.Down()

	var worker *webhooks.Worker
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	proc, err := sandbox.New(secret, clk.Now)
	if err != nil {
		return err
	}
	st, err := ledger.Open(ctx, dsn, ledger.Options{Now: clk.Now, Events: ledger.EventOptions{
		Portal: "chaos/shop", Render: api.RenderEvent,
		Subscribers: func() []ledger.Subscriber { return []ledger.Subscriber{{Name: "merchant"}} },
		Written: func(types []string, deliveries bool) {
			if worker != nil {
				worker.Written(types, deliveries)
			}
		},
	}})
	if err != nil {
		return err
	}
	defer st.Close()
	// The ledger records; the charging driver calls the processor, as in the portal.
	drv, err := charging.New(charging.Options{Adapter: proc, Recorder: st})
	if err != nil {
		return err
	}
	endpoint := webhooks.Endpoint{Name: "merchant", URL: srv.URL() + "hooks", Keys: [][]byte{key}}
	worker, err = webhooks.New(webhooks.Options{Store: st, Endpoints: func() []webhooks.Endpoint { return []webhooks.Endpoint{endpoint} },
		Owner: "chaos", Now: clk.Now, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}

	// One batch of events: a customer, a card (which settles nothing), a payment charged to it.
	makeEvents := func(batch string) error {
		year := clk.Now().Year() + 3
		return bench.Parallel(ctx, 4, customers, func(i int) error {
			c, err := st.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("wh-%s-%d@chaos.example", batch, i), Name: "Cliente"})
			if err != nil {
				return err
			}
			if _, err := drv.AddCard(ctx, c.ID, payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: year, CVC: "123"}); err != nil {
				return err
			}
			_, claim, err := st.CreatePayment(ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 99000, Currency: ledger.ARS,
				Description: "Plan", IdempotencyKey: "wh-" + batch + strconv.Itoa(i), Processor: proc.Type()})
			if err != nil || claim == nil {
				return err
			}
			_, err = drv.Charge(ctx, *claim)
			return err
		})
	}
	// runSchedule makes `attempts` attempts of everything pending, the clock moved past each
	// retry's longest jittered delay in between; the endpoint is up from attempt upAt on (0: never).
	runSchedule := func(attempts, upAt int) error {
		for a := 1; a <= attempts; a++ {
			if upAt > 0 && a >= upAt {
				if err := srv.Up(); err != nil {
					return err
				}
			} else {
				srv.Down()
			}
			worker.Drain(ctx)
			if a <= len(webhooks.Schedule) {
				clk.Step(webhooks.Schedule[a-1]*6/5 + time.Second)
			}
		}
		return nil
	}

	before, err := count(ctx, st.DB(), "SELECT COUNT(*) FROM events")
	if err != nil {
		return err
	}
	if err := makeEvents("a"); err != nil {
		return fmt.Errorf("batch 1: %w", err)
	}
	batch1, err := count(ctx, st.DB(), "SELECT COUNT(*) FROM events")
	if err != nil {
		return err
	}
	batch1 -= before
	if err := runSchedule(webhooks.MaxAttempts, webhooks.MaxAttempts); err != nil {
		return err
	}
	delivered1, err := count(ctx, st.DB(), fmt.Sprintf("SELECT COUNT(*) FROM event_deliveries WHERE status = 'delivered' AND attempts = %d", webhooks.MaxAttempts))
	if err != nil {
		return err
	}

	if err := makeEvents("b"); err != nil {
		return fmt.Errorf("batch 2: %w", err)
	}
	total, err := count(ctx, st.DB(), "SELECT COUNT(*) FROM events")
	if err != nil {
		return err
	}
	if err := runSchedule(webhooks.MaxAttempts, 0); err != nil {
		return err
	}
	failed, err := count(ctx, st.DB(), "SELECT COUNT(*) FROM event_deliveries WHERE status = 'failed'")
	if err != nil {
		return err
	}
	if err := srv.Up(); err != nil {
		return err
	}
	ids, err := failedEvents(ctx, st)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := st.RedeliverEvent(ctx, id, ""); err != nil {
			return fmt.Errorf("redeliver %s: %w", id, err)
		}
	}
	worker.Drain(ctx)
	// A whole further schedule with the endpoint up: nothing delivered may be sent again.
	if err := runSchedule(webhooks.MaxAttempts, 1); err != nil {
		return err
	}

	notDelivered, err := count(ctx, st.DB(), "SELECT COUNT(*) FROM event_deliveries WHERE status <> 'delivered'")
	if err != nil {
		return err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	lost, dup := 0, 0
	rows, err := st.DB().QueryContext(ctx, "SELECT id FROM events")
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		switch n := rc.ok[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
	}
	rows.Close()
	o.Attempted += total
	o.Completed += total - lost
	o.Lost += lost
	o.Duplicated += dup
	o.check(engine+": batch 1 delivered by the last attempt", delivered1 == batch1, "%d of %d events delivered at attempt %d", delivered1, batch1, webhooks.MaxAttempts)
	o.check(engine+": batch 2 failed after the whole schedule", failed == total-batch1, "%d of %d deliveries failed before the redelivery", failed, total-batch1)
	o.check(engine+": every event delivered", lost == 0 && notDelivered == 0, "%d events never answered 2xx; %d deliveries not marked delivered", lost, notDelivered)
	o.check(engine+": none sent after its 2xx", rc.afterOK == 0, "%d requests after a 2xx", rc.afterOK)
	o.check(engine+": every request signed", rc.badSig == 0, "%d of %d requests with a bad signature", rc.badSig, rc.requests)
	o.figure("%s: %d events; %d requests reached the endpoint once it was back, one per event", engine, total, rc.requests)
	return nil
}

func failedEvents(ctx context.Context, st *ledger.Store) ([]string, error) {
	rows, err := st.DB().QueryContext(ctx, "SELECT DISTINCT event_id FROM event_deliveries WHERE status = 'failed'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
