package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

func (f *fixture) subscribe(c ledger.Customer, plan string) ledger.Subscription {
	f.t.Helper()
	s, _, err := f.ledger.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: plan, Amount: 250000,
		Currency: ledger.ARS, Interval: ledger.Month})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) sub(id string) ledger.Subscription {
	f.t.Helper()
	s, err := f.ledger.GetSubscription(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func TestSubscriptionsAndTheirMethods(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "direct_debit"}}
	}))
	c := f.customer("jane@example.com", "Jane")
	visa := f.addMethod(c, cardInput("4242424242424242"))
	cbu := f.addMethod(c, flowtest.Method{Type: payments.MethodDirectDebit, Account: goodCBU})
	wallet := f.addMethod(c, flowtest.Method{Type: payments.MethodWallet, Wallet: "modo"})
	sub := f.subscribe(c, "Plan Pro")
	stranger := f.customer("mallory@example.com", "Mallory")
	theirMethod := f.addMethod(stranger, cardInput("5555555555554444"))
	theirSub := f.subscribe(stranger, "Plan Mallory")
	b := f.browser()
	b.signIn(c)

	r := b.get("/subscriptions")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Plan Pro", "$ 2.500,00 por mes", "Activa", "Se cobra con tu medio de pago preferido")
	wantNoBody(t, r, "Plan Mallory")

	r = b.get("/subscriptions/" + sub.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Cambiar el medio de pago", `value="`+visa.ID+`"`, `value="`+cbu.ID+`"`, `href="/subscriptions/`+sub.ID+`/cancel"`)
	wantNoBody(t, r, `value="`+wallet.ID+`"`) // not a type this portal accepts

	wantRedirect(t, b.submit("/subscriptions/"+sub.ID+"/method", url.Values{"method": {cbu.ID}}), "/subscriptions/"+sub.ID)
	if got := f.sub(sub.ID).PaymentMethodID; got != cbu.ID {
		t.Fatalf("pinned method = %q", got)
	}
	wantBody(t, b.get("/subscriptions"), "Se cobra con CBU •••• 3456")
	b.get("/subscriptions/" + sub.ID)
	wantRedirect(t, b.submit("/subscriptions/"+sub.ID+"/method", url.Values{"method": {""}}), "/subscriptions/"+sub.ID)
	if got := f.sub(sub.ID).PaymentMethodID; got != "" {
		t.Fatalf("unpinned method = %q", got)
	}

	b.get("/subscriptions/" + sub.ID)
	wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/method", url.Values{"method": {wallet.ID}}), http.StatusForbidden)
	wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/method", url.Values{"method": {theirMethod.ID}}), http.StatusNotFound)
	wantStatus(t, b.forge("/subscriptions/"+sub.ID+"/method", url.Values{"method": {visa.ID}}), http.StatusForbidden)
	if got := f.sub(sub.ID).PaymentMethodID; got != "" {
		t.Fatalf("a refused change pinned %q", got)
	}

	t.Run("another customer's subscription is not found", func(t *testing.T) {
		wantStatus(t, b.get("/subscriptions/"+theirSub.ID), http.StatusNotFound)
		wantStatus(t, b.get("/subscriptions/"+theirSub.ID+"/cancel"), http.StatusNotFound)
		b.get("/subscriptions")
		wantStatus(t, b.submit("/subscriptions/"+theirSub.ID+"/method", url.Values{"method": {visa.ID}}), http.StatusNotFound)
		wantStatus(t, b.submit("/subscriptions/"+theirSub.ID+"/cancel", nil), http.StatusNotFound)
		wantStatus(t, b.submit("/subscriptions/"+theirSub.ID+"/resume", nil), http.StatusNotFound)
		if s := f.sub(theirSub.ID); s.CancelAtPeriodEnd || s.PaymentMethodID != "" {
			t.Fatalf("the stranger's subscription changed: %+v", s)
		}
	})
}

