package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Plan is one entry of the merchant's catalogue: what a subscription on it costs per unit and
// period. Plans are never edited, only archived, so a price a customer agreed to never changes
// under them; a new price is a new plan.
type Plan struct {
	// ID is the merchant's own, as the CustomerPortal's spec.subscriptionUpdate.plans names it.
	ID     string
	NameES string
	NameEN string
	// Amount per unit and period, in minor units of Currency.
	Amount   int64
	Currency Currency
	Interval Interval
	// MaxQuantity bounds a subscription's quantity; 0 means no bound.
	MaxQuantity int
	// ArchivedAt is when the plan was archived (zero: it is not): an archived plan takes no new
	// subscriptions and no changes to it, and the subscriptions on it keep it.
	ArchivedAt time.Time
	CreatedAt  time.Time
}

// Archived reports whether the plan was archived.
func (p Plan) Archived() bool { return !p.ArchivedAt.IsZero() }

// Name is the plan's name in the language of locale ("es", "en").
func (p Plan) Name(locale string) string {
	if locale == "en" {
		return p.NameEN
	}
	return p.NameES
}

// price is the amount of quantity units for one period; false when it does not fit in int64.
func (p Plan) price(quantity int) (int64, bool) {
	if quantity < 1 || p.Amount > math.MaxInt64/int64(quantity) {
		return 0, false
	}
	return p.Amount * int64(quantity), true
}

// checkQuantity refuses a quantity below 1, above the plan's maximum or whose price overflows.
func (p Plan) checkQuantity(quantity int) error {
	if quantity < 1 {
		return newError(KindInvalid, CodeInvalidField, "quantity", nil)
	}
	if p.MaxQuantity > 0 && quantity > p.MaxQuantity {
		return &Error{Kind: KindInvalid, Code: CodeQuantityAboveMaximum, Field: "quantity", Limit: p.MaxQuantity}
	}
	if _, ok := p.price(quantity); !ok {
		return newError(KindInvalid, CodeInvalidField, "quantity", nil)
	}
	return nil
}

// MaxPlanQuantity is the largest max_quantity a plan may set.
const MaxPlanQuantity = 1_000_000

// NewPlan is the input of CreatePlan.
type NewPlan struct {
	ID          string
	NameES      string
	NameEN      string
	Amount      int64
	Currency    Currency
	Interval    Interval
	MaxQuantity int
}

// validPlanID accepts 1 to 128 ASCII letters, digits, '.', '_' and '-', starting with a letter
// or digit: the id appears in YAML lists and URLs as it is.
func validPlanID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return false
		}
	}
	return true
}

func (in NewPlan) validate() (NewPlan, error) {
	if in.ID == "" {
		return in, newError(KindInvalid, CodeRequired, "id", nil)
	}
	if !validPlanID(in.ID) {
		return in, newError(KindInvalid, CodeInvalidField, "id", nil)
	}
	var err error
	for _, n := range []struct {
		field string
		v     *string
	}{{"name.es", &in.NameES}, {"name.en", &in.NameEN}} {
		if *n.v, err = checkText(n.field, *n.v, 200); err != nil {
			return in, err
		}
		if *n.v == "" {
			return in, newError(KindInvalid, CodeRequired, n.field, nil)
		}
	}
	if in.Amount <= 0 {
		return in, newError(KindInvalid, CodeInvalidAmount, "amount", nil)
	}
	if in.Currency, err = ParseCurrency(string(in.Currency)); err != nil {
		return in, err
	}
	if !in.Interval.valid() {
		return in, newError(KindInvalid, CodeInvalidField, "interval", nil)
	}
	if in.MaxQuantity < 0 || in.MaxQuantity > MaxPlanQuantity {
		return in, newError(KindInvalid, CodeInvalidField, "max_quantity", nil)
	}
	return in, nil
}

const planColumns = `id, name_es, name_en, amount, currency, billing_interval, max_quantity, archived_at, created_at`

func scanPlan(row interface{ Scan(...any) error }) (Plan, error) {
	var p Plan
	var maxQty, archived sql.NullInt64
	var created int64
	err := row.Scan(&p.ID, &p.NameES, &p.NameEN, &p.Amount, &p.Currency, &p.Interval, &maxQty, &archived, &created)
	p.MaxQuantity, p.ArchivedAt, p.CreatedAt = int(maxQty.Int64), fromNullMillis(archived), fromMillis(created)
	return p, err
}

