// Package controllers holds Portero's reconcilers: CustomerPortal → a running portal, and
// PortalSession → an expiring, pre-authenticated link.
package controllers

import (
	"bytes"
	"maps"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// Labels on every object the operator creates. The manager's cache selects on LabelManagedBy so it
// holds only Portero's own objects, not every Deployment or Secret in the cluster.
const (
	LabelManagedBy    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "portero-operator"
	LabelName         = "app.kubernetes.io/name"
	LabelInstance     = "app.kubernetes.io/instance"
	LabelComponent    = "app.kubernetes.io/component"
	LabelPortal       = "billing.portero.dev/portal"
	LabelSession      = "billing.portero.dev/session"
	PortalAppName     = "portero-portal"
	FieldOwner        = "portero-operator"
	AnnotationKeepPVC = "billing.portero.dev/keep-storage-on-delete"
	// LabelCreatedBy marks PortalSessions the portal server created (merchant API, renewal e-mails);
	// the portal's Role then lets it get those sessions' link Secrets, and no others.
	LabelCreatedBy  = "billing.portero.dev/created-by"
	CreatedByPortal = "portal"
)

// CacheOptions restricts the manager's cache to objects the operator owns (by label), in the
// namespaces given (every namespace when none are). Secrets the user references are not cached:
// the CustomerPortal controller watches their names only.
func CacheOptions(namespaces ...string) cache.Options {
	owned := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})}
	return cache.Options{
		// A namespaced install holds a Role in these namespaces only: an informer on any other
		// namespace, or on all of them, would be refused.
		DefaultNamespaces: namespaceConfigs(namespaces),
		// managedFields are for the API server's server-side apply, never read here: dropping
		// them from the cache saves a large share of the manager's memory.
		DefaultTransform: stripForCache,
		ByObject: map[client.Object]cache.ByObject{
			// The portal's Deployment and Role are cached without their pod template and rules
			// (slimOwned): the controller applies them whole and reads back only replicas and status.
			&appsv1.Deployment{}:            {Label: owned.Label, Transform: slimOwned},
			&corev1.Service{}:               owned,
			&corev1.ServiceAccount{}:        owned,
			&corev1.PersistentVolumeClaim{}: owned,
			// Only link Secrets carry the label; they are cached as metadata only.
			&corev1.Secret{}:        {Label: owned.Label, Transform: slimLinkSecret},
			&rbacv1.Role{}:          {Label: owned.Label, Transform: slimOwned},
			&rbacv1.RoleBinding{}:   owned,
			&networkingv1.Ingress{}: owned,
			// One per session: what sessions have in common is held once (compactSession).
			&billingv1alpha1.PortalSession{}: {Transform: compactSession},
		},
	}
}

// namespaceConfigs is cache.Options.DefaultNamespaces for namespaces: nil (all) when empty.
func namespaceConfigs(namespaces []string) map[string]cache.Config {
	if len(namespaces) == 0 {
		return nil
	}
	m := make(map[string]cache.Config, len(namespaces))
	for _, ns := range namespaces {
		m[ns] = cache.Config{}
	}
	return m
}

// cachedDataWriterAnnotation is set, in the manager's cache only (never on the API server), on a
// link Secret whose data someone other than the operator wrote. Link Secrets are cached as
// metadata without managedFields; this keeps the one fact the session controller needs from them.
const cachedDataWriterAnnotation = "cache.portero.dev/data-written-by"

// secretMetadata is an empty Secret metadata-only object, for reads and watches that must not
// bring Secret data into the cache.
func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// stripForCache drops from cached objects what the operator never reads and can be large:
// managedFields (for the API server's server-side apply) and the copy of the whole object that
// `kubectl apply` keeps in an annotation. Writes are patches computed between two cached copies,
// so a field missing from both is never touched.
func stripForCache(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil
	}
	obj.SetManagedFields(nil)
	if ann := obj.GetAnnotations(); ann != nil {
		if _, ok := ann[corev1.LastAppliedConfigAnnotation]; ok {
			ann = maps.Clone(ann)
			delete(ann, corev1.LastAppliedConfigAnnotation)
			obj.SetAnnotations(ann)
		}
	}
	return in, nil
}

