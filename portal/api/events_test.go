package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/webhooks"
)

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a merchant endpoint that verifies every request with the Standard Webhooks
// reference library, as a merchant would.
type hookReceiver struct {
	t   *testing.T
	mu  sync.Mutex
	got []hookDelivery
}

type hookDelivery struct {
	id   string
	env  eventJSON
	body string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v, _ := standardwebhooks.NewWebhook(webhookSecret)
	if err := v.Verify(body, r.Header); err != nil {
		h.t.Errorf("delivery %s does not verify: %v", r.Header.Get("webhook-id"), err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var env eventJSON
	if err := json.Unmarshal(body, &env); err != nil {
		h.t.Errorf("delivery body: %v", err)
	}
	h.mu.Lock()
	h.got = append(h.got, hookDelivery{id: r.Header.Get("webhook-id"), env: env, body: string(body)})
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) received() []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// withWebhook gives the fixture's portal an endpoint named name at url, its secret (webhookSecret)
// in a Secret created before the portal: the operator stalls a portal whose Secrets are missing.
func withWebhook(t testing.TB, name, url string) func(*billingv1alpha1.CustomerPortal) {
	return func(p *billingv1alpha1.CustomerPortal) {
		secret := name + "-webhook"
		p.Spec.Webhooks = append(p.Spec.Webhooks, billingv1alpha1.WebhookEndpoint{Name: name, URL: url,
			SecretRef: billingv1alpha1.WebhookSecretReference{Name: secret}})
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: secret},
			StringData: map[string]string{"secret": webhookSecret}}
		if err := k8s.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
}

// newEventsFixture is a fixture whose portal names one webhook endpoint (the receiver), with the
// ledger's event log and the delivery worker wired as cmd/portal wires them, reading the
// endpoint's Secret as the portal's ServiceAccount.
func newEventsFixture(t *testing.T) (*fixture, *hookReceiver) {
	t.Helper()
	rcv := &hookReceiver{t: t}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	f := newFixture(t, withWebhook(t, "backend", srv.URL+"/hooks"))
	cfg := webhooks.NewConfig(f.rules, f.rules.Client, slog.New(slog.NewTextHandler(f.logs, nil)))
	var worker *webhooks.Worker
	store, err := ledger.Open(f.ctx, "sqlite://"+f.dbPath, ledger.Options{Events: ledger.EventOptions{
		Portal: f.portal.String(), Render: RenderEvent, Subscribers: cfg.Subscribers,
		Written: func(types []string, d bool) { worker.Written(types, d) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	worker, err = webhooks.New(webhooks.Options{Store: store, Endpoints: cfg.Endpoints, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { worker.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	f.store = store
	f.startAPI()
	return f, rcv
}

// Creating a customer, adding a method and paying through the merchant API deliver their events,
// signed, within 10 s; GET /events lists them; a redelivery sends the same event id again.
func TestEventsAreDeliveredAndListed(t *testing.T) {
	f, rcv := newEventsFixture(t)
	c := f.customer("hooks@example.com")
	f.addCard(c.ID, "4242424242424242", "123")
	p := f.pay(c.ID, 2500)
	if p.Status != "succeeded" {
		t.Fatalf("payment %s", p.Status)
	}
	want := []string{"customer.created", "payment.created", "payment.succeeded"}
	var got []hookDelivery
	eventually(t, "events delivered", func() error {
		got = rcv.received()
		var types []string
		for _, d := range got {
			types = append(types, d.env.Type)
		}
		for _, w := range want {
			if !slices.Contains(types, w) {
				return fmt.Errorf("received %v, waiting for %s", types, w)
			}
		}
		return nil
	})
	for _, d := range got {
		if d.id != d.env.ID || d.env.Portal != f.portal.String() || d.env.Source != "merchant_api" {
			t.Errorf("delivery %s: envelope %+v", d.id, d.env)
		}
		if d.env.Deliveries != nil {
			t.Errorf("a delivered envelope carries deliveries: %s", d.body)
		}
		// No secret, card number or token in any payload.
		for _, leak := range []string{"4242424242424242", webhookSecret, testKey, "tok_"} {
			if strings.Contains(d.body, leak) {
				t.Errorf("delivery %s carries %q", d.id, leak)
			}
		}
		if d.env.Type == "payment.succeeded" {
			var obj paymentJSON
			if err := json.Unmarshal(d.env.Data, &struct{ Object *paymentJSON }{&obj}); err != nil || obj.ID != p.ID || obj.Status != "succeeded" {
				t.Errorf("payment.succeeded object = %+v (%v)", obj, err)
			}
		}
	}

	var list listResponse[eventJSON]
	f.do(req{method: "GET", path: "/api/v1/events?type=payment.succeeded"}).json(t, &list)
	if len(list.Data) != 1 || list.Data[0].Type != "payment.succeeded" {
		t.Fatalf("GET /events?type=payment.succeeded = %+v", list.Data)
	}
	id := list.Data[0].ID
	// The worker records an attempt after the receiver answered it: the delivery shows as
	// delivered a moment after the request arrived.
	eventually(t, "the delivery recorded", func() error {
		var ev eventJSON
		f.do(req{method: "GET", path: "/api/v1/events/" + id}).json(t, &ev)
		if len(ev.Deliveries) != 1 || ev.Deliveries[0].Endpoint != "backend" || ev.Deliveries[0].Status != "delivered" || ev.Deliveries[0].LastStatusCode != 204 {
			return fmt.Errorf("GET /events/%s deliveries = %+v", id, ev.Deliveries)
		}
		return nil
	})
	f.expect(req{method: "POST", path: "/api/v1/events/" + id + "/redeliver", body: map[string]any{"endpoint": "nowhere"}}, 400, "invalid_field")
	f.expect(req{method: "GET", path: "/api/v1/events/evt_missing"}, 404, "not_found")
	f.expect(req{method: "GET", path: "/api/v1/events?type=payment.refunded"}, 400, "invalid_field")
	f.expect(req{method: "GET", path: "/api/v1/events?created_gte=yesterday"}, 400, "invalid_field")

	before := len(rcv.received())
	f.do(req{method: "POST", path: "/api/v1/events/" + id + "/redeliver"})
	eventually(t, "redelivery", func() error {
		all := rcv.received()
		if len(all) == before {
			return fmt.Errorf("not redelivered yet")
		}
		if last := all[len(all)-1]; last.id != id {
			return fmt.Errorf("redelivered %s, want %s", last.id, id)
		}
		return nil
	})
}
