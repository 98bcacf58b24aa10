package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/auth"
)

var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env, &k8s)) }

func TestServerIsRealKubernetes137(t *testing.T) {
	v, err := env.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v1.37.") {
		t.Fatalf("API server reports %q, want v1.37.x", v)
	}
}

// TestSamplesAreAccepted applies every file in config/samples/ to the real API server.
func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			obj.SetNamespace(ns)
			if err := k8s.Create(context.Background(), obj); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), obj.GetKind(), obj.GetName(), err)
			}
		}
	}
}

// TestDefaults checks that a minimal portal gets every documented default from the schema.
func TestDefaults(t *testing.T) {
	ns := newNamespace(t)
	p := &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Name: "minimal", Namespace: ns},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Minimal",
			Access:      billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptr(false)}},
		},
	}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"permissions.updateBillingInfo", *s.Permissions.UpdateBillingInfo, true},
		{"permissions.viewPaymentHistory", *s.Permissions.ViewPaymentHistory, true},
		{"permissions.updatePaymentMethod", *s.Permissions.UpdatePaymentMethod, true},
		{"permissions.cancelSubscriptions", *s.Permissions.CancelSubscriptions, false},
		{"cancellation.mode", s.Cancellation.Mode, billingv1alpha1.CancelAtPeriodEnd},
		{"paymentMethods.all", s.PaymentMethods.All, true},
		{"access.sessions.defaultTTL", s.Access.Sessions.DefaultTTL.Duration.String(), "1h0m0s"},
		{"access.sessions.maxTTL", s.Access.Sessions.MaxTTL.Duration.String(), "24h0m0s"},
		{"otp.length", s.OTP.Length, int32(6)},
		{"otp.ttl", s.OTP.TTL.Duration.String(), "10m0s"},
		{"otp.maxAttempts", s.OTP.MaxAttempts, int32(5)},
		{"otp.resendCooldown", s.OTP.ResendCooldown.Duration.String(), "30s"},
		{"branding.locale", s.Branding.Locale, "es"},
		{"storage.sqlite.size", s.Storage.SQLite.Size.String(), "1Gi"},
		{"replicas", *s.Replicas, int32(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func validPortal() map[string]any {
	return map[string]any{
		"apiVersion": "billing.portero.dev/v1alpha1",
		"kind":       "CustomerPortal",
		"metadata":   map[string]any{"name": "p"},
		"spec": map[string]any{
			"displayName":    "Acme",
			"paymentMethods": map[string]any{"allowed": []any{"card", "cvu"}},
			"email": map[string]any{
				"smtpSecretRef": map[string]any{"name": "smtp"},
				"from":          "Acme <billing@acme.example>",
			},
		},
	}
}

func validSession() map[string]any {
	return map[string]any{
		"apiVersion": "billing.portero.dev/v1alpha1",
		"kind":       "PortalSession",
		"metadata":   map[string]any{"name": "s"},
		"spec": map[string]any{
			"portalRef": map[string]any{"name": "acme"},
			"customer":  map[string]any{"id": "cus_123"},
		},
	}
}

// TestInvalidObjectsAreRefused applies invalid objects and checks each is refused with the message
// that tells a person what to fix.
func TestInvalidObjectsAreRefused(t *testing.T) {
	cases := []struct {
		name   string
		base   func() map[string]any
		mutate func(o map[string]any)
		want   string
	}{
		{"missing displayName", validPortal, del("spec.displayName"), "spec.displayName: Required value"},
		{"empty displayName", validPortal, set("spec.displayName", ""), "should be at least 1 chars long"},
		{"long displayName", validPortal, set("spec.displayName", strings.Repeat("x", 101)), "may not be more than 100 bytes"},
		{"bad cancellation mode", validPortal, set("spec.cancellation", map[string]any{"mode": "Never"}), `supported values: "AtPeriodEnd", "Immediately"`},
		{"both allowed and all", validPortal, set("spec.paymentMethods", map[string]any{"allowed": []any{"card"}, "all": true}), "set exactly one of paymentMethods.allowed"},
		{"neither allowed nor all", validPortal, set("spec.paymentMethods", map[string]any{}), "set exactly one of paymentMethods.allowed"},
		{"unknown method type", validPortal, set("spec.paymentMethods.allowed", []any{"card", "cheque"}), `supported values: "card", "direct_debit", "bank_transfer", "cvu", "qr", "wallet"`},
		{"duplicate method", validPortal, set("spec.paymentMethods.allowed", []any{"card", "card"}), `Duplicate value: "card"`},
		{"plain-http returnURL", validPortal, set("spec.returnURL", "http://acme.example/account"), "returnURL must be an absolute https:// URL"},
		{"relative returnURL", validPortal, set("spec.returnURL", "/account"), "returnURL must be an absolute https:// URL"},
		{"defaultTTL too short", validPortal, set("spec.access", map[string]any{"sessions": map[string]any{"defaultTTL": "30s"}}), "access.sessions.defaultTTL must be between 1m and 168h"},
		{"maxTTL too long", validPortal, set("spec.access", map[string]any{"sessions": map[string]any{"maxTTL": "200h"}}), "access.sessions.maxTTL must be between 1m and 168h"},
		{"defaultTTL above maxTTL", validPortal, set("spec.access", map[string]any{"sessions": map[string]any{"defaultTTL": "2h", "maxTTL": "1h"}}), "must not be longer than access.sessions.maxTTL"},
		{"maxTTL under the 1h default", validPortal, set("spec.access", map[string]any{"sessions": map[string]any{"maxTTL": "30m"}}), "defaultTTL (1h when not set) must not be longer than access.sessions.maxTTL: with a maxTTL under 1h, set defaultTTL too"},
		{"TTL not a duration", validPortal, set("spec.access", map[string]any{"sessions": map[string]any{"maxTTL": "one day"}}), "spec.access.sessions.maxTTL"},
		{"otp too short", validPortal, set("spec.otp", map[string]any{"length": int64(4)}), "spec.otp.length: Invalid value: 4: spec.otp.length in body should be greater than or equal to 6"},
		{"otp too long", validPortal, set("spec.otp", map[string]any{"length": int64(11)}), "should be less than or equal to 10"},
		{"otp ttl too long", validPortal, set("spec.otp", map[string]any{"ttl": "2h"}), "otp.ttl must be between 1m and 1h"},
		{"otp attempts zero", validPortal, set("spec.otp", map[string]any{"maxAttempts": int64(0)}), "spec.otp.maxAttempts"},
		{"otp attempts too many", validPortal, set("spec.otp", map[string]any{"maxAttempts": int64(11)}), "should be less than or equal to 10"},
		{"bad colour", validPortal, set("spec.branding", map[string]any{"primaryColor": "blue"}), "branding.primaryColor must be a hex colour like #0a7cff"},
		{"bad locale", validPortal, set("spec.branding", map[string]any{"locale": "fr"}), `supported values: "es", "en"`},
		{"bad support email", validPortal, set("spec.branding", map[string]any{"supportEmail": "soporte"}), "branding.supportEmail must be an e-mail address"},
		{"replicas > 1 on sqlite", validPortal, set("spec.replicas", int64(3)), "replicas above 1 need storage.postgres"},
		{"replicas too many", validPortal, set("spec.replicas", int64(51)), "should be less than or equal to 50"},
		{"missing email with public access", validPortal, del("spec.email"), "email (smtpSecretRef and from) is required while access.public.enabled is true"},
		{"bad from", validPortal, set("spec.email.from", "billing"), "email.from must be an address"},
		{"both sqlite and postgres", validPortal, set("spec.storage", map[string]any{"sqlite": map[string]any{}, "postgres": map[string]any{"secretRef": map[string]any{"name": "db"}}}), "storage needs exactly one of sqlite or postgres"},
		{"bad secret name", validPortal, set("spec.email.smtpSecretRef.name", "SMTP_Secret"), "name must be a valid Kubernetes object name"},
		{"publicURL and host", validPortal, set("spec.exposure", map[string]any{"publicURL": "https://b.example/", "host": "b.example"}), "set exposure.publicURL or exposure.host, not both"},
		{"tls without host", validPortal, set("spec.exposure", map[string]any{"tlsSecretName": "tls"}), "exposure.ingressClassName and exposure.tlsSecretName need exposure.host"},
		{"plain-http publicURL", validPortal, set("spec.exposure", map[string]any{"publicURL": "http://billing.example/"}), "exposure.publicURL must be an absolute https:// URL"},
		{"session both id and email", validSession, set("spec.customer", map[string]any{"id": "cus_1", "email": "a@b.example"}), "customer needs exactly one of id or email"},
		{"session neither id nor email", validSession, set("spec.customer", map[string]any{}), "customer needs exactly one of id or email"},
		{"session missing portalRef", validSession, del("spec.portalRef"), "spec.portalRef: Required value"},
		{"session ttl too short", validSession, set("spec.ttl", "10s"), "ttl must be between 30s and 168h"},
		{"session ttl too long", validSession, set("spec.ttl", "169h"), "ttl must be between 30s and 168h"},
		{"complete_payment without paymentID", validSession, set("spec.flow", map[string]any{"type": "complete_payment"}), "flow.type complete_payment needs flow.paymentID"},
		{"cancel_subscription without subscriptionID", validSession, set("spec.flow", map[string]any{"type": "cancel_subscription"}), "flow.type cancel_subscription needs flow.subscriptionID"},
		{"unknown flow", validSession, set("spec.flow", map[string]any{"type": "delete_account"}), `supported values: "update_payment_method"`},
		{"session plain-http returnURL", validSession, set("spec.returnURL", "http://shop.example/"), "returnURL must be an absolute https:// URL"},
		{"negative ttlSecondsAfterExpired", validSession, set("spec.ttlSecondsAfterExpired", int64(-1)), "should be greater than or equal to 0"},
	}
	ns := newNamespace(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.base()
			c.mutate(o)
			u := &unstructured.Unstructured{Object: o}
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("case-%d", i))
			err := k8s.Create(context.Background(), u)
			expectRefused(t, err, c.want)
		})
	}
}

