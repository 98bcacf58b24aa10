package v1alpha1_test

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

func webhook(name, url string) map[string]any {
	return map[string]any{"name": name, "url": url, "secretRef": map[string]any{"name": "acme-webhooks"}}
}

// The fields added for webhooks, trusted proxies and the method cap: refused with a message that
// says what to fix, on the real API server.
func TestRound2FieldsAreValidated(t *testing.T) {
	eleven := []any{}
	for i := range 11 {
		eleven = append(eleven, webhook(fmt.Sprintf("e%d", i), "https://acme.example/hooks"))
	}
	cases := []struct {
		name   string
		mutate func(o map[string]any)
		want   string
	}{
		{"plain-http webhook", set("spec.webhooks", []any{webhook("backend", "http://acme.example/hooks")}), "webhooks[].url must be an absolute https:// URL"},
		{"relative webhook", set("spec.webhooks", []any{webhook("backend", "/hooks")}), "webhooks[].url must be an absolute https:// URL"},
		{"webhook name not a label", set("spec.webhooks", []any{webhook("Back_End", "https://acme.example/hooks")}), "webhooks[].name must be a DNS label"},
		{"duplicate webhook names", set("spec.webhooks", []any{webhook("backend", "https://a.example/"), webhook("backend", "https://b.example/")}), "Duplicate value"},
		{"eleven webhooks", set("spec.webhooks", eleven), "must have at most 10 items"},
		{"unknown event type", set("spec.webhooks", []any{map[string]any{"name": "b", "url": "https://a.example/", "secretRef": map[string]any{"name": "s"}, "events": []any{"payment.refunded"}}}), `supported values: "customer.created"`},
		{"webhook without secret", set("spec.webhooks", []any{map[string]any{"name": "b", "url": "https://a.example/"}}), "secretRef: Required value"},
		{"trusted proxy not a CIDR", set("spec.exposure", map[string]any{"trustedProxies": []any{"10.0.0.1"}}), "exposure.trustedProxies entries must be CIDRs"},
		{"method cap zero", set("spec.paymentMethods.maxPerCustomer", int64(0)), "should be greater than or equal to 1"},
		{"method cap too high", set("spec.paymentMethods.maxPerCustomer", int64(501)), "should be less than or equal to 500"},
		{"CUIT check digit", set("spec.branding", map[string]any{"taxID": "30-71234567-2"}), "branding.taxID must be a valid CUIT"},
		{"CUIT prefix", set("spec.branding", map[string]any{"taxID": "99-71234567-1"}), "branding.taxID must be a valid CUIT"},
		{"CUIT letters", set("spec.branding", map[string]any{"taxID": "30-7123456A-1"}), "branding.taxID must be a valid CUIT"},
		{"update without plans or quantity", set("spec.subscriptionUpdate", map[string]any{"enabled": true}), "subscriptionUpdate.enabled needs plans"},
		{"unknown proration", set("spec.subscriptionUpdate", map[string]any{"proration": "Sometimes"}), `supported values: "CreateProrations", "None", "AlwaysCharge"`},
	}
	ns := newNamespace(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := validPortal()
			c.mutate(o)
			u := &unstructured.Unstructured{Object: o}
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("r2-%d", i))
			expectRefused(t, k8s.Create(context.Background(), u), c.want)
		})
	}
}

// Valid webhook endpoints are accepted with their defaults.
func TestRound2FieldsAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	o := validPortal()
	set("spec.webhooks", []any{
		webhook("backend", "https://acme.example/hooks/portero"),
		webhook("local", "http://127.0.0.1:8080/hooks"),
		webhook("in-cluster", "http://crm.shop.svc.cluster.local/hooks"),
		map[string]any{"name": "payments", "url": "https://acme.example/pay", "secretRef": map[string]any{"name": "s", "key": "whsec"},
			"events": []any{"payment.succeeded", "payment.failed"}, "disabled": true},
	})(o)
	set("spec.exposure", map[string]any{"host": "billing.acme.example", "trustedProxies": []any{"10.0.0.0/8", "fd00::/8"}})(o)
	u := &unstructured.Unstructured{Object: o}
	u.SetNamespace(ns)
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	var p billingv1alpha1.CustomerPortal
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, &p); err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.Webhooks[0].SecretRef.Key; got != "secret" {
		t.Errorf("webhooks[0].secretRef.key defaulted to %q, want secret", got)
	}
	if got := p.Spec.PaymentMethods.MaxPerCustomer; got != 50 {
		t.Errorf("paymentMethods.maxPerCustomer defaulted to %d, want 50", got)
	}
	if len(p.Spec.Webhooks) != 4 || !p.Spec.Webhooks[3].Disabled || len(p.Spec.Webhooks[3].Events) != 2 {
		t.Errorf("webhooks = %+v", p.Spec.Webhooks)
	}
}

