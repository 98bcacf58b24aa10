package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

func TestFormatMoney(t *testing.T) {
	tests := []struct {
		locale string
		amount int64
		cur    ledger.Currency
		want   string
	}{
		{"es", 123456789, ledger.ARS, "$ 1.234.567,89"},
		{"es", 5, ledger.ARS, "$ 0,05"},
		{"es", 100000, ledger.USD, "US$ 1.000,00"},
		{"en", 123456789, ledger.ARS, "ARS 1,234,567.89"},
		{"en", -2500, ledger.USD, "USD -25.00"},
		{"en", 99900, ledger.ARS, "ARS 999.00"},
	}
	for _, tt := range tests {
		if got := formatMoney(tt.locale, tt.amount, tt.cur); got != tt.want {
			t.Errorf("formatMoney(%s, %d, %s) = %q, want %q", tt.locale, tt.amount, tt.cur, got, tt.want)
		}
	}
	d := time.Date(2026, time.September, 5, 23, 30, 0, 0, time.UTC)
	if got := formatDate("es", d); got != "5 sept 2026" {
		t.Errorf("es date = %q", got)
	}
	if got := formatDate("en", d); got != "Sep 5, 2026" {
		t.Errorf("en date = %q", got)
	}
	// Days are Argentina's (the ledger's billing days): 01:00 UTC on the 6th is still the 5th.
	late := time.Date(2026, time.September, 6, 1, 0, 0, 0, time.UTC)
	if got := formatDate("es", late); got != "5 sept 2026" {
		t.Errorf("es date of 01:00 UTC = %q, want Argentina's day", got)
	}
	if got := formatDateTime("es", late); got != "5 sept 2026 22:00 (UTC−3)" {
		t.Errorf("es date and time = %q", got)
	}
}

func TestFlowTargetFollowsPermissions(t *testing.T) {
	off := new(bool)
	p := &billingv1alpha1.CustomerPortal{}
	ps := &billingv1alpha1.PortalSession{}
	ps.Spec.Flow = &billingv1alpha1.Flow{Type: billingv1alpha1.FlowUpdatePaymentMethod, SubscriptionID: "sub_1"}
	if got := flowTarget(p, ps); got != "/subscriptions/sub_1" {
		t.Errorf("update method for a subscription → %s", got)
	}
	p.Spec.Permissions.UpdatePaymentMethod = off
	if got := flowTarget(p, ps); got != "/" {
		t.Errorf("update method with the section off → %s", got)
	}
	ps.Spec.Flow = &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCancelSubscription, SubscriptionID: "sub/../x"}
	if got := flowTarget(p, ps); got != "/subscriptions/sub%2F..%2Fx" {
		t.Errorf("cancel without permission → %s", got)
	}
	ps.Spec.Flow = nil
	if got := flowTarget(p, ps); got != "/" {
		t.Errorf("no flow → %s", got)
	}
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://acme.example/x":       "https://acme.example/x",
		"http://127.0.0.1:8080/back":   "http://127.0.0.1:8080/back",
		"http://acme.example/":         "",
		"javascript:alert(1)":          "",
		"https://user:pw@acme.example": "",
		"//acme.example":               "",
		"":                             "",
	} {
		if got := safeURL(in); got != want {
			t.Errorf("safeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The security headers' value slices are shared by every response: a handler adding to or
// replacing a header changes its own response only.
func TestSecurityHeadersAreNotShared(t *testing.T) {
	h := &Handler{}
	var second http.Header
	for i := range 2 {
		rec := httptest.NewRecorder()
		h.secure(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if i == 0 {
				for k := range securityHeaders {
					w.Header().Add(k, "added")
				}
				w.Header().Set("X-Frame-Options", "SAMEORIGIN")
			}
		})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		second = rec.Header()
	}
	for k, v := range securityHeaders {
		if len(v) != 1 || len(second[k]) != 1 || second[k][0] != v[0] {
			t.Errorf("%s: %q on the next response, %q kept", k, second[k], v)
		}
	}
}
