package ledger

import (
	"math/big"
	"time"
)

// Proration: what a plan or quantity change in the middle of a period costs or gives back.
//
// The rule, the one place it is decided (the portal shows what Prorate answers, and the charge
// or credit is that same number):
//
//	prorated = (new price − old price) × remaining seconds ÷ period seconds
//
// computed exactly, with integers of unbounded size, and rounded ONCE, half away from zero, to
// a whole minor unit (centavo). Prices are per period (unit amount × quantity). Time is counted
// in whole seconds: every instant counts from the start of its second, so a change in the first
// second of a period prorates the whole difference and one in its last second 1/period of it.
// The period is the subscription's own [current_period_start, current_period_end), so a month
// is 28, 29, 30 or 31 days long in the billing zone (see periodEnd). A positive result is due
// now; a negative one is credited to the customer's balance, which the next charges consume.

// ProrationBehavior says how a change in the middle of a period is billed (the portal's
// spec.subscriptionUpdate.proration, or the merchant's choice).
type ProrationBehavior string

// Proration behaviours.
const (
	// ProrateCreate charges an increase and credits a decrease, for the rest of the period.
	ProrateCreate ProrationBehavior = "create_prorations"
	// ProrateNone bills nothing now: the next period is billed at the new price.
	ProrateNone ProrationBehavior = "none"
	// ProrateAlwaysCharge charges an increase and credits nothing for a decrease.
	ProrateAlwaysCharge ProrationBehavior = "always_charge"
)

func (b ProrationBehavior) valid() bool {
	return b == ProrateCreate || b == ProrateNone || b == ProrateAlwaysCharge
}

// ChangeEffective says when a plan or quantity change takes effect.
type ChangeEffective string

// When changes take effect.
const (
	// EffectiveImmediately changes the subscription now and prorates the rest of the period.
	EffectiveImmediately ChangeEffective = "immediately"
	// EffectiveAtPeriodEnd schedules the change for the next renewal; nothing is prorated.
	EffectiveAtPeriodEnd ChangeEffective = "at_period_end"
)

func (e ChangeEffective) valid() bool { return e == EffectiveImmediately || e == EffectiveAtPeriodEnd }

// Prorate is the proration rule above: delta (new price − old price, minor units) times
// remaining over period (seconds), rounded half away from zero. remaining is clamped to
// [0, period]; a period of zero or less prorates nothing.
func Prorate(delta, remaining, period int64) int64 {
	if period <= 0 || remaining <= 0 || delta == 0 {
		return 0
	}
	remaining = min(remaining, period)
	num := new(big.Int).Mul(big.NewInt(delta), big.NewInt(remaining))
	den := big.NewInt(period)
	// QuoRem truncates toward zero; the remainder has the sign of num.
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	// Half away from zero: round up in magnitude when 2|r| ≥ period.
	if r.Abs(r).Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	// |q| ≤ |delta|, so it fits.
	return q.Int64()
}

// ProrationSeconds returns the seconds of the period [start, end) left at at, and the period's
// length in seconds, each instant counted from the start of its second.
func ProrationSeconds(start, end, at time.Time) (remaining, period int64) {
	// Unix rounds down to the second (time.Time keeps nanoseconds in [0, 1e9)).
	s, e, a := start.Unix(), end.Unix(), at.Unix()
	period = e - s
	remaining = min(max(e-max(a, s), 0), period)
	return remaining, period
}

// prorationOutcome splits a prorated amount by the behaviour: what is charged now and what is
// credited to the balance (both ≥ 0).
func prorationOutcome(b ProrationBehavior, prorated int64) (charge, credit int64) {
	switch {
	case b == ProrateNone:
		return 0, 0
	case prorated > 0:
		return prorated, 0
	case prorated < 0 && b == ProrateCreate:
		return 0, -prorated
	}
	return 0, 0
}

// proration is what a change of price within a period comes to.
type proration struct {
	// Remaining and Period are in seconds (ProrationSeconds).
	Remaining, Period int64
	// Prorated is the signed result of the rule; Charge and Credit what the behaviour makes
	// of it (prorationOutcome).
	Prorated, Charge, Credit int64
	// Unused is what is left of the old period at the old price (restart only).
	Unused int64
}

// prorate applies the rule to a change from oldPrice to newPrice (per period, minor units) at
// at, in the period [start, end), billed as b says.
func prorate(start, end, at time.Time, oldPrice, newPrice int64, b ProrationBehavior) proration {
	var p proration
	p.Remaining, p.Period = ProrationSeconds(start, end, at)
	if b != ProrateNone {
		p.Prorated = Prorate(newPrice-oldPrice, p.Remaining, p.Period)
	}
	p.Charge, p.Credit = prorationOutcome(b, p.Prorated)
	return p
}

// restart is what a change to a plan of another interval comes to at at: the period [start, end)
// ends there and one of the new plan's interval begins, billed in advance at newPrice. What is
// left of the old period is worth oldPrice × remaining ÷ period seconds (the rule above, rounded
// once, half away from zero) and is taken off the new price, except with ProrateNone, which
// charges the new period whole. The difference is charged; when the unused part is worth more
// (a yearly plan left early for a monthly one) the rest is credited with ProrateCreate and
// given up with ProrateAlwaysCharge, which credits nothing.
func restart(start, end, at time.Time, oldPrice, newPrice int64, b ProrationBehavior) proration {
	var p proration
	p.Remaining, p.Period = ProrationSeconds(start, end, at)
	if b != ProrateNone {
		p.Unused = Prorate(oldPrice, p.Remaining, p.Period)
	}
	p.Prorated = newPrice - p.Unused
	switch {
	case p.Prorated > 0:
		p.Charge = p.Prorated
	case p.Prorated < 0 && b == ProrateCreate:
		p.Credit = -p.Prorated
	}
	return p
}