// Session restrictions only narrow, update_subscription names its subscription, and recovery is
// Login or None.
func TestSessionRound2FieldsAreValidated(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(o map[string]any)
		want   string
	}{
		{"widening permission", set("spec.restrictions", map[string]any{"permissions": map[string]any{"cancelSubscriptions": true}}), "restrictions.permissions can only turn permissions off"},
		{"empty method list", set("spec.restrictions", map[string]any{"paymentMethods": []any{}}), "should have at least 1 items"},
		{"unknown method", set("spec.restrictions", map[string]any{"paymentMethods": []any{"cheque"}}), `supported values: "card"`},
		{"update_subscription without subscription", set("spec.flow", map[string]any{"type": "update_subscription"}), "flow.type update_subscription needs flow.subscriptionID"},
		{"unknown recovery", set("spec.afterExpiration", map[string]any{"recovery": "Email"}), `supported values: "Login", "None"`},
	}
	ns := newNamespace(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := validSession()
			c.mutate(o)
			u := &unstructured.Unstructured{Object: o}
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("r2s-%d", i))
			expectRefused(t, k8s.Create(context.Background(), u), c.want)
		})
	}
	// Accepted: a narrowing, with its defaults; restrictions are immutable afterwards.
	o := validSession()
	set("spec.restrictions", map[string]any{"paymentMethods": []any{"bank_transfer"}, "permissions": map[string]any{"cancelSubscriptions": false}})(o)
	set("spec.flow", map[string]any{"type": "update_subscription", "subscriptionID": "sub_1"})(o)
	u := &unstructured.Unstructured{Object: o}
	u.SetNamespace(ns)
	u.SetName("narrowed")
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	var s billingv1alpha1.PortalSession
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "narrowed"}, &s); err != nil {
		t.Fatal(err)
	}
	if s.Spec.AfterExpiration.Recovery != billingv1alpha1.RecoveryLogin {
		t.Errorf("afterExpiration.recovery defaulted to %q, want Login", s.Spec.AfterExpiration.Recovery)
	}
	s.Spec.Restrictions.PaymentMethods = []billingv1alpha1.PaymentMethodType{"card"}
	expectRefused(t, k8s.Update(context.Background(), &s), "restrictions are immutable")
}

// A valid CUIT is accepted with or without dashes, and the subscription-update defaults apply.
func TestBrandingAndSubscriptionUpdateAccepted(t *testing.T) {
	ns := newNamespace(t)
	for i, cuit := range []string{"30-71234567-1", "27280335148", "20-12345678-6"} {
		o := validPortal()
		set("spec.branding", map[string]any{"legalName": "Acme SA", "taxID": cuit})(o)
		set("spec.subscriptionUpdate", map[string]any{"enabled": true, "plans": []any{"plan_basic", "plan_pro"}})(o)
		u := &unstructured.Unstructured{Object: o}
		u.SetNamespace(ns)
		u.SetName(fmt.Sprintf("cuit-%d", i))
		if err := k8s.Create(context.Background(), u); err != nil {
			t.Fatalf("CUIT %s refused: %v", cuit, err)
		}
		var p billingv1alpha1.CustomerPortal
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, &p); err != nil {
			t.Fatal(err)
		}
		su := p.Spec.SubscriptionUpdate
		if su.Proration != billingv1alpha1.ProrationCreate || su.Effective != billingv1alpha1.UpdateImmediately || p.Spec.Permissions.CanUpdateSubscriptions() {
			t.Errorf("subscriptionUpdate defaults = %+v, updateSubscriptions %v", su, p.Spec.Permissions.CanUpdateSubscriptions())
		}
	}
}
