package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
)

// NewSubscription is the input of CreateSubscription.
type NewSubscription struct {
	CustomerID string
	// PlanID subscribes to a catalogue plan (see Plan) for Quantity units (0 means 1): the plan
	// gives the name, amount, currency and interval, so Plan, Amount, Currency and Interval
	// must be left empty. Without PlanID they are given as they are (a free-text plan) and
	// Quantity must be 0 or 1.
	PlanID   string
	Quantity int
	Plan     string
	// Amount per period in minor units; must be positive.
	Amount   int64
	Currency Currency
	Interval Interval
	// PaymentMethodID optionally pins one of the customer's methods.
	PaymentMethodID string
	// StartAt is when the first period starts; zero means now. It also anchors the billing day.
	StartAt time.Time
	// NoInitialPayment skips billing the first period, for subscriptions imported from another
	// system whose current period is already paid.
	NoInitialPayment bool
	// Processor is the portal's processor now, which the first period's attempt is claimed for
	// (see NewPayment.Processor); required unless NoInitialPayment.
	Processor payments.ProcessorType
	// IdempotencyKey makes retries safe, as NewPayment's does: the same key with the same
	// parameters returns the original subscription and its initial payment, creating and
	// charging nothing; with other parameters, ErrIdempotencyConflict. Keys are scoped to the
	// customer, apart from payment keys.
	IdempotencyKey string
}

// SubscriptionCreation is the outcome of CreateSubscriptionIdempotent.
type SubscriptionCreation struct {
	Subscription Subscription
	// InitialPayment is the first period's payment; zero with NoInitialPayment.
	InitialPayment Payment
	// Replayed says IdempotencyKey named an earlier creation, returned as it is now.
	Replayed bool
	// Claim is the first period's attempt, claimed for the caller to charge
	// (charging.Driver.Charge); nil when there is nothing to charge (no usable method, no
	// initial payment, a replay).
	Claim *charging.Attempt
}

const subscriptionColumns = `id, customer_id, plan, amount, currency, billing_interval, status,
	billing_anchor, current_period_start, current_period_end, payment_method_id,
	cancel_at_period_end, canceled_at, cancellation_reason, created_at, updated_at,
	plan_id, plan_en, quantity, pending_plan_id, pending_quantity, change_revision`

func scanSubscription(row interface{ Scan(...any) error }) (Subscription, error) {
	var sub Subscription
	var anchor, start, end, created, updated int64
	var pinned, planID, pendingPlan sql.NullString
	var canceledAt, pendingQty sql.NullInt64
	var cancelAtEnd int
	err := row.Scan(&sub.ID, &sub.CustomerID, &sub.Plan, &sub.Amount, &sub.Currency, &sub.Interval,
		&sub.Status, &anchor, &start, &end, &pinned, &cancelAtEnd, &canceledAt,
		&sub.CancellationReason, &created, &updated,
		&planID, &sub.PlanEN, &sub.Quantity, &pendingPlan, &pendingQty, &sub.ChangeRevision)
	sub.PlanID, sub.Pending = planID.String, pendingChange(pendingPlan, pendingQty)
	sub.BillingAnchor, sub.CurrentPeriodStart, sub.CurrentPeriodEnd = fromMillis(anchor), fromMillis(start), fromMillis(end)
	sub.PaymentMethodID, sub.CancelAtPeriodEnd, sub.CanceledAt = pinned.String, cancelAtEnd != 0, fromNullMillis(canceledAt)
	sub.CreatedAt, sub.UpdatedAt = fromMillis(created), fromMillis(updated)
	return sub, err
}

// pendingChange reads the pending_* columns.
func pendingChange(plan sql.NullString, qty sql.NullInt64) *PendingChange {
	if !plan.Valid {
		return nil
	}
	return &PendingChange{PlanID: plan.String, Quantity: max(int(qty.Int64), 1)}
}

