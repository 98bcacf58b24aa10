package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

// Session links: /s/<token>. A GET only shows a page with a "Continue" button; the POST it
// sends turns the link into a browser session. Mail scanners and link previews fetch links
// with GET, so they neither burn nor use anything, and no cookie is handed to them. A link may
// be exchanged again while its PortalSession is usable: its lifetime is the session's, not one
// use (the merchant revokes it when it must stop working).
//
// The token is in the path, so these pages send Referrer-Policy: no-referrer, are never
// cached, and log the PortalSession's name instead of the URL.

type linkData struct {
	Token     string
	ExpiresAt time.Time
}

type linkInvalidData struct {
	// Reason is unknown, expired or revoked.
	Reason string
	Public bool
}

func (h *Handler) linkPage(w http.ResponseWriter, v *visit) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	tok, ps, ok := h.resolveLink(w, v)
	if !ok {
		return
	}
	h.log.Info("session link opened", "portal_session", ps.Name)
	h.renderPre(w, v, http.StatusOK, "link", "title.link", linkData{Token: tok, ExpiresAt: ps.Status.ExpiresAt.Time}, nil)
}

// resolveLink finds the usable PortalSession of the request's token; false means an error
// page was sent.
func (h *Handler) resolveLink(w http.ResponseWriter, v *visit) (string, *billingv1alpha1.PortalSession, bool) {
	tok, ok := auth.ParseLinkToken(v.r.PathValue("token"))
	var ps *billingv1alpha1.PortalSession
	if ok {
		sum := sha256.Sum256([]byte(tok))
		hash := hex.EncodeToString(sum[:])
		// The operator publishes the link Secret before it writes the session's token hash, and
		// the informer lags the API server: a customer sent on at once may be here first, so a
		// well-formed token nobody knows yet gets a moment (event-driven, capped) to be seen.
		ps = h.rules.AwaitSessionByTokenHash(v.ctx, hash, h.linkWait)
	}
	if ps == nil {
		h.metrics.login("link", "unknown")
		h.render(w, v, http.StatusNotFound, "linkinvalid", "title.linkinvalid",
			linkInvalidData{Reason: "unknown", Public: v.portal.Spec.Access.Public.IsEnabled()})
		return "", nil, false
	}
	if !rules.Usable(ps, v.now) {
		reason := "expired"
		if ps.Spec.Revoked || ps.Status.Phase == billingv1alpha1.SessionRevoked || !ps.DeletionTimestamp.IsZero() {
			reason = "revoked"
		}
		h.metrics.login("link", reason)
		h.log.Info("session link refused", "portal_session", ps.Name, "reason", reason)
		h.render(w, v, http.StatusGone, "linkinvalid", "title.linkinvalid",
			linkInvalidData{Reason: reason, Public: v.portal.Spec.Access.Public.IsEnabled()})
		return "", nil, false
	}
	return tok, ps, true
}

func (h *Handler) linkExchange(w http.ResponseWriter, v *visit) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	if !h.checkPreCSRF(w, v) {
		return
	}
	if !h.allow(w, v, "link-exchanges:ip:"+v.clientIP(), h.limits.LinkExchangesPerIP) {
		return
	}
	_, ps, ok := h.resolveLink(w, v)
	if !ok {
		return
	}
	ns := auth.NewSession{Portal: v.key, PortalSession: ps.Name, PortalSessionUID: string(ps.UID), Method: auth.MethodLink,
		NotAfter: ps.Status.ExpiresAt.Time, Email: ps.Spec.Customer.Email}
	switch ref := ps.Spec.Customer; {
	case ref.ID != "":
		c, err := h.ledger.GetCustomer(v.ctx, ref.ID)
		if errors.Is(err, ledger.ErrNotFound) {
			h.metrics.login("link", "no_customer")
			h.log.Warn("session link names a customer the ledger does not have", "portal_session", ps.Name, "customer", ref.ID)
			h.fail(w, v, http.StatusNotFound, "error.link_customer_unknown")
			return
		}
		if err != nil {
			h.internal(w, v, err)
			return
		}
		ns.CustomerID, ns.Email = c.ID, c.Email
	default:
		email, ok := auth.NormalizeEmail(ref.Email)
		if !ok {
			// The API server accepts a few shapes the portal does not (a trailing dot, two dots
			// in a row). Such a link names nobody: it must never reach a lookup, where an empty
			// e-mail would mean "every customer".
			h.metrics.login("link", "no_customer")
			h.log.Warn("session link names an e-mail address the portal cannot use", "portal_session", ps.Name)
			h.fail(w, v, http.StatusNotFound, "error.link_customer_unknown")
			return
		}
		customers, err := h.customersByEmail(v.ctx, email)
		if err != nil {
			h.internal(w, v, err)
			return
		}
		if len(customers) == 0 {
			h.metrics.login("link", "no_customer")
			h.log.Warn("session link names an e-mail address no customer has", "portal_session", ps.Name)
			h.fail(w, v, http.StatusNotFound, "error.link_customer_unknown")
			return
		}
		ns.Email = email
		if len(customers) == 1 {
			ns.CustomerID = customers[0].ID
		}
	}
	if !h.startSession(w, v, ns) {
		return
	}
	h.metrics.login("link", "success")
	h.log.Info("session link exchanged", "portal_session", ps.Name, "customer", ns.CustomerID)
	forgetNext(w, v) // the link says where to go
	if ns.CustomerID == "" {
		redirect(w, v, "/login/choose")
		return
	}
	// The deep link leads where this session's rules allow, restrictions included.
	redirect(w, v, flowTarget(rules.Effective(v.portal, ps), ps))
}

// flowTarget is where a session's deep link leads, if the portal allows that task now.
func flowTarget(p *billingv1alpha1.CustomerPortal, ps *billingv1alpha1.PortalSession) string {
	f := ps.Spec.Flow
	if f == nil {
		return "/"
	}
	perms := p.Spec.Permissions
	switch f.Type {
	case billingv1alpha1.FlowCompletePayment:
		if f.PaymentID != "" {
			return "/payments/" + url.PathEscape(f.PaymentID)
		}
	case billingv1alpha1.FlowUpdatePaymentMethod:
		if !perms.CanUpdatePaymentMethod() {
			return "/"
		}
		if f.SubscriptionID != "" {
			return "/subscriptions/" + url.PathEscape(f.SubscriptionID)
		}
		return "/methods"
	case billingv1alpha1.FlowCancelSubscription:
		if f.SubscriptionID == "" {
			return "/subscriptions"
		}
		if perms.CanCancelSubscriptions() {
			return "/subscriptions/" + url.PathEscape(f.SubscriptionID) + "/cancel"
		}
		return "/subscriptions/" + url.PathEscape(f.SubscriptionID)
	case billingv1alpha1.FlowUpdateBillingInfo:
		if perms.CanUpdateBillingInfo() {
			return "/billing"
		}
	}
	return "/"
}
