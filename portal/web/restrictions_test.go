package web

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
)

// sessionWith is f.session with the whole spec given (the portal reference is filled in).
func (f *fixture) sessionWith(name string, spec billingv1alpha1.PortalSessionSpec, ttl time.Duration) (*billingv1alpha1.PortalSession, string) {
	f.t.Helper()
	tok := auth.NewPreSession() // any 256-bit base64url value is a valid token
	spec.PortalRef = billingv1alpha1.PortalReference{Name: f.portal.Name}
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: f.portal.Name + "-" + name},
		Spec:       spec,
	}
	if err := k8s.Create(f.ctx, s); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
	s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hashToken(tok),
		ExpiresAt: &metav1.Time{Time: f.clock.Now().Add(ttl)}}
	if err := k8s.Status().Update(f.ctx, s); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the informer sees the session", func() bool {
		got := f.rules.SessionByTokenHash(f.ctx, hashToken(tok))
		return got != nil && got.Status.Phase == billingv1alpha1.SessionActive
	})
	return s, tok
}

// openLink exchanges a session link in b, as a person pressing "Continue" does.
func (b *browser) openLink(tok string) *response {
	b.f.t.Helper()
	b.get("/s/" + tok)
	return b.submit("/s/"+tok, nil)
}

// TestRestrictedSessionOffersAndAcceptsOnlyItsMethods: a PortalSession restricted to bank
// transfer, on a portal that allows every method, offers nothing else and refuses everything
// else, hand-made requests with a valid CSRF token included; a permission the session turns off
// is gone from its pages and refused too. The same customer signed in with a code lives by the
// portal's own rules, and a portal change applies to the session live, through the intersection.
func TestRestrictedSessionOffersAndAcceptsOnlyItsMethods(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true}
	}))
	c := f.customer("jane@example.com", "Jane Doe")
	sub := f.subscribe(c, "Plan Pro")
	due := f.onlyPayment(c, "incomplete")
	_, tok := f.sessionWith("narrow", billingv1alpha1.PortalSessionSpec{
		Customer: billingv1alpha1.CustomerReference{ID: c.ID},
		Restrictions: &billingv1alpha1.SessionRestrictions{
			PaymentMethods: []billingv1alpha1.PaymentMethodType{billingv1alpha1.PaymentMethodBankTransfer},
			Permissions:    &billingv1alpha1.RestrictedPermissions{CancelSubscriptions: ptr.To(false)},
		},
	}, time.Hour)
	b := f.browser()
	wantRedirect(t, b.openLink(tok), "/")

	// The portal's own rules, for comparison: a code sign-in of the same customer.
	plain := f.browser()
	plain.signIn(c)
	r := plain.get("/methods/new")
	wantBody(t, r, `href="/methods/new?type=card"`, `href="/methods/new?type=bank_transfer"`)
	wantStatus(t, plain.get("/subscriptions/"+sub.ID+"/cancel"), http.StatusOK)

	t.Run("offers only bank transfer", func(t *testing.T) {
		for _, path := range []string{"/methods/new", "/payments/" + due.ID + "/pay"} {
			r := b.get(path)
			wantStatus(t, r, http.StatusOK)
			wantBody(t, r, `?type=bank_transfer"`)
			for _, other := range []string{"card", "direct_debit", "cvu", "qr", "wallet"} {
				wantNoBody(t, r, `?type=`+other+`"`)
			}
		}
		wantStatus(t, b.get("/methods/new?type=card"), http.StatusForbidden)
		wantStatus(t, b.get("/payments/"+due.ID+"/pay?type=cvu"), http.StatusForbidden)
	})

	t.Run("refuses hand-made requests for anything else", func(t *testing.T) {
		b.get("/methods")
		wantStatus(t, b.submit("/methods", cardForm("4242424242424242", "123")), http.StatusForbidden)
		wantStatus(t, b.submit("/methods", url.Values{"type": {"cvu"}, "account": {goodCVU}}), http.StatusForbidden)
		wantStatus(t, b.submit("/payments/"+due.ID+"/pay", cardForm("4242424242424242", "123")), http.StatusForbidden)
		if ms := f.methods(c); len(ms) != 0 {
			t.Fatalf("methods saved through a restricted session: %+v", ms)
		}
		if p := f.payment(due.ID); p.Status != "incomplete" {
			t.Fatalf("the payment moved on: %s", p.Status)
		}
	})

	t.Run("a permission turned off is gone and refused", func(t *testing.T) {
		r := b.get("/subscriptions/" + sub.ID)
		wantStatus(t, r, http.StatusOK)
		wantNoBody(t, r, `href="/subscriptions/`+sub.ID+`/cancel"`)
		wantStatus(t, b.get("/subscriptions/"+sub.ID+"/cancel"), http.StatusForbidden)
		b.get("/subscriptions/" + sub.ID)
		wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/cancel", url.Values{"reason": {"x"}}), http.StatusForbidden)
		if s := f.sub(sub.ID); s.CancelAtPeriodEnd || s.Status == "canceled" {
			t.Fatalf("a restricted session canceled the subscription: %+v", s)
		}
	})

	t.Run("a method of another type is neither pinned nor preferred", func(t *testing.T) {
		card := f.addMethod(c, cardInput("4242424242424242")) // added by the merchant, say
		b.get("/methods")
		wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/method", url.Values{"method": {card.ID}}), http.StatusForbidden)
		wantRedirect(t, b.submit("/methods", url.Values{"type": {"bank_transfer"}}), "/methods")
		ms := f.methods(c)
		if len(ms) != 2 || ms[1].Type != "bank_transfer" {
			t.Fatalf("methods = %+v", ms)
		}
		b.get("/methods")
		wantRedirect(t, b.submit("/methods/"+ms[1].ID+"/move", url.Values{"to": {"top"}}), "/methods")
		b.get("/methods")
		wantStatus(t, b.submit("/methods/"+card.ID+"/move", url.Values{"to": {"top"}}), http.StatusUnprocessableEntity)
		if ms := f.methods(c); ms[0].Type != "bank_transfer" {
			t.Fatalf("the card became preferred through a session that does not accept cards: %+v", ms)
		}
	})

	t.Run("a deep link leads where the session's rules allow", func(t *testing.T) {
		_, tok := f.sessionWith("narrow-flow", billingv1alpha1.PortalSessionSpec{
			Customer: billingv1alpha1.CustomerReference{ID: c.ID},
			Flow:     &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCancelSubscription, SubscriptionID: sub.ID},
			Restrictions: &billingv1alpha1.SessionRestrictions{
				Permissions: &billingv1alpha1.RestrictedPermissions{CancelSubscriptions: ptr.To(false)}},
		}, time.Hour)
		wantRedirect(t, f.browser().openLink(tok), "/subscriptions/"+sub.ID)
	})

	t.Run("the portal's changes apply through the intersection", func(t *testing.T) {
		f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
			s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "cvu"}}
		})
		r := b.get("/methods/new")
		wantStatus(t, r, http.StatusOK)
		wantNoBody(t, r, `?type=`)
		wantStatus(t, b.get("/methods/new?type=bank_transfer"), http.StatusForbidden)
		wantStatus(t, b.get("/methods/new?type=card"), http.StatusForbidden)
		wantBody(t, plain.get("/methods/new"), `?type=card"`, `?type=cvu"`)
	})
}
