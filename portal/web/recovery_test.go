package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// TestExpiredLinkRecoversWithACode: an expired link deep-linked to a payment offers "send me a
// code" filled in with its customer's address (from the ledger, the session names an id); the
// code lands the customer on the payment. Until the code is typed the browser is signed in to
// nothing.
func TestExpiredLinkRecoversWithACode(t *testing.T) {
	f := newFixture(t, withMailpit())
	c := f.customer("jane@example.com", "Jane Doe")
	due := f.charge(c, 150000, "Cuota de marzo")
	_, tok := f.session("recover", billingv1alpha1.CustomerReference{ID: c.ID},
		&billingv1alpha1.Flow{Type: billingv1alpha1.FlowCompletePayment, PaymentID: due.ID}, 10*time.Minute)
	f.clock.Step(10 * time.Minute)

	b := f.browser()
	r := b.get("/s/" + tok)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "Este enlace venció", `action="/s/`+tok+`/recover"`, `value="jane@example.com"`, "Enviarme un código")
	if r.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the recovery page may leak the token in a referrer")
	}

	wantStatus(t, b.forge("/s/"+tok+"/recover", url.Values{"email": {"jane@example.com"}}), http.StatusForbidden)
	r = b.submit("/s/"+tok+"/recover", url.Values{"email": {"jane@example.com"}})
	wantRedirect(t, r, "/login/code")
	if r.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the recovery response may leak the token in a referrer")
	}
	if b.cookies["__Host-portero"] != "" {
		t.Fatal("asking for a code signed the browser in")
	}
	codes := f.codes("jane@example.com", 1)
	b.get("/login/code")
	wantRedirect(t, b.submit("/login/code", url.Values{"code": {codes[0]}}), "/payments/"+due.ID)
	r = b.get("/payments/" + due.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Cuota de marzo")
	if strings.Contains(f.logs.String(), tok) {
		t.Fatal("the token is in the logs")
	}
}

// TestRevokedLinkRecoversOnlyThroughTheCode: a revoked link that names its customer by e-mail
// is filled in with that address, leads nowhere without the code, and to its deep link with it.
// The address can be changed; a malformed one is refused on the field.
func TestRevokedLinkRecoversOnlyThroughTheCode(t *testing.T) {
	f := newFixture(t, withMailpit())
	c := f.customer("ana@example.com", "Ana")
	ps, tok := f.session("revoked", billingv1alpha1.CustomerReference{Email: "Ana@Example.com"},
		&billingv1alpha1.Flow{Type: billingv1alpha1.FlowUpdateBillingInfo}, time.Hour)
	revoke(t, f, ps)

	b := f.browser()
	r := b.get("/s/" + tok)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "Este enlace ya no funciona", `value="ana@example.com"`)
	// The exchange itself stays refused.
	wantStatus(t, b.submit("/s/"+tok, nil), http.StatusGone)

	r = b.submit("/s/"+tok+"/recover", url.Values{"email": {"not an address"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "email")
	wantBody(t, r, `value="not an address"`)

	wantRedirect(t, b.submit("/s/"+tok+"/recover", url.Values{"email": {c.Email}}), "/login/code")
	// Without the code, the deep link is the sign-in page, as for anyone.
	wantRedirect(t, b.get("/billing"), "/login")
	code := f.codes(c.Email, 1)[0]
	b.get("/login/code")
	wantRedirect(t, b.submit("/login/code", url.Values{"code": {code}}), "/billing")
}

// TestEndedLinksThatDoNotRecover: recovery None, a portal without public access, and a token
// no session has all show the old page, with no form and no address; a recovery asked for
// with such a token sends nothing. A link that works is sent back to its own page.
func TestEndedLinksThatDoNotRecover(t *testing.T) {
	f := newFixture(t, withMailpit())
	c := f.customer("jane@example.com", "Jane")
	none, noneTok := f.sessionWith("none", billingv1alpha1.PortalSessionSpec{
		Customer:        billingv1alpha1.CustomerReference{ID: c.ID},
		AfterExpiration: billingv1alpha1.AfterExpiration{Recovery: billingv1alpha1.RecoveryNone},
	}, time.Hour)
	revoke(t, f, none)
	_, liveTok := f.session("live", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)

	b := f.browser()
	r := b.get("/s/" + noneTok)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "Este enlace ya no funciona", `href="/login"`)
	wantNoBody(t, r, "/recover", "jane@example.com")
	b.get("/login")
	r = b.submit("/s/"+noneTok+"/recover", url.Values{"email": {"jane@example.com"}})
	wantStatus(t, r, http.StatusGone)
	wantNoBody(t, r, "jane@example.com")

	unknown := "/s/" + strings.Repeat("A", 43)
	r = b.get(unknown)
	wantStatus(t, r, http.StatusNotFound)
	wantNoBody(t, r, "/recover")
	b.get("/login")
	wantStatus(t, b.submit(unknown+"/recover", url.Values{"email": {"jane@example.com"}}), http.StatusNotFound)
	if b.cookies["__Host-portero-login"] != "" {
		t.Fatal("a made-up token started a sign-in")
	}

	b.get("/login")
	wantRedirect(t, b.submit("/s/"+liveTok+"/recover", url.Values{"email": {"jane@example.com"}}), "/s/"+liveTok)

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Access.Public.Enabled = ptr.To(false) })
	f.clock.Step(2 * time.Hour)
	r = b.get("/s/" + liveTok)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "Pedile un enlace nuevo")
	wantNoBody(t, r, "/recover", "jane@example.com")

	f.h.Wait()
	if msgs, err := f.mailpit.Messages("jane@example.com"); err != nil || len(msgs) != 0 {
		t.Fatalf("codes sent for links that do not recover: %d, %v", len(msgs), err)
	}
}

// TestRecoveredSignInIsNotNarrowed: a recovered sign-in is a code sign-in of the portal, so it
// lives by the portal's rules, not by the ended link's restrictions (see link.go).
func TestRecoveredSignInIsNotNarrowed(t *testing.T) {
	f := newFixture(t, withMailpit(), withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true}
	}))
	c := f.customer("jane@example.com", "Jane")
	_, tok := f.sessionWith("narrow", billingv1alpha1.PortalSessionSpec{
		Customer: billingv1alpha1.CustomerReference{ID: c.ID},
		Flow:     &billingv1alpha1.Flow{Type: billingv1alpha1.FlowUpdatePaymentMethod},
		Restrictions: &billingv1alpha1.SessionRestrictions{
			PaymentMethods: []billingv1alpha1.PaymentMethodType{billingv1alpha1.PaymentMethodBankTransfer}},
	}, 5*time.Minute)
	f.clock.Step(5 * time.Minute)
	b := f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok+"/recover", url.Values{"email": {c.Email}}), "/login/code")
	code := f.codes(c.Email, 1)[0]
	b.get("/login/code")
	wantRedirect(t, b.submit("/login/code", url.Values{"code": {code}}), "/methods")
	wantBody(t, b.get("/methods/new"), `?type=card"`, `?type=bank_transfer"`)
}

// revoke sets spec.revoked and waits for the informer to see it.
func revoke(t *testing.T, f *fixture, ps *billingv1alpha1.PortalSession) {
	t.Helper()
	cur := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(ps), cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Revoked = true
	if err := k8s.Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer sees the revocation", func() bool {
		s := f.rules.Session(f.ctx, ps.Name)
		return s != nil && s.Spec.Revoked
	})
}