func TestCancelSubscription(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	f.addMethod(c, cardInput("4242424242424242"))
	sub := f.subscribe(c, "Plan Pro")
	b := f.browser()
	b.signIn(c)

	r := b.get("/subscriptions/" + sub.ID + "/cancel")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "¿Cancelar Plan Pro?", "La seguís teniendo hasta el", `name="reason"`)
	wantStatus(t, b.forge("/subscriptions/"+sub.ID+"/cancel", nil), http.StatusForbidden)
	r = b.submit("/subscriptions/"+sub.ID+"/cancel", url.Values{"reason": {strings.Repeat("x", 501)}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, `id="reason-error"`, "hasta 500 caracteres")
	wantRedirect(t, b.submit("/subscriptions/"+sub.ID+"/cancel", url.Values{"reason": {"Muy caro\r\npara mí"}}), "/subscriptions/"+sub.ID)
	s := f.sub(sub.ID)
	if !s.CancelAtPeriodEnd || s.Status != ledger.SubscriptionActive || s.CancellationReason != "Muy caro  para mí" {
		t.Fatalf("after cancel at period end: %+v", s)
	}
	r = b.get("/subscriptions/" + sub.ID)
	wantBody(t, r, "se va a cancelar al final del período", "No cancelar")
	// Already scheduled: the confirmation page sends back to the subscription.
	wantRedirect(t, b.get("/subscriptions/"+sub.ID+"/cancel"), "/subscriptions/"+sub.ID)
	b.get("/subscriptions/" + sub.ID)
	wantStatus(t, b.forge("/subscriptions/"+sub.ID+"/resume", nil), http.StatusForbidden)
	if !f.sub(sub.ID).CancelAtPeriodEnd {
		t.Fatal("a forged form resumed the subscription")
	}
	wantRedirect(t, b.submit("/subscriptions/"+sub.ID+"/resume", nil), "/subscriptions/"+sub.ID)
	if f.sub(sub.ID).CancelAtPeriodEnd {
		t.Fatal("resume did not resume")
	}

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Cancellation = billingv1alpha1.Cancellation{Mode: billingv1alpha1.CancelImmediately}
	})
	r = b.get("/subscriptions/" + sub.ID + "/cancel")
	wantBody(t, r, "termina ahora mismo")
	wantNoBody(t, r, `name="reason"`)
	wantRedirect(t, b.submit("/subscriptions/"+sub.ID+"/cancel", url.Values{"reason": {"ignored"}}), "/subscriptions/"+sub.ID)
	if s := f.sub(sub.ID); s.Status != ledger.SubscriptionCanceled || s.CancellationReason != "" {
		t.Fatalf("after immediate cancel: %+v", s)
	}
	r = b.get("/subscriptions/" + sub.ID)
	wantBody(t, r, "Cancelada")
	wantNoBody(t, r, "Cancelar suscripción", "Cambiar el medio de pago")
	b.get("/subscriptions/" + sub.ID)
	wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/cancel", nil), http.StatusConflict)
}

func TestCancelSectionOff(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.CancelSubscriptions = new(bool) }))
	c := f.customer("jane@example.com", "Jane")
	f.addMethod(c, cardInput("4242424242424242"))
	sub := f.subscribe(c, "Plan Pro")
	b := f.browser()
	b.signIn(c)
	r := b.get("/subscriptions/" + sub.ID)
	wantStatus(t, r, http.StatusOK)
	wantNoBody(t, r, "/cancel", "Cancelar la suscripción")
	wantStatus(t, b.get("/subscriptions/"+sub.ID+"/cancel"), http.StatusForbidden)
	b.get("/subscriptions/" + sub.ID)
	wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/cancel", nil), http.StatusForbidden)
	wantStatus(t, b.submit("/subscriptions/"+sub.ID+"/resume", nil), http.StatusForbidden)
	if s := f.sub(sub.ID); s.CancelAtPeriodEnd || s.Status == ledger.SubscriptionCanceled {
		t.Fatal("canceled although the portal does not allow it")
	}
}
