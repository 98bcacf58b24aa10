package plugin

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// TestShareNarrowsTheLink: --only-methods, --deny and --no-recovery become the session's
// restrictions and afterExpiration, which the real API server accepts and the portal enforces;
// a listed type the portal does not accept now is warned about, and stderr says what the link
// lost.
func TestShareNarrowsTheLink(t *testing.T) {
	f := newPortal(t, nil, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "bank_transfer"}}
	})
	r := mustRun(t, f.ns, "share", "cus_123", "--portal", "acme", "--only-methods", "bank_transfer,direct_debit",
		"--deny", "cancel_subscriptions", "--deny", "view_payment_history", "--no-recovery")
	s := f.onlySession(t)
	checkLink(t, lines(r.out)[0], s)
	want := &billingv1alpha1.SessionRestrictions{
		PaymentMethods: []billingv1alpha1.PaymentMethodType{"bank_transfer", "direct_debit"},
		Permissions:    &billingv1alpha1.RestrictedPermissions{CancelSubscriptions: ptr.To(false), ViewPaymentHistory: ptr.To(false)},
	}
	if !equality.Semantic.DeepEqual(s.Spec.Restrictions, want) || s.Spec.AfterExpiration.Recovery != billingv1alpha1.RecoveryNone {
		t.Fatalf("restrictions %+v, afterExpiration %+v", s.Spec.Restrictions, s.Spec.AfterExpiration)
	}
	for _, w := range []string{`does not accept direct_debit now; the link offers bank_transfer`,
		"payment methods bank_transfer, direct_debit only; without view_payment_history, cancel_subscriptions"} {
		if !strings.Contains(r.errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.errOut)
		}
	}
}

// TestShareRefusesRestrictionsThatCannotWork: unknown names, a type twice and types the portal
// accepts none of are refused before anything is created; without the flags the session
// narrows nothing and recovers (the CRD's default).
func TestShareRefusesRestrictionsThatCannotWork(t *testing.T) {
	f := newPortal(t, nil, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "bank_transfer"}}
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--only-methods", "crypto"}, `--only-methods "crypto" is not a payment method type: use card, direct_debit`},
		{[]string{"--only-methods", "card,card"}, "--only-methods names card twice"},
		{[]string{"--deny", "everything"}, `--deny "everything" is not a permission: use update_billing_info`},
		{[]string{"--only-methods", "cvu,qr"}, `CustomerPortal "acme" accepts none of them now (it accepts card, bank_transfer)`},
	} {
		r := kubectlPortero(t, f.ns, nil, append([]string{"share", "cus_1", "--portal", "acme"}, tc.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one saying %q", tc.args, r.err, tc.want)
		}
	}
	if n := len(f.sessions(t)); n != 0 {
		t.Fatalf("refused shares created %d PortalSessions", n)
	}
	mustRun(t, f.ns, "share", "cus_1", "--portal", "acme")
	if s := f.onlySession(t); s.Spec.Restrictions != nil || s.Spec.AfterExpiration.Recovery != billingv1alpha1.RecoveryLogin {
		t.Fatalf("a plain share: restrictions %+v, afterExpiration %+v", s.Spec.Restrictions, s.Spec.AfterExpiration)
	}
}
