package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
)

// Plan and quantity changes. A change names the plan (a catalogue plan of the subscription's
// currency) and the quantity the subscription should have; it takes effect at once, prorated by
// the rule in proration.go, or at the end of the period. A plan of the same interval keeps the
// billing period; one of another interval (monthly to yearly, say) starts a new period of its
// own: at once, with what is left of the old one taken off the first new one (restart in
// proration.go), or at the period's end. Changes are declarative: asking again for what the subscription already is (or
// is already set to become) changes and bills nothing, which is what makes a repeated request
// harmless. What a change bills is keyed by the subscription and the change revision it
// starts from, so no change is billed twice. A change records no merchant event of its own;
// the charge it makes records the payment's events.

// QuoteValidity bounds how old the instant of a quote may be when it is confirmed: a customer
// is charged exactly what they were shown, computed at the instant it was shown, and only for a
// while.
const QuoteValidity = 15 * time.Minute

// SubscriptionChange is what a change asks for.
type SubscriptionChange struct {
	// PlanID is the plan to be on; "" keeps the current one (a quantity change, which needs a
	// subscription on a plan).
	PlanID string
	// Quantity is the number of units; 0 keeps the current one.
	Quantity  int
	Proration ProrationBehavior
	Effective ChangeEffective
	// At is the instant the proration is computed for; zero means now. A confirmed quote passes
	// the quote's At (ChangeQuote.At), which must be at most QuoteValidity old.
	At time.Time
	// Revision, when set, is the subscription's ChangeRevision the quote was made from; a
	// subscription changed since is ErrSubscriptionChanged.
	Revision *int64
	// Prorated, when set, is the quote's Prorated as it was shown; a different amount now (the
	// portal's rules changed, say) is ErrSubscriptionChanged.
	Prorated *int64
	// Processor is the portal's processor now, which the change's charge is claimed for (see
	// NewPayment.Processor); required for a change that charges at once.
	Processor payments.ProcessorType
}

// ChangeLine is one side of a change: a plan, a quantity and their price per period.
type ChangeLine struct {
	PlanID   string
	Plan     string // the Spanish name (or the free-text plan)
	PlanEN   string // the English name; "" for a free-text plan
	Quantity int
	Amount   int64
	// Interval is how often the line's plan bills (Amount is per Interval).
	Interval Interval
}

// Name is the line's plan name in the language of locale.
func (l ChangeLine) Name(locale string) string {
	if locale == "en" && l.PlanEN != "" {
		return l.PlanEN
	}
	return l.Plan
}

// ChangeQuote is what a change comes to, before (QuoteSubscriptionChange) or as
// (ChangeSubscription) it is made.
type ChangeQuote struct {
	SubscriptionID string
	// Revision is the subscription's ChangeRevision the quote starts from.
	Revision  int64
	From, To  ChangeLine
	Currency  Currency
	Proration ProrationBehavior
	Effective ChangeEffective
	// At is the instant the quote is computed for (a whole second); EffectiveAt is when the
	// change takes effect (At, or the period's end).
	At, EffectiveAt        time.Time
	PeriodStart, PeriodEnd time.Time
	// RemainingSeconds of PeriodSeconds are prorated (ProrationSeconds).
	RemainingSeconds, PeriodSeconds int64
	// Prorated is the rule's signed result (0 at period end or with ProrateNone). For an
	// interval change at once it is the new plan's price less Unused.
	Prorated int64
	// IntervalChange: the new plan bills at another interval, so the change starts a new period
	// of the new plan's, [NewPeriodStart, NewPeriodEnd): at At (the old period ends there, and
	// Unused, what is left of it at the old price, is taken off the new period's price) or at
	// the period's end. Unused is 0 with ProrateNone: the new period is charged whole.
	IntervalChange               bool
	Unused                       int64
	NewPeriodStart, NewPeriodEnd time.Time
	// PeriodUnpaid: an interval change at once of a subscription that is not in good standing
	// (past due): nothing of the current period, unpaid, is taken off (Unused is 0).
	PeriodUnpaid bool
	// Charge is billed now; CreditApplied of it comes from the credit balance and AmountDue is
	// collected through the payment method. Credit is added to the balance.
	Charge, CreditApplied, AmountDue, Credit int64
	// CreditBalance is the balance before the change.
	CreditBalance int64
	// NoChange: the subscription already is, or is already set to become, what was asked.
	NoChange bool
}

