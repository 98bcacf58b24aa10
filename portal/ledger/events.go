package ledger

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// The merchant's event log is a transactional outbox: recordEvent writes the event, and one
// delivery row per interested endpoint, in the transaction of the change it reports. A worker
// (portal/webhooks) leases due deliveries, sends them and records each attempt here.

// EventSource says who caused an event.
type EventSource string

// Event sources.
const (
	// SourcePortal: the customer, in the portal.
	SourcePortal EventSource = "portal"
	// SourceMerchantAPI: the merchant's backend, through the merchant API.
	SourceMerchantAPI EventSource = "merchant_api"
	// SourceBilling: the portal's own billing loop (renewals, retries, settlements).
	SourceBilling EventSource = "billing"
	// SourceProcessor: a payment processor's notification.
	SourceProcessor EventSource = "processor"
)

type sourceKey struct{}

// WithSource marks ctx's writes as caused by src: the event of each change names it.
func WithSource(ctx context.Context, src EventSource) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

// sourceOf is ctx's source; a write with none is the merchant's (the API and tests).
func sourceOf(ctx context.Context) EventSource {
	if src, ok := ctx.Value(sourceKey{}).(EventSource); ok && src != "" {
		return src
	}
	return SourceMerchantAPI
}

// Event types. The names are stable API: merchants switch on them.
const (
	EventCustomerCreated                  = "customer.created"
	EventCustomerUpdated                  = "customer.updated"
	EventPaymentMethodAdded               = "payment_method.added"
	EventPaymentMethodRemoved             = "payment_method.removed"
	EventPaymentMethodPreferredChanged    = "payment_method.preferred_changed"
	EventSubscriptionCreated              = "subscription.created"
	EventSubscriptionPaymentMethodChanged = "subscription.payment_method_changed"
	EventSubscriptionCanceled             = "subscription.canceled"
	EventPaymentCreated                   = "payment.created"
	EventPaymentIncomplete                = "payment.incomplete"
	EventPaymentRequiresAction            = "payment.requires_action"
	EventPaymentPending                   = "payment.pending"
	EventPaymentSucceeded                 = "payment.succeeded"
	EventPaymentFailed                    = "payment.failed"
)

// EventTypes lists every event type, in documentation order.
func EventTypes() []string {
	return []string{
		EventCustomerCreated, EventCustomerUpdated,
		EventPaymentMethodAdded, EventPaymentMethodRemoved, EventPaymentMethodPreferredChanged,
		EventSubscriptionCreated, EventSubscriptionPaymentMethodChanged, EventSubscriptionCanceled,
		EventPaymentCreated, EventPaymentIncomplete, EventPaymentRequiresAction, EventPaymentPending,
		EventPaymentSucceeded, EventPaymentFailed,
	}
}

// Subscriber is a merchant endpoint as the event log needs it: its name, and the event types it
// wants (empty: every type).
type Subscriber struct {
	Name   string
	Events []string
}

// Wants reports whether the subscriber takes events of type t.
func (s Subscriber) Wants(t string) bool {
	if len(s.Events) == 0 {
		return true
	}
	for _, e := range s.Events {
		if e == t {
			return true
		}
	}
	return false
}

// EventOptions configure the event log.
type EventOptions struct {
	// Portal is "<namespace>/<name>", the envelope's portal field.
	Portal string
	// Render gives the JSON the merchant API returns for a ledger object (Customer,
	// PaymentMethod, Subscription, Payment): the envelope's data.object. Nil logs the object's
	// id alone (tests of the ledger alone).
	Render func(obj any) (json.RawMessage, error)
	// Subscribers are the endpoints configured now; read at each event, so a change applies to
	// the next event. Nil: no endpoint, events are only logged.
	Subscribers func() []Subscriber
	// Written is called after a transaction that wrote events commits, with their types (to
	// count them) and whether it made deliveries (to wake the worker).
	Written func(types []string, deliveries bool)
}

// lastEventSeq is the sequence part of the last event id this process made.
var lastEventSeq atomic.Uint64

