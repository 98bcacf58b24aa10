package api

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// TestPortalSessionRestrictions: POST /portal_sessions takes restrictions and after_expiration,
// writes them into the PortalSession (which the portal enforces), and answers them back, then
// and on GET. Restrictions that could widen, name unknown types, or leave the link no method
// the portal accepts are refused before anything is created, each on its field.
func TestPortalSessionRestrictions(t *testing.T) {
	f := newFixture(t, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "bank_transfer"}}
	})
	c := f.customer("narrow@example.com")

	var s sessionJSON
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{
		"customer_id": c.ID,
		"restrictions": map[string]any{"payment_methods": []string{"bank_transfer", "direct_debit"},
			"permissions": map[string]any{"cancel_subscriptions": false, "update_billing_info": false}},
		"after_expiration": map[string]any{"recovery": "none"},
	}}, 201, "").json(t, &s)
	obj := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: s.ID}, obj); err != nil {
		t.Fatal(err)
	}
	want := &billingv1alpha1.SessionRestrictions{
		PaymentMethods: []billingv1alpha1.PaymentMethodType{"bank_transfer", "direct_debit"},
		Permissions:    &billingv1alpha1.RestrictedPermissions{CancelSubscriptions: ptr.To(false), UpdateBillingInfo: ptr.To(false)},
	}
	if !equality.Semantic.DeepEqual(obj.Spec.Restrictions, want) || obj.Spec.AfterExpiration.Recovery != billingv1alpha1.RecoveryNone {
		t.Fatalf("spec.restrictions = %+v, afterExpiration = %+v", obj.Spec.Restrictions, obj.Spec.AfterExpiration)
	}
	if s.Restrictions == nil || len(s.Restrictions.PaymentMethods) != 2 || s.Restrictions.Permissions == nil ||
		s.Restrictions.Permissions.CancelSubscriptions == nil || *s.Restrictions.Permissions.CancelSubscriptions ||
		s.AfterExpiration == nil || s.AfterExpiration.Recovery != "none" {
		t.Fatalf("the answer does not carry the restrictions: %+v", s)
	}
	var state sessionStateJSON
	f.expect(req{method: "GET", path: "/api/v1/portal_sessions/" + s.ID}, 200, "").json(t, &state)
	if state.Restrictions == nil || state.Restrictions.PaymentMethods[0] != "bank_transfer" || state.AfterExpiration.Recovery != "none" {
		t.Fatalf("GET: %+v", state)
	}

	// Without either, the session narrows nothing and recovers (the CRD's default).
	var plain sessionJSON
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID,
		"restrictions": map[string]any{}}}, 201, "").json(t, &plain)
	if plain.Restrictions != nil || plain.AfterExpiration == nil || plain.AfterExpiration.Recovery != "login" {
		t.Fatalf("plain session: %+v", plain)
	}

	before := &billingv1alpha1.PortalSessionList{}
	if err := k8s.List(f.ctx, before, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
		field  string
	}{
		{"no methods", map[string]any{"restrictions": map[string]any{"payment_methods": []string{}}}, 400, "invalid_field", "restrictions.payment_methods"},
		{"an unknown type", map[string]any{"restrictions": map[string]any{"payment_methods": []string{"crypto"}}}, 400, "invalid_field", "restrictions.payment_methods"},
		{"a type twice", map[string]any{"restrictions": map[string]any{"payment_methods": []string{"card", "card"}}}, 400, "invalid_field", "restrictions.payment_methods"},
		{"nothing the portal accepts", map[string]any{"restrictions": map[string]any{"payment_methods": []string{"cvu", "qr"}}}, 400, "invalid_field", "restrictions.payment_methods"},
		{"a permission turned on", map[string]any{"restrictions": map[string]any{"permissions": map[string]any{"cancel_subscriptions": true}}}, 400, "invalid_field", "restrictions.permissions.cancel_subscriptions"},
		{"an unknown permission", map[string]any{"restrictions": map[string]any{"permissions": map[string]any{"delete_everything": false}}}, 400, CodeUnknownField, "restrictions.permissions.delete_everything"},
		{"an unknown recovery", map[string]any{"after_expiration": map[string]any{"recovery": "maybe"}}, 400, "invalid_field", "after_expiration.recovery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["customer_id"] = c.ID
			res := f.do(req{method: "POST", path: "/api/v1/portal_sessions", body: tc.body})
			if e := res.err(t); res.status != tc.status || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("%d %s, want %d %s on %s", res.status, res.body, tc.status, tc.code, tc.field)
			}
		})
	}
	after := &billingv1alpha1.PortalSessionList{}
	if err := k8s.List(f.ctx, after, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	if len(after.Items) != len(before.Items) {
		t.Fatalf("refused requests created %d sessions", len(after.Items)-len(before.Items))
	}
}
