package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/rules"
)

// sessionRevoker ends PortalSessions; portal/rules.Rules is one. Rules that cannot (test
// doubles of the view) leave a signed-out link working, and say so.
type sessionRevoker interface {
	RevokeSession(ctx context.Context, s *billingv1alpha1.PortalSession, reason string) (*billingv1alpha1.PortalSession, error)
}

// revokeTimeout bounds the sign-out's wait for the API server: the browser session has ended
// by then, and the customer should not stare at a spinner because Kubernetes is slow.
const revokeTimeout = 5 * time.Second

// signedOutData tells the signed-out page what became of the link the session came from.
type signedOutData struct {
	// LinkDisabled: the link no longer signs anyone in.
	LinkDisabled bool
	// LinkStillWorks: it could not be disabled, and opens the portal until LinkExpiresAt.
	LinkStillWorks bool
	LinkExpiresAt  time.Time
}

// logout ends the browser session and, for a session a link opened, the link's PortalSession
// too: on a shared computer the next person must not sign in again from the browser's history.
// The sign-out itself never depends on Kubernetes: if the link cannot be disabled, the customer
// is signed out all the same and told that the link still works.
func (h *Handler) logout(w http.ResponseWriter, v *visit) {
	if _, err := h.loadSession(w, v); err != nil {
		h.internal(w, v, err)
		return
	}
	if v.sess == nil {
		redirect(w, v, "/")
		return
	}
	if !h.checkSessionCSRF(w, v) {
		return
	}
	sess := v.sess
	if err := h.auth.EndSession(v.ctx, sess.ID); err != nil {
		h.internal(w, v, err)
		return
	}
	h.cache.forget(sess.ID)
	v.cookies.clear(w, cookieSession)
	h.metrics.sessionEnded("signed_out")
	v.sess, v.customer = nil, nil
	var data signedOutData
	if sess.Method == auth.MethodLink && v.psess != nil {
		if h.endLink(v, v.psess) {
			data.LinkDisabled = true
		} else {
			data.LinkStillWorks = true
			if exp := v.psess.Status.ExpiresAt; exp != nil {
				data.LinkExpiresAt = exp.Time
			}
		}
	}
	h.render(w, v, http.StatusOK, "signedout", "title.signedout", data)
}

// endLink revokes the PortalSession the customer signed out of and ends every other browser
// session it opened (another device, another browser), on every replica: they share the auth
// store. It reports whether the link is disabled.
func (h *Handler) endLink(v *visit, ps *billingv1alpha1.PortalSession) bool {
	rv, ok := h.rules.(sessionRevoker)
	if !ok {
		h.log.Warn("sign-out could not disable the session link: the portal cannot revoke sessions", "portal_session", ps.Name)
		return false
	}
	// The customer has been signed out already; a browser that goes away now must not cut
	// the revocation short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(v.ctx), revokeTimeout)
	defer cancel()
	_, err := rv.RevokeSession(ctx, ps, rules.ReasonSignedOut)
	switch {
	case errors.Is(err, rules.ErrSessionGone):
		// Deleted meanwhile: its link opens nothing any more either.
	case err != nil:
		h.log.Warn("sign-out could not disable the session link", "portal_session", ps.Name, "err", err)
		return false
	}
	n, err := h.auth.EndLinkSessions(ctx, v.key, ps.Name)
	if err != nil {
		// The link is revoked: each of its browser sessions ends on its next request anyway,
		// when the portal looks its PortalSession up.
		h.log.Warn("end the browser sessions of a revoked session link", "portal_session", ps.Name, "err", err)
	}
	h.log.Info("session link revoked at sign-out", "portal_session", ps.Name, "other_browser_sessions_ended", n)
	return true
}