// TestSessionUpdatesAreRefused checks immutability and the one-way revoked flag.
func TestSessionUpdatesAreRefused(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(o map[string]any)
		want   string
	}{
		{"changing customer", set("spec.customer", map[string]any{"id": "cus_other"}), "customer is immutable"},
		{"changing portalRef", set("spec.portalRef", map[string]any{"name": "other"}), "portalRef is immutable"},
		{"adding ttl", set("spec.ttl", "2h"), "ttl is immutable"},
		{"changing flow", set("spec.flow", map[string]any{"type": "update_billing_info"}), "flow is immutable"},
		{"adding delivery", set("spec.delivery", map[string]any{"email": true}), "delivery is immutable"},
		{"un-revoking", set("spec.revoked", false), "revoked can only change from false to true"},
		{"removing revoked", del("spec.revoked"), "revoked can only change from false to true"},
	}
	ns := newNamespace(t)
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := validSession()
			set("spec.flow", map[string]any{"type": "update_payment_method"})(o)
			set("spec.revoked", true)(o)
			if !strings.Contains(c.name, "revok") {
				set("spec.revoked", false)(o)
			}
			u := &unstructured.Unstructured{Object: o}
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("upd-%d", i))
			if err := k8s.Create(ctx, u); err != nil {
				t.Fatalf("create valid session: %v", err)
			}
			c.mutate(u.Object)
			expectRefused(t, k8s.Update(ctx, u), c.want)
		})
	}

	t.Run("revoking is allowed", func(t *testing.T) {
		u := &unstructured.Unstructured{Object: validSession()}
		u.SetNamespace(ns)
		u.SetName("revoke-ok")
		if err := k8s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		set("spec.revoked", true)(u.Object)
		if err := k8s.Update(ctx, u); err != nil {
			t.Fatalf("revoking must be allowed: %v", err)
		}
	})
}

