package web

import (
	"net/url"
	"testing"

	"github.com/portero-dev/portero/portal/ledger"
)

// What a customer changes in the portal reaches the merchant's event log as the portal's doing
// (source "portal"), distinct from the merchant API's and the billing loop's.
func TestPortalChangesAreLoggedAsThePortals(t *testing.T) {
	f := newFixture(t)
	c := f.customer("source@example.com", "Source")
	first := f.addMethod(c, cardInput("4242424242424242")) // through the ledger: the merchant's
	second := f.addMethod(c, cardInput("5555555555554444"))
	b := f.browser()
	b.signIn(c)
	b.get("/methods")
	wantRedirect(t, b.submit("/methods/"+second.ID+"/move", url.Values{"to": {"top"}}), "/methods")

	page, err := f.ledger.ListEvents(f.ctx, ledger.ListEventsParams{Type: ledger.EventPaymentMethodPreferredChanged})
	if err != nil {
		t.Fatal(err)
	}
	var sources = map[string]ledger.EventSource{}
	for _, ev := range page.Items {
		sources[ev.ObjectID] = ev.Source
	}
	if got := sources[first.ID]; got != ledger.SourceMerchantAPI {
		t.Errorf("first method preferred by the ledger call: source %q, want merchant_api", got)
	}
	if got := sources[second.ID]; got != ledger.SourcePortal {
		t.Errorf("method made preferred in the portal: source %q, want portal", got)
	}
}
