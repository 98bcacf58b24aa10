package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/stripe"
	"github.com/portero-dev/portero/portal/payments/stripe/stripemock"
)

// ProcessorOptions size the processor benchmark.
type ProcessorOptions struct {
	// Charges per round and side; Rounds alternate the two sides.
	Charges, Rounds int
	Progress        func(format string, args ...any)
}

// Processor measures what the Stripe adapter costs over the processor's own answer: the same
// off-session charge (a PaymentIntent confirmed off-session with a saved card and Portero's
// idempotency key) sent to stripe-mock through the adapter — stripe-go, the request the adapter
// builds, the mapping of the answer — and as one bare HTTP request, in the same run.
func Processor(ctx context.Context, o ProcessorOptions) Section {
	sec := Section{Title: "Processor adapter", Method: []string{
		"stripe-mock (the `bin/k8s/stripe-mock` `make envtest-assets` builds: Stripe's API stub, which checks each request against Stripe's OpenAPI document and answers its fixtures) on loopback, started for the run.",
		fmt.Sprintf("Figure: one off-session charge through the Stripe adapter (`Adapter.Charge`: a PaymentIntent created with confirm, off_session, the saved PaymentMethod and the attempt's Idempotency-Key, through stripe-go, then the answer mapped to a charge result); per charge, one caller, %d rounds of %d charges.", o.Rounds, o.Charges),
		"Baseline: the same request (the same form fields, key and headers) as one bare `net/http` POST to stripe-mock, reading from the answer what any caller must (the PaymentIntent's id, status and last error); each round runs both sides back to back, alternating which goes first, so both see the same load. The ratio is the median of the rounds' ratios; figure and baseline are each side's median round. The `BenchmarkChargeThroughAdapter` and `BenchmarkChargeDirect` Go benchmarks in portal/payments/stripe measure the same two calls.",
	}}
	sm, err := stripemock.StartProcess()
	if err != nil {
		sec.Err = err
		return sec
	}
	defer func() { _ = sm.Stop() }()
	const key = "sk_test_PorteroBench"
	retries := int64(0) // a charge that needs the library's retry would measure the retry
	a, err := stripe.New(stripe.Options{SecretKey: key, WebhookSecret: "whsec_bench", APIBase: sm.URL, MaxNetworkRetries: &retries})
	if err != nil {
		sec.Err = err
		return sec
	}
	client := &http.Client{Timeout: 30 * time.Second}
	seq := 0
	viaAdapter := func() error {
		seq++
		_, err := a.Charge(ctx, payments.ChargeRequest{IdempotencyKey: "pay_bench/" + strconv.Itoa(seq), Amount: 150000,
			Currency: "ARS", Customer: "cus_bench", Method: payments.MethodRef{Type: payments.MethodCard, Token: "pm_card_visa"}})
		return err
	}
	direct := func() error {
		seq++
		k := "pay_bench/" + strconv.Itoa(seq)
		form := url.Values{"amount": {"150000"}, "currency": {"ars"}, "customer": {"cus_bench"},
			"payment_method": {"pm_card_visa"}, "payment_method_types[0]": {"card"}, "confirm": {"true"},
			"off_session": {"true"}, "metadata[portero_attempt]": {k}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sm.URL+"/v1/payment_intents", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", k)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("stripe-mock: %s", resp.Status)
		}
		// What any caller reads to act on the charge: its id, its status and, when it did not
		// succeed, why.
		var pi struct {
			ID               string `json:"id"`
			Status           string `json:"status"`
			LastPaymentError *struct {
				Code        string `json:"code"`
				DeclineCode string `json:"decline_code"`
			} `json:"last_payment_error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&pi); err != nil {
			return fmt.Errorf("stripe-mock's answer: %w", err)
		}
		if pi.ID == "" || pi.Status == "" {
			return errors.New("stripe-mock's answer has no payment intent")
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	round := func(f func() error) (time.Duration, error) {
		start := time.Now()
		for range o.Charges {
			if err := f(); err != nil {
				return 0, err
			}
		}
		return time.Since(start) / time.Duration(o.Charges), nil
	}
	// Warm both paths (connections, stripe-mock's spec lookups) before anything counts.
	for _, f := range []func() error{viaAdapter, direct} {
		if _, err := round(f); err != nil {
			sec.Err = err
			return sec
		}
	}
	var adapterRuns, directRuns []float64
	type side struct {
		charge func() error
		runs   *[]float64
	}
	for r := range o.Rounds {
		o.Progress("processor: round %d of %d", r+1, o.Rounds)
		sides := []side{{viaAdapter, &adapterRuns}, {direct, &directRuns}}
		if r%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0] // neither side always goes first
		}
		for _, s := range sides {
			d, err := round(s.charge)
			if err != nil {
				sec.Err = err
				return sec
			}
			*s.runs = append(*s.runs, float64(d)/float64(time.Millisecond))
		}
	}
	// Each round's two sides ran back to back under the same load: the ratio is the median of
	// the rounds' ratios, which a load change between rounds does not skew.
	var ratios []float64
	for i := range adapterRuns {
		ratios = append(ratios, adapterRuns[i]/directRuns[i])
	}
	r := Median(ratios)
	sec.Rows = append(sec.Rows, Row{
		Benchmark: "Off-session charge through the Stripe adapter (stripe-mock)",
		Figure:    fmt.Sprintf("%.2f ms", Median(adapterRuns)),
		Baseline:  fmt.Sprintf("%.2f ms (the same request, bare)", Median(directRuns)),
		Ratio:     fmt.Sprintf("%.2f×", r),
		Target:    "≤ 1.2× baseline",
		Result:    verdict(r <= 1.2),
		Note:      fmt.Sprintf("rounds (ms per charge): adapter %s; bare %s", Runs(adapterRuns, "%.2f"), Runs(directRuns, "%.2f")),
	})
	return sec
}