// SubscriptionChangeResult is what ChangeSubscription did.
type SubscriptionChangeResult struct {
	Subscription Subscription
	Quote        ChangeQuote
	// Payment is the change's charge when one was made, as recorded; zero when nothing was
	// charged or the credit balance paid all of it.
	Payment Payment
	// Claim is the charge's attempt, for the caller to charge (charging.Driver.Charge); nil when
	// there is nothing to charge (no payment, or no usable method: the payment is incomplete).
	Claim *charging.Attempt
	// Changed is false when the subscription already was as asked (a repeated request).
	Changed bool
	// CreditBalance is the balance after the change.
	CreditBalance int64
}

// QuoteSubscriptionChange says what a change would do now, changing nothing.
func (s *Store) QuoteSubscriptionChange(ctx context.Context, customerID, id string, ch SubscriptionChange) (ChangeQuote, error) {
	q := s.read()
	sub, err := getSubscription(ctx, q, customerID, id)
	if err != nil {
		return ChangeQuote{}, err
	}
	quote, _, err := s.quoteChange(ctx, q, sub, ch, s.nowMs())
	return quote, err
}

// ChangeSubscription makes a change: at once (the subscription changes and the proration is
// charged or credited) or at the period's end (the change is scheduled; the renewal applies
// it). The charge is a payment of the subscription, created like any other (the credit balance
// pays what it can; without a usable method it is incomplete and the customer is asked to
// complete it), keyed by the subscription and the revision the change starts from.
func (s *Store) ChangeSubscription(ctx context.Context, customerID, id string, ch SubscriptionChange) (SubscriptionChangeResult, error) {
	var (
		res SubscriptionChangeResult
		r   inserted
	)
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		sub, err := getSubscription(ctx, q, customerID, id)
		if err != nil {
			return err
		}
		now := s.nowMs()
		quote, target, err := s.quoteChange(ctx, q, sub, ch, now)
		if err != nil {
			return err
		}
		res.Quote = quote
		if quote.NoChange {
			return nil // already so: a repeated request, answered with what it did the first time
		}
		if ch.Revision != nil && *ch.Revision != sub.ChangeRevision {
			return newError(KindConflict, CodeSubscriptionChanged, "", nil)
		}
		if ch.Prorated != nil && *ch.Prorated != quote.Prorated {
			return newError(KindConflict, CodeSubscriptionChanged, "", nil)
		}
		res.Changed = true
		if quote.Effective == EffectiveAtPeriodEnd {
			return s.scheduleChange(ctx, q, sub, quote, now)
		}
		// Another interval starts a new period, anchored at the change (see ChangeQuote).
		start, end, anchor := sub.CurrentPeriodStart, sub.CurrentPeriodEnd, sub.BillingAnchor
		if quote.IntervalChange {
			start, end, anchor = quote.NewPeriodStart, quote.NewPeriodEnd, quote.NewPeriodStart
		}
		ok, err := q.execOne(ctx, `UPDATE subscriptions SET plan_id = ?, plan = ?, plan_en = ?, quantity = ?,
			amount = ?, billing_interval = ?, billing_anchor = ?, current_period_start = ?, current_period_end = ?,
			pending_plan_id = NULL, pending_quantity = NULL, change_revision = change_revision + 1,
			updated_at = ? WHERE id = ? AND change_revision = ?`,
			target.ID, target.NameES, target.NameEN, quote.To.Quantity, quote.To.Amount, string(target.Interval),
			toMillis(anchor), toMillis(start), toMillis(end), toMillis(now), id, sub.ChangeRevision)
		if err != nil {
			return fmt.Errorf("change subscription: %w", err)
		}
		if !ok {
			return newError(KindConflict, CodeSubscriptionChanged, "", nil)
		}
		key := changeKey(id, sub.ChangeRevision)
		desc := planLabel(quote.From.Plan, quote.From.Quantity) + " → " + planLabel(quote.To.Plan, quote.To.Quantity)
		if quote.Credit > 0 {
			if err := insertCredit(ctx, q, creditRow{customerID: customerID, currency: sub.Currency, amount: quote.Credit,
				kind: creditProration, subscriptionID: id, description: desc, key: key}, now); err != nil {
				return err
			}
		}
		if quote.Charge > 0 {
			if ch.Processor == "" {
				return errNoProcessor
			}
			in := paymentInsert{customerID: customerID, amount: quote.Charge,
				currency: sub.Currency, description: desc, subscriptionID: id, idempotencyKey: key,
				requestHash: requestHash(quote.Charge, sub.Currency, desc, id, key), applyCredit: true,
				processor: ch.Processor}
			if quote.IntervalChange {
				// It is the new period's payment: the subscription's standing follows it, as
				// it follows a renewal's (updateSubscriptionAfterPayment).
				in.periodStart, in.periodEnd = quote.NewPeriodStart, quote.NewPeriodEnd
			}
			r, err = s.insertPayment(ctx, q, in, now)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return SubscriptionChangeResult{}, fmt.Errorf("change subscription %s: %w", id, err)
	}
	if res.Changed {
		s.log.Info("subscription changed", "customer", customerID, "subscription", id,
			"plan", res.Quote.To.PlanID, "quantity", res.Quote.To.Quantity, "effective", res.Quote.Effective,
			"charge", res.Quote.Charge, "credit", res.Quote.Credit)
	}
	if r.id != "" || r.covered {
		if res.Payment, err = s.afterInsert(ctx, customerID, r); err != nil {
			return SubscriptionChangeResult{}, err
		}
		res.Claim = r.claim
	}
	if res.Subscription, err = s.GetSubscriptionForCustomer(ctx, customerID, id); err != nil {
		return SubscriptionChangeResult{}, err
	}
	if res.CreditBalance, err = s.CreditBalance(ctx, customerID, res.Subscription.Currency); err != nil {
		return SubscriptionChangeResult{}, err
	}
	return res, nil
}

