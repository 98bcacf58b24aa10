package ledger

import (
	"math"
	"testing"
	"time"
)

// The expected amounts below were worked out by hand (and checked with exact fractions), not
// with the code under test: (new − old) × remaining ÷ period, rounded half away from zero.
func TestProrationTable(t *testing.T) {
	art := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, ArgentinaTime) }
	// Periods as the ledger's periodEnd makes them, in the billing zone.
	feb26 := art(2026, time.January, 31, 12) // → 28 Feb 2026: 28 days
	feb28 := art(2028, time.January, 31, 12) // → 29 Feb 2028: 29 days (leap year)
	apr26 := art(2026, time.April, 1, 0)     // → 1 May: 30 days
	mar26 := art(2026, time.March, 1, 0)     // → 1 Apr: 31 days
	week := art(2026, time.March, 2, 9)      // → 9 Mar: 7 days
	year28 := art(2028, time.January, 1, 0)  // → 1 Jan 2029: 366 days
	day := 24 * time.Hour
	const basic, pro = 250000, 400000 // $ 2.500,00 and $ 4.000,00 a period
	const big = 100000000             // $ 1.000.000,00: enough to show a single second
	cases := []struct {
		name     string
		start    time.Time
		interval Interval
		days     int           // the period's length, checked
		at       time.Duration // after start; negative: before the end
		fromEnd  bool
		old, new int64
		b        ProrationBehavior
		charge   int64
		credit   int64
	}{
		// Upgrades and downgrades ten days into each length of month.
		{"28-day month, upgrade", feb26, Month, 28, 10 * day, false, basic, pro, ProrateCreate, 96429, 0},
		{"28-day month, downgrade", feb26, Month, 28, 10 * day, false, pro, basic, ProrateCreate, 0, 96429},
		{"29-day month, upgrade", feb28, Month, 29, 10 * day, false, basic, pro, ProrateCreate, 98276, 0},
		{"29-day month, downgrade", feb28, Month, 29, 10 * day, false, pro, basic, ProrateCreate, 0, 98276},
		{"30-day month, upgrade", apr26, Month, 30, 10 * day, false, basic, pro, ProrateCreate, 100000, 0},
		{"30-day month, downgrade", apr26, Month, 30, 10 * day, false, pro, basic, ProrateCreate, 0, 100000},
		{"31-day month, upgrade", mar26, Month, 31, 10 * day, false, basic, pro, ProrateCreate, 101613, 0},
		{"31-day month, downgrade", mar26, Month, 31, 10 * day, false, pro, basic, ProrateCreate, 0, 101613},
		// The first and the last second of a period.
		{"first second, upgrade", feb26, Month, 28, 0, false, basic, pro, ProrateCreate, 150000, 0},
		{"first second, 999 ms in", feb26, Month, 28, 999 * time.Millisecond, false, basic, pro, ProrateCreate, 150000, 0},
		{"first second, downgrade", mar26, Month, 31, 0, false, pro, basic, ProrateCreate, 0, 150000},
		{"second second", feb26, Month, 28, time.Second, false, 0, big, ProrateCreate, 99999959, 0},
		{"last second, 28-day month", feb26, Month, 28, -time.Second, true, 0, big, ProrateCreate, 41, 0},
		{"last millisecond, 28-day month", feb26, Month, 28, -time.Millisecond, true, 0, big, ProrateCreate, 41, 0},
		{"last second, 29-day month", feb28, Month, 29, -time.Second, true, 0, big, ProrateCreate, 40, 0},
		{"last second, 30-day month", apr26, Month, 30, -time.Second, true, 0, big, ProrateCreate, 39, 0},
		{"last second, 31-day month", mar26, Month, 31, -time.Second, true, 0, big, ProrateCreate, 37, 0},
		{"last second, downgrade", feb26, Month, 28, -time.Second, true, big, 0, ProrateCreate, 0, 41},
		{"last second, small difference rounds to nothing", feb26, Month, 28, -time.Second, true, basic, pro, ProrateCreate, 0, 0},
		{"at the end itself", feb26, Month, 28, 0, true, basic, pro, ProrateCreate, 0, 0},
		{"before the start (a clock behind)", feb26, Month, 28, -time.Hour, false, basic, pro, ProrateCreate, 150000, 0},
		// Quantity up and down (unit $ 19,99).
		{"quantity 3 → 5, 28-day month", feb26, Month, 28, 7*day + 3*time.Hour, false, 3 * 1999, 5 * 1999, ProrateCreate, 2981, 0},
		{"quantity 5 → 2, 28-day month", feb26, Month, 28, 7*day + 3*time.Hour, false, 5 * 1999, 2 * 1999, ProrateCreate, 0, 4471},
		{"quantity 3 → 5, 31-day month", mar26, Month, 31, 7*day + 3*time.Hour, false, 3 * 1999, 5 * 1999, ProrateCreate, 3079, 0},
		{"quantity 5 → 2, 31-day month", mar26, Month, 31, 7*day + 3*time.Hour, false, 5 * 1999, 2 * 1999, ProrateCreate, 0, 4619},
		// Rounding edges, halfway through a 28-day month (1 209 600 of 2 419 200 s left).
		{"half a centavo up rounds up", feb26, Month, 28, 14 * day, false, 0, 1, ProrateCreate, 1, 0},
		{"half a centavo down rounds away from zero", feb26, Month, 28, 14 * day, false, 1, 0, ProrateCreate, 0, 1},
		{"1.5 rounds to 2", feb26, Month, 28, 14 * day, false, 0, 3, ProrateCreate, 2, 0},
		{"-1.5 rounds to -2", feb26, Month, 28, 14 * day, false, 3, 0, ProrateCreate, 0, 2},
		{"a second less than half rounds down", feb26, Month, 28, 14*day + time.Second, false, 0, 1, ProrateCreate, 0, 0},
		{"a second more than half rounds up", feb26, Month, 28, 14*day - time.Second, false, 0, 1, ProrateCreate, 1, 0},
		{"a second less than half down rounds to nothing", feb26, Month, 28, 14*day + time.Second, false, 1, 0, ProrateCreate, 0, 0},
		// Behaviours.
		{"always charge: upgrade charged", feb26, Month, 28, 10 * day, false, basic, pro, ProrateAlwaysCharge, 96429, 0},
		{"always charge: downgrade credits nothing", feb26, Month, 28, 10 * day, false, pro, basic, ProrateAlwaysCharge, 0, 0},
		{"none: upgrade charges nothing", feb26, Month, 28, 10 * day, false, basic, pro, ProrateNone, 0, 0},
		{"none: downgrade credits nothing", feb26, Month, 28, 10 * day, false, pro, basic, ProrateNone, 0, 0},
		{"same price", feb26, Month, 28, 10 * day, false, pro, pro, ProrateCreate, 0, 0},
		// Other intervals.
		{"week, half way", week, Week, 7, 3*day + 12*time.Hour, false, basic, pro, ProrateCreate, 75000, 0},
		{"leap year, 1 July", year28, Year, 366, 182 * day, false, basic, pro, ProrateCreate, 75410, 0},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			end := periodEnd(c.start, c.interval, c.start, ArgentinaTime)
			if got := end.Sub(c.start); got != time.Duration(c.days)*day {
				t.Fatalf("period of %v, want %d days", got, c.days)
			}
			at := c.start.Add(c.at)
			if c.fromEnd {
				at = end.Add(c.at)
			}
			p := prorate(c.start, end, at, c.old, c.new, c.b)
			if p.Charge != c.charge || p.Credit != c.credit {
				t.Errorf("charge %d, credit %d (prorated %d, %d of %d s left); want charge %d, credit %d",
					p.Charge, p.Credit, p.Prorated, p.Remaining, p.Period, c.charge, c.credit)
			}
			if p.Charge < 0 || p.Credit < 0 || (p.Charge > 0 && p.Credit > 0) {
				t.Errorf("charge %d and credit %d: at most one, never negative", p.Charge, p.Credit)
			}
		})
	}
}

