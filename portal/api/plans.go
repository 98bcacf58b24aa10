package api

import (
	"net/http"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// The plan catalogue and plan changes: POST/GET /plans, GET /plans/{id}, POST
// /plans/{id}/archive, and POST /subscriptions/{id}/update.

// planJSON is a plan of the catalogue.
type planJSON struct {
	ID       string       `json:"id"`
	Name     planNameJSON `json:"name"`
	Amount   int64        `json:"amount"`
	Currency string       `json:"currency"`
	Interval string       `json:"interval"`
	// MaxQuantity is absent when the plan sets no maximum.
	MaxQuantity int        `json:"max_quantity,omitempty"`
	Archived    bool       `json:"archived"`
	ArchivedAt  *time.Time `json:"archived_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
}

type planNameJSON struct {
	ES string `json:"es"`
	EN string `json:"en"`
}

// createPlanRequest is the body of POST /plans.
type createPlanRequest struct {
	ID          string       `json:"id"`
	Name        planNameJSON `json:"name"`
	Amount      int64        `json:"amount"`
	Currency    string       `json:"currency"`
	Interval    string       `json:"interval"`
	MaxQuantity int          `json:"max_quantity"`
}

func toPlan(p ledger.Plan) planJSON {
	return planJSON{ID: p.ID, Name: planNameJSON{ES: p.NameES, EN: p.NameEN}, Amount: p.Amount,
		Currency: string(p.Currency), Interval: string(p.Interval), MaxQuantity: p.MaxQuantity,
		Archived: p.Archived(), ArchivedAt: optionalTime(p.ArchivedAt), CreatedAt: p.CreatedAt}
}

// createPlan adds a plan. Plans are never edited: sending the same plan again answers 200 with
// it (a set-up script may run twice), and the same id with other fields is 409 plan_exists.
func (a *API) createPlan(w http.ResponseWriter, r *http.Request) *apiError {
	var req createPlanRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	p, created, err := a.store.CreatePlan(r.Context(), ledger.NewPlan{ID: req.ID, NameES: req.Name.ES,
		NameEN: req.Name.EN, Amount: req.Amount, Currency: ledger.Currency(req.Currency),
		Interval: ledger.Interval(req.Interval), MaxQuantity: req.MaxQuantity})
	if err != nil {
		return a.storeError(r, err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toPlan(p))
	return nil
}

func (a *API) listPlans(w http.ResponseWriter, r *http.Request) *apiError {
	q, e := query(r, "archived", "limit", "cursor")
	if e != nil {
		return e
	}
	limit, e := pageLimit(q)
	if e != nil {
		return e
	}
	params := ledger.ListPlansParams{Limit: limit, Cursor: q.Get("cursor")}
	switch v := q.Get("archived"); v {
	case "":
	case "true", "false":
		archived := v == "true"
		params.Archived = &archived
	default:
		return errInvalidField("archived", "archived must be true or false.", "archived debe ser true o false.")
	}
	page, err := a.store.ListPlans(r.Context(), params)
	if err != nil {
		return a.storeError(r, err)
	}
	out := listResponse[planJSON]{Data: []planJSON{}, NextCursor: page.NextCursor}
	for _, p := range page.Items {
		out.Data = append(out.Data, toPlan(p))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getPlan(w http.ResponseWriter, r *http.Request) *apiError {
	p, err := a.store.GetPlan(r.Context(), r.PathValue("id"))
	if err != nil {
		return a.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, toPlan(p))
	return nil
}

// archivePlan takes a plan off the catalogue: no new subscriptions or changes to it, and
// portals stop offering it; subscriptions on it keep it. Archiving twice is harmless.
func (a *API) archivePlan(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct{}
	if e := decodeOptionalJSON(w, r, &req); e != nil {
		return e
	}
	p, err := a.store.ArchivePlan(r.Context(), r.PathValue("id"))
	if err != nil {
		return a.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, toPlan(p))
	return nil
}

// Proration behaviours and effects as the API spells them.
const (
	prorationCreate       = "create_prorations"
	prorationNone         = "none"
	prorationAlwaysCharge = "always_charge"
	effectiveImmediately  = "immediately"
	effectiveAtPeriodEnd  = "at_period_end"
)

// updateSubscriptionRequest is the body of POST /subscriptions/{id}/update.
type updateSubscriptionRequest struct {
	// PlanID is the plan to be on; empty keeps the current plan.
	PlanID string `json:"plan_id"`
	// Quantity is the number of units; 0 keeps the current quantity.
	Quantity int `json:"quantity"`
	// ProrationBehavior and Effective default to the portal's spec.subscriptionUpdate.
	ProrationBehavior string `json:"proration_behavior"`
	Effective         string `json:"effective"`
	// Preview answers what the change would do, changing nothing.
	Preview bool `json:"preview"`
}

// subscriptionUpdateJSON is the answer to POST /subscriptions/{id}/update.
type subscriptionUpdateJSON struct {
	// Changed is false when the subscription already was as asked (nothing was done) and in a
	// preview.
	Changed      bool             `json:"changed"`
	Subscription subscriptionJSON `json:"subscription"`
	Change       changeJSON       `json:"change"`
	// Payment is the change's charge, when one was made (absent when nothing was charged or the
	// credit balance paid all of it).
	Payment *paymentJSON `json:"payment,omitempty"`
	// CreditBalance is the customer's credit balance in the subscription's currency, after the
	// change (before it, in a preview).
	CreditBalance int64 `json:"credit_balance"`
}

type changeLineJSON struct {
	PlanID   string `json:"plan_id,omitempty"`
	Plan     string `json:"plan"`
	Quantity int    `json:"quantity"`
	Amount   int64  `json:"amount"`
	// Interval is how often the line's plan bills: amount is per interval.
	Interval string `json:"interval"`
}

// changeJSON is what a change comes to.
type changeJSON struct {
	From              changeLineJSON `json:"from"`
	To                changeLineJSON `json:"to"`
	Currency          string         `json:"currency"`
	ProrationBehavior string         `json:"proration_behavior"`
	Effective         string         `json:"effective"`
	EffectiveAt       time.Time      `json:"effective_at"`
	// Prorated is (to.amount − from.amount) × remaining ÷ period seconds, rounded once, half
	// away from zero: positive is due now, negative is credited (for an interval change at
	// once, to.amount − unused).
	Prorated         int64 `json:"prorated"`
	RemainingSeconds int64 `json:"remaining_seconds"`
	PeriodSeconds    int64 `json:"period_seconds"`
	// Charge is billed now: CreditApplied of it from the credit balance, AmountDue through the
	// payment method. Credit goes to the balance.
	Charge        int64 `json:"charge"`
	CreditApplied int64 `json:"credit_applied"`
	AmountDue     int64 `json:"amount_due"`
	Credit        int64 `json:"credit"`
	// IntervalChange: to bills at another interval than from, so the change starts a new
	// period, [new_period_start, new_period_end): at once (prorated is then to.amount less
	// unused, what is left of the old period at the old price) or at the period's end.
	IntervalChange bool       `json:"interval_change"`
	Unused         int64      `json:"unused,omitempty"`
	NewPeriodStart *time.Time `json:"new_period_start,omitempty"`
	NewPeriodEnd   *time.Time `json:"new_period_end,omitempty"`
	// PeriodUnpaid: an interval change at once of a past-due subscription; nothing of the
	// unpaid period is taken off (unused is 0) and its payment stays due.
	PeriodUnpaid bool `json:"period_unpaid,omitempty"`
}

func toChange(q ledger.ChangeQuote) changeJSON {
	line := func(l ledger.ChangeLine) changeLineJSON {
		return changeLineJSON{PlanID: l.PlanID, Plan: l.Plan, Quantity: l.Quantity, Amount: l.Amount, Interval: string(l.Interval)}
	}
	var start, end *time.Time
	if q.IntervalChange && !q.NewPeriodStart.IsZero() {
		start, end = &q.NewPeriodStart, &q.NewPeriodEnd
	}
	return changeJSON{IntervalChange: q.IntervalChange, Unused: q.Unused, PeriodUnpaid: q.PeriodUnpaid, NewPeriodStart: start, NewPeriodEnd: end, From: line(q.From), To: line(q.To), Currency: string(q.Currency),
		ProrationBehavior: string(q.Proration), Effective: string(q.Effective), EffectiveAt: q.EffectiveAt,
		Prorated: q.Prorated, RemainingSeconds: q.RemainingSeconds, PeriodSeconds: q.PeriodSeconds,
		Charge: q.Charge, CreditApplied: q.CreditApplied, AmountDue: q.AmountDue, Credit: q.Credit}
}

// updateSubscription changes a subscription's plan or quantity. The merchant may move a
// subscription to any active plan of its currency (one of another interval starts a new period; the portal's
// spec.subscriptionUpdate.plans bound only what customers may choose); the proration behaviour
// and the moment default to the portal's rules. Asking again for what the subscription already
// is changes and charges nothing, so a retried request is harmless.
func (a *API) updateSubscription(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).subscriptionID = id
	var req updateSubscriptionRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if req.PlanID == "" && req.Quantity == 0 {
		return errRequired("plan_id")
	}
	behavior, effective, e := a.changeRules(r, req.ProrationBehavior, req.Effective)
	if e != nil {
		return e
	}
	sub, err := a.store.GetSubscription(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = sub.CustomerID
	ch := ledger.SubscriptionChange{PlanID: req.PlanID, Quantity: req.Quantity, Proration: behavior, Effective: effective}
	if req.Preview {
		q, err := a.store.QuoteSubscriptionChange(r.Context(), sub.CustomerID, id, ch)
		if err != nil {
			return a.storeError(r, err)
		}
		writeJSON(w, http.StatusOK, subscriptionUpdateJSON{Subscription: toSubscription(sub), Change: toChange(q),
			CreditBalance: q.CreditBalance})
		return nil
	}
	d, e := a.driver(r)
	if e != nil {
		return e
	}
	ch.Processor = d.Adapter().Type()
	res, err := a.store.ChangeSubscription(r.Context(), sub.CustomerID, id, ch)
	if err != nil {
		return a.storeError(r, err)
	}
	if res.Payment, err = a.charged(r.Context(), d, res.Payment, res.Claim); err != nil {
		return a.storeError(r, err)
	}
	out := subscriptionUpdateJSON{Changed: res.Changed, Subscription: toSubscription(res.Subscription),
		Change: toChange(res.Quote), CreditBalance: res.CreditBalance}
	if res.Payment.ID != "" {
		info(r).paymentID = res.Payment.ID
		pj := toPayment(res.Payment, locale(r))
		out.Payment = &pj
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// changeRules reads the proration behaviour and the moment of a change, defaulting to the
// portal's spec.subscriptionUpdate as customers' own changes do.
func (a *API) changeRules(r *http.Request, behavior, effective string) (ledger.ProrationBehavior, ledger.ChangeEffective, *apiError) {
	var b ledger.ProrationBehavior
	var eff ledger.ChangeEffective
	switch behavior {
	case prorationCreate, prorationNone, prorationAlwaysCharge:
		b = ledger.ProrationBehavior(behavior)
	case "":
	default:
		return "", "", errInvalidField("proration_behavior",
			"proration_behavior must be create_prorations, none or always_charge.",
			"proration_behavior debe ser create_prorations, none o always_charge.")
	}
	switch effective {
	case effectiveImmediately, effectiveAtPeriodEnd:
		eff = ledger.ChangeEffective(effective)
	case "":
	default:
		return "", "", errInvalidField("effective", "effective must be immediately or at_period_end.",
			"effective debe ser immediately o at_period_end.")
	}
	if b != "" && eff != "" {
		return b, eff, nil
	}
	p := a.rules.Portal(r.Context())
	if p == nil {
		return "", "", errPortalUnavailable()
	}
	pb, pe := portalChangeRules(p.Spec.SubscriptionUpdate)
	if b == "" {
		b = pb
	}
	if eff == "" {
		eff = pe
	}
	return b, eff, nil
}

// portalChangeRules is the ledger's reading of a portal's spec.subscriptionUpdate: how changes
// are prorated and when they take effect.
func portalChangeRules(su billingv1alpha1.SubscriptionUpdate) (ledger.ProrationBehavior, ledger.ChangeEffective) {
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