// changeKey keys what the change starting from revision bills (its charge or its credit).
func changeKey(subID string, revision int64) string {
	return internalKeyPrefix + "change:" + subID + ":" + strconv.FormatInt(revision, 10)
}

// scheduleChange sets (or, back to what the subscription is, clears) the change for the
// period's end.
func (s *Store) scheduleChange(ctx context.Context, q querier, sub Subscription, quote ChangeQuote, now time.Time) error {
	var plan, qty any
	if quote.To.PlanID != sub.PlanID || quote.To.Quantity != sub.Quantity {
		plan, qty = quote.To.PlanID, quote.To.Quantity
	}
	ok, err := q.execOne(ctx, `UPDATE subscriptions SET pending_plan_id = ?, pending_quantity = ?,
		change_revision = change_revision + 1, updated_at = ? WHERE id = ? AND change_revision = ?`,
		plan, qty, toMillis(now), sub.ID, sub.ChangeRevision)
	if err != nil {
		return fmt.Errorf("schedule subscription change: %w", err)
	}
	if !ok {
		return newError(KindConflict, CodeSubscriptionChanged, "", nil)
	}
	return nil
}

// quoteChange works out a change of sub at now (see SubscriptionChange.At), reading the plan
// and the credit balance through q.
func (s *Store) quoteChange(ctx context.Context, q querier, sub Subscription, ch SubscriptionChange, now time.Time) (ChangeQuote, Plan, error) {
	if sub.Status == SubscriptionCanceled {
		return ChangeQuote{}, Plan{}, newError(KindConflict, CodeSubscriptionCanceled, "", nil)
	}
	if !ch.Proration.valid() {
		return ChangeQuote{}, Plan{}, newError(KindInvalid, CodeInvalidField, "proration_behavior", nil)
	}
	if !ch.Effective.valid() {
		return ChangeQuote{}, Plan{}, newError(KindInvalid, CodeInvalidField, "effective", nil)
	}
	planID := ch.PlanID
	if planID == "" {
		planID = sub.PlanID
	}
	if planID == "" {
		return ChangeQuote{}, Plan{}, newError(KindInvalid, CodeRequired, "plan_id", nil)
	}
	p, err := getPlan(ctx, q, planID)
	if err != nil {
		return ChangeQuote{}, Plan{}, err
	}
	// A subscription may stay on its plan after the plan was archived; nobody may move to one.
	if p.Archived() && p.ID != sub.PlanID {
		return ChangeQuote{}, Plan{}, &Error{Kind: KindConflict, Code: CodePlanArchived, Field: "plan_id"}
	}
	if p.Currency != sub.Currency {
		return ChangeQuote{}, Plan{}, &Error{Kind: KindInvalid, Code: CodePlanCurrencyMismatch, Field: "plan_id"}
	}
	qty := ch.Quantity
	if qty == 0 {
		qty = max(sub.Quantity, 1)
	}
	if err := p.checkQuantity(qty); err != nil {
		return ChangeQuote{}, Plan{}, err
	}
	price, _ := p.price(qty)
	quote := ChangeQuote{
		SubscriptionID: sub.ID, Revision: sub.ChangeRevision, Currency: sub.Currency,
		From: ChangeLine{PlanID: sub.PlanID, Plan: sub.Plan, PlanEN: sub.PlanEN, Quantity: max(sub.Quantity, 1), Amount: sub.Amount,
			Interval: sub.Interval},
		To:             ChangeLine{PlanID: p.ID, Plan: p.NameES, PlanEN: p.NameEN, Quantity: qty, Amount: price, Interval: p.Interval},
		IntervalChange: p.Interval != sub.Interval,
		Proration:      ch.Proration, Effective: ch.Effective,
		PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd,
	}
	same := p.ID == sub.PlanID && qty == sub.Quantity
	if ch.Effective == EffectiveAtPeriodEnd {
		pendingSame := sub.Pending != nil && sub.Pending.PlanID == p.ID && sub.Pending.Quantity == qty
		quote.NoChange = pendingSame || (same && sub.Pending == nil)
	} else {
		quote.NoChange = same && sub.Pending == nil
	}
	at := now
	if !ch.At.IsZero() {
		at = ch.At
		if at.After(now) || now.Sub(at) > QuoteValidity || at.Before(sub.CurrentPeriodStart) {
			// A quote from the future, too old, or from another period: show it again.
			if !quote.NoChange {
				return ChangeQuote{}, Plan{}, newError(KindConflict, CodeSubscriptionChanged, "", nil)
			}
		}
	}
	quote.At = at.Truncate(time.Second)
	if !quote.NoChange && !now.Before(sub.CurrentPeriodEnd) {
		// The period is over and waits for its renewal, which bills the next one: a change
		// now would prorate a period nobody has.
		return ChangeQuote{}, Plan{}, newError(KindConflict, CodePeriodEnded, "", nil)
	}
	if quote.NoChange {
		return quote, p, nil
	}
	switch {
	case ch.Effective == EffectiveAtPeriodEnd:
		quote.EffectiveAt = sub.CurrentPeriodEnd
		quote.RemainingSeconds, quote.PeriodSeconds = ProrationSeconds(sub.CurrentPeriodStart, sub.CurrentPeriodEnd, quote.At)
		if quote.IntervalChange {
			// The renewal starts the new plan's period, anchored at its start: a weekly
			// period's end need not fall on the old anchor's day.
			quote.NewPeriodStart = sub.CurrentPeriodEnd
			quote.NewPeriodEnd = periodEnd(sub.CurrentPeriodEnd, p.Interval, sub.CurrentPeriodEnd, s.zone)
		}
	case quote.IntervalChange:
		quote.EffectiveAt = quote.At
		// What is left of a period that is not paid (the subscription is past due) is worth
		// nothing to take off: its payment stays owed.
		old := sub.Amount
		if sub.Status != SubscriptionActive {
			old, quote.PeriodUnpaid = 0, true
		}
		pr := restart(sub.CurrentPeriodStart, sub.CurrentPeriodEnd, quote.At, old, price, ch.Proration)
		quote.RemainingSeconds, quote.PeriodSeconds = pr.Remaining, pr.Period
		quote.Prorated, quote.Charge, quote.Credit, quote.Unused = pr.Prorated, pr.Charge, pr.Credit, pr.Unused
		quote.NewPeriodStart = quote.At
		quote.NewPeriodEnd = periodEnd(quote.At, p.Interval, quote.At, s.zone)
	default:
		quote.EffectiveAt = quote.At
		pr := prorate(sub.CurrentPeriodStart, sub.CurrentPeriodEnd, quote.At, sub.Amount, price, ch.Proration)
		quote.RemainingSeconds, quote.PeriodSeconds = pr.Remaining, pr.Period
		quote.Prorated, quote.Charge, quote.Credit = pr.Prorated, pr.Charge, pr.Credit
	}
	if quote.CreditBalance, err = creditBalance(ctx, q, sub.CustomerID, sub.Currency); err != nil {
		return ChangeQuote{}, Plan{}, err
	}
	// As applyCredit will take it when the charge is created.
	quote.CreditApplied = min(max(quote.CreditBalance, 0), quote.Charge)
	quote.AmountDue = quote.Charge - quote.CreditApplied
	return quote, p, nil
}

