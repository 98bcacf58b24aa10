package ledger

import "testing"

// The outbox's promise tested where it can break: the transaction fails AFTER its event row was
// written (the second delivery row collides with the first), and neither the change nor the
// event survives, on either engine. Failing in Render, as TestEventCommittedWithItsChangeOrNotAtAll
// does, stops before the event's INSERT, so it would pass even if events were written outside
// the change's transaction.
func TestEventWrittenThenRolledBackLeavesNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ee := newEventsEnv(t, e, Subscriber{Name: "backend"}, Subscriber{Name: "backend"})
		if _, err := e.store.CreateCustomer(e.ctx, NewCustomer{Email: "outbox@example.com"}); err == nil {
			t.Fatal("CreateCustomer succeeded although its second delivery row could not be written")
		}
		if got := e.allEvents(t); len(got) != 0 {
			t.Errorf("events after the rolled-back change: %v", eventTypes(got))
		}
		page, err := e.store.ListCustomers(e.ctx, ListCustomersParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 0 {
			t.Errorf("customer kept although its transaction failed: %+v", page.Items)
		}
		b, err := e.store.DeliveryBacklog(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending != 0 {
			t.Errorf("%d deliveries pending for a rolled-back change", b.Pending)
		}
		ee.mu.Lock()
		defer ee.mu.Unlock()
		if ee.written != 0 {
			t.Errorf("the worker was woken %d times for a transaction that rolled back", ee.written)
		}
	})
}
