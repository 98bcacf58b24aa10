package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// Processors gives the charging driver of the processor the portal names now (spec.processor,
// read live: portal/charging/live in production).
type Processors interface {
	Driver(ctx context.Context) (*charging.Driver, error)
}

// driver is the portal's processor now.
func (h *Handler) driver(v *visit) (*charging.Driver, error) {
	return h.processors.Driver(v.ctx)
}

// hostedCards reports whether the portal's processor hosts card entry (its own page; the
// portal never renders a card form then). An unusable processor counts as hosting: no card
// form is shown for a processor that may be a real one.
func (h *Handler) hostedCards(v *visit) bool {
	d, err := h.driver(v)
	return err != nil || d.Adapter().Capabilities().HostedSetup
}

// processorFailure answers an error from the processor or the driver: a processor that could
// not be reached (or cannot be used now) is a retryable 503 that says nothing was saved; a
// refusal with a code is shown in the customer's words; anything else is internal.
func (h *Handler) processorFailure(w http.ResponseWriter, v *visit, err error) {
	var pe *payments.Error
	var le *ledger.Error
	switch {
	case payments.IsUnavailable(err):
		h.log.Warn("payment processor unavailable; nothing was recorded", "route", v.r.Pattern, "err", err)
		w.Header().Set("Retry-After", "30")
		h.fail(w, v, http.StatusServiceUnavailable, "error.processor_unavailable")
	case errors.As(err, &le):
		h.ledgerFailure(w, v, err)
	case errors.As(err, &pe):
		h.render(w, v, http.StatusUnprocessableEntity, "error", "title.error",
			errorData{Status: http.StatusUnprocessableEntity, Message: pe.Message(v.locale)})
	case errors.Is(err, charging.ErrNotFound):
		h.notFound(w, v)
	default:
		h.internal(w, v, err)
	}
}

// absURL is path on the portal as the customer's browser reaches it: the URL the operator
// published (status.url), else the request's own origin. Processors send the customer back
// to it.
func (v *visit) absURL(path string) string {
	if base := safeURL(v.portal.Status.URL); base != "" {
		return strings.TrimRight(base, "/") + path
	}
	scheme := "http"
	if isHTTPS(v.r) {
		scheme = "https"
	}
	return scheme + "://" + v.r.Host + path
}

