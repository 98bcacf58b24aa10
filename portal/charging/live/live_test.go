package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v84/webhook"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/internal/testlog"
	"github.com/portero-dev/portero/portal/charging/live"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/stripe/stripemock"
	"github.com/portero-dev/portero/portal/rules"
)

var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env, &k8s)) }

const whsec = "whsec_portero_live_test"

// stripeEvent is a Stripe event of type typ about obj, signed with secret at signedAt, as Stripe
// delivers it to POST /webhooks/stripe.
func stripeEvent(t *testing.T, id, typ string, obj map[string]any, secret string, signedAt time.Time) (http.Header, []byte) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "api_version": "2026-02-25.clover",
		"created": signedAt.Unix(), "livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": obj}})
	if err != nil {
		t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: signedAt})
	h := http.Header{}
	h.Set("Stripe-Signature", sp.Header)
	return h, body
}

// POST /webhooks/stripe on a Stripe portal, as cmd/portal mounts it: a signed event is verified,
// acted on once (its changes recorded with source processor), a redelivery changes nothing, a
// bad signature or a stale timestamp is 400 with nothing changed, another processor's path is
// 404, and every request is counted by processor, type and outcome.
func TestStripeWebhooks(t *testing.T) {
	ctx := context.Background()
	sm := stripemock.Start(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "live-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "acme-stripe"},
		StringData: map[string]string{"secret_key": "sk_test_live", "webhook_secret": whsec, "api_base": sm.URL}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "tarjetas"},
		Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Tarjetas",
			Access:         billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptrTo(false)}},
			PaymentMethods: &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card"}},
			Processor: &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorStripe,
				SecretRef: &billingv1alpha1.LocalObjectReference{Name: "acme-stripe"}}}}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	rl, err := rules.Start(rctx, env.Config, types.NamespacedName{Namespace: ns.Name, Name: p.Name})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	st, err := ledger.Open(ctx, ledgertest.SQLiteDSN(t), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	procs, err := live.New(live.Options{Rules: rl, Secrets: rl.Client, Recorder: st, SandboxSecret: []byte("portero-live-test-sandbox-0123456789"),
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{processor}", procs.WebhookHandler())

	c, err := st.CreateCustomer(ctx, ledger.NewCustomer{Email: "ana@example.com", Name: "Ana"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AddMethod(ctx, c.ID, payments.ProcessorStripe, payments.Method{Type: payments.MethodCard,
		ProcessorID: "pm_live_1", Brand: payments.BrandVisa, Last4: "4242", ExpMonth: 12, ExpYear: 2040}); err != nil {
		t.Fatal(err)
	}
	post := func(path string, h http.Header, body []byte) int {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		for k, v := range h {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code
	}
	count := func(typ, outcome string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "portero_portal_processor_webhooks_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["processor"] == "stripe" && labels["type"] == typ && labels["outcome"] == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	state := func() string {
		ms, err := st.ListPaymentMethods(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := st.ListEvents(ctx, ledger.ListEventsParams{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs.Items {
			out = append(out, e.Type+"/"+string(e.Source))
		}
		return fmt.Sprintf("%d methods; events %v", len(ms), out)
	}

	before := state()
	detached := map[string]any{"id": "pm_live_1", "object": "payment_method", "type": "card", "customer": nil}
	stale, staleBody := stripeEvent(t, "evt_stale", "payment_method.detached", detached, whsec, time.Now().Add(-10*time.Minute))
	if code := post("/webhooks/stripe", stale, staleBody); code != http.StatusBadRequest {
		t.Fatalf("10-minute-old event: %d, want 400", code)
	}
	forged, forgedBody := stripeEvent(t, "evt_forged", "payment_method.detached", detached, "whsec_someone_else", time.Now())
	if code := post("/webhooks/stripe", forged, forgedBody); code != http.StatusBadRequest {
		t.Fatalf("badly signed event: %d, want 400", code)
	}
	if code := post("/webhooks/stripe", http.Header{}, forgedBody); code != http.StatusBadRequest {
		t.Fatalf("unsigned event: %d, want 400", code)
	}
	if got := state(); got != before {
		t.Fatalf("refused events changed the ledger: %s, was %s", got, before)
	}

	h, body := stripeEvent(t, "evt_detached_1", "payment_method.detached", detached, whsec, time.Now())
	if code := post("/webhooks/stripe", h, body); code != http.StatusOK {
		t.Fatalf("signed event: %d, want 200", code)
	}
	after := state()
	if !strings.HasPrefix(after, "0 methods") || !strings.Contains(after, "payment_method.removed/processor") {
		t.Fatalf("after the event: %s; want the method removed, recorded as the processor's doing", after)
	}
	if code := post("/webhooks/stripe", h, body); code != http.StatusOK {
		t.Fatalf("redelivery: %d, want 200", code)
	}
	if got := state(); got != after {
		t.Fatalf("the redelivery changed the ledger: %s, was %s", got, after)
	}
	ignored, ignoredBody := stripeEvent(t, "evt_other", "customer.updated", map[string]any{"id": "cus_1", "object": "customer"}, whsec, time.Now())
	if code := post("/webhooks/stripe", ignored, ignoredBody); code != http.StatusOK {
		t.Fatalf("an event Portero does not act on: %d, want 200", code)
	}
	if code := post("/webhooks/sandbox", h, body); code != http.StatusNotFound {
		t.Fatalf("another processor's path: %d, want 404", code)
	}
	if code := post("/webhooks/paypal", h, body); code != http.StatusNotFound {
		t.Fatalf("an unknown processor's path: %d, want 404", code)
	}
	for _, c := range []struct {
		typ, outcome string
		want         float64
	}{
		{"method.detached", "handled", 1}, {"method.detached", "duplicate", 1}, {"ignored", "ignored", 1},
		{"unknown", "bad_signature", 3},
	} {
		if got := count(c.typ, c.outcome); got != c.want {
			t.Errorf("webhooks{type=%s,outcome=%s} = %v, want %v", c.typ, c.outcome, got, c.want)
		}
	}
	if strings.Contains(logs.String(), whsec) || strings.Contains(logs.String(), "sk_test_live") {
		t.Fatal("a processor credential reached the logs")
	}
}

func ptrTo[T any](v T) *T { return &v }
