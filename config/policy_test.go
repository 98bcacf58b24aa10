package config_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
)

// TestPortalsKeepToTheirOwnSessions: RBAC lets a portal's ServiceAccount create and change
// PortalSessions in its namespace (the merchant API needs that) but cannot look inside them; the
// admission policy config/default installs keeps each portal to sessions of its own portal, so a
// compromised portal cannot mint, edit or revoke another portal's links. Other callers are not
// affected.
func TestPortalsKeepToTheirOwnSessions(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	admin, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "shop"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, name := range []string{"acme", "acme-strategic"} {
		must(admin.Create(ctx, &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: name,
				Access: billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: new(bool)}}}}))
	}
	// What the operator's portal Role grants on sessions, to every ServiceAccount in the test.
	must(admin.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{billingv1alpha1.GroupVersion.Group}, Resources: []string{"portalsessions"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch"}}}}))
	must(admin.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "sessions"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + ns}}}))

	as := func(sa string) client.Client {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		must(err)
		return c
	}
	acme, strategic := as("acme-portal"), as("acme-strategic-portal")
	session := func(name, portal string) *billingv1alpha1.PortalSession {
		return &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: portal},
				Customer: billingv1alpha1.CustomerReference{ID: "cus_1"}}}
	}
	refused := func(err error, want string) error {
		switch {
		case err == nil:
			return fmt.Errorf("allowed")
		case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
			return fmt.Errorf("refused for another reason: %v", err)
		case !strings.Contains(err.Error(), want):
			return fmt.Errorf("message %q does not say %q", err, want)
		}
		return nil
	}

	// The policy takes effect a moment after it is created: wait for the first refusal.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := refused(acme.Create(ctx, session("theirs", "acme-strategic"), client.DryRunAll),
			"the portal acme may only make sessions of its own, not of the portal acme-strategic")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a portal made a session of another portal: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Its own sessions: fine, and it may revoke them with a reason, as its merchant API's revoke
	// and a customer's sign-out do (rules.RevokeSession's patch).
	mine := session("mine", "acme")
	must(acme.Create(ctx, mine))
	must(acme.Patch(ctx, mine, client.RawPatch(types.MergePatchType,
		fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"revoked":true,"revocationReason":"customer signed out"}}`, mine.UID))))
	if !mine.Spec.Revoked || mine.Spec.RevocationReason != "customer signed out" {
		t.Errorf("own session after revoking: %+v", mine.Spec)
	}

	// Another portal's session, made by the merchant's backend: neither edited nor revoked.
	theirs := session("theirs", "acme-strategic")
	must(admin.Create(ctx, theirs))
	base := theirs.DeepCopy()
	theirs.Annotations = map[string]string{"billing.portero.dev/customer-email": "attacker@evil.example"}
	if err := refused(acme.Patch(ctx, theirs, client.MergeFrom(base)), "the portal acme may not change sessions of the portal acme-strategic"); err != nil {
		t.Errorf("editing another portal's session: %v", err)
	}
	theirs = base.DeepCopy()
	theirs.Spec.Revoked, theirs.Spec.RevocationReason = true, "customer signed out"
	if err := refused(acme.Patch(ctx, theirs, client.MergeFrom(base)), "may not change sessions of the portal acme-strategic"); err != nil {
		t.Errorf("revoking another portal's session: %v", err)
	}
	// Its owner may.
	must(strategic.Patch(ctx, theirs, client.MergeFrom(base)))

	// Callers that are not a portal's ServiceAccount are not this policy's business: a backend,
	// or a ServiceAccount named like a portal that does not exist.
	for _, sa := range []string{"billing-backend", "ghost-portal"} {
		if err := as(sa).Create(ctx, session("by-"+sa, "acme-strategic"), client.DryRunAll); err != nil {
			t.Errorf("%s refused: %v", sa, err)
		}
	}
}
