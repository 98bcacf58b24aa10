// Package config_test installs Portero the way a platform team does — `make deploy`
// (hack/deploy.sh: config/default with the image they pushed, or config/namespaced/base with
// WATCH_NAMESPACES) and `kubectl apply -f config/samples` — on a real API server, and runs the
// operator under the ServiceAccount and RBAC that installs, so missing RBAC fails here and not in
// someone's cluster, and so does RBAC broader than the mode promises.
package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
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

var (
	opUser   = fmt.Sprintf("system:serviceaccount:%s:%s", opNS, opSA)
	opGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + opNS, "system:authenticated"}
)

// cluster is a bare control plane (CRDs only) with a platform admin's kubeconfig, on which a test
// installs Portero as a platform team would.
type cluster struct {
	t         *testing.T
	ctx       context.Context
	env       *testenv.Env
	root      string
	kubectl   string
	dir       string
	adminKC   []byte
	adminPath string
	admin     client.Client
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	env, err := testenv.StartBare() // the admission policies come from make deploy
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	adminUser, err := env.AddUser(envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	adminKC, err := adminUser.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	adminPath := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(adminPath, adminKC, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(env.Scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, ctx: ctx, env: env, root: testenv.RepoRoot(), kubectl: filepath.Join(env.BinaryAssetsDirectory, "kubectl"),
		dir: dir, adminKC: adminKC, adminPath: adminPath, admin: c}
}

// exec runs a command as the platform admin, from the repository's root, with extra environment.
func (k *cluster) exec(env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(k.ctx, name, args...)
	cmd.Dir = k.root
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+k.adminPath, "KUBECTL="+k.kubectl), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run is exec that fails the test on an error.
func (k *cluster) run(env []string, name string, args ...string) string {
	k.t.Helper()
	out, err := k.exec(env, name, args...)
	if err != nil {
		k.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// operatorDeployment is the operator's Deployment as the install made it.
func (k *cluster) operatorDeployment() *appsv1.Deployment {
	k.t.Helper()
	var dep appsv1.Deployment
	if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: opNS, Name: "portero-controller-manager"}, &dep); err != nil {
		k.t.Fatal(err)
	}
	return &dep
}

// asOperator is a client that impersonates the operator's ServiceAccount: RBAC authorizes its
// every request by what the install granted, nothing else.
func (k *cluster) asOperator() client.Client {
	k.t.Helper()
	cfg := rest.CopyConfig(k.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: opUser, Groups: opGroups}
	c, err := client.New(cfg, client.Options{Scheme: k.env.Scheme})
	if err != nil {
		k.t.Fatal(err)
	}
	return c
}

// operatorMay asks the API server's authorizer (a SubjectAccessReview) whether the operator's
// ServiceAccount may verb the resource in ns ("" for every namespace).
func (k *cluster) operatorMay(verb, group, resource, ns string) bool {
	k.t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: opUser, Groups: opGroups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource}}}
	if err := k.admin.Create(k.ctx, sar); err != nil {
		k.t.Fatal(err)
	}
	return sar.Status.Allowed
}

// waitOperatorMay waits until the operator may verb the resource in ns: RBAC reaches the
// authorizer through an informer, so a new install takes a moment.
func (k *cluster) waitOperatorMay(verb, group, resource, ns string) {
	k.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !k.operatorMay(verb, group, resource, ns); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			k.t.Fatalf("the operator may not %s %s in namespace %q", verb, strings.TrimSuffix(resource+"."+group, "."), ns)
		}
	}
}