// slimOwned is stripForCache for the portal's Deployment and Role, which also drops what the
// CustomerPortal controller writes (server-side apply, from the portal's spec) but never reads from
// the cache: the Deployment's pod template and the Role's rules — most of their size, at one of
// each per portal. Nothing updates either from a cached copy, which would write the gap back.
func slimOwned(in any) (any, error) {
	if _, err := stripForCache(in); err != nil {
		return nil, err
	}
	switch o := in.(type) {
	case *appsv1.Deployment:
		o.Spec.Template = corev1.PodTemplateSpec{}
	case *rbacv1.Role:
		o.Rules = nil
	}
	return in, nil
}

// slimLinkSecret keeps of a link Secret's metadata only what the session controller reads from the
// cache — name, UID, resourceVersion, deletion, the controller reference, the portal-url annotation
// and who else wrote its data (noteDataWriters) — as the cache holds one per session. What many
// link Secrets have in common (their annotations: one portal URL per portal, not per session; the
// namespace; the owner's kind) is shared between them through cacheShared.
func slimLinkSecret(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return noteDataWriters(in)
	}
	if _, err := noteDataWriters(m); err != nil {
		return nil, err
	}
	slim := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: cacheShared.string(m.APIVersion), Kind: cacheShared.string(m.Kind)},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: cacheShared.string(m.Namespace), UID: m.UID, ResourceVersion: m.ResourceVersion,
			DeletionTimestamp: m.DeletionTimestamp,
		},
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		r := *ref
		r.APIVersion, r.Kind = cacheShared.string(r.APIVersion), cacheShared.string(r.Kind)
		slim.OwnerReferences = []metav1.OwnerReference{r}
	}
	url, hasURL := m.Annotations[AnnotationLinkPortalURL]
	writer, hasWriter := m.Annotations[cachedDataWriterAnnotation]
	if hasURL || hasWriter {
		slim.Annotations = cacheShared.annotations(url, hasURL, writer, hasWriter)
	}
	return slim, nil
}

// compactSession is stripForCache for PortalSessions, which then share with each other — through
// cacheShared — the strings that repeat from one session to the next: namespace, portal, finalizer,
// phase, and the conditions' types, statuses and reasons (not their messages, which name the
// session). The cache holds one PortalSession per session, so these add up.
func compactSession(in any) (any, error) {
	if _, err := stripForCache(in); err != nil {
		return nil, err
	}
	s, ok := in.(*billingv1alpha1.PortalSession)
	if !ok {
		return in, nil
	}
	t := cacheShared
	s.APIVersion, s.Kind, s.Namespace = t.string(s.APIVersion), t.string(s.Kind), t.string(s.Namespace)
	for i := range s.Finalizers {
		s.Finalizers[i] = t.string(s.Finalizers[i])
	}
	s.Spec.PortalRef.Name = t.string(s.Spec.PortalRef.Name)
	s.Status.Phase = billingv1alpha1.SessionPhase(t.string(string(s.Status.Phase)))
	for i := range s.Status.Conditions {
		c := &s.Status.Conditions[i]
		c.Type, c.Reason = t.string(c.Type), t.string(c.Reason)
		c.Status = metav1.ConditionStatus(t.string(string(c.Status)))
	}
	return s, nil
}

// cacheShared holds the values slimLinkSecret and compactSession share between cached objects.
var cacheShared = &sharedValues{}

