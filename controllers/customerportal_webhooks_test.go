package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// A webhook endpoint's Secret is checked like the other referenced Secrets (missing, missing its
// key, not a Standard Webhooks secret, or an unusable "previous" while it rotates: Stalled,
// naming the field, never the value); a URL the portal would refuse to send to is Stalled too,
// not left for the portal to skip in silence; once all is right the portal proceeds and its Role
// may get that Secret by name, and nothing else about it.
func TestWebhookEndpointIsCheckedAndGranted(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	p := minimalPortal(ns, "hooks")
	p.Spec.Webhooks = []billingv1alpha1.WebhookEndpoint{{Name: "backend", URL: "https://acme.example/hooks",
		SecretRef: billingv1alpha1.WebhookSecretReference{Name: "acme-webhooks"}}}
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
	stalled(ReasonSecretMissing, `Secret "acme-webhooks" named in spec.webhooks[0].secretRef does not exist`)

	const bad = "whsec_dG9vc2hvcnQ=" // "tooshort": 8 bytes
	createSecret(t, ns, "acme-webhooks", map[string]string{"secret": bad})
	stalled(ReasonSecretInvalid, `Secret "acme-webhooks" named in spec.webhooks[0].secretRef: key "secret": a webhook secret must be`)
	if got := getPortal(t, p); strings.Contains(fmt.Sprint(got.Status), "dG9vc2hvcnQ") {
		t.Fatal("the status holds the secret")
	}

	const good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-webhooks"}}
	update(t, sec, func(s *corev1.Secret) { s.StringData = map[string]string{"secret": good, "previous": bad} })
	stalled(ReasonSecretInvalid, `Secret "acme-webhooks" named in spec.webhooks[0].secretRef: key "previous": a webhook secret must be`)

	update(t, sec, func(s *corev1.Secret) { s.Data = map[string][]byte{"secret": []byte(good)}; s.StringData = nil })
	// The API server takes a URL with credentials in it (isURL), the portal never sends there.
	update(t, getPortal(t, p), func(got *billingv1alpha1.CustomerPortal) {
		got.Spec.Webhooks[0].URL = "https://user:hunter2@acme.example/hooks"
	})
	stalled(ReasonInvalidSpec, "spec.webhooks[0].url: a webhook url must be an absolute https:// URL without credentials")
	if got := getPortal(t, p); strings.Contains(fmt.Sprint(got.Status), "hunter2") {
		t.Fatal("the status repeats the URL's password")
	}

	update(t, getPortal(t, p), func(got *billingv1alpha1.CustomerPortal) { got.Spec.Webhooks[0].URL = "https://acme.example/hooks" })
	eventually(t, "no longer stalled once endpoint and Secret are right", func() error {
		got := getPortal(t, p)
		if c := condition(got, ConditionStalled); c != nil {
			return fmt.Errorf("stalled: %s", c.Message)
		}
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	eventually(t, "the Role may get the webhook Secret", func() error {
		role := &rbacv1.Role{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: namesFor(p).role}, role); err != nil {
			return err
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, "secrets") && slices.Contains(r.ResourceNames, "acme-webhooks") {
				if !slices.Equal(r.Verbs, []string{"get"}) {
					return fmt.Errorf("verbs on the webhook Secret = %v, want get only", r.Verbs)
				}
				return nil
			}
		}
		return fmt.Errorf("no rule names acme-webhooks: %+v", role.Rules)
	})
}