// pendingPlan reads the plan of sub's scheduled change.
func pendingPlan(ctx context.Context, q querier, sub Subscription) (Plan, error) {
	p, err := getPlan(ctx, q, sub.Pending.PlanID)
	if err != nil {
		return Plan{}, fmt.Errorf("apply the scheduled change of subscription %s: %w", sub.ID, err)
	}
	return p, nil
}

// applyPendingChange puts a scheduled change onto plan p (pendingPlan) into effect at a renewal
// (in its transaction) and returns the subscription as it now is. The renewal has already
// started the period at p's interval.
func applyPendingChange(ctx context.Context, q querier, sub Subscription, p Plan, now time.Time) (Subscription, error) {
	price, ok := p.price(sub.Pending.Quantity)
	if !ok {
		return sub, fmt.Errorf("apply the scheduled change of subscription %s: price out of range", sub.ID)
	}
	if _, err := q.exec(ctx, `UPDATE subscriptions SET plan_id = ?, plan = ?, plan_en = ?, quantity = ?, amount = ?,
		billing_interval = ?, pending_plan_id = NULL, pending_quantity = NULL, updated_at = ? WHERE id = ?`,
		p.ID, p.NameES, p.NameEN, sub.Pending.Quantity, price, string(p.Interval), toMillis(now), sub.ID); err != nil {
		return sub, fmt.Errorf("apply the scheduled change of subscription %s: %w", sub.ID, err)
	}
	sub.PlanID, sub.Plan, sub.PlanEN, sub.Quantity, sub.Amount = p.ID, p.NameES, p.NameEN, sub.Pending.Quantity, price
	sub.Interval = p.Interval
	sub.Pending = nil
	return sub, nil
}