// startOperator builds cmd/manager and runs it under the operator's ServiceAccount with the
// arguments the installed Deployment gives it that matter outside a pod (--portal-image and
// --watch-namespaces); leader election is left off, as it needs the in-cluster namespace file.
func (k *cluster) startOperator(dep *appsv1.Deployment) *testlog.Buffer {
	k.t.Helper()
	kc, err := clientcmd.Load(k.adminKC)
	if err != nil {
		k.t.Fatal(err)
	}
	for _, ai := range kc.AuthInfos {
		ai.Impersonate, ai.ImpersonateGroups = opUser, opGroups
	}
	saPath := filepath.Join(k.dir, "operator.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, saPath); err != nil {
		k.t.Fatal(err)
	}
	bin := filepath.Join(k.dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir, build.Env = k.root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		k.t.Fatalf("build manager: %v\n%s", err, out)
	}
	args := []string{"--kubeconfig=" + saPath, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0"}
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--portal-image=") || strings.HasPrefix(a, "--watch-namespaces=") {
			args = append(args, a)
		}
	}
	var logs testlog.Buffer
	mgr := exec.CommandContext(k.ctx, bin, args...)
	mgr.Stdout, mgr.Stderr = &logs, &logs
	if err := mgr.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() {
		_ = mgr.Process.Kill()
		_ = mgr.Wait()
		if k.t.Failed() {
			k.t.Logf("operator log:\n%s", logs.String())
		}
	})
	return &logs
}

