package v1alpha1_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/processors"
)

func stripeProcessor() map[string]any {
	return map[string]any{"type": "stripe", "secretRef": map[string]any{"name": "acme-stripe"}}
}

// spec.processor on the real API server: a real processor needs its Secret, and a portal cannot
// allow a method type its processor cannot take — the refusal names the type.
func TestProcessorIsValidated(t *testing.T) {
	cases := []struct {
		name   string
		mutate []func(map[string]any)
		want   []string
	}{
		{"stripe allowing direct_debit", []func(map[string]any){set("spec.processor", stripeProcessor()),
			set("spec.paymentMethods", map[string]any{"allowed": []any{"card", "direct_debit"}})},
			[]string{"paymentMethods.allowed names direct_debit, which processor stripe cannot take; it takes card"}},
		{"stripe allowing two it cannot take", []func(map[string]any){set("spec.processor", stripeProcessor()),
			set("spec.paymentMethods", map[string]any{"allowed": []any{"qr", "card", "cvu"}})},
			[]string{"paymentMethods.allowed names qr, which processor stripe cannot take", "paymentMethods.allowed names cvu, which processor stripe cannot take"}},
		{"mercadopago allowing bank_transfer", []func(map[string]any){
			set("spec.processor", map[string]any{"type": "mercadopago", "secretRef": map[string]any{"name": "mp"}}),
			set("spec.paymentMethods", map[string]any{"allowed": []any{"wallet", "bank_transfer"}})},
			[]string{"paymentMethods.allowed names bank_transfer, which processor mercadopago cannot take; it takes card, qr and wallet"}},
		{"mercadopago allowing direct_debit", []func(map[string]any){
			set("spec.processor", map[string]any{"type": "mercadopago", "secretRef": map[string]any{"name": "mp"}}),
			set("spec.paymentMethods", map[string]any{"allowed": []any{"card", "direct_debit"}})},
			[]string{"paymentMethods.allowed names direct_debit, which processor mercadopago cannot take; it takes card, qr and wallet"}},
		{"stripe without a Secret", []func(map[string]any){set("spec.processor", map[string]any{"type": "stripe"})},
			[]string{"processor.secretRef (the Secret with the processor's credentials) is required unless processor.type is sandbox"}},
		{"unknown processor", []func(map[string]any){set("spec.processor", map[string]any{"type": "paypal", "secretRef": map[string]any{"name": "pp"}})},
			[]string{`supported values: "sandbox", "stripe", "mercadopago"`}},
		{"Secret name not an object name", []func(map[string]any){set("spec.processor", map[string]any{"type": "stripe", "secretRef": map[string]any{"name": "Acme_Stripe"}})},
			[]string{"name must be a valid Kubernetes object name"}},
	}
	ns := newNamespace(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := validPortal()
			for _, m := range c.mutate {
				m(o)
			}
			u := &unstructured.Unstructured{Object: o}
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("proc-%d", i))
			err := k8s.Create(context.Background(), u)
			for _, want := range c.want {
				expectRefused(t, err, want)
			}
		})
	}
}

