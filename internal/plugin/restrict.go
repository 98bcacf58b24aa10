package plugin

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// denyable are the permissions --deny turns off, as PortalSession.spec.restrictions.permissions
// (and the merchant API) name them in snake case.
var denyable = []string{"update_billing_info", "view_payment_history", "update_payment_method", "cancel_subscriptions", "update_subscriptions"}

// restrictions turns --only-methods and --deny into the session's spec.restrictions, checked as
// far as the flags alone allow: known names, each once. nil when neither is given.
func (so *shareOptions) restrictions() (*billingv1alpha1.SessionRestrictions, error) {
	if len(so.onlyMethods) == 0 && len(so.deny) == 0 {
		return nil, nil
	}
	r := &billingv1alpha1.SessionRestrictions{}
	supported := billingv1alpha1.SupportedPaymentMethodTypes()
	for _, m := range so.onlyMethods {
		t := billingv1alpha1.PaymentMethodType(strings.TrimSpace(m))
		switch {
		case !slices.Contains(supported, t):
			return nil, fmt.Errorf("--only-methods %q is not a payment method type: use %s", m, joinTypes(supported))
		case slices.Contains(r.PaymentMethods, t):
			return nil, fmt.Errorf("--only-methods names %s twice", t)
		}
		r.PaymentMethods = append(r.PaymentMethods, t)
	}
	if len(so.deny) > 0 {
		p := &billingv1alpha1.RestrictedPermissions{}
		fields := map[string]**bool{
			"update_billing_info": &p.UpdateBillingInfo, "view_payment_history": &p.ViewPaymentHistory,
			"update_payment_method": &p.UpdatePaymentMethod, "cancel_subscriptions": &p.CancelSubscriptions,
			"update_subscriptions": &p.UpdateSubscriptions,
		}
		for _, d := range so.deny {
			f, ok := fields[strings.TrimSpace(d)]
			if !ok {
				return nil, fmt.Errorf("--deny %q is not a permission: use %s", d, strings.Join(denyable, ", "))
			}
			*f = ptr.To(false)
		}
		r.Permissions = p
	}
	return r, nil
}

// checkMethods refuses --only-methods that leave the link no method the portal accepts now (it
// could add none), and warns about the ones the portal does not accept, which the link will not
// offer until the portal does.
func (so *shareOptions) checkMethods(p *billingv1alpha1.CustomerPortal, r *billingv1alpha1.SessionRestrictions) error {
	if r == nil || len(r.PaymentMethods) == 0 {
		return nil
	}
	accepted := p.Spec.PaymentMethods.Effective()
	var in, out []billingv1alpha1.PaymentMethodType
	for _, t := range r.PaymentMethods {
		if slices.Contains(accepted, t) {
			in = append(in, t)
		} else {
			out = append(out, t)
		}
	}
	if len(in) == 0 {
		return fmt.Errorf("--only-methods %s: CustomerPortal %q accepts none of them now (it accepts %s), so the link could add no payment method",
			joinTypes(r.PaymentMethods), p.Name, joinTypes(accepted))
	}
	if len(out) > 0 {
		fmt.Fprintf(so.ErrOut, "warning: CustomerPortal %q does not accept %s now; the link offers %s\n", p.Name, joinTypes(out), joinTypes(in))
	}
	return nil
}

// describeRestrictions says in a line what a session's restrictions take away.
func describeRestrictions(r *billingv1alpha1.SessionRestrictions) string {
	var b strings.Builder
	if len(r.PaymentMethods) > 0 {
		b.WriteString(" payment methods " + joinTypes(r.PaymentMethods) + " only;")
	}
	if p := r.Permissions; p != nil {
		var off []string
		for i, v := range []*bool{p.UpdateBillingInfo, p.ViewPaymentHistory, p.UpdatePaymentMethod, p.CancelSubscriptions, p.UpdateSubscriptions} {
			if v != nil && !*v {
				off = append(off, denyable[i])
			}
		}
		if len(off) > 0 {
			b.WriteString(" without " + strings.Join(off, ", ") + ";")
		}
	}
	return strings.TrimSuffix(b.String(), ";")
}

func joinTypes(ts []billingv1alpha1.PaymentMethodType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}
