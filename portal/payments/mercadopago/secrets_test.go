package mercadopago_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/charging/chargingtest"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/mercadopago/mpfake"
)

// Credentials of TestMercadoPagoSecretsNeverInErrorsOrLogs; the fake echoes the Authorization
// header it refuses, as an API may echo what it got.
const (
	leakToken  = "APP_USR-PorteroLeakCheckToken-8f2c"
	leakPublic = "APP_USR-PorteroLeakCheckPublic-77ab"
	leakHook   = "PorteroLeakCheckHookSecret31ad"
	leakMark   = "PorteroLeakCheck"
)

func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// TestMercadoPagoSecretsNeverInErrorsOrLogs makes every call fail — Mercado Pago refusing the
// token (and quoting it), Mercado Pago unreachable, webhooks signed with another secret — and
// greps every error and log line for the credentials.
func TestMercadoPagoSecretsNeverInErrorsOrLogs(t *testing.T) {
	f := newFake(t, mpfake.Options{EchoCredentials: true})
	// The test means something only if the answers do carry the token.
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/v1/customers/search", nil)
	req.Header.Set("Authorization", "Bearer "+leakToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), leakToken) {
		t.Fatalf("the fake no longer echoes the token (%s)", raw)
	}

	for name, base := range map[string]string{"token refused": f.URL(), "unreachable": closedURL(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			a, err := mercadopago.New(mercadopago.Options{AccessToken: leakToken, PublicKey: leakPublic, WebhookSecret: leakHook,
				APIBase: base, QRPOS: mpfake.DefaultPOS, Log: log, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			mem := chargingtest.NewMemory()
			d, err := charging.New(charging.Options{Adapter: a, Recorder: mem, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			cust := mem.AddCustomer("ana@example.com", "Ana")
			card := payments.MethodRef{Type: payments.MethodCard, Token: "9000001001"}
			var errs []error
			add := func(_ any, err error) { errs = append(errs, err) }
			tok := strings.Repeat("ab", 16)
			add(a.EnsureCustomer(ctx, payments.CustomerRequest{ID: cust, Email: "ana@example.com"}))
			add(a.StartSetup(ctx, payments.SetupRequest{Customer: "1-x", ReturnURL: "https://p.example/r", CancelURL: "https://p.example/c"}))
			add(a.CompleteSetup(ctx, payments.SetupCompletion{Reference: tok, Customer: "1-x"}))
			add(a.AttachMethod(ctx, payments.AttachRequest{Customer: "1-x", MethodID: "9000001001"}))
			add(nil, a.Detach(ctx, payments.DetachRequest{Customer: "1-x", MethodID: "9000001001"}))
			for _, m := range []payments.MethodRef{card, {Type: payments.MethodWallet}, {Type: payments.MethodQR}} {
				add(a.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_1/1", Amount: 100, Currency: "ARS", Method: m, Customer: "1-x"}))
			}
			add(a.LookupCharge(ctx, payments.ChargeRequest{Reference: "20000000001", IdempotencyKey: "pay_1/1"}))
			add(a.LookupCharge(ctx, payments.ChargeRequest{Reference: "ORD01X", IdempotencyKey: "pay_1/1"}))
			add(a.Authenticate(ctx, payments.ActionRequest{Reference: "20000000001", ReturnURL: "https://p.example/r", IdempotencyKey: "pay_1/1", Method: card}))
			add(d.StartSetup(ctx, cust, charging.SetupInput{ReturnURL: "https://p.example/r", CancelURL: "https://p.example/c"}))
			add(d.AttachProcessorMethod(ctx, cust, "9000001001"))
			// A charge through the driver: the unknown outcome is logged, not returned.
			if _, err := mem.SetProcessorCustomer(ctx, mercadopago.Type, cust, "1-x"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := mem.AddMethod(ctx, cust, mercadopago.Type, payments.Method{Type: payments.MethodCard, ProcessorID: "9000001001"}); err != nil {
				t.Fatal(err)
			}
			if _, at := mem.CreatePayment(cust, 100, "ARS", "x"); at != nil {
				add(d.Charge(ctx, *at))
			}
			// Webhooks: one signed with another secret, one the adapter cannot look up.
			other := mpfake.Sign("another-secret", "20000000001", "r1", fmt.Sprint(time.Now().UnixMilli()))
			good := mpfake.Sign(leakHook, "20000000001", "r1", fmt.Sprint(time.Now().UnixMilli()))
			body := []byte(`{"type":"payment","action":"payment.updated","data":{"id":"20000000001"}}`)
			for _, sig := range []string{other, good} {
				h := http.Header{}
				h.Set("X-Signature", sig)
				h.Set("X-Request-Id", "r1")
				add(a.ParseWebhook(h, body))
				add(d.HandleWebhook(ctx, h, body))
			}

			failures := 0
			for i, err := range errs {
				if err == nil {
					continue
				}
				failures++
				for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", a), fmt.Sprint(a)} {
					if strings.Contains(s, leakMark) {
						t.Errorf("call %d: a credential in %q", i, s)
					}
				}
			}
			if failures < 10 {
				t.Fatalf("only %d calls failed; the test needs every call to fail (%v)", failures, errs)
			}
			if strings.Contains(logs.String(), leakMark) {
				t.Errorf("a credential in the logs:\n%s", logs.String())
			}
		})
	}
}
