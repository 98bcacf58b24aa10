package api

import (
	"context"
	"net/http"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
)

// The ledger only records; the portal's processor is driven through portal/charging. These
// helpers are the API's half of that: get the processor the portal names now, charge what the
// ledger claimed, and read back what was recorded.

// driver is the portal's processor now. Its failure (the processor's Secret unreadable, say)
// answers 503 processor_unavailable before anything is recorded.
func (a *API) driver(r *http.Request) (*charging.Driver, *apiError) {
	d, err := a.processors.Driver(r.Context())
	if err != nil {
		e, _ := fromStoreError(err)
		a.log.Warn("payment processor not usable; request refused before recording anything", "err", err)
		return nil, e
	}
	return d, nil
}

// charged charges an attempt the ledger claimed (none: nothing to do) and returns the payment
// as recorded after it. A lost answer is no error: the payment stays processing and is
// re-driven with the same idempotency key. The charge, once claimed, is driven to the end and
// read back even if the caller went away.
func (a *API) charged(ctx context.Context, d *charging.Driver, p ledger.Payment, claim *charging.Attempt) (ledger.Payment, error) {
	if claim == nil {
		return p, nil
	}
	if _, err := d.Charge(ctx, *claim); err != nil {
		return ledger.Payment{}, err
	}
	return a.store.GetPayment(context.WithoutCancel(ctx), p.ID)
}

// settle lets the customer's incomplete payments proceed after a method was added; its failure
// leaves them for the billing loop's sweep, since the method itself was added.
func (a *API) settle(ctx context.Context, d *charging.Driver, customerID string) {
	if _, err := d.SettleIncomplete(context.WithoutCancel(ctx), customerID); err != nil {
		a.log.Error("settle incomplete payments after a method was added", "customer", customerID, "err", err)
	}
}
