package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// Plan and quantity changes, within the portal's spec.subscriptionUpdate: "change plan" on a
// subscription lists the plans customers may switch to (the rules' plans that exist, are not
// archived and bill in the subscription's currency; one of another interval starts a new
// period), a review page shows the exact amount due now or credited before anything happens, and its confirmation makes the change.
// Everything the pages offer is checked again on the server: a hand-made request for a plan
// the rules do not list, a quantity the rules do not let customers change or above the plan's
// maximum, or without the permission, is refused. The pages are plain forms: choosing is a GET
// (it changes nothing), confirming a POST with the session's CSRF token.

// canChangePlan is permissions.updateSubscriptions with spec.subscriptionUpdate.enabled.
var canChangePlan permission = func(p *billingv1alpha1.CustomerPortal) bool {
	return p.Spec.Permissions.CanUpdateSubscriptions() && p.Spec.SubscriptionUpdate.Enabled
}

// planChangeRoutes registers the pages.
func (h *Handler) planChangeRoutes(m *http.ServeMux) {
	m.Handle("GET /subscriptions/{id}/change", h.inside(canChangePlan, h.planChangePage))
	m.Handle("GET /subscriptions/{id}/change/review", h.inside(canChangePlan, h.planChangeReview))
	m.Handle("POST /subscriptions/{id}/change", h.inside(canChangePlan, h.planChangeSubmit))
}

// changeRules is the ledger's reading of the portal's spec.subscriptionUpdate.
func changeRules(su billingv1alpha1.SubscriptionUpdate) (ledger.ProrationBehavior, ledger.ChangeEffective) {
	b := ledger.ProrateCreate
	switch su.Proration {
	case billingv1alpha1.ProrationNone:
		b = ledger.ProrateNone
	case billingv1alpha1.ProrationAlwaysCharge:
		b = ledger.ProrateAlwaysCharge
	}
	eff := ledger.EffectiveImmediately
	if su.Effective == billingv1alpha1.UpdateAtPeriodEnd {
		eff = ledger.EffectiveAtPeriodEnd
	}
	return b, eff
}

// planOption is one plan a customer may choose.
type planOption struct {
	ID          string
	Name        string
	PriceText   string // "$ 4.000,00 por mes" (per unit)
	MaxQuantity int
	Current     bool
	Selected    bool
}

type planChangeData struct {
	Sub     subscriptionRow
	Options []planOption
	// Quantity: the customer may change the quantity; QuantityValue is the form's value.
	Quantity      bool
	QuantityValue int
	MaxQuantity   int
	// Effective is the portal's moment ("immediately" or "at_period_end").
	Effective string
	// OtherInterval: some plan bills at another interval than the subscription (choosing it
	// starts a new period).
	OtherInterval bool
}