// newEventID returns "evt_" + 13 characters that sort in the order this process wrote its events
// (the clock's nanoseconds, bumped past the previous id's) + 12 random characters (60 bits).
// Events of one transaction share created_at; their ids keep them in order, so lists (ordered by
// created_at, then id) and deliveries show a removal before the preference change it caused.
func newEventID(now time.Time) string {
	seq := uint64(now.UnixNano())
	for {
		last := lastEventSeq.Load()
		if seq <= last {
			seq = last + 1
		}
		if lastEventSeq.CompareAndSwap(last, seq) {
			break
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	var r [8]byte
	_, _ = rand.Read(r[:])
	enc := base32.HexEncoding.WithPadding(base32.NoPadding)
	return "evt_" + strings.ToLower(enc.EncodeToString(b[:])+enc.EncodeToString(r[:])[:12])
}

// eventEnvelope is the body of every delivery, fixed when the event is written.
type eventEnvelope struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	CreatedAt time.Time         `json:"created_at"`
	Portal    string            `json:"portal"`
	Source    EventSource       `json:"source"`
	Data      eventEnvelopeData `json:"data"`
}

type eventEnvelopeData struct {
	Object json.RawMessage `json:"object"`
}

// recordEvent writes an event of type typ about obj (which belongs to customerID and has id
// objectID) and its deliveries, inside the caller's transaction.
func (s *Store) recordEvent(ctx context.Context, q querier, typ, customerID, objectID string, obj any) error {
	if q.tx == nil {
		return errors.New("record event: not in a transaction")
	}
	var data json.RawMessage
	var err error
	if s.events.Render != nil {
		data, err = s.events.Render(obj)
	} else {
		// Without the API's representation only the id is safe to log: the ledger's own types
		// carry card tokens.
		data, err = json.Marshal(map[string]string{"id": objectID})
	}
	if err != nil {
		return fmt.Errorf("record event %s: render: %w", typ, err)
	}
	now := s.nowMs()
	ev := eventEnvelope{ID: newEventID(now), Type: typ, CreatedAt: now, Portal: s.events.Portal,
		Source: sourceOf(ctx), Data: eventEnvelopeData{Object: data}}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("record event %s: %w", typ, err)
	}
	if _, err := q.exec(ctx, `INSERT INTO events (id, event_type, source, customer_id, object_id, body, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, ev.ID, typ, string(ev.Source), customerID, objectID, string(body), toMillis(now)); err != nil {
		return fmt.Errorf("record event %s: %w", typ, err)
	}
	q.tx.events = append(q.tx.events, typ)
	if s.events.Subscribers == nil {
		return nil
	}
	for _, sub := range s.events.Subscribers() {
		if !sub.Wants(typ) {
			continue
		}
		if err := insertDelivery(ctx, q, ev.ID, sub.Name, now); err != nil {
			return fmt.Errorf("record event %s: %w", typ, err)
		}
		q.tx.deliveries = true
	}
	return nil
}

func insertDelivery(ctx context.Context, q querier, eventID, endpoint string, now time.Time) error {
	_, err := q.exec(ctx, `INSERT INTO event_deliveries (event_id, endpoint, status, next_attempt_at, created_at)
		VALUES (?, ?, 'pending', ?, ?)`, eventID, endpoint, toMillis(now), toMillis(now))
	return err
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Event is one entry of the event log.
type Event struct {
	ID         string
	Type       string
	Source     EventSource
	CustomerID string
	ObjectID   string
	// Body is the envelope as it is delivered.
	Body      json.RawMessage
	CreatedAt time.Time
	// Deliveries are filled by GetEvent only.
	Deliveries []EventDelivery
}

// EventDelivery is the state of one event's delivery to one endpoint.
type EventDelivery struct {
	Endpoint       string
	Status         string
	Attempts       int
	NextAttemptAt  time.Time
	LastAttemptAt  time.Time
	LastStatusCode int
	LastError      string
	DeliveredAt    time.Time
}

// ListEventsParams filter and page the event log.
type ListEventsParams struct {
	// Type keeps only events of this type.
	Type string
	// CreatedFrom and CreatedTo bound created_at (inclusive, exclusive); zero is open.
	CreatedFrom, CreatedTo time.Time
	Cursor                 string
	Limit                  int
}

const eventColumns = "id, event_type, source, customer_id, object_id, body, created_at"

func scanEvent(row interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var src, body string
	var created int64
	if err := row.Scan(&e.ID, &e.Type, &src, &e.CustomerID, &e.ObjectID, &body, &created); err != nil {
		return Event{}, err
	}
	e.Source, e.Body, e.CreatedAt = EventSource(src), json.RawMessage(body), fromMillis(created)
	return e, nil
}

// ListEvents pages through the event log, oldest first.
func (s *Store) ListEvents(ctx context.Context, p ListEventsParams) (Page[Event], error) {
	limit, err := pageLimit(p.Limit)
	if err != nil {
		return Page[Event]{}, err
	}
	where := []string{"1 = 1"}
	var args []any
	if p.Type != "" {
		where = append(where, "event_type = ?")
		args = append(args, p.Type)
	}
	if !p.CreatedFrom.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, toMillis(p.CreatedFrom))
	}
	if !p.CreatedTo.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, toMillis(p.CreatedTo))
	}
	if p.Cursor != "" {
		c, err := decodeCursor(p.Cursor)
		if err != nil {
			return Page[Event]{}, err
		}
		where = append(where, "(created_at > ? OR (created_at = ? AND id > ?))")
		args = append(args, c.createdAt, c.createdAt, c.id)
	}
	args = append(args, limit+1)
	rows, err := s.read().query(ctx, "SELECT "+eventColumns+" FROM events WHERE "+
		strings.Join(where, " AND ")+" ORDER BY created_at, id LIMIT ?", args...)
	if err != nil {
		return Page[Event]{}, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var page Page[Event]
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return Page[Event]{}, fmt.Errorf("list events: %w", err)
		}
		page.Items = append(page.Items, e)
	}
	if err := rows.Err(); err != nil {
		return Page[Event]{}, fmt.Errorf("list events: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = cursor{createdAt: toMillis(last.CreatedAt), id: last.ID}.encode()
	}
	return page, nil
}

// GetEvent returns one event with its deliveries.
func (s *Store) GetEvent(ctx context.Context, id string) (Event, error) {
	return getEvent(ctx, s.read(), id)
}

func getEvent(ctx context.Context, q querier, id string) (Event, error) {
	e, err := scanEvent(q.queryRow(ctx, "SELECT "+eventColumns+" FROM events WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, notFound("event")
	}
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	rows, err := q.query(ctx, `SELECT endpoint, status, attempts, next_attempt_at, last_attempt_at, last_status_code,
		last_error, delivered_at FROM event_deliveries WHERE event_id = ? ORDER BY endpoint`, id)
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d EventDelivery
		var next, last, delivered sql.NullInt64
		if err := rows.Scan(&d.Endpoint, &d.Status, &d.Attempts, &next, &last, &d.LastStatusCode, &d.LastError, &delivered); err != nil {
			return Event{}, fmt.Errorf("get event %s: %w", id, err)
		}
		if d.Status == DeliveryPending {
			d.NextAttemptAt = fromNullMillis(next)
		}
		d.LastAttemptAt, d.DeliveredAt = fromNullMillis(last), fromNullMillis(delivered)
		e.Deliveries = append(e.Deliveries, d)
	}
	return e, rows.Err()
}

// RedeliverEvent schedules the event again, now, with a fresh retry schedule: to the endpoint
// named (which need not have had a delivery: it may have been added since, or filtered the type
// out), or to every endpoint it was delivered or failed to. A delivery already pending is left
// alone.
func (s *Store) RedeliverEvent(ctx context.Context, id, endpoint string) (Event, error) {
	var out Event
	err := s.inTx(ctx, func(q querier) error {
		if _, err := getEvent(ctx, q, id); err != nil {
			return err
		}
		now := toMillis(s.nowMs())
		var n int64
		if endpoint != "" {
			res, err := q.exec(ctx, `UPDATE event_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,
				lease_owner = '', lease_until = 0 WHERE event_id = ? AND endpoint = ? AND status <> 'pending'`, now, id, endpoint)
			if err != nil {
				return fmt.Errorf("redeliver event %s: %w", id, err)
			}
			n, _ = res.RowsAffected()
			if n == 0 {
				var exists int
				err := q.queryRow(ctx, "SELECT COUNT(*) FROM event_deliveries WHERE event_id = ? AND endpoint = ?", id, endpoint).Scan(&exists)
				if err != nil {
					return fmt.Errorf("redeliver event %s: %w", id, err)
				}
				if exists == 0 {
					if err := insertDelivery(ctx, q, id, endpoint, fromMillis(now)); err != nil {
						return fmt.Errorf("redeliver event %s: %w", id, err)
					}
					n = 1
				}
			}
		} else {
			res, err := q.exec(ctx, `UPDATE event_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,
				lease_owner = '', lease_until = 0 WHERE event_id = ? AND status <> 'pending'`, now, id)
			if err != nil {
				return fmt.Errorf("redeliver event %s: %w", id, err)
			}
			n, _ = res.RowsAffected()
		}
		if n > 0 {
			q.tx.deliveries = true
		}
		e, err := getEvent(ctx, q, id)
		out = e
		return err
	})
	return out, err
}

// DueDelivery is a delivery a worker leased: send Body to Endpoint as attempt number Attempt.
type DueDelivery struct {
	EventID  string
	Endpoint string
	Type     string
	// Attempt is this attempt's number, from 1.
	Attempt int
	Body    []byte
	// EventCreatedAt is when the event was written (for the event-to-delivered latency).
	EventCreatedAt time.Time
}

// ClaimDeliveries leases up to limit due deliveries to endpoint for owner until now+lease, the
// oldest due first. Rows leased by another owner whose lease has not run out are skipped (on
// PostgreSQL without waiting: FOR UPDATE SKIP LOCKED), so replicas never send one attempt twice
// at once; a lease left by a killed worker runs out and the row is due again.
func (s *Store) ClaimDeliveries(ctx context.Context, owner, endpoint string, lease time.Duration, limit int) ([]DueDelivery, error) {
	var out []DueDelivery
	now := s.nowMs()
	lock := ""
	if s.engine == Postgres {
		lock = " FOR UPDATE OF d SKIP LOCKED"
	}
	err := s.inTx(ctx, func(q querier) error {
		out = out[:0]
		rows, err := q.query(ctx, `SELECT d.event_id, d.attempts, e.event_type, e.body, e.created_at
			FROM event_deliveries d JOIN events e ON e.id = d.event_id
			WHERE d.endpoint = ? AND d.status = 'pending' AND d.next_attempt_at <= ? AND d.lease_until <= ?
			ORDER BY d.next_attempt_at, d.created_at, d.event_id LIMIT ?`+lock, endpoint, toMillis(now), toMillis(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			d := DueDelivery{Endpoint: endpoint}
			var body string
			var created int64
			if err := rows.Scan(&d.EventID, &d.Attempt, &d.Type, &body, &created); err != nil {
				rows.Close()
				return err
			}
			d.Attempt++
			d.Body, d.EventCreatedAt = []byte(body), fromMillis(created)
			out = append(out, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		ids := make([]string, len(out))
		for i, d := range out {
			ids[i] = d.EventID
		}
		for len(ids) > 0 {
			n := min(len(ids), maxInList)
			args := append([]any{owner, toMillis(now.Add(lease)), endpoint}, padded(ids[:n])...)
			if _, err := q.exec(ctx, "UPDATE event_deliveries SET lease_owner = ?, lease_until = ? WHERE endpoint = ? AND event_id IN ("+
				inList(n)+")", args...); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries to %s: %w", endpoint, err)
	}
	return out, nil
}

// maxInList bounds the ids of one IN (…) list.
const maxInList = 128

// inList is the placeholders of an IN list for n ids, rounded up to a power of two so that the
// statement cache holds a handful of shapes, not one per batch size.
func inList(n int) string {
	size := 1
	for size < n {
		size *= 2
	}
	return "?" + strings.Repeat(", ?", size-1)
}

// padded is ids as arguments for inList(len(ids)): the last id repeated to fill the list (a
// repeated value in IN changes nothing).
func padded(ids []string) []any {
	size := 1
	for size < len(ids) {
		size *= 2
	}
	args := make([]any, size)
	for i := range args {
		args[i] = ids[min(i, len(ids)-1)]
	}
	return args
}

// AttemptOutcome is what one delivery attempt came to.
type AttemptOutcome struct {
	// Delivered: the endpoint answered 2xx.
	Delivered bool
	// StatusCode is the endpoint's answer (0: no answer).
	StatusCode int
	// Error says why it was not delivered, for the merchant (no secret, no body).
	Error string
	// RetryAt is when to try again; zero gives up (failed). Ignored when Delivered.
	RetryAt time.Time
}

// ErrLeaseLost means a delivery's lease had run out and another worker took it: the attempt's
// outcome is not recorded (the other worker's will be).
var ErrLeaseLost = errors.New("delivery lease lost")

// AttemptRecord is one attempt's outcome for RecordAttempts.
type AttemptRecord struct {
	Delivery DueDelivery
	Outcome  AttemptOutcome
}

// RecordAttempts records a batch of attempts in one transaction (the worker batches under load),
// each only if owner still holds its lease; kept reports which were recorded.
func (s *Store) RecordAttempts(ctx context.Context, owner string, recs []AttemptRecord) (kept []bool, err error) {
	kept = make([]bool, len(recs))
	err = s.inTx(ctx, func(q querier) error {
		now := s.nowMs()
		// Deliveries that succeeded with the same answer, to one endpoint, take one statement:
		// under load that is most of a batch, and one statement a row would bound the rate.
		type group struct {
			endpoint string
			code     int
		}
		delivered := map[group][]int{}
		for i, r := range recs {
			if r.Outcome.Delivered {
				g := group{r.Delivery.Endpoint, r.Outcome.StatusCode}
				delivered[g] = append(delivered[g], i)
				continue
			}
			ok, err := recordAttempt(ctx, q, now, owner, r.Delivery, r.Outcome)
			if err != nil {
				return err
			}
			kept[i] = ok
		}
		for g, idx := range delivered {
			for len(idx) > 0 {
				n := min(len(idx), maxInList)
				ids := make([]string, n)
				byID := make(map[string][]int, n)
				for j, i := range idx[:n] {
					ids[j] = recs[i].Delivery.EventID
					byID[ids[j]] = append(byID[ids[j]], i)
				}
				// Holding the lease means no one else recorded an attempt since the claim, so
				// attempts + 1 is the attempt just made.
				args := []any{toMillis(now), g.code, toMillis(now), g.endpoint, owner}
				done, err := q.strings(ctx, `UPDATE event_deliveries SET status = 'delivered', attempts = attempts + 1,
					next_attempt_at = NULL, last_attempt_at = ?, last_status_code = ?, last_error = '', delivered_at = ?,
					lease_owner = '', lease_until = 0
					WHERE endpoint = ? AND lease_owner = ? AND status = 'pending' AND event_id IN (`+inList(len(ids))+`)
					RETURNING event_id`, append(args, padded(ids)...)...)
				if err != nil {
					return err
				}
				for _, id := range done {
					for _, i := range byID[id] {
						kept[i] = true
					}
				}
				idx = idx[n:]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d delivery attempts: %w", len(recs), err)
	}
	return kept, nil
}

// RecordAttempt records the outcome of attempt d.Attempt, if owner still holds its lease.
func (s *Store) RecordAttempt(ctx context.Context, owner string, d DueDelivery, o AttemptOutcome) error {
	var ok bool
	err := s.inTx(ctx, func(q querier) error {
		var err error
		ok, err = recordAttempt(ctx, q, s.nowMs(), owner, d, o)
		return err
	})
	if err != nil {
		return fmt.Errorf("record delivery attempt %s to %s: %w", d.EventID, d.Endpoint, err)
	}
	if !ok {
		return ErrLeaseLost
	}
	return nil
}

// recordAttempt writes one attempt's outcome and reports whether owner held the lease.
func recordAttempt(ctx context.Context, q querier, at time.Time, owner string, d DueDelivery, o AttemptOutcome) (bool, error) {
	now := toMillis(at)
	status, next := DeliveryPending, sql.NullInt64{}
	var delivered sql.NullInt64
	switch {
	case o.Delivered:
		status, delivered = DeliveryDelivered, sql.NullInt64{Int64: now, Valid: true}
	case o.RetryAt.IsZero():
		status = DeliveryFailed
	default:
		next = sql.NullInt64{Int64: toMillis(o.RetryAt), Valid: true}
	}
	errText := o.Error
	if len(errText) > 500 {
		errText = errText[:500]
	}
	return q.execOne(ctx, `UPDATE event_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,
		last_status_code = ?, last_error = ?, delivered_at = ?, lease_owner = '', lease_until = 0
		WHERE event_id = ? AND endpoint = ? AND lease_owner = ? AND attempts = ? AND status = 'pending'`,
		status, d.Attempt, next, now, o.StatusCode, errText, delivered, d.EventID, d.Endpoint, owner, d.Attempt-1)
}

// ReleaseDeliveries gives back owner's leases on deliveries it claimed and did not send.
func (s *Store) ReleaseDeliveries(ctx context.Context, owner string, ds []DueDelivery) error {
	err := s.inTx(ctx, func(q querier) error {
		for _, d := range ds {
			if _, err := q.exec(ctx, `UPDATE event_deliveries SET lease_owner = '', lease_until = 0
				WHERE event_id = ? AND endpoint = ? AND lease_owner = ? AND attempts = ? AND status = 'pending'`,
				d.EventID, d.Endpoint, owner, d.Attempt-1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %d deliveries: %w", len(ds), err)
	}
	return nil
}

// Backlog is the state of the pending deliveries, for metrics.
type Backlog struct {
	Pending int
	// OldestEvent is the creation time of the oldest event still pending somewhere (zero: none).
	OldestEvent time.Time
	// NextDue is the earliest next attempt (zero: none).
	NextDue time.Time
}

// DeliveryBacklog reports the pending deliveries.
func (s *Store) DeliveryBacklog(ctx context.Context) (Backlog, error) {
	var b Backlog
	var oldest, next sql.NullInt64
	err := s.read().queryRow(ctx, `SELECT COUNT(*), MIN(created_at), MIN(next_attempt_at) FROM event_deliveries WHERE status = 'pending'`).
		Scan(&b.Pending, &oldest, &next)
	if err != nil {
		return Backlog{}, fmt.Errorf("delivery backlog: %w", err)
	}
	b.OldestEvent, b.NextDue = fromNullMillis(oldest), fromNullMillis(next)
	return b, nil
}

// AbandonDeliveries fails every pending delivery to endpoint (it is no longer configured),
// with reason as the merchant reads it. RedeliverEvent can send them again.
func (s *Store) AbandonDeliveries(ctx context.Context, endpoint, reason string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(q querier) error {
		res, err := q.exec(ctx, `UPDATE event_deliveries SET status = 'failed', last_error = ?, next_attempt_at = NULL,
			lease_owner = '', lease_until = 0 WHERE endpoint = ? AND status = 'pending'`, reason, endpoint)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("abandon deliveries to %s: %w", endpoint, err)
	}
	return int(n), nil
}

// PendingEndpoints lists the endpoints with pending deliveries (a worker's start-up pass: it
// resumes what a previous process left).
func (s *Store) PendingEndpoints(ctx context.Context) ([]string, error) {
	return s.read().strings(ctx, "SELECT DISTINCT endpoint FROM event_deliveries WHERE status = 'pending' ORDER BY endpoint")
}
