package billing

import (
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
)

// A renewal's payment reaches the merchant's event log as the billing loop's doing.
func TestRenewalEventsAreLoggedAsBillings(t *testing.T) {
	f := newFixture(t)
	c := f.customer("renew-source@example.com")
	f.addCard(c.ID)
	if _, _, err := f.store.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Pro",
		Amount: 250000, Currency: ledger.ARS, Interval: ledger.Month}); err != nil {
		t.Fatal(err)
	}
	f.run(f.loops, f.store)
	feb28 := time.Date(2026, time.February, 28, 15, 0, 0, 0, time.UTC)
	f.tick(f.loops, feb28.Add(time.Second))
	var renewal ledger.Payment
	for _, p := range f.payments(c.ID) {
		if p.PeriodStart.Equal(feb28) {
			renewal = p
		}
	}
	if renewal.ID == "" {
		t.Fatal("no renewal payment")
	}
	page, err := f.store.ListEvents(f.ctx, ledger.ListEventsParams{Limit: ledger.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, ev := range page.Items {
		if ev.ObjectID != renewal.ID {
			continue
		}
		seen++
		if ev.Source != ledger.SourceBilling {
			t.Errorf("%s of the renewal: source %q, want billing", ev.Type, ev.Source)
		}
	}
	if seen < 2 { // payment.created and its outcome
		t.Errorf("%d events about the renewal, want payment.created and its outcome", seen)
	}
}