// ArgentinaTime is the default billing zone: Argentina keeps UTC−3 all year (no daylight saving
// since 2009), so a fixed zone needs no time-zone database in the image.
var ArgentinaTime = time.FixedZone("ART", -3*60*60)

// periodEnd returns the end of the period that starts at start. Months and years keep the
// anchor's day, clamped to the month's length (31 Jan → 28/29 Feb → 31 Mar), as card
// statements and Stripe do; adding a month to the previous end would drift to the 28th forever.
// Days are the billing zone's: a subscription started on 30 January at 22:00 in Buenos Aires
// (already the 31st in UTC) renews on the 28th of February there, not the 27th.
func periodEnd(anchor time.Time, interval Interval, start time.Time, zone *time.Location) time.Time {
	anchor, start = anchor.In(zone), start.In(zone)
	months := 1
	switch interval {
	case Week:
		return start.AddDate(0, 0, 7).UTC()
	case Year:
		months = 12
	}
	y, m := start.Year(), start.Month()+time.Month(months)
	first := time.Date(y, m, 1, 0, 0, 0, 0, zone) // normalises month overflow
	lastDay := first.AddDate(0, 1, -1).Day()
	day := min(anchor.Day(), lastDay)
	return time.Date(first.Year(), first.Month(), day, anchor.Hour(), anchor.Minute(), anchor.Second(), anchor.Nanosecond(), zone).UTC()
}

// renewalKey is the idempotency key of a subscription's payment for the period starting at
// start: a renewal retried by the same or another replica finds the payment already there.
func renewalKey(subID string, start time.Time) string {
	return internalKeyPrefix + "sub:" + subID + ":" + strconv.FormatInt(toMillis(start), 10)
}

// CreateSubscription starts a subscription and, unless NoInitialPayment, records the payment of
// its first period at once (subscriptions are billed in advance) with its attempt claimed for
// the caller to charge (nil without a usable method: the payment is incomplete and the
// subscription past due).
func (s *Store) CreateSubscription(ctx context.Context, in NewSubscription) (Subscription, Payment, *charging.Attempt, error) {
	c, err := s.CreateSubscriptionIdempotent(ctx, in)
	return c.Subscription, c.InitialPayment, c.Claim, err
}

// subscriptionRequestHash fingerprints the parameters a subscription's idempotency key promises
// not to change, as given: a start_at left out is not "now", or no retry would ever match.
func subscriptionRequestHash(in NewSubscription, plan string, cur Currency) string {
	var startAt int64
	if !in.StartAt.IsZero() {
		startAt = toMillis(in.StartAt)
	}
	if in.PlanID != "" {
		return fingerprint(in.PlanID, in.Quantity, in.PaymentMethodID, startAt, in.NoInitialPayment)
	}
	return fingerprint(plan, in.Amount, cur, in.Interval, in.PaymentMethodID, startAt, in.NoInitialPayment)
}

// fromPlan fills a plan subscription's name, amount, currency and interval from its plan; the
// request must not give them itself.
func (s *Store) fromPlan(ctx context.Context, in NewSubscription) (NewSubscription, Plan, error) {
	for _, f := range []struct {
		field string
		set   bool
	}{{"plan", in.Plan != ""}, {"amount", in.Amount != 0}, {"currency", in.Currency != ""}, {"interval", in.Interval != ""}} {
		if f.set {
			return in, Plan{}, newError(KindInvalid, CodeInvalidField, f.field, nil)
		}
	}
	p, err := s.GetPlan(ctx, in.PlanID)
	if err != nil {
		return in, Plan{}, err
	}
	if p.Archived() {
		return in, Plan{}, &Error{Kind: KindConflict, Code: CodePlanArchived, Field: "plan_id"}
	}
	if in.Quantity == 0 {
		in.Quantity = 1
	}
	if err := p.checkQuantity(in.Quantity); err != nil {
		return in, Plan{}, err
	}
	in.Plan, in.Currency, in.Interval = p.NameES, p.Currency, p.Interval
	in.Amount, _ = p.price(in.Quantity)
	return in, p, nil
}

