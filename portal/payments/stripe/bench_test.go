package stripe_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/portero-dev/portero/portal/payments"
)

// BenchmarkChargeThroughAdapter and BenchmarkChargeDirect are the same off-session charge
// against stripe-mock: through the adapter (stripe-go, error mapping) and as one bare HTTP
// request. make bench compares them; the adapter is to stay within 1.2× of the bare call.
func BenchmarkChargeThroughAdapter(b *testing.B) {
	a := newAdapter(b, mockURL)
	ctx := context.Background()
	req := payments.ChargeRequest{Amount: 150000, Currency: "ARS", Customer: "cus_bench",
		Method: payments.MethodRef{Type: payments.MethodCard, Token: "pm_card_visa"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.IdempotencyKey = "pay_bench/" + strconv.Itoa(i)
		if _, err := a.Charge(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChargeDirect(b *testing.B) {
	client := &http.Client{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := "pay_bench/" + strconv.Itoa(i)
		form := url.Values{"amount": {"150000"}, "currency": {"ars"}, "customer": {"cus_bench"},
			"payment_method": {"pm_card_visa"}, "payment_method_types[0]": {"card"}, "confirm": {"true"},
			"off_session": {"true"}, "metadata[portero_attempt]": {key}}
		req, _ := http.NewRequest(http.MethodPost, mockURL+"/v1/payment_intents", strings.NewReader(form.Encode()))
		req.Header.Set("Authorization", "Bearer "+testSecretKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}
