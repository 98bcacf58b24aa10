package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
)

const testImage = "example.test/portero:test"

// countingReconciler counts reconciles, to prove the controller is quiet at rest.
// countingReconciler counts the reconciles of objects in one namespace: the manager also sees
// the portals earlier tests left in theirs (envtest has no namespace controller to delete them).
type countingReconciler struct {
	inner reconcile.Reconciler
	ns    string
	n     atomic.Int64
}

func (c *countingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Namespace == c.ns {
		c.n.Add(1)
	}
	return c.inner.Reconcile(ctx, req)
}

func startPortalController(t *testing.T) *CustomerPortalReconciler {
	t.Helper()
	r := &CustomerPortalReconciler{}
	startManager(t, func(mgr manager.Manager) error {
		r.Client, r.APIReader, r.Scheme = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme()
		r.Recorder = mgr.GetEventRecorder("customerportal-controller")
		r.PortalImage = testImage
		return r.SetupWithManager(mgr)
	})
	return r
}

func createSecret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func loadSamplePortal(t *testing.T, file, ns string) *billingv1alpha1.CustomerPortal {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	p := &billingv1alpha1.CustomerPortal{}
	if err := yaml.UnmarshalStrict(b, p); err != nil {
		t.Fatal(err)
	}
	p.Namespace = ns
	return p
}

func getPortal(t *testing.T, p *billingv1alpha1.CustomerPortal) *billingv1alpha1.CustomerPortal {
	t.Helper()
	out := &billingv1alpha1.CustomerPortal{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func getDeployment(ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d)
	return d, err
}

// makeDeploymentAvailable plays the kubelet and the Deployment controller, which envtest lacks.
func makeDeploymentAvailable(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, "deployment status written", func() error {
		d, err := getDeployment(ns, name)
		if err != nil {
			return err
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		}
		return k8s.Status().Update(context.Background(), d)
	})
}

func kstatusOf(t *testing.T, p *billingv1alpha1.CustomerPortal) status.Status {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(testenv.GVK("CustomerPortal"))
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), u); err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

func condition(p *billingv1alpha1.CustomerPortal, typ string) *metav1.Condition {
	return meta.FindStatusCondition(p.Status.Conditions, typ)
}

