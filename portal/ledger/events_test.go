package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventsEnv is an env whose store keeps an event log with the given subscribers.
type eventsEnv struct {
	*env
	mu      sync.Mutex
	subs    []Subscriber
	failOn  string // Render fails for events of this type
	written int
}

func newEventsEnv(t *testing.T, e *env, subs ...Subscriber) *eventsEnv {
	t.Helper()
	ee := &eventsEnv{env: e, subs: subs}
	s, err := Open(e.ctx, e.dsn, Options{
		Now: e.clock.Now,
		Events: EventOptions{
			Portal: "shop/general",
			Render: func(obj any) (json.RawMessage, error) {
				ee.mu.Lock()
				fail := ee.failOn
				ee.mu.Unlock()
				if fail != "" && fmt.Sprintf("%T", obj) == fail {
					return nil, errors.New("injected render failure")
				}
				return json.Marshal(obj)
			},
			Subscribers: func() []Subscriber {
				ee.mu.Lock()
				defer ee.mu.Unlock()
				return slices.Clone(ee.subs)
			},
			Written: func(_ []string, deliveries bool) {
				if deliveries {
					ee.mu.Lock()
					ee.written++
					ee.mu.Unlock()
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.store = newFlow(s, e.proc, nil)
	return ee
}

// allEvents returns the whole log, oldest first.
func (e *env) allEvents(t *testing.T) []Event {
	t.Helper()
	var out []Event
	p := ListEventsParams{Limit: MaxPageSize}
	for {
		page, err := e.store.ListEvents(e.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		p.Cursor = page.NextCursor
	}
}

func eventTypes(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// Each change writes its event, naming who made it, with the object as it was after the change.
func TestEventsRecordChanges(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		newEventsEnv(t, e)
		c := e.customer(t, "events@example.com")
		name := "Jane Events"
		if _, err := e.store.UpdateCustomer(WithSource(e.ctx, SourcePortal), c.ID, CustomerUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
		// No method yet: the payment is created incomplete.
		p := e.pay(t, c.ID, 1500)
		if p.Status != PaymentIncomplete {
			t.Fatalf("payment status = %s, want incomplete", p.Status)
		}
		// Adding a card settles it.
		e.addMethod(t, c.ID, card("4242424242424242"))
		sub, _, err := e.store.CreateSubscription(WithSource(e.ctx, SourcePortal), NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 1000, Currency: ARS, Interval: Month})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.CancelSubscription(WithSource(e.ctx, SourcePortal), c.ID, sub.ID, CancelImmediately, ""); err != nil {
			t.Fatal(err)
		}

		evs := e.allEvents(t)
		got := eventTypes(evs)
		for _, want := range []string{EventCustomerCreated, EventCustomerUpdated, EventPaymentCreated,
			EventPaymentIncomplete, EventPaymentSucceeded, EventSubscriptionCreated, EventSubscriptionCanceled} {
			if !slices.Contains(got, want) {
				t.Errorf("events %v lack %s", got, want)
			}
		}
		for _, ev := range evs {
			var env struct {
				ID, Type, Portal, Source string
				CreatedAt                time.Time `json:"created_at"`
				Data                     struct {
					Object map[string]any
				}
			}
			if err := json.Unmarshal(ev.Body, &env); err != nil {
				t.Fatalf("event %s body: %v", ev.ID, err)
			}
			if env.ID != ev.ID || env.Type != ev.Type || env.Portal != "shop/general" || env.Data.Object == nil {
				t.Errorf("event %s envelope = %+v", ev.ID, env)
			}
			wantSource := SourceMerchantAPI
			switch {
			case ev.Type == EventCustomerUpdated, strings.HasPrefix(ev.Type, "subscription."):
				wantSource = SourcePortal
			case strings.HasPrefix(ev.Type, "payment.") && ev.ObjectID != p.ID:
				wantSource = SourcePortal // the subscription's first payment
			}
			if ev.Source != wantSource || env.Source != string(wantSource) {
				t.Errorf("event %s (%s) source = %s/%s, want %s", ev.ID, ev.Type, ev.Source, env.Source, wantSource)
			}
			if ev.CustomerID != c.ID {
				t.Errorf("event %s customer = %q, want %q", ev.ID, ev.CustomerID, c.ID)
			}
		}
		// The succeeded event carries the payment as succeeded.
		for _, ev := range evs {
			if ev.Type == EventPaymentSucceeded && ev.ObjectID == p.ID {
				var body struct{ Data struct{ Object Payment } }
				if err := json.Unmarshal(ev.Body, &body); err != nil {
					t.Fatal(err)
				}
				if body.Data.Object.Status != PaymentSucceeded {
					t.Errorf("payment.succeeded carries status %s", body.Data.Object.Status)
				}
			}
		}
	})
}

// An event is committed with its change or not at all: a failure while writing the event rolls
// the change back, and a change that fails writes no event.
func TestEventCommittedWithItsChangeOrNotAtAll(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ee := newEventsEnv(t, e, Subscriber{Name: "backend"})
		c := e.customer(t, "atomic@example.com")
		before := len(e.allEvents(t))

		ee.mu.Lock()
		ee.failOn = "ledger.Payment"
		ee.mu.Unlock()
		if _, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 900, Currency: ARS}); err == nil {
			t.Fatal("CreatePayment succeeded although its event could not be written")
		}
		page, err := e.store.ListPayments(e.ctx, ListPaymentsParams{CustomerID: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 0 {
			t.Errorf("payment kept without its event: %+v", page.Items)
		}
		name := "Rolled Back"
		ee.mu.Lock()
		ee.failOn = "ledger.Customer"
		ee.mu.Unlock()
		if _, err := e.store.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Name: &name}); err == nil {
			t.Fatal("UpdateCustomer succeeded although its event could not be written")
		}
		if got, _ := e.store.GetCustomer(e.ctx, c.ID); got.Name == name {
			t.Error("customer update kept without its event")
		}
		// A change refused by the ledger itself writes nothing either.
		ee.mu.Lock()
		ee.failOn = ""
		ee.mu.Unlock()
		if _, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: -1, Currency: ARS}); err == nil {
			t.Fatal("negative payment accepted")
		}
		if _, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: "cus_missing", Amount: 100, Currency: ARS}); err == nil {
			t.Fatal("payment for a missing customer accepted")
		}
		if got := e.allEvents(t); len(got) != before {
			t.Errorf("events after failed changes = %v, want the %d from before", eventTypes(got), before)
		}
		b, err := e.store.DeliveryBacklog(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending != before {
			t.Errorf("pending deliveries = %d, want %d (one per surviving event)", b.Pending, before)
		}
	})
}