// waitSamplesReconciled waits until the operator has reconciled the samples in ns: the acme
// portal's status and Deployment, and the session Active with its link Secret.
func (k *cluster) waitSamplesReconciled(ns string) (*billingv1alpha1.CustomerPortal, *billingv1alpha1.PortalSession) {
	k.t.Helper()
	var portal billingv1alpha1.CustomerPortal
	var session billingv1alpha1.PortalSession
	deadline := time.Now().Add(timeout)
	for {
		perr := k.admin.Get(k.ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, &portal)
		serr := k.admin.Get(k.ctx, client.ObjectKey{Namespace: ns, Name: "cus-123-complete-pay-9"}, &session)
		var portalDep appsv1.Deployment
		derr := k.admin.Get(k.ctx, client.ObjectKey{Namespace: ns, Name: "acme-portal"}, &portalDep)
		// kubectl applies the sample files in name order, so the portal may be seen before its
		// Secrets: Stalled until their watch brings the operator back. Wait for that recovery.
		stalled := meta.IsStatusConditionTrue(portal.Status.Conditions, "Stalled")
		done := perr == nil && serr == nil && derr == nil && !stalled &&
			portal.Status.ObservedGeneration == portal.Generation &&
			session.Status.Phase == billingv1alpha1.SessionActive
		if done {
			if got := portalDep.Spec.Template.Spec.Containers[0].Image; got != image {
				k.t.Fatalf("portal Deployment runs %q, want the operator's own image %q", got, image)
			}
			break
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("not reconciled under the operator's RBAC after %s: portal %v (%+v), session %v (%+v), portal Deployment %v",
				timeout, perr, portal.Status.Conditions, serr, session.Status, derr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var link corev1.Secret
	if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: ns, Name: session.Status.LinkSecretName}, &link); err != nil {
		k.t.Fatalf("link Secret: %v", err)
	}
	// The portal's own least-privilege Role exists: the operator could grant it (escalation is
	// refused unless the granter holds the permissions itself).
	var roles rbacv1.RoleList
	if err := k.admin.List(k.ctx, &roles, client.InNamespace(ns)); err != nil || !slices.ContainsFunc(roles.Items, func(r rbacv1.Role) bool { return r.Name == "acme-portal" }) {
		k.t.Fatalf("portal Role: %v (%d roles)", err, len(roles.Items))
	}
	return &portal, &session
}

func TestDeployAndRunUnderItsOwnRBAC(t *testing.T) {
	k := newCluster(t)

	// What the README says: make deploy IMG=… (here the script it runs).
	k.run(nil, "hack/deploy.sh", "apply", image)
	dep := k.operatorDeployment()
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != image || !slices.Contains(ctr.Args, "--portal-image="+image) || dep.Spec.Template.Spec.ServiceAccountName != opSA {
		t.Fatalf("operator Deployment: image %q args %q serviceAccount %q", ctr.Image, ctr.Args, dep.Spec.Template.Spec.ServiceAccountName)
	}
	if slices.ContainsFunc(ctr.Args, func(a string) bool { return strings.HasPrefix(a, "--watch-namespaces") }) {
		t.Fatalf("cluster-wide install limits the operator to namespaces: %q", ctr.Args)
	}
	// The CRDs are the install's too (envtest installed them first; the deploy's server-side
	// apply then co-owns every one).
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := k.admin.List(k.ctx, &crds); err != nil {
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
	if err := k.admin.Get(k.ctx, client.ObjectKey{Name: opNS}, &ns); err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace %s: %v %v", opNS, err, ns.Labels)
	}

	// Leader election (on in the Deployment) needs Leases in its namespace.
	for _, verb := range []string{"get", "create", "update"} {
		k.waitOperatorMay(verb, "coordination.k8s.io", "leases", opNS)
	}
	// The cluster-wide rules are what the reconcilers call and no more (controllers/rbac.go):
	// e.g. Secrets are never updated, the portal's children never replaced with an update, and
	// the operator cannot give itself more (escalate, bind) or touch cluster-wide RBAC.
	k.waitOperatorMay("watch", "billing.portero.dev", "customerportals", "")
	for _, no := range []struct{ verb, group, resource string }{
		{"update", "", "secrets"},
		{"deletecollection", "", "secrets"},
		{"update", "apps", "deployments"},
		{"update", "rbac.authorization.k8s.io", "roles"},
		{"escalate", "rbac.authorization.k8s.io", "roles"},
		{"bind", "rbac.authorization.k8s.io", "roles"},
		{"create", "rbac.authorization.k8s.io", "clusterroles"},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings"},
		{"update", "billing.portero.dev", "customerportals"},
		{"create", "", "pods"},
		{"create", "", "events"},
	} {
		if k.operatorMay(no.verb, no.group, no.resource, shopNS) {
			t.Errorf("the operator may %s %s: no reconciler does", no.verb, strings.TrimSuffix(no.resource+"."+no.group, "."))
		}
	}

	logs := k.startOperator(dep)
	// What a platform team applies next: the samples, in their namespace.
	k.run(nil, k.kubectl, "create", "namespace", shopNS)
	k.run(nil, k.kubectl, "apply", "-n", shopNS, "-f", "config/samples/")
	k.waitSamplesReconciled(shopNS)
	if strings.Contains(logs.String(), "forbidden") {
		t.Fatalf("the operator was refused something:\n%s", logs.String())
	}

	// make deploy installed the admission policy: the acme portal's own ServiceAccount, which its
	// Role lets create sessions, may not make one for the other sample portal.
	portalCfg := rest.CopyConfig(k.env.Config)
	portalCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + shopNS + ":acme-portal",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + shopNS, "system:authenticated"}}
	asPortal, err := client.New(portalCfg, client.Options{Scheme: k.env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	other := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: shopNS, Name: "not-mine"},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "acme-strategic"},
			Customer: billingv1alpha1.CustomerReference{ID: "cus_123"}}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := asPortal.Create(k.ctx, other, client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "may only make sessions of its own") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the acme portal's ServiceAccount made a session of acme-strategic: %v", err)
		}
	}

	k.run(nil, "hack/deploy.sh", "delete", image)
	err = k.admin.Get(k.ctx, client.ObjectKey{Namespace: opNS, Name: "portero-controller-manager"}, dep)
	if !apierrors.IsNotFound(err) && dep.DeletionTimestamp == nil {
		t.Fatalf("operator Deployment after delete: %v", err)
	}
}

