package api

import (
	"slices"
	"strings"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// restrictionsJSON narrows one portal session (PortalSession.spec.restrictions): the only
// payment method types it offers and accepts, and permissions it turns off. The portal
// enforces the intersection with its own live rules on every request.
type restrictionsJSON struct {
	PaymentMethods []string                   `json:"payment_methods,omitempty"`
	Permissions    *restrictedPermissionsJSON `json:"permissions,omitempty"`
}

// restrictedPermissionsJSON can only say false: a session is never allowed more than its
// portal.
type restrictedPermissionsJSON struct {
	UpdateBillingInfo   *bool `json:"update_billing_info,omitempty"`
	ViewPaymentHistory  *bool `json:"view_payment_history,omitempty"`
	UpdatePaymentMethod *bool `json:"update_payment_method,omitempty"`
	CancelSubscriptions *bool `json:"cancel_subscriptions,omitempty"`
	UpdateSubscriptions *bool `json:"update_subscriptions,omitempty"`
}

// afterExpirationJSON is what an ended link offers (PortalSession.spec.afterExpiration).
type afterExpirationJSON struct {
	// Recovery is "login" (the default: a sign-in code, then the link's flow) or "none".
	Recovery string `json:"recovery"`
}

// sessionRestrictions checks a request's restrictions against the portal as it is now and
// turns them into the PortalSession's. Restrictions that would narrow nothing (none given, or
// an empty object) are none. A session whose methods have nothing in common with the
// portal's could add no payment method at all, which is a mistake worth saying now rather
// than a link that offers nothing.
func sessionRestrictions(in *restrictionsJSON, p *billingv1alpha1.CustomerPortal) (*billingv1alpha1.SessionRestrictions, *apiError) {
	if in == nil {
		return nil, nil
	}
	out := &billingv1alpha1.SessionRestrictions{}
	if in.PaymentMethods != nil {
		if len(in.PaymentMethods) == 0 {
			return nil, errInvalidField("restrictions.payment_methods",
				"restrictions.payment_methods must list at least one payment method type; leave it out to keep every type the portal allows.",
				"restrictions.payment_methods debe listar al menos un tipo de medio de pago; omitilo para mantener todos los que el portal permite.")
		}
		supported := billingv1alpha1.SupportedPaymentMethodTypes()
		for _, t := range in.PaymentMethods {
			mt := billingv1alpha1.PaymentMethodType(t)
			switch {
			case !slices.Contains(supported, mt):
				return nil, errInvalidField("restrictions.payment_methods",
					"Every entry of restrictions.payment_methods must be one of "+typeList(supported)+".",
					"Cada elemento de restrictions.payment_methods debe ser uno de "+typeList(supported)+".")
			case slices.Contains(out.PaymentMethods, mt):
				return nil, errInvalidField("restrictions.payment_methods",
					"restrictions.payment_methods lists "+t+" twice; list each type once.",
					"restrictions.payment_methods lista "+t+" dos veces; listá cada tipo una sola vez.")
			}
			out.PaymentMethods = append(out.PaymentMethods, mt)
		}
		accepted := p.Spec.PaymentMethods.Effective()
		if !slices.ContainsFunc(out.PaymentMethods, func(t billingv1alpha1.PaymentMethodType) bool { return slices.Contains(accepted, t) }) {
			return nil, errInvalidField("restrictions.payment_methods",
				"None of restrictions.payment_methods is a type this portal accepts now ("+typeList(accepted)+"): the link could add no payment method.",
				"Ninguno de restrictions.payment_methods es un tipo que este portal acepte ahora ("+typeList(accepted)+"): el link no podría agregar ningún medio de pago.")
		}
	}
	if rp := in.Permissions; rp != nil {
		out.Permissions = &billingv1alpha1.RestrictedPermissions{}
		for _, f := range []struct {
			name string
			in   *bool
			out  **bool
		}{
			{"update_billing_info", rp.UpdateBillingInfo, &out.Permissions.UpdateBillingInfo},
			{"view_payment_history", rp.ViewPaymentHistory, &out.Permissions.ViewPaymentHistory},
			{"update_payment_method", rp.UpdatePaymentMethod, &out.Permissions.UpdatePaymentMethod},
			{"cancel_subscriptions", rp.CancelSubscriptions, &out.Permissions.CancelSubscriptions},
			{"update_subscriptions", rp.UpdateSubscriptions, &out.Permissions.UpdateSubscriptions},
		} {
			if f.in == nil {
				continue
			}
			if *f.in {
				return nil, errInvalidField("restrictions.permissions."+f.name,
					"restrictions.permissions can only turn permissions off (false): a session cannot be allowed more than its portal.",
					"restrictions.permissions solo puede desactivar permisos (false): una sesión no puede tener más permisos que su portal.")
			}
			off := false
			*f.out = &off
		}
		if *out.Permissions == (billingv1alpha1.RestrictedPermissions{}) {
			out.Permissions = nil
		}
	}
	if out.PaymentMethods == nil && out.Permissions == nil {
		return nil, nil
	}
	return out, nil
}

// afterExpiration turns the request's choice into the PortalSession's; nil keeps the CRD's
// default (Login).
func afterExpiration(in *afterExpirationJSON) (billingv1alpha1.AfterExpiration, *apiError) {
	if in == nil {
		return billingv1alpha1.AfterExpiration{}, nil
	}
	switch in.Recovery {
	case "login":
		return billingv1alpha1.AfterExpiration{Recovery: billingv1alpha1.RecoveryLogin}, nil
	case "none":
		return billingv1alpha1.AfterExpiration{Recovery: billingv1alpha1.RecoveryNone}, nil
	}
	return billingv1alpha1.AfterExpiration{}, errInvalidField("after_expiration.recovery",
		"after_expiration.recovery must be login (an ended link offers a sign-in code) or none.",
		"after_expiration.recovery debe ser login (un link vencido ofrece un código para entrar) o none.")
}

// toRestrictionsJSON is a session's restrictions as the API spells them; nil for none.
func toRestrictionsJSON(r *billingv1alpha1.SessionRestrictions) *restrictionsJSON {
	if r == nil {
		return nil
	}
	out := &restrictionsJSON{}
	for _, t := range r.PaymentMethods {
		out.PaymentMethods = append(out.PaymentMethods, string(t))
	}
	if p := r.Permissions; p != nil {
		out.Permissions = &restrictedPermissionsJSON{UpdateBillingInfo: p.UpdateBillingInfo, ViewPaymentHistory: p.ViewPaymentHistory,
			UpdatePaymentMethod: p.UpdatePaymentMethod, CancelSubscriptions: p.CancelSubscriptions, UpdateSubscriptions: p.UpdateSubscriptions}
	}
	return out
}

// toAfterExpirationJSON is what an ended link of the session offers: login unless it says None.
func toAfterExpirationJSON(a billingv1alpha1.AfterExpiration) *afterExpirationJSON {
	if a.Recovery == billingv1alpha1.RecoveryNone {
		return &afterExpirationJSON{Recovery: "none"}
	}
	return &afterExpirationJSON{Recovery: "login"}
}

func typeList(ts []billingv1alpha1.PaymentMethodType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}