// CreateSubscriptionIdempotent is CreateSubscription that also reports whether in.IdempotencyKey
// named an earlier creation. The key is looked up and stored in the transaction that inserts the
// subscription, under the customer lock, so of any number of concurrent requests with one key
// (on any replica) exactly one creates and claims the first charge; the others return what it
// created.
func (s *Store) CreateSubscriptionIdempotent(ctx context.Context, in NewSubscription) (SubscriptionCreation, error) {
	hashIn := in // the request as given, for its fingerprint
	var catalogue Plan
	if in.PlanID != "" {
		var err error
		if in, catalogue, err = s.fromPlan(ctx, in); err != nil {
			return SubscriptionCreation{}, err
		}
	} else if in.Quantity > 1 || in.Quantity < 0 {
		return SubscriptionCreation{}, newError(KindInvalid, CodeInvalidField, "quantity", nil)
	}
	plan, err := checkText("plan", in.Plan, 200)
	if err != nil {
		return SubscriptionCreation{}, err
	}
	if plan == "" {
		return SubscriptionCreation{}, newError(KindInvalid, CodeRequired, "plan", nil)
	}
	if in.Amount <= 0 {
		return SubscriptionCreation{}, newError(KindInvalid, CodeInvalidAmount, "amount", nil)
	}
	cur, err := ParseCurrency(string(in.Currency))
	if err != nil {
		return SubscriptionCreation{}, err
	}
	if !in.Interval.valid() {
		return SubscriptionCreation{}, newError(KindInvalid, CodeInvalidField, "interval", nil)
	}
	if err := validateIdempotencyKey(in.IdempotencyKey); err != nil {
		return SubscriptionCreation{}, err
	}
	if in.Processor == "" && !in.NoInitialPayment {
		return SubscriptionCreation{}, errNoProcessor
	}
	hash := subscriptionRequestHash(hashIn, plan, cur)
	now := s.nowMs()
	start := in.StartAt.UTC().Truncate(time.Millisecond)
	if in.StartAt.IsZero() {
		start = now
	}
	sub := Subscription{
		ID: newID(prefixSubscription), CustomerID: in.CustomerID, Plan: plan, Amount: in.Amount,
		Currency: cur, Interval: in.Interval, Status: SubscriptionActive, BillingAnchor: start,
		CurrentPeriodStart: start, CurrentPeriodEnd: periodEnd(start, in.Interval, start, s.zone),
		PaymentMethodID: in.PaymentMethodID, CreatedAt: now, UpdatedAt: now,
		PlanID: catalogue.ID, PlanEN: catalogue.NameEN, Quantity: max(in.Quantity, 1),
	}
	var (
		r      inserted
		replay string // the id of the subscription an earlier request with the key created
	)
	err = s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, in.CustomerID); err != nil {
			return err
		}
		if in.IdempotencyKey != "" {
			id, err := findIdempotent(ctx, q, "subscriptions", in.CustomerID, in.IdempotencyKey, hash, "subscription")
			if err != nil || id != "" {
				replay = id
				return err
			}
		}
		if in.PaymentMethodID != "" {
			if _, err := getMethod(ctx, q, in.CustomerID, in.PaymentMethodID); err != nil {
				return err
			}
		}
		_, err := q.exec(ctx, `INSERT INTO subscriptions (id, customer_id, plan, amount, currency,
			billing_interval, status, billing_anchor, current_period_start, current_period_end,
			payment_method_id, idempotency_key, request_hash, created_at, updated_at, plan_id, plan_en, quantity)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.CustomerID, sub.Plan, sub.Amount, string(sub.Currency), string(sub.Interval),
			string(sub.Status), toMillis(start), toMillis(start), toMillis(sub.CurrentPeriodEnd),
			nullString(sub.PaymentMethodID), nullString(in.IdempotencyKey), hash, toMillis(now), toMillis(now),
			nullString(sub.PlanID), sub.PlanEN, sub.Quantity)
		if err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
		created, err := getSubscription(ctx, q, in.CustomerID, sub.ID)
		if err != nil {
			return err
		}
		if err := s.recordEvent(ctx, q, EventSubscriptionCreated, sub.CustomerID, sub.ID, created); err != nil {
			return err
		}
		if in.NoInitialPayment {
			return nil
		}
		r, err = s.insertPayment(ctx, q, s.periodPayment(sub, start, sub.CurrentPeriodEnd, in.Processor), now)
		return err
	})
	if err != nil {
		return SubscriptionCreation{}, fmt.Errorf("create subscription for customer %s: %w", in.CustomerID, err)
	}
	if replay != "" {
		s.log.Info("subscription request replayed", "customer", in.CustomerID, "subscription", replay)
		return s.replayedSubscription(ctx, in.CustomerID, replay)
	}
	s.log.Info("subscription created", "customer", sub.CustomerID, "subscription", sub.ID, "plan", sub.Plan)
	var p Payment
	if !in.NoInitialPayment {
		if p, err = s.afterInsert(ctx, sub.CustomerID, r); err != nil {
			return SubscriptionCreation{}, err
		}
	}
	sub, err = s.GetSubscription(ctx, sub.ID)
	if err != nil {
		return SubscriptionCreation{}, err
	}
	return SubscriptionCreation{Subscription: sub, InitialPayment: p, Claim: r.claim}, nil
}

// replayedSubscription returns a subscription created earlier and its initial payment, as they
// are now. The initial payment is the one created with the subscription (in its transaction, so
// at the same instant) and keyed for its period (see renewalKey): the billing anchor is no guide,
// a change to another interval moves it. A subscription created with NoInitialPayment has none.
func (s *Store) replayedSubscription(ctx context.Context, customerID, id string) (SubscriptionCreation, error) {
	sub, err := getSubscription(ctx, s.read(), customerID, id)
	if err != nil {
		return SubscriptionCreation{}, err
	}
	out := SubscriptionCreation{Subscription: sub, Replayed: true}
	rows, err := s.read().query(ctx, `SELECT id, idempotency_key, period_start FROM payments
		WHERE customer_id = ? AND subscription_id = ? AND created_at = ? AND period_start IS NOT NULL`,
		customerID, sub.ID, toMillis(sub.CreatedAt))
	if err != nil {
		return SubscriptionCreation{}, fmt.Errorf("look up initial payment of subscription %s: %w", id, err)
	}
	var paymentID string
	for rows.Next() {
		var pid string
		var key sql.NullString
		var start int64
		if err := rows.Scan(&pid, &key, &start); err != nil {
			rows.Close()
			return SubscriptionCreation{}, fmt.Errorf("look up initial payment of subscription %s: %w", id, err)
		}
		if key.String == renewalKey(sub.ID, fromMillis(start)) {
			paymentID = pid
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return SubscriptionCreation{}, fmt.Errorf("look up initial payment of subscription %s: %w", id, err)
	}
	if paymentID == "" {
		return out, nil
	}
	if out.InitialPayment, err = s.getPayment(ctx, customerID, paymentID); err != nil {
		return SubscriptionCreation{}, err
	}
	return out, nil
}

// periodPayment describes the payment for one period of sub, its attempt to be claimed for the
// processor. The customer's credit balance pays what it can of it.
func (s *Store) periodPayment(sub Subscription, start, end time.Time, processor payments.ProcessorType) paymentInsert {
	desc := planLabel(sub.Plan, sub.Quantity)
	return paymentInsert{
		customerID:     sub.CustomerID,
		amount:         sub.Amount,
		currency:       sub.Currency,
		description:    desc,
		subscriptionID: sub.ID,
		periodStart:    start,
		periodEnd:      end,
		idempotencyKey: renewalKey(sub.ID, start),
		requestHash:    requestHash(sub.Amount, sub.Currency, desc, sub.ID, strconv.FormatInt(toMillis(start), 10)),
		applyCredit:    true,
		processor:      processor,
	}
}

// planLabel names a plan and its quantity in a payment's description: "Pro", "Pro × 3".
func planLabel(plan string, quantity int) string {
	if quantity > 1 {
		return plan + " × " + strconv.Itoa(quantity)
	}
	return plan
}

// GetSubscription returns a subscription by id, for the merchant (any customer).
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	return getSubscription(ctx, s.read(), "", id)
}

// GetSubscriptionForCustomer returns the customer's subscription; another customer's is not
// found.
func (s *Store) GetSubscriptionForCustomer(ctx context.Context, customerID, id string) (Subscription, error) {
	if customerID == "" {
		return Subscription{}, notFound("subscription")
	}
	return getSubscription(ctx, s.read(), customerID, id)
}

func getSubscription(ctx context.Context, q querier, customerID, id string) (Subscription, error) {
	query := "SELECT " + subscriptionColumns + " FROM subscriptions WHERE id = ?"
	args := []any{id}
	if customerID != "" {
		query += " AND customer_id = ?"
		args = append(args, customerID)
	}
	sub, err := scanSubscription(q.queryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Subscription{}, notFound("subscription")
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription %s: %w", id, err)
	}
	return sub, nil
}

// ListSubscriptions returns all of a customer's subscriptions, newest first.
func (s *Store) ListSubscriptions(ctx context.Context, customerID string) ([]Subscription, error) {
	return s.listSubscriptions(ctx, customerID, subscriptionColumns, scanSubscription)
}

// subscriptionSummaryColumns are what a list of subscriptions shows (see
// ListSubscriptionSummaries).
const subscriptionSummaryColumns = `id, plan, amount, currency, billing_interval, status, current_period_end,
	payment_method_id, cancel_at_period_end, canceled_at, plan_id, plan_en, quantity, pending_plan_id, pending_quantity`

// ListSubscriptionSummaries is ListSubscriptions with only what a list of subscriptions shows
// filled in: ID, Plan, Amount, Currency, Interval, Status, CurrentPeriodEnd, PaymentMethodID,
// CancelAtPeriodEnd, CanceledAt, PlanID, PlanEN, Quantity and Pending; every other field is zero. The portal lists them on the
// overview and the subscriptions page; SQLite's driver costs per column read.
func (s *Store) ListSubscriptionSummaries(ctx context.Context, customerID string) ([]Subscription, error) {
	return s.listSubscriptions(ctx, customerID, subscriptionSummaryColumns, func(row interface{ Scan(...any) error }) (Subscription, error) {
		var sub Subscription
		var end int64
		var pinned, planID, pendingPlan sql.NullString
		var canceledAt, pendingQty sql.NullInt64
		var cancelAtEnd int
		err := row.Scan(&sub.ID, &sub.Plan, &sub.Amount, &sub.Currency, &sub.Interval, &sub.Status, &end,
			&pinned, &cancelAtEnd, &canceledAt, &planID, &sub.PlanEN, &sub.Quantity, &pendingPlan, &pendingQty)
		sub.PlanID, sub.Pending = planID.String, pendingChange(pendingPlan, pendingQty)
		sub.CurrentPeriodEnd, sub.PaymentMethodID = fromMillis(end), pinned.String
		sub.CancelAtPeriodEnd, sub.CanceledAt = cancelAtEnd != 0, fromNullMillis(canceledAt)
		return sub, err
	})
}

func (s *Store) listSubscriptions(ctx context.Context, customerID, columns string, scan func(interface{ Scan(...any) error }) (Subscription, error)) ([]Subscription, error) {
	rows, err := s.read().query(ctx, "SELECT "+columns+` FROM subscriptions
		WHERE customer_id = ? ORDER BY created_at DESC, id DESC`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of customer %s: %w", customerID, err)
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		sub, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	if len(out) == 0 {
		if _, err := s.GetCustomer(ctx, customerID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// updateSubscription runs fn on the customer's subscription under the customer lock and
// returns the stored result.
// event, when not "", is the type of the event the change makes.
func (s *Store) updateSubscription(ctx context.Context, customerID, id, event string, fn func(q querier, sub Subscription, now time.Time) error) (Subscription, error) {
	var out Subscription
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		sub, err := getSubscription(ctx, q, customerID, id)
		if err != nil {
			return err
		}
		if err := fn(q, sub, s.nowMs()); err != nil {
			return err
		}
		if out, err = getSubscription(ctx, q, customerID, id); err != nil {
			return err
		}
		if event == "" {
			return nil
		}
		return s.recordEvent(ctx, q, event, customerID, id, out)
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("update subscription %s: %w", id, err)
	}
	return out, nil
}

// CancelSubscription cancels at the end of the current period (the subscription stays active
// until then and is not renewed) or immediately. A canceled subscription returns
// ErrSubscriptionCanceled. Payments already made are not refunded.
func (s *Store) CancelSubscription(ctx context.Context, customerID, id string, mode CancelMode, reason string) (Subscription, error) {
	reason, err := checkText("reason", reason, 500)
	if err != nil {
		return Subscription{}, err
	}
	if mode != CancelAtPeriodEnd && mode != CancelImmediately {
		return Subscription{}, newError(KindInvalid, CodeInvalidField, "mode", nil)
	}
	sub, err := s.updateSubscription(ctx, customerID, id, EventSubscriptionCanceled, func(q querier, sub Subscription, now time.Time) error {
		if sub.Status == SubscriptionCanceled {
			return newError(KindConflict, CodeSubscriptionCanceled, "", nil)
		}
		if mode == CancelAtPeriodEnd {
			_, err := q.exec(ctx, `UPDATE subscriptions SET cancel_at_period_end = 1, cancellation_reason = ?,
				updated_at = ? WHERE id = ?`, reason, toMillis(now), id)
			return err
		}
		if _, err := q.exec(ctx, `UPDATE subscriptions SET status = 'canceled', cancel_at_period_end = 0,
			canceled_at = ?, cancellation_reason = ?, updated_at = ? WHERE id = ?`,
			toMillis(now), reason, toMillis(now), id); err != nil {
			return err
		}
		// Canceled now, so the periods it did not pay are not owed: close their payments (never
		// charged, never offered again). A payment in flight (processing, pending) runs its course.
		// The incomplete ones become failed, and the merchant hears of it.
		closing, err := q.strings(ctx, `SELECT id FROM payments WHERE subscription_id = ? AND customer_id = ?
			AND status = 'incomplete' ORDER BY created_at, id`, id, customerID)
		if err != nil {
			return err
		}
		// What the closed payments had taken from the credit balance is the customer's again.
		refunds, err := q.strings(ctx, `SELECT id FROM payments WHERE subscription_id = ? AND customer_id = ?
			AND status IN ('incomplete', 'failed') AND failure_code <> ? AND credit_applied > 0 ORDER BY created_at, id`,
			id, customerID, payments.CodeSubscriptionCanceled)
		if err != nil {
			return err
		}
		for _, pid := range refunds {
			if err := restoreCredit(ctx, q, pid, now); err != nil {
				return err
			}
		}
		if _, err := q.exec(ctx, `UPDATE payments SET status = 'failed', failure_code = ?, failure_message = '',
			updated_at = ? WHERE subscription_id = ? AND customer_id = ? AND status IN ('incomplete', 'failed')`,
			payments.CodeSubscriptionCanceled, toMillis(now), id, customerID); err != nil {
			return err
		}
		for _, pid := range closing {
			if err := s.recordPaymentEvent(ctx, q, EventPaymentFailed, pid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Subscription{}, err
	}
	s.log.Info("subscription canceled", "customer", customerID, "subscription", id, "mode", mode)
	return sub, nil
}

// ResumeSubscription undoes a cancellation scheduled for the period end.
func (s *Store) ResumeSubscription(ctx context.Context, customerID, id string) (Subscription, error) {
	return s.updateSubscription(ctx, customerID, id, "", func(q querier, sub Subscription, now time.Time) error {
		if sub.Status == SubscriptionCanceled {
			return newError(KindConflict, CodeSubscriptionCanceled, "", nil)
		}
		_, err := q.exec(ctx, `UPDATE subscriptions SET cancel_at_period_end = 0, cancellation_reason = '',
			updated_at = ? WHERE id = ?`, toMillis(now), id)
		return err
	})
}

// SetSubscriptionPaymentMethod pins one of the customer's methods to the subscription, or
// unpins it with methodID "" so the preferred method is charged.
func (s *Store) SetSubscriptionPaymentMethod(ctx context.Context, customerID, id, methodID string) (Subscription, error) {
	return s.updateSubscription(ctx, customerID, id, EventSubscriptionPaymentMethodChanged, func(q querier, sub Subscription, now time.Time) error {
		if sub.Status == SubscriptionCanceled {
			return newError(KindConflict, CodeSubscriptionCanceled, "", nil)
		}
		if methodID != "" {
			if _, err := getMethod(ctx, q, customerID, methodID); err != nil {
				return err
			}
		}
		_, err := q.exec(ctx, "UPDATE subscriptions SET payment_method_id = ?, updated_at = ? WHERE id = ?",
			nullString(methodID), toMillis(now), id)
		return err
	})
}

// RenewalResult reports what RenewDue did.
type RenewalResult struct {
	// Payments are the period payments created, as recorded: processing with a claimed
	// attempt (in Claims), or incomplete.
	Payments []Payment
	// Claims are the payments' attempts, for the caller to charge (charging.Driver.Charge).
	Claims []charging.Attempt
	// Incomplete are those waiting for a payment method: e-mail each customer a portal link
	// with flow complete_payment.
	Incomplete []Payment
	// Canceled are the subscriptions that ended because they were set to cancel at period end.
	Canceled []Subscription
}

// maxRenewalsPerCall bounds one RenewDue call so a long outage is caught up in slices rather
// than one unbounded loop; the next call continues.
const maxRenewalsPerCall = 1000

// RenewDue renews every active or past-due subscription whose period ended at or before now:
// it advances the period and creates exactly one payment for the new period (keyed by
// subscription and period start, so concurrent or repeated calls, on any replica, never
// double-bill), claiming an attempt on the pinned or preferred method the processor can charge.
// Subscriptions set to cancel at period end are canceled instead. A subscription several
// periods behind gets one payment per period.
func (s *Store) RenewDue(ctx context.Context, now time.Time, processor payments.ProcessorType) (RenewalResult, error) {
	if processor == "" {
		return RenewalResult{}, errNoProcessor
	}
	now = now.UTC().Truncate(time.Millisecond)
	var res RenewalResult
	for done := 0; done < maxRenewalsPerCall; {
		ids, err := s.read().strings(ctx, `SELECT id FROM subscriptions
			WHERE status IN ('active', 'past_due') AND current_period_end <= ?
			ORDER BY current_period_end, id LIMIT 100`, toMillis(now))
		if err != nil {
			return res, fmt.Errorf("list due subscriptions: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		progress := false
		for _, id := range ids {
			p, claim, canceled, did, err := s.renewOne(ctx, id, now, processor)
			if err != nil {
				return res, err
			}
			if !did {
				continue
			}
			progress = true
			done++
			if canceled != nil {
				res.Canceled = append(res.Canceled, *canceled)
				continue
			}
			if p.ID == "" {
				continue // paid from the credit balance: no payment
			}
			res.Payments = append(res.Payments, p)
			if claim != nil {
				res.Claims = append(res.Claims, *claim)
			}
			if p.Status == PaymentIncomplete {
				res.Incomplete = append(res.Incomplete, p)
			}
		}
		if !progress {
			// Every due subscription was just renewed by someone else; their new state is
			// theirs to report.
			break
		}
	}
	return res, nil
}

// renewOne advances one subscription by one period, if it is still due.
func (s *Store) renewOne(ctx context.Context, id string, now time.Time, processor payments.ProcessorType) (Payment, *charging.Attempt, *Subscription, bool, error) {
	var (
		r        inserted
		did      bool
		canceled *Subscription
		sub      Subscription
	)
	err := s.inTx(ctx, func(q querier) error {
		var err error
		if sub, err = getSubscription(ctx, q, "", id); err != nil {
			return err
		}
		if err := lockCustomer(ctx, q, sub.CustomerID); err != nil {
			return err
		}
		// Re-read under the lock: another replica may have renewed it in between.
		if sub, err = getSubscription(ctx, q, "", id); err != nil {
			return err
		}
		if sub.Status == SubscriptionCanceled || sub.CurrentPeriodEnd.After(now) {
			return nil
		}
		end := sub.CurrentPeriodEnd
		if sub.CancelAtPeriodEnd {
			did, err = q.execOne(ctx, `UPDATE subscriptions SET status = 'canceled', canceled_at = ?,
				updated_at = ? WHERE id = ? AND current_period_end = ? AND status <> 'canceled'`,
				toMillis(end), toMillis(now), id, toMillis(end))
			if err != nil || !did {
				return err
			}
			c, err := getSubscription(ctx, q, "", id)
			if err != nil {
				return err
			}
			canceled = &c
			return s.recordEvent(ctx, q, EventSubscriptionCanceled, c.CustomerID, c.ID, c)
		}
		// A change scheduled for this moment makes the new period the new plan's, at its
		// interval; another interval is anchored at the period's start (ChangeQuote.NewPeriodEnd).
		interval, anchor := sub.Interval, sub.BillingAnchor
		var pending Plan
		if sub.Pending != nil {
			if pending, err = pendingPlan(ctx, q, sub); err != nil {
				return err
			}
			if pending.Interval != sub.Interval {
				interval, anchor = pending.Interval, end
			}
		}
		next := periodEnd(anchor, interval, end, s.zone)
		did, err = q.execOne(ctx, `UPDATE subscriptions SET current_period_start = ?, current_period_end = ?,
			billing_anchor = ?, updated_at = ? WHERE id = ? AND current_period_end = ?`,
			toMillis(end), toMillis(next), toMillis(anchor), toMillis(now), id, toMillis(end))
		if err != nil || !did {
			return err
		}
		if sub.Pending != nil {
			if sub, err = applyPendingChange(ctx, q, sub, pending, now); err != nil {
				return err
			}
		}
		r, err = s.insertPayment(ctx, q, s.periodPayment(sub, end, next, processor), now)
		return err
	})
	if err != nil {
		return Payment{}, nil, nil, false, fmt.Errorf("renew subscription %s: %w", id, err)
	}
	if !did || canceled != nil {
		if canceled != nil {
			s.log.Info("subscription ended at period end", "customer", sub.CustomerID, "subscription", id)
		}
		return Payment{}, nil, canceled, did, nil
	}
	if r.covered {
		s.log.Info("subscription renewed, paid from the credit balance", "customer", sub.CustomerID, "subscription", id)
		return Payment{}, nil, nil, true, nil
	}
	p, err := s.afterInsert(ctx, sub.CustomerID, r)
	if err != nil {
		return Payment{}, nil, nil, true, err
	}
	s.log.Info("subscription renewed", "customer", sub.CustomerID, "subscription", id,
		"payment", p.ID, "status", p.Status)
	return p, r.claim, nil, true, nil
}