func TestPortalOwnedObjectsReadinessAndCleanup(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "acme-smtp", map[string]string{"host": "smtp.example", "port": "587"})
	createSecret(t, ns, "acme-api-key", map[string]string{"key": "k"})
	p := loadSamplePortal(t, "billing_v1alpha1_customerportal.yaml", ns)
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	n := namesFor(p)

	var d *appsv1.Deployment
	eventually(t, "deployment created", func() (err error) { d, err = getDeployment(ns, n.deployment); return err })

	// Before the pods are available, Ready is not True and Reconciling says why; kstatus agrees.
	eventually(t, "Reconciling while deployment unavailable", func() error {
		got := getPortal(t, p)
		r, rec := condition(got, ConditionReady), condition(got, ConditionReconciling)
		if r == nil || r.Status == metav1.ConditionTrue || rec == nil || rec.Status != metav1.ConditionTrue || rec.Message == "" {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		return nil
	})
	if s := kstatusOf(t, p); s != status.InProgressStatus {
		t.Fatalf("kstatus before pods are ready = %s, want InProgress", s)
	}

	// The Deployment: the portal server, locked down, with probes, requests and the SQLite volume.
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	checks := map[string]bool{
		"replicas 1":              *d.Spec.Replicas == 1,
		"image from flag":         c.Image == testImage,
		"portal arg":              slices.Contains(c.Args, "--portal="+ns+"/acme"),
		"non-root":                pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot && c.SecurityContext.RunAsNonRoot != nil && *c.SecurityContext.RunAsNonRoot,
		"read-only root fs":       c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem,
		"no privilege escalation": c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation,
		"drop all capabilities":   c.SecurityContext.Capabilities != nil && slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL"),
		"seccomp RuntimeDefault":  c.SecurityContext.SeccompProfile != nil && c.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
		"readiness probe":         c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil,
		"liveness probe":          c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil,
		"resource requests":       !c.Resources.Requests.Cpu().IsZero() && !c.Resources.Requests.Memory().IsZero(),
		"recreate for sqlite":     d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType,
		"service account":         pod.ServiceAccountName == n.serviceAccount,
		"sqlite volume mounted": slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == n.pvc
		}),
		"owned by portal":          metav1.IsControlledBy(d, getPortal(t, p)),
		"no rules in pod template": !slices.ContainsFunc(c.Args, func(a string) bool { return a == "--allowed=card" }) && len(c.Env) == 0,
		"metrics on a port of their own": slices.Contains(c.Args, "--metrics-listen=:9090") && slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
			return p.Name == "metrics" && p.ContainerPort == 9090
		}),
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("deployment: %s: not so", what)
		}
	}

	svc := &corev1.Service{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.service}, svc); err != nil {
		t.Fatalf("service: %v", err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != portalPortName {
		t.Errorf("service ports %+v: only the portal's own port may be exposed (never metrics)", svc.Spec.Ports)
	}
	ing := &networkingv1.Ingress{}
	eventually(t, "ingress", func() error {
		return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.ingress}, ing)
	})
	if ing.Spec.Rules[0].Host != "billing.acme.example" {
		t.Errorf("ingress host = %q", ing.Spec.Rules[0].Host)
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.pvc}, pvc); err != nil {
		t.Fatalf("pvc: %v", err)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("pvc size = %s, want 1Gi", got.String())
	}
	role := &rbacv1.Role{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.role}, role); err != nil {
		t.Fatalf("role: %v", err)
	}
	for _, rule := range role.Rules {
		if slices.Contains(rule.Resources, "secrets") {
			if !slices.Equal(rule.Verbs, []string{"get"}) || !slices.Equal(rule.ResourceNames, []string{"acme-api-key", "acme-smtp"}) {
				t.Errorf("secret rule too broad: %+v", rule)
			}
		}
		if slices.Contains(rule.Resources, "customerportals") && !slices.Equal(rule.ResourceNames, []string{"acme"}) {
			t.Errorf("portal rule not limited to its own portal: %+v", rule)
		}
	}
	rb := &rbacv1.RoleBinding{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.roleBinding}, rb); err != nil {
		t.Fatalf("rolebinding: %v", err)
	}
	if rb.Subjects[0].Name != n.serviceAccount || rb.RoleRef.Name != n.role {
		t.Errorf("rolebinding binds %+v to %+v", rb.Subjects, rb.RoleRef)
	}

	// Pods available → Ready, with url, replicas, methods and observedGeneration; kstatus Current.
	makeDeploymentAvailable(t, ns, n.deployment)
	eventually(t, "Ready", func() error {
		got := getPortal(t, p)
		r := condition(got, ConditionReady)
		if r == nil || r.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		if condition(got, ConditionReconciling) != nil || condition(got, ConditionStalled) != nil {
			return fmt.Errorf("Reconciling/Stalled still present: %+v", got.Status.Conditions)
		}
		return nil
	})
	got := getPortal(t, p)
	if got.Status.URL != "http://billing.acme.example/" || got.Status.ReadyReplicas != 1 || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("status = %+v", got.Status)
	}
	if len(got.Status.PaymentMethods) != len(billingv1alpha1.SupportedPaymentMethodTypes()) {
		t.Errorf("all: true must offer every supported type, got %v", got.Status.PaymentMethods)
	}
	if s := kstatusOf(t, p); s != status.CurrentStatus {
		t.Fatalf("kstatus when ready = %s, want Current", s)
	}

	// Deleting the portal removes everything it owns.
	if err := k8s.Delete(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &networkingv1.Ingress{}, &corev1.PersistentVolumeClaim{}} {
		name := map[string]string{"*v1.PersistentVolumeClaim": n.pvc}[fmt.Sprintf("%T", o)]
		if name == "" {
			name = n.deployment
		}
		eventually(t, fmt.Sprintf("%T deleted", o), func() error {
			err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, o)
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err == nil && !o.GetDeletionTimestamp().IsZero() {
				return nil // kept only by the PVC-protection finalizer, which envtest never releases
			}
			return fmt.Errorf("still there (%v)", err)
		})
	}
	eventually(t, "portal gone", func() error {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), &billingv1alpha1.CustomerPortal{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("portal still there: %v", err)
	})
}

