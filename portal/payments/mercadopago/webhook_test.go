package mercadopago_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/mercadopago/mpfake"
)

var webhookNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

func fixedClock() func() time.Time { return func() time.Time { return webhookNow } }

// lostCharge is a card charge whose answer was lost: the payment is approved at Mercado Pago
// and processing in Portero, with no reference.
func lostCharge(t *testing.T, e *env) (paymentID, mpPaymentID string) {
	t.Helper()
	e.addCard(t, mpfake.TestCard{Number: mpfake.Mastercard})
	e.f.FailNextPayment(mpfake.TimeoutAfterCollect)
	id, r := e.pay(t, 150000)
	if !r.Unknown {
		t.Fatalf("charge = %+v, want the answer lost", r)
	}
	ids := e.f.PaymentsFor("portero_attempt", id+"/1")
	if len(ids) != 1 {
		t.Fatalf("payments at Mercado Pago: %v", ids)
	}
	return id, ids[0]
}

// The x-signature checks: a valid signature (timestamp in milliseconds, as documented, or in
// seconds, as Mercado Pago's example shows), a bad one, a stale or future timestamp, an
// unsigned or malformed header, and a URL and body naming different payments.
func TestMercadoPagoWebhookSignature(t *testing.T) {
	e := newEnv(t, mpfake.Options{Now: fixedClock()}, func(o *mercadopago.Options) { o.Now = fixedClock() })
	_, mpID := lostCharge(t, e)
	secret := e.f.Options().WebhookSecret
	body := []byte(`{"id":12345,"live_mode":false,"type":"payment","action":"payment.updated","api_version":"v1","data":{"id":"` + mpID + `"}}`)
	signed := func(secret, id, reqID string, at time.Time, ms bool) http.Header {
		ts := strconv.FormatInt(at.Unix(), 10)
		if ms {
			ts = strconv.FormatInt(at.UnixMilli(), 10)
		}
		h := http.Header{}
		h.Set("X-Request-Id", reqID)
		h.Set("X-Signature", mpfake.Sign(secret, id, reqID, ts))
		return h
	}
	ok := func(name string, h http.Header, b []byte) {
		t.Helper()
		ev, err := e.a.ParseWebhook(h, b)
		if err != nil || ev.Type != payments.EventChargeSucceeded || ev.Reference != mpID || ev.IdempotencyKey == "" || ev.ID == "" {
			t.Errorf("%s: %+v, %v; want the payment's success, with its attempt key", name, ev, err)
		}
	}
	refused := func(name string, h http.Header, b []byte) {
		t.Helper()
		if _, err := e.a.ParseWebhook(h, b); !errors.Is(err, payments.ErrWebhookSignature) {
			t.Errorf("%s: %v, want ErrWebhookSignature", name, err)
		}
	}
	ok("valid, milliseconds", signed(secret, mpID, "req-1", webhookNow, true), body)
	ok("valid, seconds", signed(secret, mpID, "req-1", webhookNow, false), body)
	ok("valid, 4 minutes old", signed(secret, mpID, "req-1", webhookNow.Add(-4*time.Minute), true), body)
	n := e.f.PaymentNotification(mpID, "payment.updated")
	ok("the fake's own notification", n.Header, n.Body)

	refused("another secret", signed("not-the-secret", mpID, "req-1", webhookNow, true), body)
	refused("stale: 6 minutes old", signed(secret, mpID, "req-1", webhookNow.Add(-6*time.Minute), true), body)
	refused("from the future: 6 minutes ahead", signed(secret, mpID, "req-1", webhookNow.Add(6*time.Minute), true), body)
	refused("unsigned", http.Header{}, body)
	h := signed(secret, mpID, "req-1", webhookNow, true)
	h.Set("X-Request-Id", "req-2")
	refused("request id changed", h, body)
	h = signed(secret, mpID, "req-1", webhookNow, true)
	h.Set("X-Signature", strings.Replace(h.Get("X-Signature"), "v1=", "v1=00", 1))
	refused("malformed hash", h, body)
	refused("another payment in the body", signed(secret, mpID, "req-1", webhookNow, true),
		bytes.Replace(body, []byte(mpID), []byte("20000000001"), 1))
	h = signed(secret, mpID, "req-1", webhookNow, true)
	h.Set(mercadopago.QueryDataIDHeader, "20000000001")
	refused("the URL names another payment than the body", h, body)

	// data.id alphanumeric (a QR order): Mercado Pago documents it lowercased in the manifest,
	// its library keeps the case; both verify.
	orderBody := []byte(`{"type":"order","action":"order.processed","data":{"id":"ORD01ABC"}}`)
	for _, id := range []string{"ORD01ABC", "ord01abc"} {
		if _, err := e.a.ParseWebhook(signed(secret, id, "req-3", webhookNow, true), orderBody); err != nil {
			t.Errorf("order notification signed over %q: %v", id, err)
		}
	}
}

