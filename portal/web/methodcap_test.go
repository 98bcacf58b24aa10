package web

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/payments"
)

// A customer cannot add a 51st payment method: the form says why, in the page's language, on
// the method's field, and keeps what was typed (the card number and CVC excepted, as always).
func TestCustomerCannotAddA51stMethod(t *testing.T) {
	f := newFixture(t)
	c := f.customer("many@example.com", "Many")
	for i := 0; i < billingv1alpha1.DefaultMaxPaymentMethodsPerCustomer; i++ {
		f.addMethod(c, flowtest.Method{Type: payments.MethodBankTransfer})
	}
	b := f.browser()
	b.signIn(c)

	b.get("/methods/new?type=card")
	r := b.submit("/methods", cardForm("5555 5555 5555 4444", leakCVC))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "number")
	wantBody(t, r, "Ya hay 50 medios de pago guardados, el máximo que permite este portal; quitá uno para agregar otro.",
		`id="form-errors"`, `value="Jane Doe"`, `value="12"`)
	wantNoBody(t, r, "5555 5555 5555 4444")
	if n := len(f.methods(c)); n != 50 {
		t.Fatalf("%d methods, want 50", n)
	}

	b.get("/methods/new?type=direct_debit&lang=en")
	b.get("/methods/new?type=direct_debit")
	r = b.submit("/methods", url.Values{"type": {"direct_debit"}, "account": {goodCBU}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "account")
	wantBody(t, r, "There are already 50 saved payment methods, the most this portal allows; remove one to add another.",
		`value="`+goodCBU+`"`)

	// Removing one makes room for one.
	ms := f.methods(c)
	b.get("/methods/" + ms[len(ms)-1].ID + "/remove")
	wantRedirect(t, b.submit("/methods/"+ms[len(ms)-1].ID+"/remove", nil), "/methods")
	b.get("/methods/new?type=direct_debit")
	wantRedirect(t, b.submit("/methods", url.Values{"type": {"direct_debit"}, "account": {goodCBU}}), "/methods")
	if n := len(f.methods(c)); n != 50 {
		t.Fatalf("%d methods, want 50", n)
	}
}

// The cap is the portal's paymentMethods.maxPerCustomer as it is now.
func TestMethodCapAppliesLive(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true, MaxPerCustomer: 2}
	}))
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)
	add := func() *response {
		b.get("/methods/new?type=qr")
		return b.submit("/methods", url.Values{"type": {"qr"}})
	}
	wantRedirect(t, add(), "/methods")
	wantRedirect(t, add(), "/methods")
	r := add()
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, "Ya hay 2 medios de pago guardados")
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.PaymentMethods.MaxPerCustomer = 3 })
	wantRedirect(t, add(), "/methods")
	wantStatus(t, add(), http.StatusUnprocessableEntity)
	if n := len(f.methods(c)); n != 3 {
		t.Fatalf("%d methods, want 3", n)
	}
}

// Adds are limited per browser session and per client IP. Only attempts that reach the
// processor count (a refused card does; a mistyped account, caught by the form, does not), and
// a limited form comes back with what was typed.
func TestMethodAddsAreRateLimited(t *testing.T) {
	f := newFixture(t)
	f.atNextHour()
	f.h.limits.MethodAddsPerSession = authLimit(3)
	f.h.limits.MethodAddsPerIP = authLimit(5)
	jane, john, ana := f.customer("jane@example.com", "Jane"), f.customer("john@example.com", "John"), f.customer("ana@example.com", "Ana")
	post := func(b *browser, form url.Values) *response {
		b.get("/methods/new?type=" + form.Get("type"))
		return b.submit("/methods", form)
	}
	qr := url.Values{"type": {"qr"}}

	a := f.browser()
	a.signIn(jane)
	for i := 0; i < 5; i++ { // typos are not attempts
		wantStatus(t, post(a, url.Values{"type": {"direct_debit"}, "account": {"0110599552000000123457"}}), http.StatusUnprocessableEntity)
	}
	wantStatus(t, post(a, cardForm("4000000000000127", leakCVC)), http.StatusUnprocessableEntity) // refused by the processor
	wantRedirect(t, post(a, qr), "/methods")
	wantRedirect(t, post(a, qr), "/methods")
	r := post(a, url.Values{"type": {"direct_debit"}, "account": {goodCBU}})
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	wantBody(t, r, "Hubo demasiados intentos en poco tiempo", `id="form-errors"`, `value="`+goodCBU+`"`)

	// Another session from the same IP has its own three, within the IP's five.
	b := f.browser()
	b.signIn(john)
	wantRedirect(t, post(b, qr), "/methods")
	wantRedirect(t, post(b, qr), "/methods")
	wantStatus(t, post(b, qr), http.StatusTooManyRequests)
	// Another IP is not held back by this one.
	c := f.browser()
	c.ip = "198.51.100.20"
	c.signIn(ana)
	wantRedirect(t, post(c, qr), "/methods")

	if n := len(f.methods(jane)) + len(f.methods(john)); n != 4 {
		t.Fatalf("%d methods added, want 4", n)
	}
	if got := testutil.ToFloat64(f.h.metrics.security.WithLabelValues("rate_limit_method-adds")); got != 2 {
		t.Fatalf("rate-limited adds metric = %v, want 2", got)
	}
	// The next hour, the same session may add again (kept alive past the idle timeout).
	for i := 0; i < 3; i++ {
		f.clock.Step(20 * time.Minute)
		okPage(t, a.get("/methods"))
	}
	wantRedirect(t, post(a, qr), "/methods")
}

func authLimit(perHour int) auth.Limit { return auth.Limit{Hits: perHour, Window: time.Hour} }
