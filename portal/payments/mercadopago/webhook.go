package mercadopago

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// Headers of Mercado Pago's webhook notifications.
const (
	// SignatureHeader carries "ts=<timestamp>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "X-Signature"
	// RequestIDHeader carries the notification's request id, part of what is signed.
	RequestIDHeader = "X-Request-Id"
	// QueryDataIDHeader carries the notification URL's data.id query parameter to
	// ParseWebhook, which sees the headers and the body only. WebhookRequest sets it (and
	// drops any copy a client sent).
	QueryDataIDHeader = "X-Portero-Mercadopago-Data-Id"
)

// WebhookTolerance bounds how old, or how far in the future, a notification's signed
// timestamp may be.
const WebhookTolerance = 5 * time.Minute

// webhookLookupTimeout bounds the call that fetches what a notification is about.
const webhookLookupTimeout = 10 * time.Second

// WebhookRequest wraps the handler of /webhooks/mercadopago: Mercado Pago signs the data.id of
// the notification URL's query, which it passes on to ParseWebhook in QueryDataIDHeader.
func WebhookRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(QueryDataIDHeader)
		if id := r.URL.Query().Get("data.id"); id != "" {
			r.Header.Set(QueryDataIDHeader, id)
		}
		next.ServeHTTP(w, r)
	})
}

// notification is a webhook body. Mercado Pago signs none of it but data.id, so nothing else
// in it is believed: what a notification is about is fetched from Mercado Pago's API.
type notification struct {
	Type   string `json:"type"`
	Action string `json:"action"`
	Data   struct {
		ID         json.RawMessage `json:"id"`
		CustomerID string          `json:"customer_id"`
		OldCardID  json.RawMessage `json:"old_card_id"`
		NewCardID  json.RawMessage `json:"new_card_id"`
	} `json:"data"`
}

// rawString reads a JSON string or number as a string.
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// ParseWebhook implements payments.Adapter for Mercado Pago's notifications.
//
// The x-signature header is "ts=<timestamp>,v1=<hash>", the hash an HMAC-SHA256 with the
// webhook secret over the manifest "id:<data.id>;request-id:<x-request-id>;ts:<ts>;", a part
// left out when its value is absent. data.id is the notification URL's query parameter
// (QueryDataIDHeader), else the body's data.id; a URL and a body naming different ids are
// refused. Mercado Pago documents data.id lowercased when alphanumeric while its own library
// signs it as sent: both are accepted. The timestamp, which Mercado Pago documents in
// milliseconds but shows in seconds, is read as either and must be within WebhookTolerance of
// the adapter's clock. The comparison is constant-time.
//
// Nothing but data.id is signed, so the body is never believed: a payment or QR order
// notification is turned into an event from the payment or order fetched by id, and a card
// update (Card Updater replacing a saved card) removes the old card only once Mercado Pago
// says it is gone. A failed fetch is an error (the notification is delivered again).
//
// The event id is made of signed parts only (data.id, the request id or the timestamp), so a
// replayed notification is the same event and is skipped.
func (a *Adapter) ParseWebhook(header http.Header, body []byte) (payments.Event, error) {
	sig := header.Get(SignatureHeader)
	if strings.TrimSpace(sig) == "" {
		return payments.Event{}, fmt.Errorf("mercadopago webhook: not signed: %w", payments.ErrWebhookSignature)
	}
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		// Under a signature header, a body that is no notification is not Mercado Pago's.
		return payments.Event{}, errNotOurs("the body is not a notification")
	}
	id := strings.TrimSpace(header.Get(QueryDataIDHeader))
	if bodyID := rawString(n.Data.ID); id == "" {
		id = bodyID
	} else if bodyID != "" && bodyID != id {
		return payments.Event{}, errNotOurs("the URL and the body name different data.id")
	}
	requestID := strings.TrimSpace(header.Get(RequestIDHeader))
	ts, err := a.verify(sig, id, requestID)
	if err != nil {
		return payments.Event{}, err
	}
	ev := payments.Event{Type: payments.EventIgnored, ProcessorEventType: n.Type}
	if n.Action != "" {
		ev.ProcessorEventType = n.Action
	}
	switch {
	case requestID != "":
		ev.ID = n.Type + ":" + id + ":" + requestID
	default:
		ev.ID = n.Type + ":" + id + ":ts" + ts
	}
	ctx, cancel := context.WithTimeout(context.Background(), webhookLookupTimeout)
	defer cancel()
	switch {
	case n.Type == "payment":
		return a.paymentEvent(ctx, ev, id)
	case n.Type == "order":
		return a.orderEvent(ctx, ev, id)
	case n.Type == "automatic-payments" && n.Action == "card.updated":
		return a.cardEvent(ctx, ev, n)
	}
	return ev, nil
}