func expectRefused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("object was accepted; want refusal mentioning %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal does not say %q:\n%v", want, err)
	}
}

func set(path string, v any) func(map[string]any) {
	return func(o map[string]any) {
		if err := unstructured.SetNestedField(o, v, strings.Split(path, ".")...); err != nil {
			panic(err)
		}
	}
}

func del(path string) func(map[string]any) {
	return func(o map[string]any) { unstructured.RemoveNestedField(o, strings.Split(path, ".")...) }
}

func ptr[T any](v T) *T { return &v }

func newNamespace(t *testing.T) string {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetGenerateName("test-")
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u.GetName()
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// TestSessionEmailMatchesThePortal: an e-mail address the API server accepts in a PortalSession
// must be one the portal can use (auth.NormalizeEmail); otherwise the link would name nobody and
// the mistake would surface only when the customer clicks. The API server may be stricter.
func TestSessionEmailMatchesThePortal(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cases := []string{
		"jane@example.com", "Jane.Doe+billing@Example.com.ar", "j_o-e'x@sub.example.co", "ñandú@correo.example",
		"1@2.ar", "jane@example", "jane@example.com.", "jane@.example.com", "jane@example..com",
		"a..b@example.com", ".jane@example.com", "jane.@example.com", "a,b@example.com", "a;b@example.com",
		"Jane <jane@example.com>", `"jane"@example.com`, "jane@[127.0.0.1]", "jane(x)@example.com",
		"jane@exa mple.com", "jane@@example.com", "@example.com", "jane@", "a:b@example.com",
	}
	for i, email := range cases {
		u := &unstructured.Unstructured{Object: validSession()}
		set("spec.customer", map[string]any{"email": email})(u.Object)
		u.SetNamespace(ns)
		u.SetName(fmt.Sprintf("email-%d", i))
		err := k8s.Create(ctx, u, client.DryRunAll)
		if err != nil && !apierrors.IsInvalid(err) {
			t.Fatalf("%q: %v", email, err)
		}
		_, portalOK := auth.NormalizeEmail(email)
		if err == nil && !portalOK {
			t.Errorf("%q: accepted by the API server, refused by the portal", email)
		}
		if err != nil && portalOK && email != "jane@[127.0.0.1]" { // domain literals: the API is stricter on purpose
			t.Errorf("%q: the portal would take it, the API server refused: %v", email, err)
		}
	}
}

// TestPortalNames: a portal's name becomes its children's names (<name>-portal, a Service, so a
// DNS-1035 label) and a label value; names that cannot are refused up front, not stalled on.
func TestPortalNames(t *testing.T) {
	ns := newNamespace(t)
	for name, ok := range map[string]bool{
		"acme": true, "acme-eu-2": true, strings.Repeat("a", 56): true,
		strings.Repeat("a", 57): false, "acme.eu": false, "1acme": false, "acme-": false,
	} {
		u := &unstructured.Unstructured{Object: validPortal()}
		u.SetNamespace(ns)
		u.SetName(name)
		err := k8s.Create(context.Background(), u, client.DryRunAll)
		switch {
		case ok && err != nil:
			t.Errorf("%q refused: %v", name, err)
		case !ok && err == nil:
			t.Errorf("%q accepted", name)
		case !ok && !strings.Contains(err.Error(), "at most 56 characters of lowercase letters") && !strings.Contains(err.Error(), "RFC 1123"):
			t.Errorf("%q: unclear message: %v", name, err)
		}
	}
}
