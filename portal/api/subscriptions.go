package api

import (
	"context"
	"net/http"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// Cancellation modes as the API spells them.
const (
	cancelModeAtPeriodEnd = "at_period_end"
	cancelModeImmediately = "immediately"
)

// createSubscription starts a subscription and bills its first period. Like createPayment it
// requires an Idempotency-Key, since it charges: the same key with the same body returns the
// original subscription and initial payment with 200 and "Idempotent-Replayed: true", never a
// second subscription or charge; with another body, 409. Keys are scoped to the customer, apart
// from payment keys. Unlike payments, the ledger itself says whether it replayed: it stores the
// key with the subscription.
func (a *API) createSubscription(w http.ResponseWriter, r *http.Request) *apiError {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return errIdempotencyKeyRequired()
	}
	var req createSubscriptionRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if req.CustomerID == "" {
		return errRequired("customer_id")
	}
	info(r).customerID = req.CustomerID
	in := ledger.NewSubscription{
		CustomerID: req.CustomerID, PlanID: req.PlanID, Quantity: req.Quantity, Plan: req.Plan, Amount: req.Amount,
		Currency: ledger.Currency(req.Currency), Interval: ledger.Interval(req.Interval),
		PaymentMethodID: req.PaymentMethodID, NoInitialPayment: req.NoInitialPayment,
		IdempotencyKey: key,
	}
	if req.StartAt != nil {
		in.StartAt = *req.StartAt
	}
	// Concurrent retries in this process take turns, so a replay answers with the initial
	// payment as charged rather than still processing. Across replicas the ledger's key lookup,
	// under the customer's lock, still guarantees one subscription.
	unlock := a.idem.lock("subscription\x00" + req.CustomerID + "\x00" + key)
	defer unlock()
	d, e := a.driver(r)
	if e != nil {
		return e
	}
	in.Processor = d.Adapter().Type()
	c, err := a.store.CreateSubscriptionIdempotent(r.Context(), in)
	if err != nil {
		return a.idempotentStoreError(r, err)
	}
	if c.Claim != nil {
		if c.InitialPayment, err = a.charged(r.Context(), d, c.InitialPayment, c.Claim); err != nil {
			return a.storeError(r, err)
		}
		// Its status follows the payment's (past due when it failed).
		if c.Subscription, err = a.store.GetSubscription(context.WithoutCancel(r.Context()), c.Subscription.ID); err != nil {
			return a.storeError(r, err)
		}
	}
	info(r).subscriptionID = c.Subscription.ID
	out := toSubscription(c.Subscription)
	if p := c.InitialPayment; p.ID != "" {
		info(r).paymentID = p.ID
		pj := toPayment(p, locale(r))
		out.InitialPayment = &pj
	}
	if c.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).subscriptionID = id
	sub, err := a.store.GetSubscription(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = sub.CustomerID
	writeJSON(w, http.StatusOK, toSubscription(sub))
	return nil
}

// cancelSubscription cancels in the requested mode, or as the portal's cancellation.mode says, so
// the merchant's cancellations and the customers' own follow the same rule unless asked otherwise.
func (a *API) cancelSubscription(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).subscriptionID = id
	var req cancelSubscriptionRequest
	if e := decodeOptionalJSON(w, r, &req); e != nil {
		return e
	}
	mode, e := a.cancelMode(r, req.Mode)
	if e != nil {
		return e
	}
	sub, err := a.store.GetSubscription(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = sub.CustomerID
	sub, err = a.store.CancelSubscription(r.Context(), sub.CustomerID, id, mode, req.Reason)
	if err != nil {
		return a.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, toSubscription(sub))
	return nil
}

func (a *API) cancelMode(r *http.Request, mode string) (ledger.CancelMode, *apiError) {
	switch mode {
	case cancelModeAtPeriodEnd:
		return ledger.CancelAtPeriodEnd, nil
	case cancelModeImmediately:
		return ledger.CancelImmediately, nil
	case "":
		p := a.rules.Portal(r.Context())
		if p == nil {
			return "", errPortalUnavailable()
		}
		if p.Spec.Cancellation.Mode == billingv1alpha1.CancelImmediately {
			return ledger.CancelImmediately, nil
		}
		return ledger.CancelAtPeriodEnd, nil
	}
	return "", errInvalidField("mode", "The mode must be at_period_end or immediately.",
		"El modo debe ser at_period_end o immediately.")
}
