package web

import (
	"net/http"
	"net/url"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// maxReasonRunes matches the ledger's limit on cancellation reasons.
const maxReasonRunes = 500

type subscriptionRow struct {
	ID       string
	Plan     string
	Amount   int64
	Currency ledger.Currency
	Interval string
	Status   string
	// Method is the pinned method's label, "" when the preferred method is charged.
	Method            string
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	CanceledAt        time.Time
	Href              string
	// The row's texts in the page's language, ready for the lists: the amount, the interval
	// ("per month"), the status, where the period stands (renews, ends or ended on a day) and
	// what it is charged to.
	AmountText, IntervalText, StatusText, PeriodText, PaysWithText string
	// PendingText says what a change scheduled for the period's end will do ("" if none).
	PendingText string
}

func subscriptionView(locale string, s ledger.Subscription, methods map[string]ledger.PaymentMethod) subscriptionRow {
	r := subscriptionRow{ID: s.ID, Plan: planLabelIn(s.PlanName(locale), s.Quantity), Amount: s.Amount, Currency: s.Currency, Interval: string(s.Interval),
		Status: string(s.Status), PeriodEnd: s.CurrentPeriodEnd, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CanceledAt: s.CanceledAt, Href: "/subscriptions/" + url.PathEscape(s.ID),
		AmountText: formatMoney(locale, s.Amount, s.Currency), IntervalText: tr(locale, "interval."+string(s.Interval)),
		StatusText: tr(locale, "subscription.status."+string(s.Status))}
	if m, ok := methods[s.PaymentMethodID]; ok && s.PaymentMethodID != "" {
		r.Method = methodLabel(locale, m)
	}
	switch {
	case s.Status == ledger.SubscriptionCanceled:
		r.PeriodText = tr(locale, "subscription.ended_on", formatDate(locale, s.CanceledAt))
	case s.CancelAtPeriodEnd:
		r.PeriodText = tr(locale, "subscription.ends_on", formatDate(locale, s.CurrentPeriodEnd))
	default:
		r.PeriodText = tr(locale, "subscription.renews_on", formatDate(locale, s.CurrentPeriodEnd))
	}
	if s.Pending != nil && s.Status != ledger.SubscriptionCanceled {
		r.PendingText = tr(locale, "subscription.change.pending", formatDate(locale, s.CurrentPeriodEnd))
	}
	if r.Method != "" {
		r.PaysWithText = tr(locale, "subscription.pays_with", r.Method)
	} else {
		r.PaysWithText = tr(locale, "subscription.pays_with_preferred")
	}
	return r
}

// methodsByID lists the customer's methods, in preference order and by ID, as summaries: what
// their labels and expiry need (ledger.ListPaymentMethodSummaries).
func (h *Handler) methodsByID(v *visit) (map[string]ledger.PaymentMethod, []ledger.PaymentMethod, error) {
	ms, err := h.ledger.ListPaymentMethodSummaries(v.ctx, v.customer.ID)
	if err != nil {
		return nil, nil, err
	}
	by := make(map[string]ledger.PaymentMethod, len(ms))
	for _, m := range ms {
		by[m.ID] = m
	}
	return by, ms, nil
}

type subscriptionsData struct {
	Subscriptions []subscriptionRow
}

func (h *Handler) subscriptionsPage(w http.ResponseWriter, v *visit) {
	subs, err := h.ledger.ListSubscriptionSummaries(v.ctx, v.customer.ID)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	by, _, err := h.methodsByID(v)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	d := subscriptionsData{}
	for _, s := range subs {
		d.Subscriptions = append(d.Subscriptions, subscriptionView(v.locale, s, by))
	}
	h.render(w, v, http.StatusOK, "subscriptions", "title.subscriptions", d)
}

type methodChoice struct {
	ID       string
	Label    string
	Selected bool
}

type subscriptionData struct {
	Sub subscriptionRow
	// Choices are the customer's methods of types this portal accepts (only when the portal
	// lets customers change methods).
	Choices         []methodChoice
	PreferredChosen bool
	CanChange       bool
	CanCancel       bool
	Canceled        bool
	Mode            string
	CollectReason   bool
	Reason          string
	// CanChangePlan offers "change plan" (permissions.updateSubscriptions and
	// subscriptionUpdate.enabled, on a subscription that is not canceled).
	CanChangePlan bool
	// CreditText is the customer's credit balance in the subscription's currency, when any.
	CreditText string
	// Payments are the subscription's latest payments, when the portal shows payment history.
	Payments []paymentRow
}

// subscription loads the customer's subscription named in the path; false means it answered
// (404 for another customer's id, exactly like a missing one).
func (h *Handler) subscription(w http.ResponseWriter, v *visit) (ledger.Subscription, bool) {
	s, err := h.ledger.GetSubscriptionForCustomer(v.ctx, v.customer.ID, v.r.PathValue("id"))
	if err != nil {
		h.ledgerFailure(w, v, err)
		return s, false
	}
	return s, true
}

func (h *Handler) subscriptionData(v *visit, s ledger.Subscription) (subscriptionData, error) {
	by, ms, err := h.methodsByID(v)
	if err != nil {
		return subscriptionData{}, err
	}
	perms := v.portal.Spec.Permissions
	d := subscriptionData{Sub: subscriptionView(v.locale, s, by), Canceled: s.Status == ledger.SubscriptionCanceled,
		CanChange: perms.CanUpdatePaymentMethod(), CanCancel: perms.CanCancelSubscriptions(),
		Mode: string(cancelMode(v.portal)), CollectReason: v.portal.Spec.Cancellation.CollectReason,
		PreferredChosen: s.PaymentMethodID == ""}
	for _, m := range ms {
		if allows(v.portal, m.Type) {
			d.Choices = append(d.Choices, methodChoice{ID: m.ID, Label: methodLabel(v.locale, m), Selected: m.ID == s.PaymentMethodID})
		}
	}
	d.CanChangePlan = canChangePlan(v.portal) && !d.Canceled
	bal, err := h.ledger.CreditBalance(v.ctx, v.customer.ID, s.Currency)
	if err != nil {
		return subscriptionData{}, err
	}
	if bal > 0 {
		d.CreditText = formatMoney(v.locale, bal, s.Currency)
	}
	if perms.CanViewPaymentHistory() {
		page, err := h.ledger.ListPaymentSummaries(v.ctx, ledger.ListPaymentsParams{CustomerID: v.customer.ID, SubscriptionID: s.ID, Limit: 5})
		if err != nil {
			return subscriptionData{}, err
		}
		for _, p := range page.Items {
			d.Payments = append(d.Payments, paymentView(v.locale, p))
		}
	}
	return d, nil
}

func cancelMode(p *billingv1alpha1.CustomerPortal) ledger.CancelMode {
	if p.Spec.Cancellation.Mode == billingv1alpha1.CancelImmediately {
		return ledger.CancelImmediately
	}
	return ledger.CancelAtPeriodEnd
}

func (h *Handler) subscriptionPage(w http.ResponseWriter, v *visit) {
	s, ok := h.subscription(w, v)
	if !ok {
		return
	}
	d, err := h.subscriptionData(v, s)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.render(w, v, http.StatusOK, "subscription", "title.subscription", d)
}

// subscriptionSetMethod pins one of the customer's methods (of an accepted type) to the
// subscription, or "" to charge the preferred method.
func (h *Handler) subscriptionSetMethod(w http.ResponseWriter, v *visit) {
	s, ok := h.subscription(w, v)
	if !ok {
		return
	}
	methodID := v.r.PostForm.Get("method")
	if methodID != "" {
		m, err := h.ledger.GetPaymentMethod(v.ctx, v.customer.ID, methodID)
		if err != nil {
			h.ledgerFailure(w, v, err)
			return
		}
		if !allows(v.portal, m.Type) {
			h.fail(w, v, http.StatusForbidden, "error.method_not_allowed")
			return
		}
	}
	if _, err := h.ledger.SetSubscriptionPaymentMethod(v.ctx, v.customer.ID, s.ID, methodID); err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	h.log.Info("subscription payment method changed in the portal", "customer", v.customer.ID, "subscription", s.ID, "payment_method", methodID)
	h.flashAndRedirect(w, v, "flash.subscription_method_saved", "/subscriptions/"+url.PathEscape(s.ID))
}

func (h *Handler) subscriptionCancelPage(w http.ResponseWriter, v *visit) {
	s, ok := h.subscription(w, v)
	if !ok {
		return
	}
	if s.Status == ledger.SubscriptionCanceled || s.CancelAtPeriodEnd {
		redirect(w, v, "/subscriptions/"+url.PathEscape(s.ID))
		return
	}
	d, err := h.subscriptionData(v, s)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.render(w, v, http.StatusOK, "subscriptioncancel", "title.subscription_cancel", d)
}

// subscriptionCancel cancels with the portal's mode; the reason is kept only when the portal
// asks for one.
func (h *Handler) subscriptionCancel(w http.ResponseWriter, v *visit) {
	s, ok := h.subscription(w, v)
	if !ok {
		return
	}
	reason := ""
	if v.portal.Spec.Cancellation.CollectReason {
		var ok bool
		if reason, ok = cleanMultiline(v.r.PostForm.Get("reason"), maxReasonRunes); !ok {
			d, err := h.subscriptionData(v, s)
			if err != nil {
				h.internal(w, v, err)
				return
			}
			f := newForm(v.r.PostForm)
			f.fail("reason", "form.reason_invalid")
			h.renderForm(w, v, http.StatusUnprocessableEntity, "subscriptioncancel", "title.subscription_cancel", d, f)
			return
		}
	}
	mode := cancelMode(v.portal)
	if _, err := h.ledger.CancelSubscription(v.ctx, v.customer.ID, s.ID, mode, reason); err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	h.log.Info("subscription canceled in the portal", "customer", v.customer.ID, "subscription", s.ID, "mode", mode)
	flash := "flash.subscription_canceled_period_end"
	if mode == ledger.CancelImmediately {
		flash = "flash.subscription_canceled"
	}
	h.flashAndRedirect(w, v, flash, "/subscriptions/"+url.PathEscape(s.ID))
}

func (h *Handler) subscriptionResume(w http.ResponseWriter, v *visit) {
	s, ok := h.subscription(w, v)
	if !ok {
		return
	}
	if _, err := h.ledger.ResumeSubscription(v.ctx, v.customer.ID, s.ID); err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	h.flashAndRedirect(w, v, "flash.subscription_resumed", "/subscriptions/"+url.PathEscape(s.ID))
}

// cleanMultiline accepts free text with line breaks (a cancellation reason) and folds the line
// breaks to spaces, which is how the ledger stores single-line text.
func cleanMultiline(s string, maxRunes int) (string, bool) {
	b := []rune{}
	for _, r := range s {
		if r == '\r' || r == '\n' || r == '\t' {
			r = ' '
		}
		b = append(b, r)
	}
	return cleanText(string(b), maxRunes)
}