// redirectToProcessor sends the customer to the processor's page (303). Only an absolute
// https URL, http on loopback (a local stripe-mock), or the portal itself (a processor whose
// page sends the customer straight back, like the sandbox's bank) is followed; the portal's own
// redirects stay local (see redirect).
func (h *Handler) redirectToProcessor(w http.ResponseWriter, v *visit, to string) {
	if safeURL(to) == "" && originOf(to) != originOf(v.absURL("/")) {
		h.internal(w, v, errors.New("the processor gave an unusable redirect URL"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, v.r, to, http.StatusSeeOther)
}

// startHostedSetup sends the customer to the processor's page to enter a card. They come back
// to returnPath (with the set-up reference added), or to cancelPath. Nothing is recorded until
// they come back, or the processor's webhook says they finished. The same rate limits as the
// portal's own form apply: every start is a call to the processor.
func (h *Handler) startHostedSetup(w http.ResponseWriter, v *visit, d *charging.Driver, returnPath, cancelPath string) {
	limit := v.portal.Spec.PaymentMethods.Max()
	if err := h.ledger.CheckMethodLimit(v.ctx, v.customer.ID, limit); err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	ok, retry, err := h.auth.AllowAll(v.ctx,
		[]string{"method-adds:session:" + v.sess.ID, "method-adds:ip:" + v.clientIP()},
		[]auth.Limit{h.limits.MethodAddsPerSession, h.limits.MethodAddsPerIP})
	if err != nil {
		h.internal(w, v, err)
		return
	}
	if !ok {
		h.metrics.rateLimited("method-adds")
		h.log.Warn("hosted card set-ups rate limited", "customer", v.customer.ID)
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		h.fail(w, v, http.StatusTooManyRequests, "error.rate_limited")
		return
	}
	s, err := d.StartSetup(v.ctx, v.customer.ID, charging.SetupInput{
		ReturnURL: v.absURL(returnPath), CancelURL: v.absURL(cancelPath), Locale: v.locale})
	if err != nil {
		h.processorFailure(w, v, err)
		return
	}
	h.log.Info("hosted card set-up started", "customer", v.customer.ID, "processor", d.Adapter().Type())
	h.redirectToProcessor(w, v, s.RedirectURL)
}

// completeHostedSetup adds the card of a set-up the customer came back from (the reference in
// the query), first when preferred. Coming back twice, or after the processor's webhook added
// it, adds nothing more. false means it answered.
func (h *Handler) completeHostedSetup(w http.ResponseWriter, v *visit, preferred bool) (ledger.PaymentMethod, bool) {
	d, err := h.driver(v)
	if err != nil {
		h.processorFailure(w, v, err)
		return ledger.PaymentMethod{}, false
	}
	_, fields := d.Adapter().(payments.FieldsHost)
	ref := setupReference(v, fields)
	ctx := ledger.WithMethodLimit(v.ctx, v.portal.Spec.PaymentMethods.Max())
	added, err := d.CompleteSetup(ctx, v.customer.ID, ref)
	if err != nil {
		h.processorFailure(w, v, err)
		return ledger.PaymentMethod{}, false
	}
	// The method is the customer's now; what follows must not be lost to a closed tab.
	ctx = context.WithoutCancel(v.ctx)
	if preferred {
		if _, err := h.ledger.MakePreferred(ctx, v.customer.ID, added.MethodID); err != nil {
			h.ledgerFailure(w, v, err)
			return ledger.PaymentMethod{}, false
		}
	}
	m, err := h.ledger.GetPaymentMethod(ctx, v.customer.ID, added.MethodID)
	if err != nil {
		h.internal(w, v, err)
		return ledger.PaymentMethod{}, false
	}
	if added.Added {
		h.log.Info("payment method added in the portal", "customer", v.customer.ID, "payment_method", m.ID, "type", m.Type, "hosted", true)
	}
	return m, true
}

// methodSetupReturn is where the processor sends the customer after entering a card (a GET),
// or where the page of a processor's embedded fields posts the card token. In fields mode it
// is that page.
func (h *Handler) methodSetupReturn(w http.ResponseWriter, v *visit) {
	if h.cardFieldsPage(w, v, "/methods") {
		return
	}
	if _, ok := h.completeHostedSetup(w, v, v.r.URL.Query().Get("preferred") == "1"); !ok {
		return
	}
	h.flashAndRedirect(w, v, "flash.method_added", "/methods")
}

// settle lets the customer's incomplete payments proceed after a method change, through the
// processor; its failure leaves them incomplete for the next change or the billing loop's
// sweep, as the change itself is done.
func (h *Handler) settle(v *visit) {
	ctx := context.WithoutCancel(v.ctx)
	d, err := h.processors.Driver(ctx)
	if err == nil {
		_, err = d.SettleIncomplete(ctx, v.customer.ID)
	}
	if err != nil {
		h.log.Warn("settle incomplete payments after a method change", "customer", v.customer.ID, "err", err)
	}
}

// paymentAuthenticate sends the customer to their bank to authenticate a payment that waits
// for it. A link, not a form: the bank's page is not the portal, and the portal's CSP lets
// forms post only to itself.
func (h *Handler) paymentAuthenticate(w http.ResponseWriter, v *visit) {
	p, ok := h.payment(w, v)
	if !ok {
		return
	}
	if p.Status != ledger.PaymentRequiresAction {
		redirect(w, v, "/payments/"+url.PathEscape(p.ID))
		return
	}
	d, err := h.driver(v)
	if err != nil {
		h.processorFailure(w, v, err)
		return
	}
	back := "/payments/" + url.PathEscape(p.ID) + "/authenticated"
	to, res, err := d.Authenticate(v.ctx, v.customer.ID, p.ID, v.absURL(back))
	switch {
	case errors.Is(err, charging.ErrNotWaiting):
		redirect(w, v, "/payments/"+url.PathEscape(p.ID))
		return
	case err != nil:
		h.processorFailure(w, v, err)
		return
	case to == "":
		// No authentication was needed after all: the result is recorded.
		h.log.Info("payment settled without authentication", "customer", v.customer.ID, "payment", p.ID, "status", res.Status)
		h.flashAndRedirect(w, v, paidFlash(p.ID), "/payments/"+url.PathEscape(p.ID))
		return
	}
	h.log.Info("customer sent to authenticate a payment", "customer", v.customer.ID, "payment", p.ID)
	h.redirectToProcessor(w, v, to)
}

// paymentAuthenticated is where the bank sends the customer back: the processor is asked what
// became of the charge, and the answer recorded once (a reload, or the webhook, adds nothing).
func (h *Handler) paymentAuthenticated(w http.ResponseWriter, v *visit) {
	p, ok := h.payment(w, v)
	if !ok {
		return
	}
	d, err := h.driver(v)
	if err != nil {
		h.processorFailure(w, v, err)
		return
	}
	res, err := d.FinishAuthentication(v.ctx, v.customer.ID, p.ID)
	if err != nil {
		h.processorFailure(w, v, err)
		return
	}
	h.log.Info("customer came back from authenticating a payment", "customer", v.customer.ID, "payment", p.ID, "status", res.Status)
	h.flashAndRedirect(w, v, paidFlash(p.ID), "/payments/"+url.PathEscape(p.ID))
}