// CreatePlan adds a plan to the catalogue. Creating a plan that exists with the same fields
// returns it (created false), so a merchant's set-up script can run again; with other fields it
// is ErrPlanExists: plans are not edited.
func (s *Store) CreatePlan(ctx context.Context, in NewPlan) (p Plan, created bool, err error) {
	if in, err = in.validate(); err != nil {
		return Plan{}, false, err
	}
	now := s.nowMs()
	var maxQty sql.NullInt64
	if in.MaxQuantity > 0 {
		maxQty = sql.NullInt64{Int64: int64(in.MaxQuantity), Valid: true}
	}
	// ON CONFLICT DO NOTHING (both engines): of two creations racing, one inserts and the
	// other compares with what it inserted.
	res, err := s.read().exec(ctx, `INSERT INTO plans (id, name_es, name_en, amount, currency, billing_interval,
		max_quantity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		in.ID, in.NameES, in.NameEN, in.Amount, string(in.Currency), string(in.Interval), maxQty, toMillis(now))
	if err != nil {
		return Plan{}, false, fmt.Errorf("create plan %s: %w", in.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Plan{}, false, fmt.Errorf("create plan %s: %w", in.ID, err)
	}
	if p, err = s.GetPlan(ctx, in.ID); err != nil {
		return Plan{}, false, err
	}
	if n == 1 {
		s.log.Info("plan created", "plan", p.ID, "amount", p.Amount, "currency", p.Currency, "interval", p.Interval)
		return p, true, nil
	}
	if p.NameES != in.NameES || p.NameEN != in.NameEN || p.Amount != in.Amount || p.Currency != in.Currency ||
		p.Interval != in.Interval || p.MaxQuantity != in.MaxQuantity {
		return Plan{}, false, &Error{Kind: KindConflict, Code: CodePlanExists, Field: "id", Resource: "plan"}
	}
	return p, false, nil
}

// GetPlan returns a plan, archived or not.
func (s *Store) GetPlan(ctx context.Context, id string) (Plan, error) {
	return getPlan(ctx, s.read(), id)
}

func getPlan(ctx context.Context, q querier, id string) (Plan, error) {
	p, err := scanPlan(q.queryRow(ctx, "SELECT "+planColumns+" FROM plans WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Plan{}, notFound("plan")
	}
	if err != nil {
		return Plan{}, fmt.Errorf("get plan %s: %w", id, err)
	}
	return p, nil
}

// GetPlans returns the plans among ids that exist, by id (the portal's offer: the plans its
// rules name).
func (s *Store) GetPlans(ctx context.Context, ids []string) (map[string]Plan, error) {
	out := make(map[string]Plan, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.read().query(ctx, "SELECT "+planColumns+" FROM plans WHERE id IN (?"+
		strings.Repeat(", ?", len(ids)-1)+")", args...)
	if err != nil {
		return nil, fmt.Errorf("get plans: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, fmt.Errorf("get plans: %w", err)
		}
		out[p.ID] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get plans: %w", err)
	}
	return out, nil
}

// ListPlansParams filter and page ListPlans.
type ListPlansParams struct {
	// Archived, when set, keeps only archived (true) or only active (false) plans.
	Archived *bool
	Limit    int
	Cursor   string
}

// ListPlans pages through the catalogue, newest first.
func (s *Store) ListPlans(ctx context.Context, in ListPlansParams) (Page[Plan], error) {
	limit, err := pageLimit(in.Limit)
	if err != nil {
		return Page[Plan]{}, err
	}
	where := []string{"1 = 1"}
	var args []any
	if in.Archived != nil {
		if *in.Archived {
			where = append(where, "archived_at IS NOT NULL")
		} else {
			where = append(where, "archived_at IS NULL")
		}
	}
	if in.Cursor != "" {
		c, err := decodeCursor(in.Cursor)
		if err != nil {
			return Page[Plan]{}, err
		}
		where = append(where, "(created_at < ? OR (created_at = ? AND id < ?))")
		args = append(args, c.createdAt, c.createdAt, c.id)
	}
	args = append(args, limit+1)
	rows, err := s.read().query(ctx, "SELECT "+planColumns+" FROM plans WHERE "+strings.Join(where, " AND ")+
		" ORDER BY created_at DESC, id DESC LIMIT ?", args...)
	if err != nil {
		return Page[Plan]{}, fmt.Errorf("list plans: %w", err)
	}
	defer rows.Close()
	var page Page[Plan]
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return Page[Plan]{}, fmt.Errorf("list plans: %w", err)
		}
		page.Items = append(page.Items, p)
	}
	if err := rows.Err(); err != nil {
		return Page[Plan]{}, fmt.Errorf("list plans: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = cursor{createdAt: toMillis(last.CreatedAt), id: last.ID}.encode()
	}
	return page, nil
}

// ArchivePlan archives a plan: it takes no new subscriptions and no changes to it, and is no
// longer offered in portals; subscriptions on it keep it. Archiving an archived plan returns it
// as it is.
func (s *Store) ArchivePlan(ctx context.Context, id string) (Plan, error) {
	if _, err := s.read().exec(ctx, "UPDATE plans SET archived_at = ? WHERE id = ? AND archived_at IS NULL",
		toMillis(s.nowMs()), id); err != nil {
		return Plan{}, fmt.Errorf("archive plan %s: %w", id, err)
	}
	p, err := s.GetPlan(ctx, id)
	if err == nil {
		s.log.Info("plan archived", "plan", id)
	}
	return p, err
}

// planMessages explains the plan and plan-change error codes.
func planMessages(e *Error) (en, es string) {
	switch e.Code {
	case CodePlanExists:
		return "A plan with this id exists with other fields; plans are not edited: create one with a new id (and archive the old one).",
			"Ya existe un plan con este id y otros datos; los planes no se editan: creá uno con un id nuevo (y archivá el anterior)."
	case CodePlanArchived:
		return "The plan is archived: it takes no new subscriptions or changes.",
			"El plan está archivado: no admite suscripciones ni cambios nuevos."
	case CodePlanCurrencyMismatch:
		return "The plan is in another currency than the subscription; choose a plan in the same currency.",
			"El plan está en otra moneda que la suscripción; elegí un plan en la misma moneda."
	case CodeQuantityAboveMaximum:
		n := strconv.Itoa(e.Limit)
		return "The quantity is above the plan's maximum of " + n + ".",
			"La cantidad supera el máximo del plan, que es " + n + "."
	case CodeSubscriptionChanged:
		return "The subscription changed since this change was shown; review it again before confirming.",
			"La suscripción cambió desde que se mostró este cambio; revisalo de nuevo antes de confirmar."
	case CodePeriodEnded:
		return "The subscription's period has just ended and is being renewed; try again in a minute.",
			"El período de la suscripción acaba de terminar y se está renovando; intentá de nuevo en un minuto."
	}
	return "The request could not be completed.", "No se pudo completar la solicitud."
}
