package web

import "net/http"

// logout ends the browser session (the PortalSession link, if any, still works until it
// expires: it is the merchant's to revoke).
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
	if err := h.auth.EndSession(v.ctx, v.sess.ID); err != nil {
		h.internal(w, v, err)
		return
	}
	h.cache.forget(v.sess.ID)
	v.cookies.clear(w, cookieSession)
	h.metrics.sessionEnded("signed_out")
	v.sess, v.customer = nil, nil
	h.render(w, v, http.StatusOK, "signedout", "title.signedout", nil)
}