// allowedPlans are the plans the rules let customers of sub choose, in the rules' order: named
// by spec.subscriptionUpdate.plans, existing, not archived, and in the subscription's currency
// (a plan of another interval starts a new period: see ledger.ChangeQuote). The current plan is among them when the
// rules name it.
func (h *Handler) allowedPlans(v *visit, sub ledger.Subscription) ([]ledger.Plan, error) {
	ids := v.portal.Spec.SubscriptionUpdate.Plans
	byID, err := h.ledger.GetPlans(v.ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []ledger.Plan
	for _, id := range ids {
		p, ok := byID[id]
		if ok && !p.Archived() && p.Currency == sub.Currency {
			out = append(out, p)
		}
	}
	return out, nil
}

// changeTarget reads and checks the plan and quantity a request asks for; field is the form
// field at fault (with the message key) when they are not the customer's to choose.
func (h *Handler) changeTarget(v *visit, sub ledger.Subscription, vals url.Values) (ledger.Plan, int, string, msgKey, error) {
	allowed, err := h.allowedPlans(v, sub)
	if err != nil {
		return ledger.Plan{}, 0, "", "", err
	}
	planID := vals.Get("plan")
	if planID == "" {
		planID = sub.PlanID
	}
	i := slices.IndexFunc(allowed, func(p ledger.Plan) bool { return p.ID == planID })
	var plan ledger.Plan
	switch {
	case i >= 0:
		plan = allowed[i]
	case planID != "" && planID == sub.PlanID && v.portal.Spec.SubscriptionUpdate.Quantity:
		// Changing only the quantity of the current plan, which the rules need not list.
		if plan, err = h.ledger.GetPlan(v.ctx, planID); err != nil {
			return ledger.Plan{}, 0, "", "", err
		}
	default:
		return ledger.Plan{}, 0, "plan", "form.plan_choose", nil
	}
	qty := max(sub.Quantity, 1)
	if raw := vals.Get("quantity"); raw != "" {
		n, ok := parseSmallInt(raw, 7)
		if !ok || n < 1 {
			return plan, 0, "quantity", "form.quantity_invalid", nil
		}
		if n != qty && !v.portal.Spec.SubscriptionUpdate.Quantity {
			return plan, 0, "quantity", "form.quantity_fixed", nil
		}
		qty = n
	}
	if plan.MaxQuantity > 0 && qty > plan.MaxQuantity {
		return plan, 0, "quantity", "form.quantity_above_max", nil
	}
	if plan.ID == sub.PlanID && qty == sub.Quantity && sub.Pending == nil {
		return plan, qty, "plan", "form.plan_same", nil
	}
	return plan, qty, "", "", nil
}

// changeable loads the subscription of the path and refuses a canceled one; false means it
// answered.
func (h *Handler) changeable(w http.ResponseWriter, v *visit) (ledger.Subscription, bool) {
	s, ok := h.subscription(w, v)
	if !ok {
		return s, false
	}
	if s.Status == ledger.SubscriptionCanceled {
		h.fail(w, v, http.StatusConflict, "error.subscription_canceled")
		return s, false
	}
	return s, true
}

func (h *Handler) planChangeData(v *visit, s ledger.Subscription, vals url.Values) (planChangeData, error) {
	by, _, err := h.methodsByID(v)
	if err != nil {
		return planChangeData{}, err
	}
	allowed, err := h.allowedPlans(v, s)
	if err != nil {
		return planChangeData{}, err
	}
	su := v.portal.Spec.SubscriptionUpdate
	_, eff := changeRules(su)
	d := planChangeData{Sub: subscriptionView(v.locale, s, by), Quantity: su.Quantity && (s.PlanID != "" || len(allowed) > 0),
		QuantityValue: max(s.Quantity, 1), Effective: string(eff)}
	chosen := vals.Get("plan")
	if chosen == "" {
		chosen = s.PlanID
	}
	for _, p := range allowed {
		d.Options = append(d.Options, planOption{ID: p.ID, Name: p.Name(v.locale), MaxQuantity: p.MaxQuantity,
			PriceText: formatMoney(v.locale, p.Amount, p.Currency) + " " + tr(v.locale, "interval."+string(p.Interval)),
			Current:   p.ID == s.PlanID, Selected: p.ID == chosen})
		d.OtherInterval = d.OtherInterval || p.Interval != s.Interval
		if p.MaxQuantity > d.MaxQuantity {
			d.MaxQuantity = p.MaxQuantity
		}
	}
	if n, ok := parseSmallInt(vals.Get("quantity"), 7); ok && n >= 1 {
		d.QuantityValue = n
	}
	return d, nil
}

// planChangePage lists the plans to choose from.
func (h *Handler) planChangePage(w http.ResponseWriter, v *visit) {
	s, ok := h.changeable(w, v)
	if !ok {
		return
	}
	d, err := h.planChangeData(v, s, v.r.URL.Query())
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.render(w, v, http.StatusOK, "planchange", "title.plan_change", d)
}

// planReviewData is the review page: what the change does, and the confirmation form carrying
// the quote it shows.
type planReviewData struct {
	Sub   subscriptionRow
	Quote ledger.ChangeQuote
	// Texts in the page's language.
	FromText, ToText, FromPrice, ToPrice string
	ChargeText, CreditAppliedText        string
	AmountDueText, CreditText            string
	EffectiveText, PeriodEndText         string
	// UnusedText and NewPeriodEndText: an interval change (Quote.IntervalChange).
	UnusedText, ToAmountText, NewPeriodEndText, LostText string
	// AtUnix is the quote's instant, sent back with the confirmation.
	AtUnix int64
	// Plan and Quantity are the confirmation's fields.
	Plan     string
	Quantity int
	// Updated says the amount changed since the page the customer confirmed (shown again).
	Updated bool
	// AtPeriodEnd: the change waits for the period's end.
	AtPeriodEnd bool
}

// planChangeReview shows the exact amount due now or credited, before anything happens.
func (h *Handler) planChangeReview(w http.ResponseWriter, v *visit) {
	s, ok := h.changeable(w, v)
	if !ok {
		return
	}
	h.reviewChange(w, v, s, v.r.URL.Query(), http.StatusOK, false)
}

// reviewChange renders the review of the change vals ask for, or the choice again with what is
// wrong with them.
func (h *Handler) reviewChange(w http.ResponseWriter, v *visit, s ledger.Subscription, vals url.Values, status int, updated bool) {
	plan, qty, field, msg, err := h.changeTarget(v, s, vals)
	if err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	if field != "" {
		h.planChoiceAgain(w, v, s, vals, field, msg)
		return
	}
	b, eff := changeRules(v.portal.Spec.SubscriptionUpdate)
	q, err := h.ledger.QuoteSubscriptionChange(v.ctx, v.customer.ID, s.ID, ledger.SubscriptionChange{
		PlanID: plan.ID, Quantity: qty, Proration: b, Effective: eff})
	if err != nil {
		h.changeFailure(w, v, s, vals, err)
		return
	}
	by, _, err := h.methodsByID(v)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	loc := v.locale
	money := func(n int64) string { return formatMoney(loc, n, q.Currency) }
	per := func(l ledger.ChangeLine) string {
		return money(l.Amount) + " " + tr(loc, "interval."+string(l.Interval))
	}
	d := planReviewData{Sub: subscriptionView(loc, s, by), Quote: q, Plan: plan.ID, Quantity: qty, Updated: updated,
		FromText: planLabelIn(q.From.Name(loc), q.From.Quantity), ToText: planLabelIn(q.To.Name(loc), q.To.Quantity),
		FromPrice: per(q.From), ToPrice: per(q.To), UnusedText: money(q.Unused), ToAmountText: money(q.To.Amount), LostText: money(-q.Prorated),
		NewPeriodEndText: formatDate(loc, q.NewPeriodEnd),
		ChargeText:       money(q.Charge), CreditAppliedText: money(q.CreditApplied), AmountDueText: money(q.AmountDue),
		CreditText: money(q.Credit), EffectiveText: formatDate(loc, q.EffectiveAt), PeriodEndText: formatDate(loc, q.PeriodEnd),
		AtUnix: q.At.Unix(), AtPeriodEnd: q.Effective == ledger.EffectiveAtPeriodEnd}
	h.render(w, v, status, "planreview", "title.plan_review", d)
}

// planLabelIn names a plan and its quantity for a page: "Pro", "Pro × 3".
func planLabelIn(name string, quantity int) string {
	if quantity > 1 {
		return name + " × " + strconv.Itoa(quantity)
	}
	return name
}

// planChoiceAgain shows the choice with the field at fault.
func (h *Handler) planChoiceAgain(w http.ResponseWriter, v *visit, s ledger.Subscription, vals url.Values, field string, msg msgKey) {
	d, err := h.planChangeData(v, s, vals)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	f := newForm(vals)
	f.fail(field, string(msg))
	h.renderForm(w, v, http.StatusUnprocessableEntity, "planchange", "title.plan_change", d, f)
}

// changeFailure answers a ledger refusal of a change: a quote that no longer holds is shown
// again, up to date; a refusal about the plan or quantity goes back to the choice.
func (h *Handler) changeFailure(w http.ResponseWriter, v *visit, s ledger.Subscription, vals url.Values, err error) {
	var le *ledger.Error
	if !errors.As(err, &le) {
		h.internal(w, v, err)
		return
	}
	switch le.Code {
	case ledger.CodeSubscriptionChanged:
		fresh, err := h.ledger.GetSubscriptionForCustomer(v.ctx, v.customer.ID, s.ID)
		if err != nil {
			h.ledgerFailure(w, v, err)
			return
		}
		h.reviewChange(w, v, fresh, vals, http.StatusConflict, true)
	case ledger.CodeQuantityAboveMaximum:
		h.planChoiceAgain(w, v, s, vals, "quantity", "form.quantity_above_max")
	case ledger.CodePlanArchived, ledger.CodePlanCurrencyMismatch:
		h.planChoiceAgain(w, v, s, vals, "plan", "form.plan_choose")
	default:
		h.ledgerFailure(w, v, err)
	}
}

// planChangeSubmit makes the change the customer confirmed, charging or crediting exactly the
// amount the review showed: the quote's instant and amount come back with the form, and the
// ledger refuses (so the review is shown again) when they no longer hold. A second submission
// of the same confirmation (a double click, a reload) finds the change made and charges
// nothing.
func (h *Handler) planChangeSubmit(w http.ResponseWriter, v *visit) {
	s, ok := h.changeable(w, v)
	if !ok {
		return
	}
	vals := v.r.PostForm
	plan, qty, field, msg, err := h.changeTarget(v, s, vals)
	if err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	if field != "" {
		if msg == "form.plan_same" && vals.Get("revision") == strconv.FormatInt(s.ChangeRevision-1, 10) {
			// Already so: the same confirmation submitted again after it went through.
			h.flashAndRedirect(w, v, "flash.plan_changed", "/subscriptions/"+url.PathEscape(s.ID))
			return
		}
		h.planChoiceAgain(w, v, s, vals, field, msg)
		return
	}
	b, eff := changeRules(v.portal.Spec.SubscriptionUpdate)
	ch := ledger.SubscriptionChange{PlanID: plan.ID, Quantity: qty, Proration: b, Effective: eff}
	at, atOK := strconv.ParseInt(vals.Get("at"), 10, 64)
	rev, revOK := strconv.ParseInt(vals.Get("revision"), 10, 64)
	prorated, proOK := strconv.ParseInt(vals.Get("prorated"), 10, 64)
	if atOK != nil || revOK != nil || proOK != nil {
		// Not a confirmation of a review: show the review.
		h.reviewChange(w, v, s, vals, http.StatusUnprocessableEntity, false)
		return
	}
	ch.At, ch.Revision, ch.Prorated = time.Unix(at, 0), &rev, &prorated
	d, err := h.driver(v)
	if err != nil {
		h.processorFailure(w, v, err)
		return
	}
	ch.Processor = d.Adapter().Type()
	res, err := h.ledger.ChangeSubscription(v.ctx, v.customer.ID, s.ID, ch)
	if err != nil {
		h.changeFailure(w, v, s, vals, err)
		return
	}
	if res.Claim != nil {
		// The change's charge, claimed by the ledger: charged through the processor, and read
		// back as recorded (a lost answer leaves it processing, re-driven with its key).
		if _, err := d.Charge(v.ctx, *res.Claim); err != nil {
			h.internal(w, v, err)
			return
		}
		if res.Payment, err = h.ledger.GetPaymentForCustomer(context.WithoutCancel(v.ctx), v.customer.ID, res.Payment.ID); err != nil {
			h.internal(w, v, err)
			return
		}
	}
	h.log.Info("subscription changed in the portal", "customer", v.customer.ID, "subscription", s.ID,
		"plan", plan.ID, "quantity", qty, "changed", res.Changed, "payment", res.Payment.ID)
	if res.Payment.ID != "" && res.Payment.Due() {
		// The charge waits for the customer (no usable method, a refusal): take them to it.
		h.flashAndRedirect(w, v, "flash.plan_changed_pay", "/payments/"+url.PathEscape(res.Payment.ID))
		return
	}
	flash := "flash.plan_changed"
	if res.Quote.Effective == ledger.EffectiveAtPeriodEnd {
		flash = "flash.plan_change_scheduled"
	}
	h.flashAndRedirect(w, v, flash, "/subscriptions/"+url.PathEscape(s.ID))
}
