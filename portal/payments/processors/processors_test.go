package processors_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/processors"
)

func TestRegistry(t *testing.T) {
	r := processors.Registry()
	if got := r.Types(); !slices.Equal(got, []payments.ProcessorType{mercadopago.Type, payments.ProcessorSandbox, payments.ProcessorStripe}) {
		t.Fatalf("Types = %v", got)
	}
	sb, err := r.New(payments.ProcessorSandbox, payments.Config{Secret: map[string][]byte{"secret": []byte("0123456789abcdef0123456789abcdef")}})
	if err != nil || sb.Type() != payments.ProcessorSandbox || sb.Capabilities().HostedSetup || len(sb.Capabilities().MethodTypes) != 6 {
		t.Fatalf("sandbox = %v, %v", sb, err)
	}
	if _, ok := sb.(payments.CardTokenizer); !ok {
		t.Fatal("the sandbox takes cards in the portal's form, so it must tokenize them")
	}
	if a, err := r.New(payments.ProcessorSandbox, payments.Config{}); err == nil || a != nil {
		t.Fatalf("sandbox without a secret = %v, %v", a, err)
	}
	st, err := r.New(payments.ProcessorStripe, payments.Config{Secret: map[string][]byte{
		"secret_key": []byte("sk_test_x"), "webhook_secret": []byte("whsec_x")}})
	if err != nil || st.Type() != payments.ProcessorStripe || !st.Capabilities().HostedSetup {
		t.Fatalf("stripe = %v, %v", st, err)
	}
	mp, err := r.New(mercadopago.Type, payments.Config{Secret: map[string][]byte{
		"access_token": []byte("TEST-0000"), "public_key": []byte("TEST-pk"), "webhook_secret": []byte("s3cret")}})
	if err != nil || mp.Type() != mercadopago.Type || !mp.Capabilities().HostedSetup || len(mp.Capabilities().MethodTypes) != 3 {
		t.Fatalf("mercadopago = %v, %v", mp, err)
	}
	if a, err := r.New(mercadopago.Type, payments.Config{}); err == nil || a != nil {
		t.Fatalf("mercadopago without credentials = %v, %v", a, err)
	}
	_, err = r.New("paypal", payments.Config{})
	var unknown *payments.UnknownProcessorError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "mercadopago, sandbox, stripe") {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	r := payments.NewRegistry()
	f := func(payments.Config) (payments.Adapter, error) { return nil, nil }
	r.Register("x", f)
	defer func() {
		if recover() == nil {
			t.Fatal("registering a type twice did not panic")
		}
	}()
	r.Register("x", f)
}
