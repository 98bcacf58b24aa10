package stripe

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	stripelib "github.com/stripe/stripe-go/v84"
	stripeform "github.com/stripe/stripe-go/v84/form"

	"github.com/portero-dev/portero/portal/payments"
)

// TestChargeFormIsTheLibrarys holds chargeForm to what stripe-go's own encoder writes for the
// same PaymentIntentCreateParams: the same keys, the same values, nothing more or less.
func TestChargeFormIsTheLibrarys(t *testing.T) {
	for _, req := range []payments.ChargeRequest{
		{IdempotencyKey: "pay_1/1", Amount: 150000, Currency: "ARS", Customer: "cus_1",
			Method: payments.MethodRef{Type: payments.MethodCard, Token: "pm_card_visa"}},
		{IdempotencyKey: "pay_2/3 ñ&=+", Amount: 1, Currency: "usd", Customer: "cus_2",
			Description: "Cuota de noviembre & más: 100% [extra]", Method: payments.MethodRef{Type: payments.MethodCard, Token: "pm_1"}},
	} {
		p := &stripelib.PaymentIntentCreateParams{
			Amount:             stripelib.Int64(req.Amount),
			Currency:           stripelib.String(strings.ToLower(req.Currency)),
			Customer:           stripelib.String(req.Customer),
			PaymentMethod:      stripelib.String(req.Method.Token),
			PaymentMethodTypes: []*string{stripelib.String("card")},
			Confirm:            stripelib.Bool(true),
			OffSession:         stripelib.Bool(true),
		}
		if req.Description != "" {
			p.Description = stripelib.String(req.Description)
		}
		p.AddMetadata(metaAttempt, req.IdempotencyKey)
		lib := &stripeform.Values{}
		stripeform.AppendTo(lib, p)
		want, err := url.ParseQuery(lib.Encode())
		if err != nil {
			t.Fatal(err)
		}
		got, err := url.ParseQuery(chargeForm(req))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chargeForm(%+v)\n got %v\nwant %v", req, got, want)
		}
	}
}
