package billing

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// TestPaymentOutcomesAreCounted: the ledger's hooks count every charge attempt by its outcome
// and every payment left incomplete, the series behind the dashboard's payments panel and the
// payment failure alert (config/prometheus).
func TestPaymentOutcomesAreCounted(t *testing.T) {
	f := newFixture(t)
	pay := func(customerID, key string) ledger.Payment {
		t.Helper()
		p, err := f.store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: customerID, Amount: 150000, Currency: "ARS",
			Description: "Consumo", IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := f.customer("good@example.com")
	f.addCard(good.ID)
	declined := f.customer("declined@example.com")
	if _, err := f.store.AddPaymentMethod(f.ctx, declined.ID, flowtest.Method{Type: payments.MethodCard,
		Card: &payments.CardDetails{Number: "4000000000000002", ExpMonth: 12, ExpYear: start.Year() + 4, CVC: "123"}}); err != nil {
		t.Fatal(err)
	}
	none := f.customer("none@example.com")

	for _, c := range []struct {
		customer, key string
		want          ledger.PaymentStatus
	}{{good.ID, "a", ledger.PaymentSucceeded}, {good.ID, "b", ledger.PaymentSucceeded}, {declined.ID, "c", ledger.PaymentFailed}, {none.ID, "d", ledger.PaymentIncomplete}} {
		if p := pay(c.customer, c.key); p.Status != c.want {
			t.Fatalf("payment %s is %s, want %s", c.key, p.Status, c.want)
		}
	}
	pay(good.ID, "a") // a retry with the same key charges nothing, so counts nothing

	for outcome, want := range map[string]float64{"succeeded": 2, "failed": 1, "incomplete": 1, "pending": 0} {
		if got := testutil.ToFloat64(f.loops.metrics.payments.WithLabelValues(outcome)); got != want {
			t.Errorf("portero_payments_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}