// TestDeployNamespacedAndRunUnderItsOwnRBAC: WATCH_NAMESPACES=shop make deploy — here over a
// cluster-wide install, as a team tightening an existing one would — leaves the operator no
// cluster-wide grant: it runs the portals of shop, ignores those of another namespace, and may
// not read that namespace's Secrets.
func TestDeployNamespacedAndRunUnderItsOwnRBAC(t *testing.T) {
	k := newCluster(t)
	const otherNS = "elsewhere"
	for _, ns := range []string{shopNS, otherNS} {
		k.run(nil, k.kubectl, "create", "namespace", ns)
	}
	watchShop := []string{"WATCH_NAMESPACES=" + shopNS}

	// A namespace that does not exist is refused before anything is applied: the install binds
	// into namespaces but does not own them.
	out, err := k.exec([]string{"WATCH_NAMESPACES=shop,nowhere"}, "hack/deploy.sh", "apply", image)
	if err == nil || !strings.Contains(out, "namespace nowhere (WATCH_NAMESPACES) does not exist") {
		t.Fatalf("deploy into a missing namespace: %v\n%s", err, out)
	}

	k.run(nil, "hack/deploy.sh", "apply", image)
	k.waitOperatorMay("list", "", "secrets", "")
	k.run(watchShop, "hack/deploy.sh", "apply", image)

	// No cluster-wide grant of the operator's rules is left; shop has its RoleBinding.
	var crbs rbacv1.ClusterRoleBindingList
	if err := k.admin.List(k.ctx, &crbs); err != nil {
		t.Fatal(err)
	}
	for _, b := range crbs.Items {
		if b.RoleRef.Name == "portero-manager-role" {
			t.Errorf("ClusterRoleBinding %s still grants the operator's rules in every namespace", b.Name)
		}
	}
	var rb rbacv1.RoleBinding
	if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: shopNS, Name: "portero-manager-rolebinding"}, &rb); err != nil {
		t.Fatalf("RoleBinding in %s: %v", shopNS, err)
	}
	dep := k.operatorDeployment()
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--watch-namespaces="+shopNS) {
		t.Fatalf("operator args %q do not limit it to %s", args, shopNS)
	}

	// What the operator's identity may do now, as the authorizer answers it.
	k.waitOperatorMay("get", "", "secrets", shopNS)
	k.waitOperatorMay("watch", "billing.portero.dev", "customerportals", shopNS)
	for deadline := time.Now().Add(30 * time.Second); k.operatorMay("list", "", "secrets", ""); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the operator may still list Secrets in every namespace")
		}
	}
	for _, no := range []struct{ verb, group, resource, ns string }{
		{"get", "", "secrets", otherNS},
		{"list", "", "secrets", otherNS},
		{"watch", "", "secrets", ""},
		{"create", "", "secrets", otherNS},
		{"watch", "billing.portero.dev", "customerportals", otherNS},
		{"create", "apps", "deployments", otherNS},
		{"create", "rbac.authorization.k8s.io", "roles", otherNS},
		{"create", "rbac.authorization.k8s.io", "rolebindings", otherNS},
	} {
		if k.operatorMay(no.verb, no.group, no.resource, no.ns) {
			t.Errorf("the namespaced operator may %s %s in namespace %q", no.verb, strings.TrimSuffix(no.resource+"."+no.group, "."), no.ns)
		}
	}
	// And in fact: impersonating it, a Secret of the other namespace cannot be read.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: otherNS, Name: "payroll-db"}, StringData: map[string]string{"dsn": "postgres://payroll"}}
	if err := k.admin.Create(k.ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := k.asOperator().Get(k.ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the namespaced operator reading a Secret of %s: %v, want Forbidden", otherNS, err)
	}

	logs := k.startOperator(dep)
	// The same samples in both namespaces, the unwatched one first: by the time shop's portal is
	// Ready, the operator has had every chance to pick up the other.
	k.run(nil, k.kubectl, "apply", "-n", otherNS, "-f", "config/samples/")
	k.run(nil, k.kubectl, "apply", "-n", shopNS, "-f", "config/samples/")
	portal, _ := k.waitSamplesReconciled(shopNS)

	// A portal in a watched namespace becomes Ready once its pods are (envtest runs no
	// Deployment controller: the admin plays it).
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: shopNS, Name: "acme-portal"}, &d); err != nil {
			return err
		}
		now := metav1.Now()
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now}}}
		return k.admin.Status().Update(k.ctx, &d)
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(timeout); !meta.IsStatusConditionTrue(portal.Status.Conditions, "Ready"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("portal in the watched namespace not Ready: %+v", portal.Status.Conditions)
		}
		if err := k.admin.Get(k.ctx, client.ObjectKeyFromObject(portal), portal); err != nil {
			t.Fatal(err)
		}
	}

	// The portal and session of the other namespace are untouched: no finalizer, no status, no
	// portal Deployment, no link Secret.
	var ignored billingv1alpha1.CustomerPortal
	if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: otherNS, Name: "acme"}, &ignored); err != nil {
		t.Fatal(err)
	}
	if len(ignored.Finalizers) > 0 || ignored.Status.ObservedGeneration != 0 || len(ignored.Status.Conditions) > 0 {
		t.Errorf("portal in the unwatched namespace was reconciled: finalizers %v status %+v", ignored.Finalizers, ignored.Status)
	}
	var ignoredSession billingv1alpha1.PortalSession
	if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: otherNS, Name: "cus-123-complete-pay-9"}, &ignoredSession); err != nil {
		t.Fatal(err)
	}
	if ignoredSession.Status.Phase != "" || len(ignoredSession.Finalizers) > 0 {
		t.Errorf("session in the unwatched namespace was reconciled: %+v", ignoredSession.Status)
	}
	if err := k.admin.Get(k.ctx, client.ObjectKey{Namespace: otherNS, Name: "acme-portal"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("portal Deployment in the unwatched namespace: %v, want NotFound", err)
	}
	var secrets corev1.SecretList
	if err := k.admin.List(k.ctx, &secrets, client.InNamespace(otherNS)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if strings.HasSuffix(s.Name, "-link") {
			t.Errorf("link Secret %s minted in the unwatched namespace", s.Name)
		}
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Fatalf("the namespaced operator was refused something:\n%s", logs.String())
	}

	k.run(watchShop, "hack/deploy.sh", "delete", image)
	if err := k.admin.Get(k.ctx, client.ObjectKeyFromObject(&rb), &rb); !apierrors.IsNotFound(err) && rb.DeletionTimestamp == nil {
		t.Fatalf("RoleBinding in %s after delete: %v", shopNS, err)
	}
}