// Deliveries go to the endpoints that want the type, as configured when the event is written.
func TestEventDeliveriesFollowSubscribers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ee := newEventsEnv(t, e, Subscriber{Name: "all"}, Subscriber{Name: "payments", Events: []string{EventPaymentSucceeded}})
		c := e.customer(t, "subs@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		p := e.pay(t, c.ID, 700)
		ee.mu.Lock()
		ee.subs = nil // removed: later events make no delivery
		written := ee.written
		ee.mu.Unlock()
		if written == 0 {
			t.Error("Written was never told of deliveries")
		}
		e.customer(t, "later@example.com")

		evs := e.allEvents(t)
		for _, ev := range evs {
			full, err := e.store.GetEvent(e.ctx, ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			var eps []string
			for _, d := range full.Deliveries {
				eps = append(eps, d.Endpoint)
				if d.Status != DeliveryPending || d.Attempts != 0 || d.NextAttemptAt.IsZero() {
					t.Errorf("new delivery %+v", d)
				}
			}
			var want []string
			switch {
			case ev.Type == EventCustomerCreated && ev.ObjectID != c.ID:
				want = nil
			case ev.Type == EventPaymentSucceeded && ev.ObjectID == p.ID:
				want = []string{"all", "payments"}
			default:
				want = []string{"all"}
			}
			if !slices.Equal(eps, want) {
				t.Errorf("%s deliveries to %v, want %v", ev.Type, eps, want)
			}
		}
	})
}

