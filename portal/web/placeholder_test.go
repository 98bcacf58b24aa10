package web

import (
	"net/http"
	"net/url"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// TestPlaceholderNumbersAreRefusedInThePortal: a card number of no card network and an
// all-zero CBU or CVU pass their check digits, but the form refuses them on their field with a
// message that says what to type (in the page's language), and nothing is saved.
func TestPlaceholderNumbersAreRefusedInThePortal(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true}
	}))
	c := f.customer("jane@example.com", "Jane Doe")
	b := f.browser()
	b.signIn(c)

	b.get("/methods/new?type=card")
	r := b.submit("/methods", cardForm("0000 0000 0000 0000", "123"))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "number")
	wantBody(t, r, "no corresponde a ninguna red de tarjetas")
	wantNoBody(t, r, `value="0000 0000 0000 0000"`)

	b.get("/methods/new?type=direct_debit")
	r = b.submit("/methods", url.Values{"type": {"direct_debit"}, "account": {"0000000000000000000000"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "account")
	wantBody(t, r, "Este CBU no corresponde a ninguna cuenta")

	b.get("/methods/new?type=cvu&lang=en")
	b.get("/methods/new?type=cvu")
	r = b.submit("/methods", url.Values{"type": {"cvu"}, "account": {"0000 0000 0000 0000 0000 00"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "account")
	wantBody(t, r, "This CVU names no account")

	if ms, err := f.ledger.ListPaymentMethods(f.ctx, c.ID); err != nil || len(ms) != 0 {
		t.Fatalf("methods saved from placeholders: %+v, %v", ms, err)
	}
}
