package ledger

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSettleIncomplete measures AddPaymentMethod for a customer with 5 incomplete
// payments on SQLite: the method insert plus claiming, charging (sandbox) and recording each
// payment.
func BenchmarkSettleIncomplete(b *testing.B) {
	const perCustomer = 5
	e := newEnv(b, SQLite)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := e.customer(b, fmt.Sprintf("bench%d@example.com", i))
		for j := 0; j < perCustomer; j++ {
			e.pay(b, c.ID, 1000)
		}
		b.StartTimer()
		e.addMethod(b, c.ID, card("4242424242424242"))
		b.StopTimer()
		page, err := e.store.ListPayments(e.ctx, ListPaymentsParams{CustomerID: c.ID, Status: PaymentSucceeded})
		if err != nil || len(page.Items) != perCustomer {
			b.Fatalf("settled %d of %d: %v", len(page.Items), perCustomer, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(perCustomer), "payments/op")
}

// BenchmarkGetCustomer is the read the portal makes on every signed-in request, on SQLite, in
// a request's context (one that can be canceled): the customer's version, and the kept copy.
func BenchmarkGetCustomer(b *testing.B) {
	e := newEnv(b, SQLite)
	c := e.customer(b, "bench@example.com")
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.store.GetCustomer(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
	}
}