// A claimed delivery is its worker's until recorded or its lease runs out; replicas sharing
// the database never claim the same one at once, and a lost lease loses the record, not the event.
func TestDeliveryLeases(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		newEventsEnv(t, e, Subscriber{Name: "backend"})
		for i := range 30 {
			e.customer(t, fmt.Sprintf("lease%d@example.com", i))
		}
		replica := e.open(t) // same database, no event options needed to deliver
		var (
			mu   sync.Mutex
			seen = map[string]string{}
			wg   sync.WaitGroup
			errs = make(chan error, 2)
		)
		for i, s := range []*flow{e.store, replica} {
			wg.Add(1)
			go func(owner string, s *flow) {
				defer wg.Done()
				for {
					got, err := s.ClaimDeliveries(e.ctx, owner, "backend", time.Minute, 4)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						if prev, ok := seen[d.EventID]; ok {
							errs <- fmt.Errorf("%s claimed by %s and %s", d.EventID, prev, owner)
						}
						seen[d.EventID] = owner
					}
					mu.Unlock()
				}
			}(fmt.Sprintf("w%d", i), s)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(seen) != 30 {
			t.Fatalf("claimed %d deliveries, want 30", len(seen))
		}
		// Leased: nothing is due until the leases run out.
		if got, err := e.store.ClaimDeliveries(e.ctx, "w9", "backend", time.Minute, 100); err != nil || len(got) != 0 {
			t.Fatalf("claim while leased = %d, %v", len(got), err)
		}
		e.clock.Advance(time.Minute + time.Millisecond)
		again, err := e.store.ClaimDeliveries(e.ctx, "w9", "backend", time.Minute, 100)
		if err != nil || len(again) != 30 {
			t.Fatalf("claim after leases ran out = %d, %v", len(again), err)
		}
		// The first owner's late record is refused; the new owner's is kept.
		d := again[0]
		if err := e.store.RecordAttempt(e.ctx, seen[d.EventID], d, AttemptOutcome{Delivered: true, StatusCode: 200}); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("record by the lease's former owner = %v, want ErrLeaseLost", err)
		}
		if err := e.store.RecordAttempt(e.ctx, "w9", d, AttemptOutcome{StatusCode: 500, Error: "endpoint answered 500", RetryAt: e.clock.Now().Add(5 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		ev, err := e.store.GetEvent(e.ctx, d.EventID)
		if err != nil {
			t.Fatal(err)
		}
		got := ev.Deliveries[0]
		if got.Status != DeliveryPending || got.Attempts != 1 || got.LastStatusCode != 500 || !got.NextAttemptAt.Equal(e.clock.Now().Add(5*time.Second)) {
			t.Errorf("after a 500: %+v", got)
		}
		// Delivered on the retry; a second record of the same attempt is refused.
		e.clock.Advance(5 * time.Second)
		retry, err := e.store.ClaimDeliveries(e.ctx, "w9", "backend", time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		var r DueDelivery
		for _, x := range retry {
			if x.EventID == d.EventID {
				r = x
			}
		}
		if r.Attempt != 2 {
			t.Fatalf("retry attempt = %d, want 2", r.Attempt)
		}
		if err := e.store.RecordAttempt(e.ctx, "w9", r, AttemptOutcome{Delivered: true, StatusCode: 204}); err != nil {
			t.Fatal(err)
		}
		if err := e.store.RecordAttempt(e.ctx, "w9", r, AttemptOutcome{Delivered: true, StatusCode: 204}); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("recording an attempt twice = %v, want ErrLeaseLost", err)
		}
		ev, _ = e.store.GetEvent(e.ctx, d.EventID)
		if got := ev.Deliveries[0]; got.Status != DeliveryDelivered || got.Attempts != 2 || got.DeliveredAt.IsZero() {
			t.Errorf("after delivery: %+v", got)
		}
		// Redelivery starts a fresh schedule, now.
		ev, err = e.store.RedeliverEvent(e.ctx, d.EventID, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.Deliveries[0]; got.Status != DeliveryPending || got.Attempts != 0 {
			t.Errorf("after redeliver: %+v", got)
		}
		// To a named endpoint that never had it: a new delivery.
		ev, err = e.store.RedeliverEvent(e.ctx, d.EventID, "crm")
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Deliveries) != 2 || ev.Deliveries[1].Endpoint != "crm" {
			t.Errorf("redeliver to crm: %+v", ev.Deliveries)
		}
		if _, err := e.store.RedeliverEvent(e.ctx, "evt_missing", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("redeliver of a missing event = %v, want not found", err)
		}
	})
}