// TestNamespacedOverlayMatchesDeployScript: config/namespaced, the overlay a GitOps repository
// copies, renders what WATCH_NAMESPACES=shop hack/deploy.sh renders, but for the image.
func TestNamespacedOverlayMatchesDeployScript(t *testing.T) {
	root := testenv.RepoRoot()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	kubectl := filepath.Join(assets, "kubectl")
	render := func(env []string, name string, args ...string) map[string]*unstructured.Unstructured {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = root, append(append(os.Environ(), "KUBECTL="+kubectl), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
		}
		objs := map[string]*unstructured.Unstructured{}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetKind() == "Deployment" {
				// The image and the --portal-image that follows it are the script's to set.
				ctrs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
				ctr := ctrs[0].(map[string]any)
				ctr["image"] = "IMAGE"
				var args []any
				for _, a := range ctr["args"].([]any) {
					if !strings.HasPrefix(a.(string), "--portal-image=") {
						args = append(args, a)
					}
				}
				ctr["args"] = args
				_ = unstructured.SetNestedSlice(u.Object, ctrs, "spec", "template", "spec", "containers")
			}
			objs[u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName()] = u
		}
		return objs
	}
	overlay := render(nil, kubectl, "kustomize", "config/namespaced")
	script := render([]string{"WATCH_NAMESPACES=" + shopNS}, "hack/deploy.sh", "render", image)
	for key, want := range overlay {
		got, ok := script[key]
		switch {
		case !ok:
			t.Errorf("config/namespaced has %s, the deploy script does not", key)
		case !reflect.DeepEqual(got.Object, want.Object):
			t.Errorf("%s differs between config/namespaced and the deploy script:\n%v\n%v", key, want.Object, got.Object)
		}
	}
	for key := range script {
		if _, ok := overlay[key]; !ok {
			t.Errorf("the deploy script renders %s, config/namespaced does not", key)
		}
	}
	if _, ok := overlay["RoleBinding "+shopNS+"/portero-manager-rolebinding"]; !ok {
		t.Error("config/namespaced binds the operator's rules nowhere")
	}
	if _, ok := overlay["ClusterRoleBinding /portero-manager-rolebinding"]; ok {
		t.Error("config/namespaced still binds the operator's rules in every namespace")
	}
}
