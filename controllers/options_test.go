package controllers

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

func linkSecretMeta(name, url string, extra map[string]string) *metav1.PartialObjectMetadata {
	m := secretMetadata()
	m.Namespace, m.Name, m.UID, m.ResourceVersion = "shop", name, "uid-"+"name", "7"
	m.Labels = map[string]string{LabelManagedBy: ManagedByValue}
	m.Annotations = map[string]string{AnnotationLinkPortalURL: url, "other": "dropped"}
	for k, v := range extra {
		m.Annotations[k] = v
	}
	m.OwnerReferences = []metav1.OwnerReference{
		{APIVersion: "v1", Kind: "ConfigMap", Name: "not-the-controller", UID: "x"},
		{APIVersion: "billing.portero.dev/v1alpha1", Kind: "PortalSession", Name: name, UID: "s-uid", Controller: ptr.To(true)},
	}
	return m
}

func slim(t *testing.T, m *metav1.PartialObjectMetadata) *metav1.PartialObjectMetadata {
	t.Helper()
	out, err := slimLinkSecret(m)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*metav1.PartialObjectMetadata)
}

func mapIdentity(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }

// The cache keeps of a link Secret only what the session controller reads, and holds one
// annotations map per portal URL rather than one per session.
func TestSlimLinkSecretKeepsWhatIsReadAndSharesAnnotations(t *testing.T) {
	a := slim(t, linkSecretMeta("a-link", "https://one.example/", nil))
	b := slim(t, linkSecretMeta("b-link", "https://one.example/", nil))
	c := slim(t, linkSecretMeta("c-link", "https://two.example/", nil))
	w := slim(t, linkSecretMeta("d-link", "https://one.example/", map[string]string{cachedDataWriterAnnotation: "kubectl-edit"}))

	if a.Name != "a-link" || a.Namespace != "shop" || a.ResourceVersion != "7" || a.Labels != nil {
		t.Errorf("slim metadata = %+v", a.ObjectMeta)
	}
	if len(a.OwnerReferences) != 1 || a.OwnerReferences[0].Name != "a-link" || metav1.GetControllerOfNoCopy(a) == nil {
		t.Errorf("owner references = %+v, want only the controller", a.OwnerReferences)
	}
	want := map[string]string{AnnotationLinkPortalURL: "https://one.example/"}
	if !reflect.DeepEqual(a.Annotations, want) || !reflect.DeepEqual(b.Annotations, want) {
		t.Errorf("annotations = %v and %v, want %v", a.Annotations, b.Annotations, want)
	}
	if mapIdentity(a.Annotations) != mapIdentity(b.Annotations) {
		t.Error("two Secrets of one portal hold two annotation maps; want one shared")
	}
	if c.Annotations[AnnotationLinkPortalURL] != "https://two.example/" || mapIdentity(c.Annotations) == mapIdentity(a.Annotations) {
		t.Errorf("another portal's Secret: annotations %v", c.Annotations)
	}
	if w.Annotations[cachedDataWriterAnnotation] != "kubectl-edit" || w.Annotations[AnnotationLinkPortalURL] != "https://one.example/" {
		t.Errorf("Secret written by someone else: annotations %v", w.Annotations)
	}
	if a.Annotations[cachedDataWriterAnnotation] != "" {
		t.Error("sharing leaked the data writer into another Secret's annotations")
	}

	// A deep copy (what every cache read returns) is the caller's own to change.
	cp := a.DeepCopy()
	cp.Annotations[AnnotationLinkPortalURL] = "changed"
	if b.Annotations[AnnotationLinkPortalURL] != "https://one.example/" {
		t.Error("changing a deep copy changed a cached object")
	}
}

// The table of shared values is bounded: once full it starts over, and values stay right.
func TestSharedValuesBounded(t *testing.T) {
	var s sharedValues
	for i := range 3 * sharedValuesMax {
		u := string(rune('a'+i%26)) + string(rune(i))
		if got := s.annotations(u, true, "", false); got[AnnotationLinkPortalURL] != u || len(got) != 1 {
			t.Fatalf("annotations(%q) = %v", u, got)
		}
		if got := s.string(u); got != u {
			t.Fatalf("string(%q) = %q", u, got)
		}
		if s.entries > sharedValuesMax {
			t.Fatalf("%d entries, bound %d", s.entries, sharedValuesMax)
		}
	}
}