// Listing filters by type and time and pages like the other lists.
func TestListEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		newEventsEnv(t, e)
		start := e.clock.Now()
		for i := range 5 {
			e.customer(t, fmt.Sprintf("list%d@example.com", i))
			e.clock.Advance(time.Second)
		}
		page, err := e.store.ListEvents(e.ctx, ListEventsParams{Type: EventCustomerCreated, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 2 || page.NextCursor == "" {
			t.Fatalf("first page: %d items, cursor %q", len(page.Items), page.NextCursor)
		}
		page2, err := e.store.ListEvents(e.ctx, ListEventsParams{Type: EventCustomerCreated, Limit: 10, Cursor: page.NextCursor})
		if err != nil || len(page2.Items) != 3 || page2.NextCursor != "" {
			t.Fatalf("second page: %d items, cursor %q, %v", len(page2.Items), page2.NextCursor, err)
		}
		window, err := e.store.ListEvents(e.ctx, ListEventsParams{CreatedFrom: start.Add(time.Second), CreatedTo: start.Add(3 * time.Second)})
		if err != nil || len(window.Items) != 2 {
			t.Fatalf("time window: %d items, %v", len(window.Items), err)
		}
		none, err := e.store.ListEvents(e.ctx, ListEventsParams{Type: EventPaymentFailed})
		if err != nil || len(none.Items) != 0 {
			t.Fatalf("payment.failed: %d items, %v", len(none.Items), err)
		}
	})
}

// Payment method changes: added, preferred changed (first method, reorder, removal of the
// first), removed, and the subscriptions a removal unpins.
func TestPaymentMethodEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		newEventsEnv(t, e)
		c := e.customer(t, "methods-events@example.com")
		first := e.addMethod(t, c.ID, card("4242424242424242"))
		second := e.addMethod(t, c.ID, card("5555555555554444"))
		sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 1000,
			Currency: ARS, Interval: Month, PaymentMethodID: second.ID})
		if err != nil {
			t.Fatal(err)
		}
		start := len(e.allEvents(t))
		if _, err := e.store.MakePreferred(e.ctx, c.ID, second.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.MakePreferred(e.ctx, c.ID, second.ID); err != nil { // no change: no event
			t.Fatal(err)
		}
		if err := e.store.RemovePaymentMethod(e.ctx, c.ID, second.ID); err != nil {
			t.Fatal(err)
		}
		evs := e.allEvents(t)
		type got struct{ typ, object string }
		var tail []got
		for _, ev := range evs[start:] {
			tail = append(tail, got{ev.Type, ev.ObjectID})
		}
		want := []got{
			{EventPaymentMethodPreferredChanged, second.ID},
			{EventPaymentMethodRemoved, second.ID},
			{EventPaymentMethodPreferredChanged, first.ID},
			{EventSubscriptionPaymentMethodChanged, sub.ID},
		}
		if !slices.Equal(tail, want) {
			t.Errorf("events = %v, want %v", tail, want)
		}
		var head []got
		for _, ev := range evs[:start] {
			if strings.HasPrefix(ev.Type, "payment_method.") {
				head = append(head, got{ev.Type, ev.ObjectID})
			}
		}
		if len(head) < 3 || head[0] != (got{EventPaymentMethodAdded, first.ID}) || head[1] != (got{EventPaymentMethodPreferredChanged, first.ID}) ||
			head[2] != (got{EventPaymentMethodAdded, second.ID}) {
			t.Errorf("events of the adds = %v", head)
		}
	})
}

