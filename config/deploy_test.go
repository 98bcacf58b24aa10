// Package config_test installs Portero the way a platform team does — `make deploy`
// (hack/deploy.sh: config/default with the image they pushed) and `kubectl apply -f
// config/samples` — on a real API server, and runs the operator under the ServiceAccount and
// ClusterRole that installs, so missing RBAC fails here and not in someone's cluster.
package config_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/internal/testlog"
)

const (
	image   = "registry.example:5000/platform/portero:1.10" // a tag YAML would read as a number
	opNS    = "portero-system"
	opSA    = "portero-controller-manager"
	shopNS  = "shop"
	timeout = 2 * time.Minute
)

func TestDeployAndRunUnderItsOwnRBAC(t *testing.T) {
	env, err := testenv.StartBare() // the admission policies come from make deploy
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	root := testenv.RepoRoot()
	assets := env.BinaryAssetsDirectory
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	admin, err := env.AddUser(envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	adminKC, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	adminPath := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(adminPath, adminKC, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KUBECONFIG="+adminPath, "KUBECTL="+filepath.Join(assets, "kubectl"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if err := apiextensionsv1.AddToScheme(env.Scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	// What the README says: make deploy IMG=… (here the script it runs).
	run("hack/deploy.sh", "apply", image)
	var dep appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: opNS, Name: "portero-controller-manager"}, &dep); err != nil {
		t.Fatal(err)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != image || !slices.Contains(ctr.Args, "--portal-image="+image) || dep.Spec.Template.Spec.ServiceAccountName != opSA {
		t.Fatalf("operator Deployment: image %q args %q serviceAccount %q", ctr.Image, ctr.Args, dep.Spec.Template.Spec.ServiceAccountName)
	}
	// The CRDs are the install's too (envtest installed them first; the deploy's server-side
	// apply then co-owns every one).
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := c.List(ctx, &crds); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"customerportals.billing.portero.dev", "portalsessions.billing.portero.dev"} {
		found := false
		for _, crd := range crds.Items {
			if crd.Name == want {
				for _, mf := range crd.ManagedFields {
					found = found || mf.Manager == "portero-deploy"
				}
			}
		}
		if !found {
			t.Fatalf("CRD %s is not part of the install", want)
		}
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: opNS}, &ns); err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace %s: %v %v", opNS, err, ns.Labels)
	}

	// The operator, impersonating its ServiceAccount: every request it makes is authorized by the
	// ClusterRole and Roles just installed, nothing else.
	saUser := fmt.Sprintf("system:serviceaccount:%s:%s", opNS, opSA)
	saGroups := []string{"system:serviceaccounts", "system:serviceaccounts:" + opNS, "system:authenticated"}
	kc, err := clientcmd.Load(adminKC)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range kc.AuthInfos {
		ai.Impersonate, ai.ImpersonateGroups = saUser, saGroups
	}
	saPath := filepath.Join(dir, "operator.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, saPath); err != nil {
		t.Fatal(err)
	}

	// Leader election (on in the Deployment) needs Leases in its namespace.
	saCfg := rest.CopyConfig(env.Config)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: saUser, Groups: saGroups}
	saClient, err := client.New(saCfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"get", "create", "update"} {
		// RBAC reaches the authorizer through an informer: poll briefly, as a new install would.
		allowed, until := false, time.Now().Add(30*time.Second)
		for !allowed && time.Now().Before(until) {
			ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: opNS, Verb: verb, Group: "coordination.k8s.io", Resource: "leases"}}}
			if err := saClient.Create(ctx, ssar); err != nil {
				t.Fatal(err)
			}
			if allowed = ssar.Status.Allowed; !allowed {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !allowed {
			t.Fatalf("the operator may not %s Leases in %s: leader election would fail", verb, opNS)
		}
	}

	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build manager: %v\n%s", err, out)
	}
	var logs testlog.Buffer
	// The portal image as the installed Deployment gives it (the deploy sets it); leader election
	// is left off, as it needs the in-cluster namespace file.
	args := []string{"--kubeconfig=" + saPath, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0"}
	for _, a := range ctr.Args {
		if strings.HasPrefix(a, "--portal-image=") {
			args = append(args, a)
		}
	}
	mgr := exec.CommandContext(ctx, bin, args...)
	mgr.Stdout, mgr.Stderr = &logs, &logs
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = mgr.Process.Kill()
		_ = mgr.Wait()
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.String())
		}
	})

	// What a platform team applies next: the samples, in their namespace.
	run(filepath.Join(assets, "kubectl"), "create", "namespace", shopNS)
	run(filepath.Join(assets, "kubectl"), "apply", "-n", shopNS, "-f", "config/samples/")

	var portal billingv1alpha1.CustomerPortal
	var session billingv1alpha1.PortalSession
	deadline := time.Now().Add(timeout)
	for {
		perr := c.Get(ctx, client.ObjectKey{Namespace: shopNS, Name: "acme"}, &portal)
		serr := c.Get(ctx, client.ObjectKey{Namespace: shopNS, Name: "cus-123-complete-pay-9"}, &session)
		var portalDep appsv1.Deployment
		derr := c.Get(ctx, client.ObjectKey{Namespace: shopNS, Name: "acme-portal"}, &portalDep)
		// kubectl applies the sample files in name order, so the portal may be seen before its
		// Secrets: Stalled until their watch brings the operator back. Wait for that recovery.
		stalled := meta.IsStatusConditionTrue(portal.Status.Conditions, "Stalled")
		done := perr == nil && serr == nil && derr == nil && !stalled &&
			portal.Status.ObservedGeneration == portal.Generation &&
			session.Status.Phase == billingv1alpha1.SessionActive
		if done {
			if got := portalDep.Spec.Template.Spec.Containers[0].Image; got != image {
				t.Fatalf("portal Deployment runs %q, want the operator's own image %q", got, image)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reconciled under the operator's RBAC after %s: portal %v (%+v), session %v (%+v), portal Deployment %v",
				timeout, perr, portal.Status.Conditions, serr, session.Status, derr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var link corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: shopNS, Name: session.Status.LinkSecretName}, &link); err != nil {
		t.Fatalf("link Secret: %v", err)
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Fatalf("the operator was refused something:\n%s", logs.String())
	}

	// The portal's own least-privilege Role exists: the operator could grant it (escalation is
	// refused unless the granter holds the permissions itself).
	var roles rbacv1.RoleList
	if err := c.List(ctx, &roles, client.InNamespace(shopNS)); err != nil || len(roles.Items) == 0 {
		t.Fatalf("portal Role: %v (%d roles)", err, len(roles.Items))
	}

	// make deploy installed the admission policy: the acme portal's own ServiceAccount, which its
	// Role lets create sessions, may not make one for the other sample portal.
	portalCfg := rest.CopyConfig(env.Config)
	portalCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + shopNS + ":acme-portal",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + shopNS, "system:authenticated"}}
	asPortal, err := client.New(portalCfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	other := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: shopNS, Name: "not-mine"},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "acme-strategic"},
			Customer: billingv1alpha1.CustomerReference{ID: "cus_123"}}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := asPortal.Create(ctx, other, client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "may only make sessions of its own") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the acme portal's ServiceAccount made a session of acme-strategic: %v", err)
		}
	}

	_ = mgr.Process.Kill()
	_ = mgr.Wait()
	run("hack/deploy.sh", "delete", image)
	err = c.Get(ctx, client.ObjectKey{Namespace: opNS, Name: "portero-controller-manager"}, &dep)
	if !apierrors.IsNotFound(err) && dep.DeletionTimestamp == nil {
		t.Fatalf("operator Deployment after delete: %v", err)
	}
}