func minimalPortal(ns, name string) *billingv1alpha1.CustomerPortal {
	return &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName:    "Test",
			PaymentMethods: &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"card", "cvu"}},
			Email:          &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: "smtp"}, From: "billing@test.example"},
		},
	}
}

func waitObserved(t *testing.T, p *billingv1alpha1.CustomerPortal) *billingv1alpha1.CustomerPortal {
	t.Helper()
	var got *billingv1alpha1.CustomerPortal
	eventually(t, "status observes the latest generation", func() error {
		got = getPortal(t, p)
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	return got
}

func TestRuleChangesDoNotRollPods(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	createSecret(t, ns, "db", map[string]string{"dsn": "postgres://x"})
	p := minimalPortal(ns, "rules")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	n := namesFor(p)
	waitObserved(t, p)
	before, err := getDeployment(ns, n.deployment)
	if err != nil {
		t.Fatal(err)
	}

	// Rules: permissions, methods, returnURL, OTP, branding, access.
	update(t, getPortal(t, p), func(got *billingv1alpha1.CustomerPortal) {
		got.Spec.Permissions.UpdatePaymentMethod = ptr.To(false)
		got.Spec.Permissions.CancelSubscriptions = ptr.To(true)
		got.Spec.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"bank_transfer"}}
		got.Spec.ReturnURL = "https://shop.example/"
		got.Spec.OTP.Length = 8
		got.Spec.Branding.PrimaryColor = "#112233"
		got.Spec.Access.Sessions.MaxTTL = &metav1.Duration{Duration: 2 * 3600e9}
	})
	got := waitObserved(t, p)
	if !slices.Equal(got.Status.PaymentMethods, []billingv1alpha1.PaymentMethodType{"bank_transfer"}) {
		t.Errorf("status.paymentMethods = %v", got.Status.PaymentMethods)
	}
	after, _ := getDeployment(ns, n.deployment)
	if after.Generation != before.Generation || !equality.Semantic.DeepEqual(after.Spec.Template, before.Spec.Template) {
		t.Fatalf("a rule change rolled the pods: generation %d → %d", before.Generation, after.Generation)
	}

	// Replicas and storage need a restart: they do change the Deployment.
	update(t, got, func(got *billingv1alpha1.CustomerPortal) {
		got.Spec.Storage = &billingv1alpha1.Storage{Postgres: &billingv1alpha1.PostgresStorage{SecretRef: billingv1alpha1.DSNSecretReference{Name: "db"}}}
		got.Spec.Replicas = ptr.To[int32](3)
	})
	waitObserved(t, p)
	eventually(t, "deployment updated for postgres and 3 replicas", func() error {
		d, err := getDeployment(ns, n.deployment)
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 || d.Generation == before.Generation {
			return fmt.Errorf("replicas %d generation %d", *d.Spec.Replicas, d.Generation)
		}
		env := d.Spec.Template.Spec.Containers[0].Env
		if len(env) != 1 || env[0].ValueFrom.SecretKeyRef.Name != "db" || env[0].ValueFrom.SecretKeyRef.Key != "dsn" {
			return fmt.Errorf("dsn env = %+v", env)
		}
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
			return fmt.Errorf("strategy %s", d.Spec.Strategy.Type)
		}
		return nil
	})

	// And back to SQLite: one pod, replaced rather than rolled. The API server defaulted
	// strategy.rollingUpdate meanwhile, which Recreate does not allow: the switch must not stall.
	update(t, getPortal(t, p), func(got *billingv1alpha1.CustomerPortal) {
		got.Spec.Storage = nil
		got.Spec.Replicas = nil
	})
	eventually(t, "deployment back on SQLite, Recreate", func() error {
		got := getPortal(t, p)
		if c := condition(got, ConditionStalled); c != nil {
			return fmt.Errorf("stalled: %s", c.Message)
		}
		d, err := getDeployment(ns, n.deployment)
		if err != nil {
			return err
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil || *d.Spec.Replicas != 1 {
			return fmt.Errorf("strategy %+v, replicas %d", d.Spec.Strategy, *d.Spec.Replicas)
		}
		if len(d.Spec.Template.Spec.Containers[0].Env) != 0 {
			return fmt.Errorf("dsn env still there: %+v", d.Spec.Template.Spec.Containers[0].Env)
		}
		return nil
	})
}

