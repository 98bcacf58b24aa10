package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// A Stripe portal's processor Secret is checked like the other referenced Secrets: missing, or
// missing a key the processor needs, is Stalled with a reason that names it (never a value);
// once complete the portal proceeds, its Role may get that Secret by name, and status offers
// what the processor takes.
func TestProcessorSecretStallsAndIsGranted(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	p := minimalPortal(ns, "stripe")
	p.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{All: true}
	p.Spec.Processor = &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorStripe,
		SecretRef: &billingv1alpha1.LocalObjectReference{Name: "acme-stripe"}}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	stalled := func(reason, want string) {
		t.Helper()
		eventually(t, "Stalled: "+want, func() error {
			got := getPortal(t, p)
			s := condition(got, ConditionStalled)
			if s == nil || s.Status != metav1.ConditionTrue || s.Reason != reason {
				return fmt.Errorf("conditions %+v", got.Status.Conditions)
			}
			if !strings.Contains(s.Message, want) {
				return fmt.Errorf("message %q does not say %q", s.Message, want)
			}
			return nil
		})
	}
	stalled(ReasonSecretMissing, `Secret "acme-stripe" named in spec.processor.secretRef does not exist`)

	const secretKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
	createSecret(t, ns, "acme-stripe", map[string]string{"secret_key": secretKey})
	stalled(ReasonSecretKeyMissing, `Secret "acme-stripe" named in spec.processor.secretRef has no "webhook_secret" key`)
	if got := getPortal(t, p); strings.Contains(fmt.Sprint(got.Status), secretKey) {
		t.Fatal("the status holds the secret key")
	}

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-stripe"}}
	update(t, sec, func(s *corev1.Secret) { s.StringData = map[string]string{"webhook_secret": "whsec_test"} })
	var got *billingv1alpha1.CustomerPortal
	eventually(t, "no longer stalled once the Secret is complete", func() error {
		got = getPortal(t, p)
		if c := condition(got, ConditionStalled); c != nil {
			return fmt.Errorf("stalled: %s", c.Message)
		}
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	if !slices.Equal(got.Status.PaymentMethods, []billingv1alpha1.PaymentMethodType{"card"}) {
		t.Errorf("status.paymentMethods = %v, want [card]: all: true means what Stripe takes", got.Status.PaymentMethods)
	}
	eventually(t, "the Role may get the processor Secret", func() error {
		role := &rbacv1.Role{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: namesFor(p).role}, role); err != nil {
			return err
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, "secrets") && slices.Contains(r.ResourceNames, "acme-stripe") {
				if !slices.Equal(r.Verbs, []string{"get"}) {
					return fmt.Errorf("verbs on the processor Secret = %v, want get only", r.Verbs)
				}
				return nil
			}
		}
		return fmt.Errorf("no rule names acme-stripe: %+v", role.Rules)
	})
}

// The portal reads its processor live, so switching processors never rolls the pods.
func TestProcessorChangeDoesNotRollPods(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	createSecret(t, ns, "acme-stripe", map[string]string{"secret_key": "sk_test_x", "webhook_secret": "whsec_x"})
	p := minimalPortal(ns, "switch")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	got := waitObserved(t, p)
	if !slices.Equal(got.Status.PaymentMethods, []billingv1alpha1.PaymentMethodType{"card", "cvu"}) {
		t.Fatalf("sandbox status.paymentMethods = %v", got.Status.PaymentMethods)
	}
	before, err := getDeployment(ns, namesFor(p).deployment)
	if err != nil {
		t.Fatal(err)
	}
	update(t, got, func(got *billingv1alpha1.CustomerPortal) {
		got.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card"}}
		got.Spec.Processor = &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorStripe,
			SecretRef: &billingv1alpha1.LocalObjectReference{Name: "acme-stripe"}}
	})
	got = waitObserved(t, p)
	if c := condition(got, ConditionStalled); c != nil {
		t.Fatalf("stalled: %s", c.Message)
	}
	after, err := getDeployment(ns, namesFor(p).deployment)
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || !equality.Semantic.DeepEqual(after.Spec.Template, before.Spec.Template) {
		t.Fatalf("switching the processor rolled the pods: generation %d → %d", before.Generation, after.Generation)
	}
}
