package rules

import (
	"reflect"
	"slices"
	"testing"

	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// TestEffectiveIsTheIntersection: a session's restrictions narrow the portal's rules and never
// widen them, for methods and permissions alike, and leave the portal's object alone.
func TestEffectiveIsTheIntersection(t *testing.T) {
	type perms = billingv1alpha1.Permissions
	all := &billingv1alpha1.PaymentMethods{All: true, MaxPerCustomer: 7}
	two := &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"bank_transfer", "direct_debit"}}
	generous := perms{UpdateBillingInfo: ptr.To(true), ViewPaymentHistory: ptr.To(true), UpdatePaymentMethod: ptr.To(true),
		CancelSubscriptions: ptr.To(true), UpdateSubscriptions: ptr.To(true)}
	off := ptr.To(false)
	tests := []struct {
		name        string
		methods     *billingv1alpha1.PaymentMethods
		perms       perms
		r           *billingv1alpha1.SessionRestrictions
		wantMethods []billingv1alpha1.PaymentMethodType
		// wantPerms: billing, history, method, cancel, update.
		wantPerms [5]bool
	}{
		{name: "no restrictions", methods: all, perms: generous, r: nil,
			wantMethods: billingv1alpha1.SupportedPaymentMethodTypes(), wantPerms: [5]bool{true, true, true, true, true}},
		{name: "bank transfer only, the portal allows every method", methods: all, perms: generous,
			r:           &billingv1alpha1.SessionRestrictions{PaymentMethods: []billingv1alpha1.PaymentMethodType{"bank_transfer"}},
			wantMethods: []billingv1alpha1.PaymentMethodType{"bank_transfer"}, wantPerms: [5]bool{true, true, true, true, true}},
		{name: "a method the portal does not accept is not added", methods: two, perms: generous,
			r:           &billingv1alpha1.SessionRestrictions{PaymentMethods: []billingv1alpha1.PaymentMethodType{"card", "direct_debit"}},
			wantMethods: []billingv1alpha1.PaymentMethodType{"direct_debit"}, wantPerms: [5]bool{true, true, true, true, true}},
		{name: "nothing in common offers nothing", methods: two, perms: generous,
			r:           &billingv1alpha1.SessionRestrictions{PaymentMethods: []billingv1alpha1.PaymentMethodType{"card"}},
			wantMethods: []billingv1alpha1.PaymentMethodType{}, wantPerms: [5]bool{true, true, true, true, true}},
		{name: "permissions turned off", methods: all, perms: generous,
			r: &billingv1alpha1.SessionRestrictions{Permissions: &billingv1alpha1.RestrictedPermissions{
				CancelSubscriptions: off, UpdateBillingInfo: off}},
			wantMethods: billingv1alpha1.SupportedPaymentMethodTypes(), wantPerms: [5]bool{false, true, true, false, true}},
		{name: "a true never grants what the portal does not", methods: all, perms: perms{},
			r: &billingv1alpha1.SessionRestrictions{Permissions: &billingv1alpha1.RestrictedPermissions{
				CancelSubscriptions: ptr.To(true), UpdateSubscriptions: ptr.To(true), UpdateBillingInfo: ptr.To(true)}},
			// The portal's defaults: billing, history and methods on, cancel and update off.
			wantMethods: billingv1alpha1.SupportedPaymentMethodTypes(), wantPerms: [5]bool{true, true, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &billingv1alpha1.CustomerPortal{Spec: billingv1alpha1.CustomerPortalSpec{PaymentMethods: tt.methods, Permissions: tt.perms}}
			before := p.DeepCopy()
			s := &billingv1alpha1.PortalSession{Spec: billingv1alpha1.PortalSessionSpec{Restrictions: tt.r}}
			got := Effective(p, s)
			if m := got.Spec.PaymentMethods.Effective(); !slices.Equal(m, tt.wantMethods) {
				t.Errorf("methods = %v, want %v", m, tt.wantMethods)
			}
			if got.Spec.PaymentMethods.Max() != p.Spec.PaymentMethods.Max() {
				t.Errorf("maxPerCustomer = %d, want the portal's %d", got.Spec.PaymentMethods.Max(), p.Spec.PaymentMethods.Max())
			}
			gp := got.Spec.Permissions
			if have := [5]bool{gp.CanUpdateBillingInfo(), gp.CanViewPaymentHistory(), gp.CanUpdatePaymentMethod(),
				gp.CanCancelSubscriptions(), gp.CanUpdateSubscriptions()}; have != tt.wantPerms {
				t.Errorf("permissions = %v, want %v", have, tt.wantPerms)
			}
			for _, mt := range billingv1alpha1.SupportedPaymentMethodTypes() {
				if got.Spec.PaymentMethods.Allows(mt) && !p.Spec.PaymentMethods.Allows(mt) {
					t.Errorf("the session allows %s, which the portal does not", mt)
				}
			}
			if !reflect.DeepEqual(p, before) {
				t.Error("Effective modified the portal it was given")
			}
		})
	}
	if p := (&billingv1alpha1.CustomerPortal{}); Effective(p, nil) != p {
		t.Error("without a session the portal's own object is not returned as it is")
	}
}
