package stripe_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	stripelib "github.com/stripe/stripe-go/v84"
	"github.com/stripe/stripe-go/v84/webhook"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/stripe"
)

// The credentials of TestSecretsNeverInErrorsOrLogs: stripe-mock refuses a live key and echoes
// the Authorization header it got in its error message, as Stripe may echo parts of a key.
const (
	leakKey   = "sk_live_PorteroLeakCheckKey8f2c"
	leakWhsec = "whsec_PorteroLeakCheckHook31ad"
	leakMark  = "PorteroLeakCheck"
)

// TestSecretsNeverInErrorsOrLogs makes every call fail — Stripe refusing the key, Stripe
// unreachable, webhooks signed with another secret — and greps every error and log line for
// the credentials.
func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	// The test means something only if the answers do carry the key.
	req, _ := http.NewRequest(http.MethodGet, mockURL+"/v1/customers", nil)
	req.Header.Set("Authorization", "Bearer "+leakKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), leakKey) {
		t.Fatalf("stripe-mock no longer echoes the key (%s): find another way to make an answer carry it", raw)
	}

	for name, base := range map[string]string{"key refused": mockURL, "unreachable": closedURL(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			a, err := stripe.New(stripe.Options{SecretKey: leakKey, WebhookSecret: leakWhsec, APIBase: base, Log: log,
				MaxNetworkRetries: stripelib.Int64(0), HTTPClient: &http.Client{Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			mem := chargingtest.NewMemory()
			d, err := charging.New(charging.Options{Adapter: a, Recorder: mem, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			cust := mem.AddCustomer("ana@example.com", "Ana")
			card := payments.MethodRef{Type: payments.MethodCard, Token: "pm_card_visa"}
			var errs []error
			add := func(_ any, err error) { errs = append(errs, err) }
			add(a.EnsureCustomer(ctx, payments.CustomerRequest{ID: cust}))
			add(a.StartSetup(ctx, payments.SetupRequest{Customer: "cus_1", ReturnURL: "https://p.example/r", CancelURL: "https://p.example/c"}))
			add(a.CompleteSetup(ctx, payments.SetupCompletion{Reference: "cs_test_1", Customer: "cus_1"}))
			add(a.AttachMethod(ctx, payments.AttachRequest{Customer: "cus_1", MethodID: "pm_card_visa"}))
			add(nil, a.Detach(ctx, payments.DetachRequest{Customer: "cus_1", MethodID: "pm_card_visa"}))
			add(a.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_1/1", Amount: 100, Currency: "ARS", Method: card, Customer: "cus_1"}))
			add(a.LookupCharge(ctx, payments.ChargeRequest{Reference: "pi_1"}))
			add(a.LookupCharge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_1/1", Customer: "cus_1"}))
			add(a.Authenticate(ctx, payments.ActionRequest{Reference: "pi_1", ReturnURL: "https://p.example/r", Method: card}))
			add(d.StartSetup(ctx, cust, charging.SetupInput{ReturnURL: "https://p.example/r", CancelURL: "https://p.example/c"}))
			add(d.AttachProcessorMethod(ctx, cust, "pm_card_visa"))
			// A charge through the driver: the unknown outcome is logged, not returned.
			if _, err := mem.SetProcessorCustomer(ctx, stripe.Type, cust, "cus_1"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := mem.AddMethod(ctx, cust, stripe.Type, payments.Method{Type: payments.MethodCard, ProcessorID: "pm_card_visa"}); err != nil {
				t.Fatal(err)
			}
			_, att := mem.CreatePayment(cust, 100, "ARS", "x")
			if r, err := d.Charge(ctx, *att); err != nil || !r.Unknown {
				t.Fatalf("Charge = %+v, %v", r, err)
			}
			mem.Advance(time.Hour)
			add(d.Redrive(ctx, time.Minute))
			// Webhooks: signed with another secret, and one signed with the real secret but for
			// an attempt the adapter must look up at the failing API.
			body := []byte(`{"id":"evt_1","object":"event","type":"payment_intent.succeeded","api_version":"2026-02-25.clover","data":{"object":{"id":"pi_1","object":"payment_intent","metadata":{"portero_attempt":"` + att.IdempotencyKey() + `"}}}}`)
			for _, secret := range []string{"whsec_other", leakWhsec} {
				sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
				h := http.Header{}
				h.Set("Stripe-Signature", sp.Header)
				add(d.HandleWebhook(ctx, h, body))
			}

			failures := 0
			for i, err := range errs {
				if err == nil {
					continue
				}
				failures++
				for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
					if strings.Contains(s, leakMark) {
						t.Errorf("error %d carries a credential: %s", i, s)
					}
				}
			}
			if failures < len(errs)-2 {
				t.Fatalf("only %d of %d calls failed: the test no longer exercises the failure paths", failures, len(errs))
			}
			for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a)} {
				if strings.Contains(s, leakMark) {
					t.Errorf("the adapter prints a credential: %s", s)
				}
			}
			log.Info("adapter", "adapter", a)
			if strings.Contains(logs.String(), leakMark) {
				t.Errorf("a credential reached the logs:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), "charge outcome unknown") {
				t.Errorf("the failed charge was not logged:\n%s", logs.String())
			}
		})
	}
}
