package web

import (
	"crypto/sha256"
	"encoding/base64"
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
//
// An expired or revoked link recovers (spec.afterExpiration.recovery: Login, the default, with
// the portal's public access on): its page offers "send me a code", with the e-mail address of
// the session's customer already typed in, and after the code the customer lands on the link's
// deep link. The code is the whole proof: nothing of the link's session is reused, so a revoked
// link never leads back in without it. Only a link that really existed gets that page — the
// token must hash to a PortalSession of this portal — so a made-up token learns nothing, not
// even whether a customer exists. The address is the one the session names
// (spec.customer.email), or the ledger customer's for a session that names an id; a merchant
// who revokes a link handed to the wrong person sets recovery: None too, and the page then
// says only that the link ended.
//
// A recovered sign-in is a code sign-in like any other: it lives by the portal's own rules, not
// the link's restrictions. The customer could have signed in at /login with the same code and
// got exactly that, so narrowing it would only surprise; the link's narrowing ends with the link.

type linkData struct {
	Token     string
	ExpiresAt time.Time
}

type linkInvalidData struct {
	// Reason is unknown, expired or revoked.
	Reason string
	Public bool
	// Recover, when set, is where the "send me a code" form posts (see linkRecover); the
	// address it is filled in with is the form's "email" value.
	Recover string
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
// page was sent (for an ended link that recovers, the page offers a sign-in code).
func (h *Handler) resolveLink(w http.ResponseWriter, v *visit) (string, *billingv1alpha1.PortalSession, bool) {
	tok, ps := h.lookupLink(v)
	if ps == nil {
		h.linkUnknown(w, v)
		return "", nil, false
	}
	if reason, ended := linkEnded(ps, v.now); ended {
		h.metrics.login("link", reason)
		h.log.Info("session link refused", "portal_session", ps.Name, "reason", reason)
		h.linkGone(w, v, tok, ps, reason, http.StatusGone, nil)
		return "", nil, false
	}
	return tok, ps, true
}

// lookupLink returns the request's token and the PortalSession it opens, usable or not; nil
// for a token no session of this portal has.
func (h *Handler) lookupLink(v *visit) (string, *billingv1alpha1.PortalSession) {
	tok, ok := auth.ParseLinkToken(v.r.PathValue("token"))
	if !ok {
		return "", nil
	}
	sum := sha256.Sum256([]byte(tok))
	hash := hex.EncodeToString(sum[:])
	// The operator publishes the link Secret before it writes the session's token hash, and
	// the informer lags the API server: a customer sent on at once may be here first, so a
	// well-formed token nobody knows yet gets a moment (event-driven, capped) to be seen.
	return tok, h.rules.AwaitSessionByTokenHash(v.ctx, hash, h.linkWait)
}

// linkEnded reports whether a session's link no longer opens the portal at now, and why:
// "revoked" (revoked or deleted) or "expired".
func linkEnded(ps *billingv1alpha1.PortalSession, now time.Time) (string, bool) {
	if rules.Usable(ps, now) {
		return "", false
	}
	if ps.Spec.Revoked || ps.Status.Phase == billingv1alpha1.SessionRevoked || !ps.DeletionTimestamp.IsZero() {
		return "revoked", true
	}
	return "expired", true
}

func (h *Handler) linkUnknown(w http.ResponseWriter, v *visit) {
	h.metrics.login("link", "unknown")
	h.render(w, v, http.StatusNotFound, "linkinvalid", "title.linkinvalid",
		linkInvalidData{Reason: "unknown", Public: v.portal.Spec.Access.Public.IsEnabled()})
}

// recovers reports whether an ended link offers a sign-in code: the session asks for it
// (Login, also when the field is empty on an object stored before it existed) and the portal
// signs in by e-mail now.
func recovers(p *billingv1alpha1.CustomerPortal, ps *billingv1alpha1.PortalSession) bool {
	return ps.Spec.AfterExpiration.Recovery != billingv1alpha1.RecoveryNone && p.Spec.Access.Public.IsEnabled()
}

// linkGone answers an ended link: that it ended, and, when it recovers, the form that sends a
// code (f carries what was typed; nil fills in the session's customer's address).
func (h *Handler) linkGone(w http.ResponseWriter, v *visit, tok string, ps *billingv1alpha1.PortalSession, reason string, status int, f *form) {
	d := linkInvalidData{Reason: reason, Public: v.portal.Spec.Access.Public.IsEnabled()}
	if !recovers(v.portal, ps) {
		h.render(w, v, status, "linkinvalid", "title.linkinvalid", d)
		return
	}
	d.Recover = "/s/" + tok + "/recover"
	if f == nil {
		f = newForm(url.Values{"email": {h.linkEmail(v, ps)}})
	}
	h.renderPre(w, v, status, "linkinvalid", "title.linkinvalid", d, f)
}

// linkEmail is the address an ended link's recovery is filled in with: the one the session
// names, or its customer's in the ledger; "" when there is none to use.
func (h *Handler) linkEmail(v *visit, ps *billingv1alpha1.PortalSession) string {
	if ref := ps.Spec.Customer; ref.ID != "" {
		c, err := h.ledger.GetCustomer(v.ctx, ref.ID)
		if err != nil {
			if !errors.Is(err, ledger.ErrNotFound) {
				h.log.Warn("read the customer of an ended link", "portal_session", ps.Name, "err", err)
			}
			return ""
		}
		return c.Email
	}
	email, _ := auth.NormalizeEmail(ps.Spec.Customer.Email)
	return email
}

// linkRecover sends a sign-in code for an ended link that recovers and sends the browser to the
// code page, remembering the link's deep link for after the code (see takeNext). It takes the
// same path as the login form — rate limits, per-address caps, the same response whether or not
// the address is a customer's — and nothing else: the browser is signed in only by the code.
func (h *Handler) linkRecover(w http.ResponseWriter, v *visit) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	if !h.checkPreCSRF(w, v) {
		return
	}
	tok, ps := h.lookupLink(v)
	if ps == nil {
		h.linkUnknown(w, v)
		return
	}
	reason, ended := linkEnded(ps, v.now)
	switch {
	case !ended:
		redirect(w, v, "/s/"+tok) // it works again? Then it opens the portal the usual way.
		return
	case !recovers(v.portal, ps):
		h.linkGone(w, v, tok, ps, reason, http.StatusGone, nil)
		return
	}
	raw := v.r.PostForm.Get("email")
	email, ok := auth.NormalizeEmail(raw)
	if !ok {
		f := newForm(url.Values{"email": {raw}})
		f.fail("email", "form.email_invalid")
		h.linkGone(w, v, tok, ps, reason, http.StatusUnprocessableEntity, f)
		return
	}
	if !h.allow(w, v, "code-requests:ip:"+v.clientIP(), h.limits.CodeRequestsPerIP) {
		return
	}
	customers, err := h.customersByEmail(v.ctx, email)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	iss, err := h.auth.StartLogin(v.ctx, v.key, email, v.cookies.get(v.r, cookieChallenge), h.requester(v), h.codePolicy(v.portal))
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.deliverCode(v, iss, len(customers) > 0)
	v.cookies.set(w, cookieChallenge, iss.Handle, 0)
	// After the code: the link's deep link, as the portal's own rules lead to it (a recovered
	// sign-in is a code sign-in; see the top of this file).
	if to, ok := localTarget(flowTarget(v.portal, ps)); ok && to != "/" {
		v.cookies.set(w, cookieNext, base64.RawURLEncoding.EncodeToString([]byte(to)), nextTTL)
	} else {
		forgetNext(w, v)
	}
	h.log.Info("sign-in code asked for from an ended session link", "portal_session", ps.Name, "reason", reason)
	redirect(w, v, "/login/code")
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
	case billingv1alpha1.FlowUpdateSubscription:
		if f.SubscriptionID == "" {
			return "/subscriptions"
		}
		if canChangePlan(p) {
			return "/subscriptions/" + url.PathEscape(f.SubscriptionID) + "/change"
		}
		return "/subscriptions/" + url.PathEscape(f.SubscriptionID)
	case billingv1alpha1.FlowUpdateBillingInfo:
		if perms.CanUpdateBillingInfo() {
			return "/billing"
		}
	}
	return "/"
}
