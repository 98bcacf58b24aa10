package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// replayWindow is how far back createPayment looks for an earlier payment with the same
// Idempotency-Key to tell a replay from a first request. Older replays are still recognised,
// by their creation time (see createPayment).
const replayWindow = 24 * time.Hour

// createPayment creates and charges a payment. The Idempotency-Key header is required: a retried
// request (network error, timeout) must never charge twice. The same key with the same body
// returns the original payment with 200 and "Idempotent-Replayed: true"; with another body, 409.
// Keys are scoped to the customer, as the ledger stores them.
func (a *API) createPayment(w http.ResponseWriter, r *http.Request) *apiError {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return errIdempotencyKeyRequired()
	}
	var req createPaymentRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if req.CustomerID == "" {
		return errRequired("customer_id")
	}
	info(r).customerID = req.CustomerID

	// Concurrent retries in this process take turns, so the later one finds the earlier one's
	// payment. Across replicas the ledger's unique key still guarantees one payment.
	unlock := a.idem.lock(req.CustomerID + "\x00" + key)
	defer unlock()
	start := a.now().UTC().Truncate(time.Millisecond)
	prior, err := a.hasPaymentWithKey(r.Context(), req.CustomerID, key, start.Add(-replayWindow))
	if err != nil {
		return a.storeError(r, err)
	}
	d, e := a.driver(r)
	if e != nil {
		return e
	}
	p, claim, err := a.store.CreatePayment(r.Context(), ledger.NewPayment{
		CustomerID: req.CustomerID, Amount: req.Amount, Currency: ledger.Currency(req.Currency),
		Description: req.Description, SubscriptionID: req.SubscriptionID, IdempotencyKey: key,
		Processor: d.Adapter().Type(),
	})
	if err != nil {
		return a.idempotentStoreError(r, err)
	}
	if p, err = a.charged(r.Context(), d, p, claim); err != nil {
		return a.storeError(r, err)
	}
	info(r).paymentID = p.ID
	// The ledger does not say whether it replayed. A payment found before the call, or created
	// before this request started (a replay older than the window, or one another replica
	// answered), is a replay.
	if prior || p.CreatedAt.Before(start) {
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusOK, toPayment(p, locale(r)))
		return nil
	}
	writeJSON(w, http.StatusCreated, toPayment(p, locale(r)))
	return nil
}

// hasPaymentWithKey reports whether the customer has a payment created since `since` with the
// idempotency key. Lists are newest first, so a retry (which comes soon after its original) is
// found on the first page.
func (a *API) hasPaymentWithKey(ctx context.Context, customerID, key string, since time.Time) (bool, error) {
	params := ledger.ListPaymentsParams{CustomerID: customerID, Limit: ledger.MaxPageSize}
	for {
		page, err := a.store.ListPayments(ctx, params)
		if err != nil {
			return false, err
		}
		for _, p := range page.Items {
			if p.IdempotencyKey == key {
				return true, nil
			}
			if p.CreatedAt.Before(since) {
				return false, nil
			}
		}
		if page.NextCursor == "" {
			return false, nil
		}
		params.Cursor = page.NextCursor
	}
}

func (a *API) listPayments(w http.ResponseWriter, r *http.Request) *apiError {
	q, e := query(r, "customer_id", "subscription_id", "status", "limit", "cursor")
	if e != nil {
		return e
	}
	limit, e := pageLimit(q)
	if e != nil {
		return e
	}
	status := ledger.PaymentStatus(q.Get("status"))
	if !validStatus(status) {
		return errInvalidField("status",
			"The status must be one of incomplete, processing, requires_action, pending, succeeded or failed.",
			"El estado debe ser incomplete, processing, requires_action, pending, succeeded o failed.")
	}
	info(r).customerID = q.Get("customer_id")
	page, err := a.store.ListPayments(r.Context(), ledger.ListPaymentsParams{
		CustomerID: q.Get("customer_id"), SubscriptionID: q.Get("subscription_id"), Status: status,
		Limit: limit, Cursor: q.Get("cursor"),
	})
	if err != nil {
		return a.storeError(r, err)
	}
	out := listResponse[paymentJSON]{Data: []paymentJSON{}, NextCursor: page.NextCursor}
	for _, p := range page.Items {
		out.Data = append(out.Data, toPayment(p, locale(r)))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func validStatus(s ledger.PaymentStatus) bool {
	switch s {
	case "", ledger.PaymentIncomplete, ledger.PaymentProcessing, ledger.PaymentRequiresAction, ledger.PaymentPending,
		ledger.PaymentSucceeded, ledger.PaymentFailed:
		return true
	}
	return false
}

func (a *API) getPayment(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).paymentID = id
	p, err := a.store.GetPayment(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = p.CustomerID
	writeJSON(w, http.StatusOK, toPayment(p, locale(r)))
	return nil
}

// confirmPayment settles a pending bank transfer or QR payment once the merchant saw the money
// arrive. Confirming a payment that already succeeded returns it unchanged.
func (a *API) confirmPayment(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).paymentID = id
	var req struct{}
	if e := decodeOptionalJSON(w, r, &req); e != nil {
		return e
	}
	d, e := a.driver(r)
	if e != nil {
		return e
	}
	_, err := d.ConfirmPending(r.Context(), id)
	switch {
	case errors.Is(err, charging.ErrNotWaiting), errors.Is(err, payments.ErrUnsupported):
		// Not pending (failed, still processing…), or a processor that settles pending charges
		// itself, by webhook.
		return a.storeError(r, ledger.ErrPaymentState)
	case err != nil:
		return a.storeError(r, err)
	}
	p, err := a.store.GetPayment(context.WithoutCancel(r.Context()), id)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = p.CustomerID
	writeJSON(w, http.StatusOK, toPayment(p, locale(r)))
	return nil
}
