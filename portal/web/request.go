package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

// maxFormBytes bounds a form body; the largest real one (billing) is under 2 KiB.
const maxFormBytes = 32 << 10

// visit is one request with what every page needs: the portal's rules as they are now, the
// language, and, inside, the browser session and its customer.
type visit struct {
	r       *http.Request
	ctx     context.Context
	now     time.Time
	portal  *billingv1alpha1.CustomerPortal
	key     string // namespace/name: what browser sessions and challenges are bound to
	locale  string
	cookies cookieMode

	sess     *auth.Session
	psess    *billingv1alpha1.PortalSession // behind a link session
	customer *ledger.Customer
	flash    string
	// preCSRF is the token for forms shown before sign-in (see preToken).
	preCSRF string
	// due caches the customer's payments due for the rest of the request (see duePayments).
	due *dueList
}

func (v *visit) isPost() bool { return v.r.Method == http.MethodPost }

// public wraps a handler that needs the portal's rules but no session.
func (h *Handler) public(fn func(http.ResponseWriter, *visit)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := h.begin(w, r); ok {
			fn(w, v)
		}
	})
}

// inside wraps a handler for a signed-in customer: the session must be live (its PortalSession
// still usable, re-checked on every request), the section's permission on in the rules as they
// are now, and a POST must carry the session's CSRF token. Permission is checked before the
// token so a switched-off section answers 403 to any request.
func (h *Handler) inside(perm permission, fn func(http.ResponseWriter, *visit)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := h.begin(w, r)
		if !ok {
			return
		}
		ended, err := h.loadSession(w, v)
		if err != nil {
			h.internal(w, v, err)
			return
		}
		switch {
		case v.sess == nil && ended:
			rememberNext(w, v) // a GET only
			h.sessionEnded(w, v)
			return
		case v.sess == nil && v.isPost():
			h.fail(w, v, http.StatusForbidden, "error.signed_out")
			return
		case v.sess == nil:
			rememberNext(w, v)
			h.toSignIn(w, v)
			return
		case v.customer == nil && v.isPost():
			h.fail(w, v, http.StatusForbidden, "error.choose_first")
			return
		case v.customer == nil:
			redirect(w, v, "/login/choose")
			return
		}
		if !perm(v.portal) {
			h.log.Info("request to a section the portal switched off", "path_pattern", r.Pattern, "customer", v.customer.ID)
			h.fail(w, v, http.StatusForbidden, "error.forbidden")
			return
		}
		if v.isPost() && !h.checkSessionCSRF(w, v) {
			return
		}
		fn(w, v)
	})
}

// begin reads the rules and the language; false means a response was already written.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) (*visit, bool) {
	v := &visit{r: r, ctx: r.Context(), now: h.clock.Now(), cookies: h.cookieMode(r), locale: defaultLocale}
	v.portal = h.rules.Portal(v.ctx)
	if v.portal == nil {
		h.unavailable(w, v)
		return nil, false
	}
	v.key = v.portal.Namespace + "/" + v.portal.Name
	if !chooseLocale(w, v) {
		return nil, false
	}
	if v.isPost() {
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				h.fail(w, v, http.StatusRequestEntityTooLarge, "error.too_large")
			} else {
				h.fail(w, v, http.StatusBadRequest, "error.bad_request")
			}
			return nil, false
		}
	}
	return v, true
}