// POST /webhooks/mercadopago as cmd/portal mounts it: a valid notification settles the payment
// (fetched from Mercado Pago, never read from the body), its replay and duplicates answer 200
// and change nothing, a bad or stale signature answers 400 and changes nothing.
func TestMercadoPagoWebhookEndpoint(t *testing.T) {
	e := newEnv(t, mpfake.Options{Now: fixedClock()}, func(o *mercadopago.Options) { o.Now = fixedClock() })
	id, mpID := lostCharge(t, e)
	srv := httptest.NewServer(mercadopago.WebhookRequest(e.d.WebhookHandler()))
	defer srv.Close()
	post := func(n mpfake.Notification) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/mercadopago?data.id="+n.DataID+"&type=payment", bytes.NewReader(n.Body))
		req.Header = n.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	unchanged := func(what string, transitions int) {
		t.Helper()
		if p := e.mem.Payment(id); len(p.Transitions) != transitions || e.mem.Events() != transitions {
			t.Fatalf("%s changed something: %v, %d events", what, p, e.mem.Events())
		}
	}

	bad := e.f.PaymentNotification(mpID, "payment.updated")
	bad.Header.Set("X-Signature", mpfake.Sign("not-the-secret", mpID, bad.Header.Get("X-Request-Id"), strconv.FormatInt(webhookNow.UnixMilli(), 10)))
	if code := post(bad); code != http.StatusBadRequest {
		t.Fatalf("bad signature: HTTP %d, want 400", code)
	}
	unchanged("a bad signature", 0)
	stale := e.f.PaymentNotificationAt(mpID, "payment.updated", webhookNow.Add(-10*time.Minute))
	if code := post(stale); code != http.StatusBadRequest {
		t.Fatalf("stale timestamp: HTTP %d, want 400", code)
	}
	unchanged("a stale notification", 0)

	n := e.f.PaymentNotification(mpID, "payment.updated")
	if code := post(n); code != http.StatusOK {
		t.Fatalf("valid notification: HTTP %d", code)
	}
	if p := e.mem.Payment(id); p.Status != charging.AttemptSucceeded || p.Attempts[0].Reference != mpID {
		t.Fatalf("after the notification: %v", p)
	}
	for i := 0; i < 2; i++ { // the replay of the same request, and Mercado Pago's redelivery
		if code := post(n); code != http.StatusOK {
			t.Fatalf("replay: HTTP %d, want 200", code)
		}
	}
	again := e.f.PaymentNotification(mpID, "payment.updated") // a second notification about it
	if code := post(again); code != http.StatusOK {
		t.Fatalf("second notification: HTTP %d", code)
	}
	if p := e.mem.Payment(id); len(p.Transitions) != 1 || e.f.Collected() != 1 {
		t.Fatalf("settled more than once: %v, collected %d", p, e.f.Collected())
	}
}

// Mercado Pago signs no part of a notification's body but data.id: what a notification is about
// comes from Mercado Pago's API. A payment notification's event follows the payment, and a
// captured card update whose body is edited to name a card Mercado Pago still has is refused
// and removes nothing.
func TestMercadoPagoWebhookNeverTrustsTheBody(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, mpfake.Options{})
	a := e.addCard(t, mpfake.TestCard{Number: mpfake.Mastercard})
	b := e.addCard(t, mpfake.TestCard{Number: mpfake.Visa})

	e.f.FailNextPayment(mpfake.Decline)
	id, _ := e.pay(t, 150000)
	mpID := e.f.PaymentsFor("portero_attempt", id+"/1")[0]
	n := e.f.PaymentNotification(mpID, "payment.created")
	forged := bytes.Replace(n.Body, []byte(`"payment.created"`), []byte(`"payment.approved"`), 1)
	if ev, err := e.a.ParseWebhook(n.Header, forged); err != nil || ev.Type != payments.EventChargeFailed {
		t.Fatalf("notification of a declined payment = %+v, %v; want charge.failed from the API", ev, err)
	}

	_, upd := e.f.CardUpdate(a.Method.ProcessorID)
	edited := bytes.Replace(upd.Body, []byte(a.Method.ProcessorID), []byte(b.Method.ProcessorID), 1)
	if _, err := e.d.HandleWebhook(ctx, upd.Header, edited); !errors.Is(err, payments.ErrWebhookSignature) {
		t.Fatalf("card update edited to name a card Mercado Pago has: %v, want refused", err)
	}
	if ms := e.mem.Methods(e.cust); len(ms) != 2 {
		t.Fatalf("methods after the forgery: %+v", ms)
	}
	if ev, err := e.d.HandleWebhook(ctx, upd.Header, upd.Body); err != nil || ev.MethodID != a.Method.ProcessorID {
		t.Fatalf("the real card update: %+v, %v", ev, err)
	}
	if ms := e.mem.Methods(e.cust); len(ms) != 1 || ms[0].ProcessorID != b.Method.ProcessorID {
		t.Fatalf("methods after the card update: %+v", ms)
	}
}
