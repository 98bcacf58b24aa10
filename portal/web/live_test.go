package web

import (
	"net/http"
	"net/url"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/payments"
)

// A rule change applies to the next request: no restart, no new handler, the same browser
// session. This is `kubectl patch cportal … permissions.updatePaymentMethod=false` seen from an
// open portal tab.
func TestRuleChangeAppliesToTheNextRequest(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)

	r := b.get("/methods/new?type=card")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `href="/methods"`)
	token := b.csrf() // the form the customer has open

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdatePaymentMethod = new(bool) })

	// The form that was already open no longer works…
	form := cardForm("4242424242424242", "123")
	form.Set("csrf", token)
	wantStatus(t, b.do(http.MethodPost, "/methods", form, nil), http.StatusForbidden)
	if n := len(f.methods(c)); n != 0 {
		t.Fatalf("a method was added after the permission was turned off: %d", n)
	}
	// …and the section is gone from the next page.
	r = b.get("/")
	wantStatus(t, r, http.StatusOK)
	wantNoBody(t, r, `href="/methods"`)
	wantStatus(t, b.get("/methods"), http.StatusForbidden)

	// Back on: the same session, the same handler.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdatePaymentMethod = nil })
	wantBody(t, b.get("/"), `href="/methods"`)
	b.get("/methods/new?type=card")
	wantRedirect(t, b.submit("/methods", cardForm("4242424242424242", "123")), "/methods")

	// The allowed types change live too.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{billingv1alpha1.PaymentMethodType(payments.MethodBankTransfer)}}
	})
	r = b.get("/methods")
	wantNoBody(t, r, "type=card")
	wantStatus(t, b.submit("/methods", url.Values{"type": {"card"}}), http.StatusForbidden)
	wantRedirect(t, b.submit("/methods", url.Values{"type": {"bank_transfer"}}), "/methods")

	// Branding too: name and colour follow the resource.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.DisplayName = "Acme Cobranzas"
		s.Branding.PrimaryColor = "#ff6600"
	})
	wantBody(t, b.get("/"), "Acme Cobranzas", "/brand.css?v=ff6600")
	wantBody(t, b.get("/brand.css"), "--brand:#ff6600")
}