func TestProrateRule(t *testing.T) {
	cases := []struct{ delta, remaining, period, want int64 }{
		{5, 1, 2, 3},   // 2.5
		{-5, 1, 2, -3}, // -2.5
		{7, 1, 3, 2},   // 2.33
		{8, 1, 3, 3},   // 2.67
		{-8, 1, 3, -3},
		{10, 3, 3, 10}, // the whole period
		{10, 4, 3, 10}, // clamped
		{10, 0, 3, 0},  // nothing left
		{10, -1, 3, 0}, // past the end
		{10, 1, 0, 0},  // no period
		{0, 1, 2, 0},
		// No overflow: the product is far beyond int64.
		{math.MaxInt64, 31622399, 31622400, 9223371745182668793},
		{math.MinInt64 + 1, 1, 2, -4611686018427387904},
	}
	for _, c := range cases {
		if got := Prorate(c.delta, c.remaining, c.period); got != c.want {
			t.Errorf("Prorate(%d, %d, %d) = %d, want %d", c.delta, c.remaining, c.period, got, c.want)
		}
	}
}

func TestProrationSeconds(t *testing.T) {
	start := time.Date(2026, 3, 1, 3, 0, 0, 500e6, time.UTC) // half a second in: counts from :00
	end := time.Date(2026, 4, 1, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at        time.Time
		remaining int64
	}{
		{start, 31 * 86400},
		{start.Add(-time.Hour), 31 * 86400},
		{end.Add(-time.Nanosecond), 1},
		{end, 0},
		{end.Add(time.Hour), 0},
	} {
		rem, per := ProrationSeconds(start, end, c.at)
		if rem != c.remaining || per != 31*86400 {
			t.Errorf("ProrationSeconds(at %v) = %d of %d, want %d of %d", c.at, rem, per, c.remaining, 31*86400)
		}
	}
}