// A portal naming no processor gets the sandbox; a Stripe portal with all: true, or allowing
// cards only, is accepted and offers cards only; the sandbox takes a Secret too, if named.
func TestProcessorIsAcceptedWithDefaults(t *testing.T) {
	ns := newNamespace(t)
	create := func(name string, mutate ...func(map[string]any)) billingv1alpha1.CustomerPortal {
		t.Helper()
		o := validPortal()
		for _, m := range mutate {
			m(o)
		}
		u := &unstructured.Unstructured{Object: o}
		u.SetNamespace(ns)
		u.SetName(name)
		if err := k8s.Create(context.Background(), u); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		var p billingv1alpha1.CustomerPortal
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := create("default-processor")
	if def.Spec.Processor == nil || def.Spec.Processor.Type != billingv1alpha1.ProcessorSandbox || def.Spec.Processor.SecretRef != nil {
		t.Fatalf("default processor = %+v, want the sandbox without a Secret", def.Spec.Processor)
	}
	if got := def.Spec.EffectivePaymentMethods(); !slices.Equal(got, def.Spec.PaymentMethods.Effective()) {
		t.Fatalf("sandbox effective methods = %v", got)
	}
	all := create("stripe-all", set("spec.processor", stripeProcessor()), set("spec.paymentMethods", map[string]any{"all": true}))
	cards := create("stripe-cards", set("spec.processor", stripeProcessor()), set("spec.paymentMethods", map[string]any{"allowed": []any{"card"}}))
	for _, p := range []billingv1alpha1.CustomerPortal{all, cards} {
		if got := p.Spec.EffectivePaymentMethods(); !slices.Equal(got, []billingv1alpha1.PaymentMethodType{"card"}) {
			t.Errorf("%s: effective methods = %v, want [card]", p.Name, got)
		}
		if p.Spec.AcceptsPaymentMethod(billingv1alpha1.PaymentMethodDirectDebit) {
			t.Errorf("%s accepts direct_debit", p.Name)
		}
	}
	mp := create("mercadopago-card-wallet-qr", set("spec.processor", map[string]any{"type": "mercadopago", "secretRef": map[string]any{"name": "mp"}}),
		set("spec.paymentMethods", map[string]any{"allowed": []any{"card", "wallet", "qr"}}))
	if got := mp.Spec.EffectivePaymentMethods(); !slices.Equal(got, []billingv1alpha1.PaymentMethodType{"card", "qr", "wallet"}) {
		t.Errorf("mercadopago allowing card, wallet and qr: effective methods = %v", got)
	}
	create("sandbox-with-secret", set("spec.processor", map[string]any{"type": "sandbox", "secretRef": map[string]any{"name": "sandbox-key"}}))
}

// The method types the API types say each processor takes are the ones its adapter declares,
// and the Secret keys they say it needs (which the operator checks) are the ones its adapter
// cannot be built without, for every registered processor.
func TestProcessorMethodTypesMatchTheAdapters(t *testing.T) {
	reg := processors.Registry()
	sample := map[string][]byte{
		"secret":         []byte("portero-api-test-sandbox-secret-0123456789"),
		"secret_key":     []byte("sk_test_x"),
		"webhook_secret": []byte("whsec_x"),
		"access_token":   []byte("TEST-api-test-access-token"),
		"public_key":     []byte("TEST-api-test-public-key"),
	}
	for _, typ := range reg.Types() {
		keys := billingv1alpha1.ProcessorType(typ).SecretKeys()
		secret := map[string][]byte{}
		for _, k := range keys {
			secret[k] = sample[k]
		}
		a, err := reg.New(typ, payments.Config{Secret: secret})
		if err != nil {
			t.Fatalf("build %s from the keys %v: %v", typ, keys, err)
		}
		for _, drop := range keys {
			less := maps.Clone(secret)
			delete(less, drop)
			if _, err := reg.New(typ, payments.Config{Secret: less}); err == nil {
				t.Errorf("%s was built without %q, a key the operator requires", typ, drop)
			}
		}
		var want []billingv1alpha1.PaymentMethodType
		for _, t := range a.Capabilities().MethodTypes {
			want = append(want, billingv1alpha1.PaymentMethodType(t))
		}
		got := billingv1alpha1.ProcessorType(typ).MethodTypes()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the API types say it takes %v, its adapter %v", typ, got, want)
		}
	}
}

// The CEL rules and ProcessorType.MethodTypes agree: for every processor and every type, a portal
// allowing only that type is accepted exactly when the processor takes it.
func TestProcessorRulesMatchMethodTypes(t *testing.T) {
	ns := newNamespace(t)
	for _, proc := range []billingv1alpha1.ProcessorType{billingv1alpha1.ProcessorSandbox, billingv1alpha1.ProcessorStripe, billingv1alpha1.ProcessorMercadoPago} {
		for _, typ := range billingv1alpha1.SupportedPaymentMethodTypes() {
			o := validPortal()
			set("spec.processor", map[string]any{"type": string(proc), "secretRef": map[string]any{"name": "creds"}})(o)
			set("spec.paymentMethods", map[string]any{"allowed": []any{string(typ)}})(o)
			u := &unstructured.Unstructured{Object: o}
			u.SetNamespace(ns)
			u.SetName(strings.ReplaceAll(fmt.Sprintf("%s-%s", proc, typ), "_", "-"))
			err := k8s.Create(context.Background(), u)
			if takes := slices.Contains(proc.MethodTypes(), typ); takes && err != nil {
				t.Errorf("%s allowing %s refused: %v", proc, typ, err)
			} else if !takes {
				expectRefused(t, err, "paymentMethods.allowed names "+string(typ)+", which processor "+string(proc)+" cannot take")
			}
		}
	}
}