func TestDriftIsRepaired(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	p := minimalPortal(ns, "drift")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	n := namesFor(p)
	waitObserved(t, p)

	d, _ := getDeployment(ns, n.deployment)
	uid := d.UID
	if err := k8s.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted deployment re-created", func() error {
		d, err := getDeployment(ns, n.deployment)
		if err != nil {
			return err
		}
		if d.UID == uid {
			return fmt.Errorf("still the old deployment")
		}
		return nil
	})

	svc := &corev1.Service{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.service}, svc); err != nil {
		t.Fatal(err)
	}
	update(t, svc, func(svc *corev1.Service) {
		svc.Spec.Ports[0].Port = 9999
		svc.Spec.Selector = map[string]string{"app": "evil"}
	})
	eventually(t, "hand-edited service restored", func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n.service}, svc); err != nil {
			return err
		}
		if svc.Spec.Ports[0].Port != 80 || svc.Spec.Selector[LabelInstance] != "drift" {
			return fmt.Errorf("service %+v", svc.Spec)
		}
		return nil
	})

	d, _ = getDeployment(ns, n.deployment)
	update(t, d, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "evil.example/miner" })
	eventually(t, "hand-edited deployment restored", func() error {
		d, err := getDeployment(ns, n.deployment)
		if err != nil {
			return err
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != testImage {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})
}

func TestMissingSecretStallsAndRecovers(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	p := minimalPortal(ns, "nosecret")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Stalled on missing secret", func() error {
		got := getPortal(t, p)
		s := condition(got, ConditionStalled)
		if s == nil || s.Status != metav1.ConditionTrue || s.Reason != ReasonSecretMissing {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		if want := `Secret "smtp" named in spec.email.smtpSecretRef does not exist`; !strings.Contains(s.Message, want) {
			return fmt.Errorf("message %q does not say %q", s.Message, want)
		}
		return nil
	})
	if s := kstatusOf(t, p); s != status.FailedStatus {
		t.Errorf("kstatus of a stalled portal = %s, want Failed", s)
	}
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	eventually(t, "recovers when the secret appears", func() error {
		got := getPortal(t, p)
		if condition(got, ConditionStalled) != nil {
			return fmt.Errorf("still stalled: %+v", got.Status.Conditions)
		}
		if _, err := getDeployment(ns, namesFor(p).deployment); err != nil {
			return err
		}
		return nil
	})
}

func TestIdlePortalIsQuiet(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	r := &CustomerPortalReconciler{}
	counter := &countingReconciler{inner: r, ns: ns}
	startManager(t, func(mgr manager.Manager) error {
		r.Client, r.APIReader, r.Scheme, r.PortalImage = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), testImage
		return r.setup(mgr, counter)
	})
	p := minimalPortal(ns, "idle")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	makeDeploymentAvailable(t, ns, namesFor(p).deployment)
	eventually(t, "Ready", func() error {
		got := getPortal(t, p)
		if c := condition(got, ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("not ready: %+v", got.Status.Conditions)
		}
		return nil
	})
	// The status write's echo and the Deployment's own events settle; then the count must stay put.
	settled := waitSettled(t, &counter.n)
	consistently(t, "idle portal causes no reconciles", 3*time.Second, func() error {
		if n := counter.n.Load(); n != settled {
			return fmt.Errorf("reconciled %d more times while idle", n-settled)
		}
		return nil
	})
	if settled > 10 {
		t.Errorf("%d reconciles to bring one portal up", settled)
	}
}

// waitSettled returns the counter's value once it has not moved for a second.
func waitSettled(t *testing.T, n *atomic.Int64) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a := n.Load()
		time.Sleep(time.Second)
		if n.Load() == a {
			return a
		}
	}
	t.Fatal("reconciles never settled: the controller loops")
	return 0
}