// verify checks the signature and its timestamp and returns the timestamp as sent.
func (a *Adapter) verify(sig, id, requestID string) (string, error) {
	var ts, v1 string
	for _, part := range strings.Split(sig, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "ts":
			ts = strings.TrimSpace(v)
		case "v1":
			v1 = strings.TrimSpace(v)
		}
	}
	got, err := hex.DecodeString(v1)
	if ts == "" || err != nil || len(got) != sha256.Size {
		return "", fmt.Errorf("mercadopago webhook: malformed signature header: %w", payments.ErrWebhookSignature)
	}
	ok := hmac.Equal(a.sign(id, requestID, ts), got)
	if lower := strings.ToLower(id); !ok && lower != id {
		ok = hmac.Equal(a.sign(lower, requestID, ts), got)
	}
	if !ok {
		return "", fmt.Errorf("mercadopago webhook: signature mismatch: %w", payments.ErrWebhookSignature)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return "", fmt.Errorf("mercadopago webhook: malformed timestamp: %w", payments.ErrWebhookSignature)
	}
	at := time.Unix(n, 0)
	if n >= 1e11 { // milliseconds: 1e11 seconds is in the year 5138
		at = time.UnixMilli(n)
	}
	if d := a.now().Sub(at); d > WebhookTolerance || d < -WebhookTolerance {
		return "", fmt.Errorf("mercadopago webhook: timestamp %s away from now: %w", d.Round(time.Second), payments.ErrWebhookSignature)
	}
	return ts, nil
}

// sign is the HMAC of a notification's manifest.
func (a *Adapter) sign(id, requestID, ts string) []byte {
	mac := hmac.New(sha256.New, []byte(a.webhookSecret))
	mac.Write([]byte(Manifest(id, requestID, ts)))
	return mac.Sum(nil)
}

// Manifest is what Mercado Pago signs: "id:<data.id>;request-id:<x-request-id>;ts:<ts>;",
// without the parts whose value is empty.
func Manifest(id, requestID, ts string) string {
	var b strings.Builder
	if id != "" {
		b.WriteString("id:" + id + ";")
	}
	if requestID != "" {
		b.WriteString("request-id:" + requestID + ";")
	}
	b.WriteString("ts:" + ts + ";")
	return b.String()
}

func (a *Adapter) paymentEvent(ctx context.Context, ev payments.Event, id string) (payments.Event, error) {
	if !validCardID(id) {
		return ev, nil // not a payment id
	}
	p, err := a.getPayment(ctx, id)
	if isMissing(err) {
		return ev, nil // not this account's
	}
	if err != nil {
		return payments.Event{}, a.fail("webhook: get payment", err)
	}
	ev.Reference = strconv.Itoa(p.ID)
	ev.IdempotencyKey, _ = p.Metadata[metaAttempt].(string)
	ev.Customer = p.Payer.ID
	switch r := resultOfPayment(p); r.Status {
	case payments.ChargeSucceeded:
		ev.Type = payments.EventChargeSucceeded
	case payments.ChargeFailed:
		ev.Type = payments.EventChargeFailed
	case payments.ChargeRequiresAction:
		ev.Type = payments.EventChargeRequiresAction
	}
	// Pending payments (in process) are left for the notification of their outcome.
	return ev, nil
}

func (a *Adapter) orderEvent(ctx context.Context, ev payments.Event, id string) (payments.Event, error) {
	if token(id) == "" {
		return ev, nil
	}
	o, err := a.orders.Get(ctx, id)
	if isMissing(err) {
		return ev, nil
	}
	if err != nil {
		return payments.Event{}, a.fail("webhook: get QR order", err)
	}
	ev.Reference = o.ID
	switch resultOfOrder(o.ID, o.Status, o.StatusDetail).Status {
	case payments.ChargeSucceeded:
		ev.Type = payments.EventChargeSucceeded
	case payments.ChargeFailed:
		ev.Type = payments.EventChargeFailed
	}
	return ev, nil
}

// cardEvent reads a Card Updater notification: when Mercado Pago replaced a saved card by a
// new card id, the old one is gone and Portero removes it (the customer adds the card again;
// the notification is not signed over its card ids, so the new one is not adopted from it).
// Mercado Pago's card ids are numbers; a body naming something else, or a card Mercado Pago
// still has, is not a notification Mercado Pago sent.
func (a *Adapter) cardEvent(ctx context.Context, ev payments.Event, n notification) (payments.Event, error) {
	cust, old, repl := n.Data.CustomerID, rawString(n.Data.OldCardID), rawString(n.Data.NewCardID)
	if token(cust) == "" || !validCardID(old) || !validCardID(repl) {
		return payments.Event{}, errNotOurs("a card update naming no Mercado Pago customer and cards")
	}
	if old == repl {
		return ev, nil // updated in place: the card id still charges
	}
	if _, err := a.cards.Get(ctx, cust, old); err == nil {
		return payments.Event{}, errNotOurs("a card update for a card Mercado Pago still has")
	} else if !isMissing(err) {
		return payments.Event{}, a.fail("webhook: get card", err)
	}
	if _, err := a.cards.Get(ctx, cust, repl); isMissing(err) {
		return payments.Event{}, errNotOurs("a card update to a card Mercado Pago does not have")
	} else if err != nil {
		return payments.Event{}, a.fail("webhook: get card", err)
	}
	ev.Type, ev.MethodID, ev.Customer = payments.EventMethodDetached, old, cust
	return ev, nil
}