// Cached PortalSessions lose managedFields and share the strings sessions have in common; what
// is particular to each session (its name, its conditions' messages) is kept as it was.
func TestCompactSessionSharesCommonStrings(t *testing.T) {
	mk := func(name string) *billingv1alpha1.PortalSession {
		s := &billingv1alpha1.PortalSession{}
		s.Namespace, s.Name = strings.Clone("shop"), name
		s.Finalizers = []string{strings.Clone(FinalizerRevoke)}
		s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
		s.Spec.PortalRef.Name = strings.Clone("main")
		s.Status.Phase = billingv1alpha1.SessionPhase(strings.Clone("Active"))
		s.Status.Conditions = []metav1.Condition{{Type: strings.Clone(ConditionReady), Status: metav1.ConditionStatus(strings.Clone("True")),
			Reason: strings.Clone(SessionReasonLinkReady), Message: "the link of " + name}}
		out, err := compactSession(s)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*billingv1alpha1.PortalSession)
	}
	a, b := mk("a"), mk("b")
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are held twice; want one shared copy", what, x, y)
		}
	}
	same("namespace", a.Namespace, b.Namespace)
	same("finalizer", a.Finalizers[0], b.Finalizers[0])
	same("portal", a.Spec.PortalRef.Name, b.Spec.PortalRef.Name)
	same("phase", string(a.Status.Phase), string(b.Status.Phase))
	same("condition type", a.Status.Conditions[0].Type, b.Status.Conditions[0].Type)
	same("condition reason", a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason)
	if a.ManagedFields != nil {
		t.Error("managedFields kept in the cache")
	}
	if a.Name != "a" || a.Status.Conditions[0].Message != "the link of a" || b.Status.Conditions[0].Message != "the link of b" {
		t.Errorf("per-session values changed: %s %q, %s %q", a.Name, a.Status.Conditions[0].Message, b.Name, b.Status.Conditions[0].Message)
	}
}

// The portal's Deployment and Role are cached without their pod template and rules; what the
// CustomerPortal controller reads back (replicas, generation, status) stays.
func TestSlimOwnedKeepsWhatTheControllerReads(t *testing.T) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-portal", Generation: 3, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "portal", Image: "portero-portal:1"}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, ReadyReplicas: 2, UpdatedReplicas: 2,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
	out, err := slimOwned(d)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*appsv1.Deployment)
	if len(got.Spec.Template.Spec.Containers) != 0 || got.ManagedFields != nil {
		t.Errorf("cached Deployment keeps its pod template or managedFields: %+v", got)
	}
	if *got.Spec.Replicas != 2 || got.Generation != 3 || got.Status.ReadyReplicas != 2 || got.Status.ObservedGeneration != 3 {
		t.Errorf("cached Deployment lost what deploymentOutcome reads: %+v", got)
	}
	if o := deploymentOutcome(&portalScope{deploy: got}); !o.ready {
		t.Errorf("deploymentOutcome on the cached Deployment = %+v, want ready", o)
	}

	r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "acme-portal"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}}}}
	out, err = slimOwned(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*rbacv1.Role); got.Rules != nil || got.Name != "acme-portal" {
		t.Errorf("cached Role = %+v, want its metadata without rules", got)
	}
}

// A referenced Secret is watched for its name only: what `kubectl apply` copies of it into an
// annotation (its data, base64) must not stay in the manager's memory.
func TestSecretNameKeepsNoValues(t *testing.T) {
	m := secretMetadata()
	m.Namespace, m.Name, m.UID, m.ResourceVersion = "shop", "acme-smtp", "u1", "42"
	m.Labels = map[string]string{"team": "billing"}
	m.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"v1","kind":"Secret","data":{"password":"aHVudGVyMg=="}}`}
	m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	out, err := secretName(m)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*metav1.PartialObjectMetadata)
	want := metav1.ObjectMeta{Namespace: "shop", Name: "acme-smtp", UID: "u1", ResourceVersion: "42"}
	if !reflect.DeepEqual(got.ObjectMeta, want) || got.Kind != "Secret" {
		t.Errorf("cached %+v %+v, want only %+v", got.TypeMeta, got.ObjectMeta, want)
	}
}
