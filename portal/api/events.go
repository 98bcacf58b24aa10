package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
)

// RenderEvent is the data.object of an event about a ledger object: the JSON the merchant API
// returns for it, so a merchant parses events and API responses with the same types. It is the
// ledger's EventOptions.Render. Payment failure messages are in English, the API's default.
func RenderEvent(obj any) (json.RawMessage, error) {
	var v any
	switch o := obj.(type) {
	case ledger.Customer:
		v = toCustomer(o)
	case ledger.PaymentMethod:
		v = toPaymentMethod(o)
	case ledger.Subscription:
		v = toSubscription(o)
	case ledger.Payment:
		v = toPayment(o, "en")
	default:
		return nil, fmt.Errorf("no event representation for %T", obj)
	}
	return json.Marshal(v)
}

// eventJSON is an event of the log, as GET /events returns it: the envelope delivered to the
// endpoints, plus (on GET /events/{id}) each endpoint's delivery.
type eventJSON struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	CreatedAt  time.Time       `json:"created_at"`
	Portal     string          `json:"portal"`
	Source     string          `json:"source"`
	Data       json.RawMessage `json:"data"`
	Deliveries []deliveryJSON  `json:"deliveries,omitempty"`
}

type deliveryJSON struct {
	Endpoint       string     `json:"endpoint"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode int        `json:"last_status_code"`
	LastError      string     `json:"last_error"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
}

func toEvent(e ledger.Event) (eventJSON, error) {
	var env struct {
		Portal string          `json:"portal"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(e.Body, &env); err != nil {
		return eventJSON{}, fmt.Errorf("event %s: stored envelope: %w", e.ID, err)
	}
	out := eventJSON{ID: e.ID, Type: e.Type, CreatedAt: e.CreatedAt, Portal: env.Portal, Source: string(e.Source), Data: env.Data}
	for _, d := range e.Deliveries {
		out.Deliveries = append(out.Deliveries, deliveryJSON{
			Endpoint: d.Endpoint, Status: d.Status, Attempts: d.Attempts, LastStatusCode: d.LastStatusCode,
			LastError: d.LastError, LastAttemptAt: optionalTime(d.LastAttemptAt),
			NextAttemptAt: optionalTime(d.NextAttemptAt), DeliveredAt: optionalTime(d.DeliveredAt),
		})
	}
	return out, nil
}

// listEvents pages through the event log, oldest first, optionally by type and creation time
// (created_gte, created_lt: RFC 3339).
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) *apiError {
	q, e := query(r, "type", "created_gte", "created_lt", "limit", "cursor")
	if e != nil {
		return e
	}
	limit, e := pageLimit(q)
	if e != nil {
		return e
	}
	p := ledger.ListEventsParams{Type: q.Get("type"), Limit: limit, Cursor: q.Get("cursor")}
	if p.Type != "" && !slices.Contains(ledger.EventTypes(), p.Type) {
		return errInvalidField("type", "The type must be one of the event types in the API's documentation.",
			"El tipo debe ser uno de los tipos de evento de la documentación de la API.")
	}
	for name, dst := range map[string]*time.Time{"created_gte": &p.CreatedFrom, "created_lt": &p.CreatedTo} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return errInvalidField(name, "The time must be in RFC 3339 form, e.g. 2026-12-01T00:00:00Z.",
					"La fecha debe estar en formato RFC 3339, p. ej. 2026-12-01T00:00:00Z.")
			}
			*dst = t
		}
	}
	page, err := a.store.ListEvents(r.Context(), p)
	if err != nil {
		return a.storeError(r, err)
	}
	out := listResponse[eventJSON]{Data: []eventJSON{}, NextCursor: page.NextCursor}
	for _, ev := range page.Items {
		j, err := toEvent(ev)
		if err != nil {
			return a.storeError(r, err)
		}
		out.Data = append(out.Data, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getEvent returns one event with its deliveries.
func (a *API) getEvent(w http.ResponseWriter, r *http.Request) *apiError {
	ev, err := a.store.GetEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		return a.storeError(r, err)
	}
	return a.writeEvent(w, r, http.StatusOK, ev)
}

// redeliverEventRequest is the optional body of POST /events/{id}/redeliver.
type redeliverEventRequest struct {
	// Endpoint, when set, redelivers to that endpoint of spec.webhooks only.
	Endpoint string `json:"endpoint"`
}

// redeliverEvent sends the event again, now, with a fresh retry schedule: to one endpoint, or
// to every endpoint it was delivered or failed to.
func (a *API) redeliverEvent(w http.ResponseWriter, r *http.Request) *apiError {
	var req redeliverEventRequest
	if r.ContentLength != 0 {
		if e := decodeJSON(w, r, &req); e != nil {
			return e
		}
	}
	if req.Endpoint != "" && !a.hasEndpoint(req.Endpoint) {
		return errInvalidField("endpoint", "No endpoint of that name is in the portal's spec.webhooks.",
			"No hay un endpoint con ese nombre en spec.webhooks del portal.")
	}
	ev, err := a.store.RedeliverEvent(r.Context(), r.PathValue("id"), req.Endpoint)
	if err != nil {
		return a.storeError(r, err)
	}
	return a.writeEvent(w, r, http.StatusAccepted, ev)
}

func (a *API) hasEndpoint(name string) bool {
	p := a.rules.Portal(context.Background())
	if p == nil {
		return false
	}
	for _, ep := range p.Spec.Webhooks {
		if ep.Name == name {
			return true
		}
	}
	return false
}

func (a *API) writeEvent(w http.ResponseWriter, r *http.Request, status int, ev ledger.Event) *apiError {
	j, err := toEvent(ev)
	if err != nil {
		return a.storeError(r, err)
	}
	if j.Deliveries == nil {
		j.Deliveries = []deliveryJSON{}
	}
	writeJSON(w, status, j)
	return nil
}
