package api

import (
	"net/http"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// Cancellation modes as the API spells them.
const (
	cancelModeAtPeriodEnd = "at_period_end"
	cancelModeImmediately = "immediately"
)

func (a *API) createSubscription(w http.ResponseWriter, r *http.Request) *apiError {
	var req createSubscriptionRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if req.CustomerID == "" {
		return errRequired("customer_id")
	}
	info(r).customerID = req.CustomerID
	in := ledger.NewSubscription{
		CustomerID: req.CustomerID, Plan: req.Plan, Amount: req.Amount,
		Currency: ledger.Currency(req.Currency), Interval: ledger.Interval(req.Interval),
		PaymentMethodID: req.PaymentMethodID, NoInitialPayment: req.NoInitialPayment,
	}
	if req.StartAt != nil {
		in.StartAt = *req.StartAt
	}
	sub, p, err := a.store.CreateSubscription(r.Context(), in)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).subscriptionID = sub.ID
	out := toSubscription(sub)
	if p.ID != "" {
		info(r).paymentID = p.ID
		pj := toPayment(p, locale(r))
		out.InitialPayment = &pj
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
