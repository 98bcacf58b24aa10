package rules

import (
	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// Effective returns the rules a browser session lives by: the portal's own as they are now,
// narrowed by the restrictions of the PortalSession the session was opened with (s nil, or
// without restrictions: the portal's, the same object). It is the one place the intersection is
// made; the portal's web layer calls it on every request and every page, offer and server-side
// check reads its answer, so a restriction holds for hand-made requests as it does for the pages.
//
// Restrictions only narrow: a payment method type survives when the portal accepts it now and
// the session lists it; a permission holds when the portal grants it now and the session does
// not turn it off. The portal's later changes apply live through the intersection — a method the
// portal stops accepting is gone from the session too, one it starts accepting appears only if
// the session lists it.
//
// The answer is a shallow copy of p with new Permissions and PaymentMethods; like p, it must not
// be modified.
func Effective(p *billingv1alpha1.CustomerPortal, s *billingv1alpha1.PortalSession) *billingv1alpha1.CustomerPortal {
	if p == nil || s == nil || s.Spec.Restrictions == nil {
		return p
	}
	r := s.Spec.Restrictions
	out := *p
	if r.PaymentMethods != nil {
		allowed := []billingv1alpha1.PaymentMethodType{} // never nil: a nil list would read as "every type"
		for _, t := range p.Spec.PaymentMethods.Effective() {
			for _, want := range r.PaymentMethods {
				if t == want {
					allowed = append(allowed, t)
					break
				}
			}
		}
		pm := billingv1alpha1.PaymentMethods{Allowed: allowed}
		if p.Spec.PaymentMethods != nil {
			pm.MaxPerCustomer = p.Spec.PaymentMethods.MaxPerCustomer
		}
		out.Spec.PaymentMethods = &pm
	}
	if rp := r.Permissions; rp != nil {
		perms := p.Spec.Permissions
		out.Spec.Permissions = billingv1alpha1.Permissions{
			UpdateBillingInfo:   narrowed(perms.CanUpdateBillingInfo(), rp.UpdateBillingInfo),
			ViewPaymentHistory:  narrowed(perms.CanViewPaymentHistory(), rp.ViewPaymentHistory),
			UpdatePaymentMethod: narrowed(perms.CanUpdatePaymentMethod(), rp.UpdatePaymentMethod),
			CancelSubscriptions: narrowed(perms.CanCancelSubscriptions(), rp.CancelSubscriptions),
			UpdateSubscriptions: narrowed(perms.CanUpdateSubscriptions(), rp.UpdateSubscriptions),
		}
	}
	return &out
}

// narrowed is a permission the portal grants (portal) as a session restriction leaves it: off
// when the restriction says false. A true is treated as "not narrowed": the API server refuses
// it, and a session can never be allowed more than its portal anyway.
func narrowed(portal bool, restriction *bool) *bool {
	v := portal && (restriction == nil || *restriction)
	return &v
}