// loadSession finds and re-validates the browser session. It reports ended when a cookie was
// presented whose session is over (then the cookie is cleared and the session deleted).
func (h *Handler) loadSession(w http.ResponseWriter, v *visit) (ended bool, err error) {
	cookie := v.cookies.get(v.r, cookieSession)
	if cookie == "" {
		return false, nil
	}
	sess, err := h.auth.Session(v.ctx, v.key, cookie)
	if errors.Is(err, auth.ErrNoSession) {
		v.cookies.clear(w, cookieSession)
		h.metrics.sessionEnded("expired")
		return true, nil
	}
	if err != nil {
		return false, err
	}
	end := func(reason string) (bool, error) {
		if err := h.auth.EndSession(v.ctx, sess.ID); err != nil {
			return false, err
		}
		h.cache.forget(sess.ID)
		v.cookies.clear(w, cookieSession)
		h.metrics.sessionEnded(reason)
		h.log.Info("browser session ended", "reason", reason, "portal_session", sess.PortalSession, "customer", sess.CustomerID)
		return true, nil
	}
	switch sess.Method {
	case auth.MethodLink:
		// The PortalSession is looked up on every request: revoking or deleting it, or its
		// expiry, ends the browser session at once — and so does a new object that merely
		// took the deleted one's name (sessions from before UIDs were kept have none).
		ps := h.rules.Session(v.ctx, sess.PortalSession)
		if !rules.Usable(ps, v.now) || string(ps.UID) != sess.PortalSessionUID {
			return end("portal_session_ended")
		}
		v.psess = ps
		// From here on every handler reads the session's effective rules: the portal's,
		// narrowed by the link's restrictions (the one place the intersection is made).
		v.portal = rules.Effective(v.portal, ps)
	case auth.MethodCode:
		if !v.portal.Spec.Access.Public.IsEnabled() {
			return end("public_access_disabled")
		}
	}
	if sess.CustomerID != "" {
		c, err := h.ledger.GetCustomer(v.ctx, sess.CustomerID)
		if errors.Is(err, ledger.ErrNotFound) {
			return end("customer_gone")
		}
		if err != nil {
			return false, err
		}
		// An e-mail login stands on the address it proved; if the merchant changes the
		// customer's address, the proof no longer applies.
		if sess.Method == auth.MethodCode && c.Email != sess.Email {
			return end("customer_email_changed")
		}
		v.customer = &c
	}
	v.sess = &sess
	v.flash = sess.Flash
	return false, nil
}

// checkSessionCSRF verifies a signed-in form's synchronizer token; false means 403 was sent.
func (h *Handler) checkSessionCSRF(w http.ResponseWriter, v *visit) bool {
	if auth.TokensEqual(v.sess.CSRFToken, v.r.PostForm.Get("csrf")) {
		return true
	}
	h.metrics.csrfRejected()
	h.log.Warn("form without a valid CSRF token", "path_pattern", v.r.Pattern)
	h.fail(w, v, http.StatusForbidden, "error.csrf")
	return false
}

// preToken returns the CSRF token for forms shown before sign-in, setting the pre-session
// cookie it is bound to if the browser has none yet.
func (h *Handler) preToken(w http.ResponseWriter, v *visit) string {
	c := v.cookies.get(v.r, cookiePre)
	if _, ok := auth.ParseLinkToken(c); !ok {
		c = auth.NewPreSession()
		v.cookies.set(w, cookiePre, c, 0)
	}
	return h.auth.PreSessionToken(c)
}

// checkPreCSRF verifies a pre-sign-in form (signed double submit); false means 403 was sent.
func (h *Handler) checkPreCSRF(w http.ResponseWriter, v *visit) bool {
	if h.auth.CheckPreSessionToken(v.cookies.get(v.r, cookiePre), v.r.PostForm.Get("csrf")) {
		return true
	}
	h.metrics.csrfRejected()
	h.log.Warn("pre-sign-in form without a valid CSRF token", "path_pattern", v.r.Pattern)
	h.fail(w, v, http.StatusForbidden, "error.csrf_pre")
	return false
}

// allow applies a rate limit; false means 429 was sent.
func (h *Handler) allow(w http.ResponseWriter, v *visit, bucket string, l auth.Limit) bool {
	ok, retry, err := h.auth.Allow(v.ctx, bucket, l)
	if err != nil {
		h.internal(w, v, err)
		return false
	}
	if !ok {
		h.metrics.rateLimited(bucket)
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		h.fail(w, v, http.StatusTooManyRequests, "error.rate_limited")
		return false
	}
	return true
}

// toSignIn sends an anonymous visitor to the e-mail login, or explains that this portal is
// entered only through a link.
func (h *Handler) toSignIn(w http.ResponseWriter, v *visit) {
	if v.portal.Spec.Access.Public.IsEnabled() {
		redirect(w, v, "/login")
		return
	}
	h.render(w, v, http.StatusUnauthorized, "nopublic", "title.nopublic", nil)
}

// sessionEnded tells a visitor whose session is over (signed out elsewhere, timed out, link
// revoked or expired) and offers the e-mail login when it is on.
func (h *Handler) sessionEnded(w http.ResponseWriter, v *visit) {
	h.render(w, v, http.StatusUnauthorized, "ended", "title.ended", nil)
}