// sharedValues hands out one copy of equal strings and of equal slim annotation maps, so that
// the cache holds each once instead of once per object. Sharing is safe because nothing modifies
// a cached object in place: cache reads return deep copies and event handlers only read. The
// table is bounded: when it is full it starts over (objects keep the values they were given).
type sharedValues struct {
	mu      sync.Mutex
	strs    map[string]string
	annots  map[annotationsKey]map[string]string
	entries int
}

// annotationsKey names a slim annotations map: the values, and which of them are set.
type annotationsKey struct {
	url, writer       string
	hasURL, hasWriter bool
}

// sharedValuesMax bounds sharedValues: far above the distinct portal URLs and namespaces a
// manager sees, far below what would matter in memory.
const sharedValuesMax = 4096

// resetIfFull starts the table over when it holds sharedValuesMax values.
func (t *sharedValues) resetIfFull() {
	if t.entries >= sharedValuesMax {
		t.strs, t.annots, t.entries = nil, nil, 0
	}
}

func (t *sharedValues) string(s string) string {
	if s == "" {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.strs[s]; ok {
		return v
	}
	t.resetIfFull()
	if t.strs == nil {
		t.strs = map[string]string{}
	}
	s = strings.Clone(s) // never a window on a larger buffer the decoder had
	t.strs[s] = s
	t.entries++
	return s
}

// annotations returns a map holding the portal-url and data-writer annotations given, shared with
// every other caller that gives the same ones.
func (t *sharedValues) annotations(url string, hasURL bool, writer string, hasWriter bool) map[string]string {
	key := annotationsKey{url: url, writer: writer, hasURL: hasURL, hasWriter: hasWriter}
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.annots[key]; ok {
		return a
	}
	a := make(map[string]string, 2)
	if hasURL {
		a[AnnotationLinkPortalURL] = url
	}
	if hasWriter {
		a[cachedDataWriterAnnotation] = writer
	}
	t.resetIfFull()
	if t.annots == nil {
		t.annots = map[annotationsKey]map[string]string{}
	}
	t.annots[key] = a
	t.entries++
	return a
}

// noteDataWriters strips an object's managedFields, first recording in
// cachedDataWriterAnnotation another field manager that owns any of its data.
func noteDataWriters(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil
	}
	var writer string
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != FieldOwner && mf.FieldsV1 != nil && bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:data"`)) {
			writer = mf.Manager
		}
	}
	obj.SetManagedFields(nil)
	if writer != "" {
		ann := maps.Clone(obj.GetAnnotations())
		if ann == nil {
			ann = map[string]string{}
		}
		ann[cachedDataWriterAnnotation] = writer
		obj.SetAnnotations(ann)
	}
	return in, nil
}

// secretName keeps of a Secret that is not Portero's only what tells the CustomerPortal controller
// it exists and changed: name, namespace, UID, resourceVersion, deletion. The metadata-only watch
// of such Secrets receives their labels and annotations too, and `kubectl apply` keeps a copy of
// the whole Secret, data included, in its last-applied annotation: without this, the manager
// would hold the values of every such Secret it watches.
func secretName(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return stripForCache(in)
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: m.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			DeletionTimestamp: m.DeletionTimestamp,
		},
	}, nil
}

// ControllerOptions are the manager-wide controller settings. Tests run several managers in one
// process and so skip the controller-name uniqueness check.
func ControllerOptions(skipNameValidation bool) config.Controller {
	return config.Controller{SkipNameValidation: ptr.To(skipNameValidation)}
}

// ManagerOptions are the manager settings every Portero manager shares — cmd/manager and the
// tests that run the reconcilers against a real API server: the scheme, the label-selected cache
// (limited to namespaces, if any are given) and the controller settings. Callers add metrics,
// probes and leader election.
func ManagerOptions(scheme *runtime.Scheme, skipNameValidation bool, namespaces ...string) manager.Options {
	return manager.Options{
		Scheme:                 scheme,
		Cache:                  CacheOptions(namespaces...),
		Controller:             ControllerOptions(skipNameValidation),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}
}