// Without the API's representation the ledger logs only the object's id: its own types carry
// card tokens.
func TestEventsWithoutRenderCarryIDsOnly(t *testing.T) {
	e := newEnv(t, SQLite)
	c := e.customer(t, "ids-only@example.com")
	e.addMethod(t, c.ID, card("4242424242424242"))
	for _, ev := range e.allEvents(t) {
		if strings.Contains(string(ev.Body), "tok_") || strings.Contains(string(ev.Body), "4242") {
			t.Errorf("event %s carries card data: %s", ev.Type, ev.Body)
		}
		if !strings.Contains(string(ev.Body), `"object":{"id":"`+ev.ObjectID+`"}`) {
			t.Errorf("event %s object: %s", ev.Type, ev.Body)
		}
	}
}

// A batch of outcomes records each delivery only if the worker still holds its lease: the
// delivered ones in one statement per endpoint and answer, the others one by one.
func TestRecordAttemptsBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		newEventsEnv(t, e, Subscriber{Name: "a"}, Subscriber{Name: "b"})
		for i := range 3 {
			e.customer(t, fmt.Sprintf("batch%d@example.com", i))
		}
		da, err := e.store.ClaimDeliveries(e.ctx, "w1", "a", time.Minute, 10)
		if err != nil || len(da) != 3 {
			t.Fatalf("claim a: %d, %v", len(da), err)
		}
		db, err := e.store.ClaimDeliveries(e.ctx, "w1", "b", time.Minute, 10)
		if err != nil || len(db) != 3 {
			t.Fatalf("claim b: %d, %v", len(db), err)
		}
		// Another worker took over one of a's deliveries after its lease ran out.
		e.clock.Advance(time.Minute + time.Millisecond)
		stolen, err := e.store.ClaimDeliveries(e.ctx, "w2", "a", time.Minute, 1)
		if err != nil || len(stolen) != 1 {
			t.Fatalf("take over: %d, %v", len(stolen), err)
		}
		var recs []AttemptRecord
		for _, d := range da {
			recs = append(recs, AttemptRecord{Delivery: d, Outcome: AttemptOutcome{Delivered: true, StatusCode: 204}})
		}
		recs = append(recs,
			AttemptRecord{Delivery: db[0], Outcome: AttemptOutcome{Delivered: true, StatusCode: 200}},
			AttemptRecord{Delivery: db[1], Outcome: AttemptOutcome{StatusCode: 503, Error: "endpoint answered 503", RetryAt: e.clock.Now().Add(time.Minute)}},
			AttemptRecord{Delivery: db[2], Outcome: AttemptOutcome{StatusCode: 410, Error: "gone"}}) // no retry: failed
		// w1's leases on b ran out too, but nobody took them: the rows still name w1.
		kept, err := e.store.RecordAttempts(e.ctx, "w1", recs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			want := r.Delivery.EventID != stolen[0].EventID || r.Delivery.Endpoint != "a"
			if kept[i] != want {
				t.Errorf("record %d (%s to %s): kept %v, want %v", i, r.Delivery.EventID, r.Delivery.Endpoint, kept[i], want)
			}
		}
		wantStatus := map[string]string{}
		for _, d := range da {
			wantStatus[d.EventID+"/a"] = DeliveryDelivered
		}
		wantStatus[stolen[0].EventID+"/a"] = DeliveryPending
		wantStatus[db[0].EventID+"/b"], wantStatus[db[1].EventID+"/b"], wantStatus[db[2].EventID+"/b"] = DeliveryDelivered, DeliveryPending, DeliveryFailed
		for key, want := range wantStatus {
			id, ep, _ := strings.Cut(key, "/")
			ev, err := e.store.GetEvent(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ev.Deliveries {
				if d.Endpoint != ep {
					continue
				}
				if d.Status != want {
					t.Errorf("%s: status %s, want %s", key, d.Status, want)
				}
				if want == DeliveryDelivered && (d.Attempts != 1 || d.DeliveredAt.IsZero() || d.LastStatusCode == 0) {
					t.Errorf("%s delivered: %+v", key, d)
				}
			}
		}
	})
}
