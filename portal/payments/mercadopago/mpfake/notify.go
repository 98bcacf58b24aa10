package mpfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Notification is a webhook delivery as Mercado Pago makes it: the POST's headers, its body,
// and the query its notification URL gets (data.id and type).
type Notification struct {
	Header http.Header
	Body   []byte
	// DataID is the query parameter data.id Mercado Pago adds to the notification URL.
	DataID string
}

// Sign signs a manifest as Mercado Pago does: x-signature "ts=<ts>,v1=<hex HMAC-SHA256>" over
// "id:<data.id>;request-id:<x-request-id>;ts:<ts>;", parts with no value left out.
func Sign(secret, dataID, requestID, ts string) string {
	manifest := ""
	if dataID != "" {
		manifest += "id:" + dataID + ";"
	}
	if requestID != "" {
		manifest += "request-id:" + requestID + ";"
	}
	manifest += "ts:" + ts + ";"
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(manifest))
	return "ts=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// notify builds a signed notification at time at; its timestamp is in milliseconds, as
// Mercado Pago documents.
func (f *Fake) notify(typ, action, dataID string, data map[string]any, at time.Time) Notification {
	if data == nil {
		data = map[string]any{"id": dataID}
	}
	body, _ := json.Marshal(map[string]any{
		"id": f.next(), "live_mode": false, "type": typ, "date_created": stamp(at), "user_id": f.opts.UserID,
		"api_version": "v1", "action": action, "data": data, "application_id": 8123456789012345, "version": 1,
	})
	reqID := randomHex(4) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(6)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Request-Id", reqID)
	h.Set("X-Signature", Sign(f.opts.WebhookSecret, dataID, reqID, strconv.FormatInt(at.UnixMilli(), 10)))
	return Notification{Header: h, Body: body, DataID: dataID}
}

// PaymentNotification is the notification of a payment's creation or update (action
// payment.created or payment.updated), signed now.
func (f *Fake) PaymentNotification(paymentID, action string) Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notify("payment", action, paymentID, nil, f.now())
}

// PaymentNotificationAt is PaymentNotification signed at another time.
func (f *Fake) PaymentNotificationAt(paymentID, action string, at time.Time) Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notify("payment", action, paymentID, nil, at)
}

// OrderNotification is the notification of a QR order's update (topic order).
func (f *Fake) OrderNotification(orderID, action string) Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notify("order", action, orderID, nil, f.now())
}

// CardUpdate plays Mercado Pago's Card Updater replacing a saved card by a new card id (after a
// rejected payment found the card renewed): the old card id is gone and the customer has the
// new one. It returns the new id and the notification (type automatic-payments, action
// card.updated, whose data carries customer_id, new_card_id and old_card_id as numbers and no
// data.id).
func (f *Fake) CardUpdate(oldCardID string) (string, Notification) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.cards[oldCardID]
	if !ok {
		return "", Notification{}
	}
	repl := *old
	repl.id = strconv.FormatInt(9000000000+f.next(), 10)
	repl.expYear++
	delete(f.cards, oldCardID)
	f.cards[repl.id] = &repl
	oldN, _ := strconv.ParseInt(oldCardID, 10, 64)
	newN, _ := strconv.ParseInt(repl.id, 10, 64)
	n := f.notify("automatic-payments", "card.updated", "",
		map[string]any{"customer_id": old.customer, "new_card_id": newN, "old_card_id": oldN}, f.now())
	return repl.id, n
}