// TestRoleGrantsOnlyLinksOfPortalCreatedSessions: the portal may get the link Secret of a session it
// created (merchant API), while it is Active, and never another session's.
func TestRoleGrantsOnlyLinksOfPortalCreatedSessions(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	reg := prometheus.NewRegistry()
	pm, err := NewPortalMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	fc := testingclock.NewFakeClock(time.Now())
	r := &CustomerPortalReconciler{Metrics: pm, Clock: fc}
	startManager(t, func(mgr manager.Manager) error {
		r.Client, r.APIReader, r.Scheme, r.PortalImage = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), testImage
		return r.SetupWithManager(mgr)
	})
	p := minimalPortal(ns, "links")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	mkSession := func(name string, createdByPortal bool, linkSecret ...string) *billingv1alpha1.PortalSession {
		s := &billingv1alpha1.PortalSession{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{LabelPortal: "links"}},
			Spec: billingv1alpha1.PortalSessionSpec{
				PortalRef: billingv1alpha1.PortalReference{Name: "links"},
				Customer:  billingv1alpha1.CustomerReference{ID: "cus_1"},
			},
		}
		if createdByPortal {
			s.Labels[LabelCreatedBy] = CreatedByPortal
		}
		if err := k8s.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, LinkSecretName: name + "-link"}
		if len(linkSecret) > 0 {
			s.Status.LinkSecretName = linkSecret[0]
		}
		if err := k8s.Status().Update(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mine := mkSession("api-made", true)
	mkSession("kubectl-made", false)
	// A status naming another Secret (anyone who may write status could forge it) grants only
	// the session's own link Secret name, never the named one.
	forged := mkSession("forged", true, "db-password")

	secretRule := func() ([]string, error) {
		role := &rbacv1.Role{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: namesFor(p).role}, role); err != nil {
			return nil, err
		}
		var names []string
		for _, rule := range role.Rules {
			if slices.Contains(rule.Resources, "secrets") {
				if !slices.Equal(rule.Verbs, []string{"get"}) {
					return nil, fmt.Errorf("secret verbs %v", rule.Verbs)
				}
				names = append(names, rule.ResourceNames...)
			}
		}
		slices.Sort(names)
		return names, nil
	}
	// wantGranted waits until the Role grants get on exactly these Secrets.
	wantGranted := func(what string, want ...string) {
		t.Helper()
		eventually(t, what, func() error {
			names, err := secretRule()
			if err != nil {
				return err
			}
			if !slices.Equal(names, want) {
				return fmt.Errorf("secret names %v", names)
			}
			return nil
		})
	}
	wantGranted("role grants the portal-created link", "api-made-link", "forged-link", "smtp")
	// And the portal itself may not write any session's status. (The RoleBinding is applied
	// right after the Role: wait until the Role is in effect for the ServiceAccount.)
	sa := "system:serviceaccount:" + ns + ":" + namesFor(p).serviceAccount
	eventually(t, "the portal's Role bound to its ServiceAccount", func() error {
		if !canI(t, sa, ns, "create", "portalsessions", "") {
			return errors.New("the portal's ServiceAccount may not create portalsessions: the merchant API needs it")
		}
		return nil
	})
	for _, verb := range []string{"update", "patch"} {
		if canI(t, sa, ns, verb, "portalsessions", "status") {
			t.Errorf("the portal's ServiceAccount may %s portalsessions/status", verb)
		}
	}
	if err := k8s.Delete(context.Background(), forged); err != nil {
		t.Fatal(err)
	}

	mine.Status.Phase = billingv1alpha1.SessionExpired
	if err := k8s.Status().Update(context.Background(), mine); err != nil {
		t.Fatal(err)
	}
	wantGranted("expired session's link no longer granted", "smtp")

	// The merchant API reads a link within seconds of creating the session; past the grant
	// window the Role no longer names it, however long the session stays active.
	fresh := mkSession("api-made-later", true)
	wantGranted("the new session's link granted", "api-made-later-link", "smtp")
	fc.SetTime(fresh.CreationTimestamp.Add(linkGrantWindow + time.Second))
	update(t, fresh, func(s *billingv1alpha1.PortalSession) { s.Labels["seen"] = "yes" }) // any event brings the portal back
	wantGranted("grant ended after the window", "smtp")

	// The Ready gauge follows the condition: 0 while unavailable, 1 once the pods are.
	gauge := func() float64 { return testutil.ToFloat64(pm.ready.WithLabelValues(ns, "links")) }
	eventually(t, "gauge 0 while not ready", func() error {
		if g := gauge(); g != 0 {
			return fmt.Errorf("gauge %v", g)
		}
		return nil
	})
	makeDeploymentAvailable(t, ns, namesFor(p).deployment)
	eventually(t, "gauge 1 when ready", func() error {
		if g := gauge(); g != 1 {
			return fmt.Errorf("gauge %v; portal conditions %+v", g, getPortal(t, p).Status.Conditions)
		}
		return nil
	})
}

