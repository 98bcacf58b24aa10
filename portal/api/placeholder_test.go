package api

import (
	"testing"
)

// TestPlaceholderNumbersAreRefusedByTheAPI: the merchant API refuses a card number of no card
// network and all-zero CBUs and CVUs with their own documented codes (the fixture checks every
// error against openapi.json's Error schema, code enum included), and saves nothing.
func TestPlaceholderNumbersAreRefusedByTheAPI(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("placeholder@example.com")
	for _, tc := range []struct {
		body        map[string]any
		code, field string
	}{
		{map[string]any{"type": "card", "card": map[string]any{"number": "0000000000000000", "exp_month": 12, "exp_year": cardExpYear(), "cvc": "123"}}, "unknown_card_network", "card.number"},
		{map[string]any{"type": "direct_debit", "account": "0000000000000000000000"}, "placeholder_cbu", "account"},
		{map[string]any{"type": "cvu", "account": "0000000000000000000000"}, "placeholder_cvu", "account"},
	} {
		res := f.do(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods", body: tc.body})
		if res.status != 400 || res.err(t).Code != tc.code || res.err(t).Field != tc.field {
			t.Errorf("%v: %d %s, want 400 %s (%s)", tc.body, res.status, res.body, tc.code, tc.field)
		}
	}
	var l listResponse[paymentMethodJSON]
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/payment_methods"}, 200, "").json(t, &l)
	if len(l.Data) != 0 {
		t.Fatalf("placeholders were saved: %+v", l.Data)
	}
}
