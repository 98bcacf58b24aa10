package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// overviewCustomer seeds the customer of the portal throughput benchmark (bench/portal.go):
// 5 payment methods, 3 subscriptions (each billed once) and 47 more payments.
func (f *fixture) overviewCustomer() ledger.Customer {
	f.t.Helper()
	c, err := f.ledger.CreateCustomer(f.ctx, ledger.NewCustomer{Email: "ana@bench.example", Name: "Ana Benchmark",
		Billing: ledger.BillingProfile{LegalName: "Ana Benchmark", TaxID: "27-28033514-8", TaxCondition: ledger.ResponsableInscripto,
			Address: ledger.Address{Line1: "Av. Corrientes 1234", City: "CABA", Province: "Buenos Aires", PostalCode: "C1043", Country: "AR"}}})
	if err != nil {
		f.t.Fatal(err)
	}
	year := f.clock.Now().Year() + 3
	for _, m := range []flowtest.Method{
		{Type: payments.MethodCard, Card: &payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: year, CVC: "123"}},
		{Type: payments.MethodCard, Card: &payments.CardDetails{Number: "5555555555554444", ExpMonth: 6, ExpYear: year, CVC: "123"}},
		{Type: payments.MethodCard, Card: &payments.CardDetails{Number: "378282246310005", ExpMonth: 3, ExpYear: year, CVC: "1234"}},
		{Type: payments.MethodDirectDebit, Account: goodCBU},
		{Type: payments.MethodWallet, Wallet: "mercadopago"},
	} {
		f.addMethod(c, m)
	}
	for i, plan := range []string{"Plan Profesional", "Soporte Premium", "Almacenamiento extra"} {
		if _, _, err := f.ledger.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: plan,
			Amount: int64(150000 * (i + 1)), Currency: ledger.ARS, Interval: ledger.Month}); err != nil {
			f.t.Fatal(err)
		}
	}
	for i := range 47 {
		if _, err := f.ledger.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: int64(250000 + i*1000), Currency: ledger.ARS,
			Description: fmt.Sprintf("Consumo adicional #%d", i+1), IdempotencyKey: fmt.Sprintf("seed-%d", i)}); err != nil {
			f.t.Fatal(err)
		}
	}
	return c
}

// linkSession signs a browser in for c through a PortalSession link, as the benchmark's
// harness does, and returns the request's Cookie header.
func (f *fixture) linkSession(c ledger.Customer) string {
	f.t.Helper()
	ps, _ := f.session("bench", billingv1alpha1.CustomerReference{ID: c.ID}, nil, 2*time.Hour)
	cookie, _, err := f.auth.CreateSession(f.ctx, auth.NewSession{Portal: f.portal.Namespace + "/" + f.portal.Name,
		CustomerID: c.ID, Email: c.Email, PortalSession: ps.Name, Method: auth.MethodLink})
	if err != nil {
		f.t.Fatal(err)
	}
	return "__Host-portero=" + cookie
}

// BenchmarkOverviewPage serves the signed-in overview of the portal throughput benchmark's
// customer through the whole handler (session, rules, ledger, render): ns/op is the portal's
// CPU per page, less net/http's own work. "kept" is the page as the benchmark sees it, served
// again from the page cache; "rendered" is the page after any change, read and rendered afresh.
func BenchmarkOverviewPage(b *testing.B) {
	f := newFixture(b)
	c := f.overviewCustomer()
	cookie := f.linkSession(c)
	for _, bc := range []struct {
		name string
		h    *Handler
	}{{"kept", f.h}, {"rendered", f.uncached()}} {
		b.Run(bc.name, func(b *testing.B) {
			serve := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodGet, "http://billing.acme.example/", nil)
				req.Header.Set("Cookie", cookie)
				rec := httptest.NewRecorder()
				bc.h.ServeHTTP(rec, req)
				return rec
			}
			if rec := serve(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "4242") {
				b.Fatalf("overview: %d\n%s", rec.Code, rec.Body.String())
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				if rec := serve(); rec.Code != http.StatusOK {
					b.Fatalf("overview: %d", rec.Code)
				}
			}
			// The process's CPU time, GC included, is steadier than ns/op on a shared machine.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) the test process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