// canI asks the API server's authorizer whether user may verb the billing resource (and
// subresource) in ns, as RBAC stands now. Roles apply at once, so no waiting is needed once the
// Role is seen.
func canI(t *testing.T, user, ns, verb, resource, subresource string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb,
			Group: billingv1alpha1.GroupVersion.Group, Resource: resource, Subresource: subresource}}}
	if err := k8s.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// portalEvents lists the events.k8s.io Events about one CustomerPortal.
func portalEvents(ns, name string) ([]eventsv1.Event, error) {
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "CustomerPortal" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out, nil
}

// TestInsecureLinksWhilePlainHTTP: a portal exposed on a host without TLS mints http:// links, whose
// token crosses the network in the clear. It says so in an InsecureLinks condition (and a Warning
// event) until tlsSecretName is set; Ready and kstatus are computed as before.
func TestInsecureLinksWhilePlainHTTP(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	p := minimalPortal(ns, "plain")
	p.Spec.Exposure = &billingv1alpha1.Exposure{Host: "billing.plain.example"}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	makeDeploymentAvailable(t, ns, namesFor(p).deployment)
	eventually(t, "Ready, with InsecureLinks", func() error {
		got := getPortal(t, p)
		if r := condition(got, ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
			return fmt.Errorf("not ready: %+v", got.Status.Conditions)
		}
		c := condition(got, ConditionInsecureLinks)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonPlainHTTP || c.ObservedGeneration != got.Generation {
			return fmt.Errorf("InsecureLinks %+v", c)
		}
		for _, want := range []string{"http://billing.plain.example/", "unencrypted", "spec.exposure.tlsSecretName", "https spec.exposure.publicURL"} {
			if !strings.Contains(c.Message, want) {
				return fmt.Errorf("message %q does not say %q", c.Message, want)
			}
		}
		return nil
	})
	if s := kstatusOf(t, p); s != status.CurrentStatus {
		t.Fatalf("kstatus of a ready portal with InsecureLinks = %s, want Current", s)
	}
	eventually(t, "InsecureLinks Warning event", func() error {
		evs, err := portalEvents(ns, p.Name)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.Type == corev1.EventTypeWarning && e.Reason == ConditionInsecureLinks && strings.Contains(e.Note, "unencrypted") {
				return nil
			}
		}
		return fmt.Errorf("not among %d events", len(evs))
	})

	update(t, p, func(p *billingv1alpha1.CustomerPortal) { p.Spec.Exposure.TLSSecretName = "plain-tls" })
	eventually(t, "InsecureLinks gone once TLS is set", func() error {
		got := getPortal(t, p)
		if got.Status.ObservedGeneration != got.Generation || got.Status.URL != "https://billing.plain.example/" {
			return fmt.Errorf("status %+v", got.Status)
		}
		if c := condition(got, ConditionInsecureLinks); c != nil {
			return fmt.Errorf("InsecureLinks still there: %+v", c)
		}
		if r := condition(got, ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
			return fmt.Errorf("not ready: %+v", got.Status.Conditions)
		}
		return nil
	})
	if s := kstatusOf(t, p); s != status.CurrentStatus {
		t.Fatalf("kstatus after TLS = %s, want Current", s)
	}
}

// Which portal URLs make links that carry their token in the clear.
func TestPlainHTTP(t *testing.T) {
	for u, want := range map[string]bool{
		"http://billing.acme.example/":               true,
		"http://acme-portal.shop.svc.cluster.local/": true, // in-cluster traffic is a network too
		"http://10.0.0.7:8080/":                      true,
		"HTTP://billing.acme.example/":               true,
		"https://billing.acme.example/":              false,
		"http://127.0.0.1:41485/":                    false, // make run, a port-forward
		"http://[::1]:8080/":                         false,
		"http://localhost:8080/":                     false,
		"http://portal.localhost/":                   false,
		"":                                           false,
	} {
		if got := plainHTTP(u); got != want {
			t.Errorf("plainHTTP(%q) = %v, want %v", u, got, want)
		}
	}
}
