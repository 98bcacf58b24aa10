package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/webhooks/signing"
)

const (
	portalFinalizer = "billing.portero.dev/cleanup"
	// indexPortalSecretRefs indexes CustomerPortals by the Secret names their spec references.
	indexPortalSecretRefs = "billing.portero.dev/secret-refs"
	// indexIngressHost indexes Portero's Ingresses by host, to find a host two portals claim.
	indexIngressHost = "billing.portero.dev/ingress-host"
)

// Reasons of the CustomerPortal's conditions.
const (
	ReasonReady                 = "PortalReady"
	ReasonProgressing           = "Progressing"
	ReasonDeploymentUnavailable = "DeploymentUnavailable"
	ReasonSecretMissing         = "SecretMissing"
	ReasonSecretKeyMissing      = "SecretKeyMissing"
	ReasonSecretInvalid         = "SecretInvalid"
	ReasonIngressHostTaken      = "IngressHostTaken"
	ReasonInvalidSpec           = "InvalidSpec"
	ReasonApplyFailed           = "ApplyFailed"
)

// ConditionInsecureLinks is present (True, reason ReasonPlainHTTP) while the portal's URL is
// plain http on a host other than this machine: every session link carries its token in the
// clear. It is a warning beside the kstatus conditions, not one of them: Ready does not change.
const (
	ConditionInsecureLinks = "InsecureLinks"
	ReasonPlainHTTP        = "PlainHTTP"
)

// CustomerPortalReconciler turns each CustomerPortal into a running portal: ServiceAccount, Role,
// RoleBinding, PVC (SQLite), Deployment, Service and optional Ingress, all applied with server-side
// apply under one field owner.
type CustomerPortalReconciler struct {
	Client client.Client
	// APIReader reads referenced Secrets directly: they are user objects, not in the label-selected cache.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// PortalImage is the portal server's container image.
	PortalImage string
	// LocalURLs publishes the URL in a portal's LocalURLAnnotation as its status.url: for
	// `make run`, whose portals are local processes. Never set it in a cluster, where anyone who
	// may annotate a portal could then point its links anywhere.
	LocalURLs bool
	// Metrics receives each portal's Ready state; nil disables the gauge.
	Metrics *PortalMetrics
	// Clock decides when a link Secret's grant ends (linkGrantWindow); nil is the real clock.
	Clock clock.PassiveClock
	// Namespaces limits the watch of referenced Secrets to the namespaces the manager's cache
	// holds (ManagerOptions); empty watches every namespace.
	Namespaces []string
}

// linkGrantWindow is how long after a portal-created session's creation its portal may read the
// link Secret. The merchant API reads it once, within seconds (it waits 10 s at most), and never
// hands it out again; keeping the grant short keeps the portal's Role small however many sessions
// are active, and a compromised portal from reading older links.
const linkGrantWindow = 5 * time.Minute

// portalScope carries one reconcile's state between its phases.
type portalScope struct {
	portal *billingv1alpha1.CustomerPortal
	names  childNames
	deploy *appsv1.Deployment
	// requeueAfter brings the portal back when its next link grant ends (0: none pending).
	requeueAfter time.Duration
}

// Reconcile runs the phases for one CustomerPortal and writes its status once, at the end.
func (r *CustomerPortalReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	portal := &billingv1alpha1.CustomerPortal{}
	if err := r.Client.Get(ctx, req.NamespacedName, portal); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get customerportal: %w", err)
	}
	if !portal.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, portal)
	}
	if !controllerutil.ContainsFinalizer(portal, portalFinalizer) {
		// The finalizer deletes owned objects explicitly, so clean-up does not depend on the
		// garbage collector running (it does not in envtest, and may lag on busy clusters).
		patch := client.MergeFrom(portal.DeepCopy())
		controllerutil.AddFinalizer(portal, portalFinalizer)
		if err := r.Client.Patch(ctx, portal, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	scope := &portalScope{portal: portal, names: namesFor(portal)}
	before := portal.Status.DeepCopy()
	res, out, err := r.reconcilePhases(ctx, scope)

	r.computeStatus(scope, out)
	if !equality.Semantic.DeepEqual(before, &portal.Status) {
		if perr := r.Client.Status().Update(ctx, portal); perr != nil {
			if apierrors.IsConflict(perr) {
				// Our cached copy was behind. The newer object may be our own last status write,
				// whose event the For predicate drops: look again once the cache has caught up,
				// or the status would keep an old answer (Ready never set) until some other event.
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("update status: %w", perr))
		}
		r.emitTransitions(before, portal)
	}
	r.Metrics.observe(portal)
	if err != nil {
		log.Error(err, "reconcile portal")
	}
	return res, err
}

// reconcilePhases runs the named phases in order. A phase returning a non-nil outcome stops the run:
// stalled outcomes need a person and are not retried on a timer (a watch brings us back).
func (r *CustomerPortalReconciler) reconcilePhases(ctx context.Context, s *portalScope) (ctrl.Result, outcome, error) {
	phases := []struct {
		name string
		fn   func(context.Context, *portalScope) (*outcome, error)
	}{
		{"secrets", r.checkSecrets},
		{"ingress-host", r.checkIngressHost},
		{"rbac", r.applyRBAC},
		{"storage", r.applyStorage},
		{"deployment", r.applyDeployment},
		{"service", r.applyService},
		{"ingress", r.applyIngress},
	}
	for _, ph := range phases {
		o, err := ph.fn(ctx, s)
		if err != nil {
			if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
				// The API server refused what the spec asks for (e.g. shrinking a PVC): only a person can fix it.
				return ctrl.Result{}, outcome{stalled: true, reason: ReasonInvalidSpec, message: fmt.Sprintf("%s: %v", ph.name, err)}, nil
			}
			return ctrl.Result{}, outcome{reason: ReasonApplyFailed, message: fmt.Sprintf("%s: %v", ph.name, err)}, fmt.Errorf("%s: %w", ph.name, err)
		}
		if o != nil {
			return ctrl.Result{}, *o, nil
		}
	}
	return ctrl.Result{RequeueAfter: s.requeueAfter}, deploymentOutcome(s), nil
}

// checkSecrets verifies every Secret the spec references exists and holds the key it needs.
func (r *CustomerPortalReconciler) checkSecrets(ctx context.Context, s *portalScope) (*outcome, error) {
	type ref struct{ field, name, key string }
	spec := &s.portal.Spec
	var refs []ref
	if spec.Email != nil {
		refs = append(refs, ref{"spec.email.smtpSecretRef", spec.Email.SMTPSecretRef.Name, "host"})
	}
	if spec.MerchantAPI != nil {
		refs = append(refs, ref{"spec.merchantAPI.keySecretRef", spec.MerchantAPI.KeySecretRef.Name, secretKey(spec.MerchantAPI.KeySecretRef.Key, "key")})
	}
	if spec.Storage != nil && spec.Storage.Postgres != nil {
		refs = append(refs, ref{"spec.storage.postgres.secretRef", spec.Storage.Postgres.SecretRef.Name, secretKey(spec.Storage.Postgres.SecretRef.Key, "dsn")})
	}
	for i, wh := range spec.Webhooks {
		// The CRD's CEL rule cannot see everything the portal refuses (credentials in the URL):
		// say so here rather than leave the portal to skip the endpoint in silence.
		if err := signing.CheckURL(wh.URL); err != nil {
			return &outcome{stalled: true, reason: ReasonInvalidSpec, message: fmt.Sprintf("spec.webhooks[%d].url: %v", i, err)}, nil
		}
		refs = append(refs, ref{fmt.Sprintf("spec.webhooks[%d].secretRef", i), wh.SecretRef.Name, secretKey(wh.SecretRef.Key, "secret")})
	}
	if pr := spec.Processor; pr != nil && pr.SecretRef != nil {
		// Each key the processor needs; a type whose keys are not known yet needs the Secret.
		keys := spec.ProcessorType().SecretKeys()
		if len(keys) == 0 {
			keys = []string{""}
		}
		for _, k := range keys {
			refs = append(refs, ref{"spec.processor.secretRef", pr.SecretRef.Name, k})
		}
	}
	// The Secrets hold passwords and keys: client-go must not dump them at -v=8.
	ctx = withoutBodyDumps(ctx)
	for _, rf := range refs {
		sec := &corev1.Secret{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.portal.Namespace, Name: rf.name}, sec)
		if apierrors.IsNotFound(err) {
			return &outcome{stalled: true, reason: ReasonSecretMissing,
				message: fmt.Sprintf("Secret %q named in %s does not exist in namespace %s: create it", rf.name, rf.field, s.portal.Namespace)}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get secret %s: %w", rf.name, err)
		}
		if rf.key != "" && len(sec.Data[rf.key]) == 0 {
			return &outcome{stalled: true, reason: ReasonSecretKeyMissing,
				message: fmt.Sprintf("Secret %q named in %s has no %q key: add it", rf.name, rf.field, rf.key)}, nil
		}
		if strings.HasPrefix(rf.field, "spec.webhooks[") {
			keys := []string{rf.key}
			if _, rotating := sec.Data[signing.PreviousKey]; rotating && rf.key != signing.PreviousKey {
				// The portal signs with the previous secret too while it is present; an unusable
				// one would leave receivers that still verify with it rejecting every delivery.
				keys = append(keys, signing.PreviousKey)
			}
			for _, k := range keys {
				if _, err := signing.ParseSecret(string(sec.Data[k])); err != nil {
					return &outcome{stalled: true, reason: ReasonSecretInvalid,
						message: fmt.Sprintf("Secret %q named in %s: key %q: %v", rf.name, rf.field, k, err)}, nil
				}
			}
		}
	}
	return nil, nil
}

// checkIngressHost refuses a host another portal's Ingress already serves.
func (r *CustomerPortalReconciler) checkIngressHost(ctx context.Context, s *portalScope) (*outcome, error) {
	ex := s.portal.Spec.Exposure
	if ex == nil || ex.Host == "" {
		return nil, nil
	}
	list := &networkingv1.IngressList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{indexIngressHost: ex.Host}); err != nil {
		return nil, fmt.Errorf("list ingresses for host %s: %w", ex.Host, err)
	}
	for _, ing := range list.Items {
		if ing.Namespace == s.portal.Namespace && ing.Name == s.names.ingress {
			continue
		}
		owner := ing.Labels[LabelPortal]
		return &outcome{stalled: true, reason: ReasonIngressHostTaken,
			message: fmt.Sprintf("host %q is already served by CustomerPortal %s/%s: choose another exposure.host", ex.Host, ing.Namespace, owner)}, nil
	}
	return nil, nil
}

func (r *CustomerPortalReconciler) apply(ctx context.Context, obj runtime.ApplyConfiguration) error {
	return r.Client.Apply(ctx, obj, client.FieldOwner(FieldOwner), client.ForceOwnership)
}

func (r *CustomerPortalReconciler) applyRBAC(ctx context.Context, s *portalScope) (*outcome, error) {
	links, next, err := r.portalCreatedLinkSecrets(ctx, s.portal)
	if err != nil {
		return nil, err
	}
	s.requeueAfter = next
	for _, obj := range []runtime.ApplyConfiguration{
		buildServiceAccount(s.portal, s.names),
		buildRole(s.portal, s.names, links),
		buildRoleBinding(s.portal, s.names),
	} {
		if err := r.apply(ctx, obj); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// portalCreatedLinkSecrets lists the link Secrets the portal may read now: those of the Active
// sessions it created, within linkGrantWindow of their creation. next is how long until the
// first of those grants ends (0 if none). The names are derived from the sessions' names, never
// read from status.linkSecretName: a status is not proof of anything a Role may grant, and a
// Secret name taken from it could be any Secret in the namespace.
func (r *CustomerPortalReconciler) portalCreatedLinkSecrets(ctx context.Context, p *billingv1alpha1.CustomerPortal) (names []string, next time.Duration, err error) {
	list := &billingv1alpha1.PortalSessionList{}
	if err := r.Client.List(ctx, list, client.InNamespace(p.Namespace),
		client.MatchingLabels{LabelCreatedBy: CreatedByPortal, LabelPortal: p.Name}); err != nil {
		return nil, 0, fmt.Errorf("list portal-created sessions: %w", err)
	}
	now := r.Clock.Now()
	for _, s := range list.Items {
		if s.Spec.PortalRef.Name != p.Name || s.Status.Phase != billingv1alpha1.SessionActive || s.Status.LinkSecretName == "" {
			continue
		}
		left := s.CreationTimestamp.Add(linkGrantWindow).Sub(now)
		if left <= 0 {
			continue
		}
		names = append(names, linkSecretName(s.Name))
		if next == 0 || left < next {
			next = left
		}
	}
	slices.Sort(names)
	return names, next, nil
}

func (r *CustomerPortalReconciler) applyStorage(ctx context.Context, s *portalScope) (*outcome, error) {
	if st := s.portal.Spec.Storage; st != nil && st.Postgres != nil {
		// Switching to PostgreSQL leaves an existing SQLite volume in place: it holds customer data.
		return nil, nil
	}
	return nil, r.apply(ctx, buildPVC(s.portal, s.names))
}

func (r *CustomerPortalReconciler) applyDeployment(ctx context.Context, s *portalScope) (*outcome, error) {
	want := buildDeployment(s.portal, s.names, r.PortalImage)
	if err := r.clearRollingUpdate(ctx, s, want); err != nil {
		return nil, err
	}
	if err := r.apply(ctx, want); err != nil {
		return nil, err
	}
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.portal.Namespace, Name: s.names.deployment}, d); err != nil {
		if apierrors.IsNotFound(err) {
			// Just created: the cache has not seen it yet, and its create event brings us back.
			return nil, nil
		}
		return nil, fmt.Errorf("read back deployment: %w", err)
	}
	s.deploy = d
	return nil, nil
}

// clearRollingUpdate prepares a switch from RollingUpdate to Recreate (PostgreSQL back to
// SQLite). The API server defaulted spec.strategy.rollingUpdate when the Deployment rolled; no
// field manager owns those defaults, so an apply that sets Recreate leaves them in place and is
// refused ("may not be specified when strategy type is 'Recreate'"). They are removed first.
func (r *CustomerPortalReconciler) clearRollingUpdate(ctx context.Context, s *portalScope, want *appsv1ac.DeploymentApplyConfiguration) error {
	if want.Spec == nil || want.Spec.Strategy == nil || want.Spec.Strategy.Type == nil || *want.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		return nil
	}
	live := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.portal.Namespace, Name: s.names.deployment}, live); err != nil {
		return client.IgnoreNotFound(err)
	}
	if live.Spec.Strategy.RollingUpdate == nil {
		return nil
	}
	patch := []byte(`{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`)
	if err := r.Client.Patch(ctx, live, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("clear rollingUpdate before switching to Recreate: %w", err)
	}
	return nil
}

// applyService applies the Service and then insists on its selector and ports: server-side apply
// leaves fields other managers own, and a hand-added selector key or a renumbered port would
// silently cut customers off.
func (r *CustomerPortalReconciler) applyService(ctx context.Context, s *portalScope) (*outcome, error) {
	key := types.NamespacedName{Namespace: s.portal.Namespace, Name: s.names.service}
	err := r.apply(ctx, buildService(s.portal, s.names))
	if apierrors.IsInvalid(err) {
		// A hand edit made our apply invalid (e.g. a second port with our port's name): replace it.
		live := &corev1.Service{}
		if gerr := r.Client.Get(ctx, key, live); gerr != nil {
			return nil, gerr
		}
		if derr := r.Client.Delete(ctx, live, client.Preconditions{UID: &live.UID}); derr != nil && !apierrors.IsNotFound(derr) {
			return nil, fmt.Errorf("replace hand-edited service: %w", derr)
		}
		err = r.apply(ctx, buildService(s.portal, s.names))
	}
	if err != nil {
		return nil, err
	}
	live := &corev1.Service{}
	if err := r.Client.Get(ctx, key, live); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil // just created from our apply; its create event brings us back
		}
		return nil, fmt.Errorf("read back service: %w", err)
	}
	wantSel := selectorLabels(s.portal)
	if maps.Equal(live.Spec.Selector, wantSel) && len(live.Spec.Ports) == 1 && live.Spec.Ports[0].Port == 80 {
		return nil, nil
	}
	live.Spec.Selector = wantSel
	live.Spec.Ports = []corev1.ServicePort{{Name: portalPortName, Port: 80, TargetPort: intstr.FromString(portalPortName), Protocol: corev1.ProtocolTCP}}
	if err := r.Client.Update(ctx, live, client.FieldOwner(FieldOwner)); err != nil {
		return nil, fmt.Errorf("restore service selector and ports: %w", err)
	}
	return nil, nil
}

func (r *CustomerPortalReconciler) applyIngress(ctx context.Context, s *portalScope) (*outcome, error) {
	if ex := s.portal.Spec.Exposure; ex != nil && ex.Host != "" {
		return nil, r.apply(ctx, buildIngress(s.portal, s.names))
	}
	ing := &networkingv1.Ingress{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.portal.Namespace, Name: s.names.ingress}, ing); apierrors.IsNotFound(err) {
		return nil, nil // none in the cache: nothing to delete, no API call
	}
	if err := r.Client.Delete(ctx, ing); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete ingress no longer wanted: %w", err)
	}
	return nil, nil
}

// deploymentOutcome reads whether the portal's pods are serving the current spec.
func deploymentOutcome(s *portalScope) outcome {
	d := s.deploy
	if d == nil {
		return outcome{reason: ReasonProgressing, message: "waiting for the portal Deployment to be observed"}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.ObservedGeneration < d.Generation {
		return outcome{reason: ReasonProgressing, message: "waiting for the Deployment controller to observe the new pod template"}
	}
	if d.Status.UpdatedReplicas < want {
		return outcome{reason: ReasonProgressing, message: fmt.Sprintf("rolling out: %d of %d portal pods updated", d.Status.UpdatedReplicas, want)}
	}
	available := false
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			available = true
		}
	}
	if !available || d.Status.ReadyReplicas < want {
		return outcome{reason: ReasonDeploymentUnavailable, message: fmt.Sprintf("%d of %d portal pods ready", d.Status.ReadyReplicas, want)}
	}
	return outcome{ready: true, reason: ReasonReady, message: fmt.Sprintf("portal is serving with %d ready pods", d.Status.ReadyReplicas)}
}

// computeStatus fills the status from what this reconcile saw.
func (r *CustomerPortalReconciler) computeStatus(s *portalScope, o outcome) {
	p := s.portal
	p.Status.URL = portalURL(p, s.names, r.LocalURLs)
	p.Status.ObservedGeneration = p.Generation
	p.Status.PaymentMethods = p.Spec.EffectivePaymentMethods()
	if s.deploy != nil {
		p.Status.Replicas = s.deploy.Status.Replicas
		p.Status.ReadyReplicas = s.deploy.Status.ReadyReplicas
	}
	applyConditions(&p.Status.Conditions, p.Generation, o)
	if plainHTTP(p.Status.URL) {
		meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
			Type: ConditionInsecureLinks, Status: metav1.ConditionTrue, Reason: ReasonPlainHTTP, ObservedGeneration: p.Generation,
			Message: fmt.Sprintf("the portal's URL %s is plain http, so its session links carry their token unencrypted: "+
				"set spec.exposure.tlsSecretName (with exposure.host), or an https spec.exposure.publicURL", p.Status.URL),
		})
	} else {
		meta.RemoveStatusCondition(&p.Status.Conditions, ConditionInsecureLinks)
	}
}

// plainHTTP reports an http URL whose host is not a loopback address: links to it cross a network
// unencrypted. Loopback (make run, a port-forward) never leaves the machine.
func plainHTTP(u string) bool {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme != "http" {
		return false
	}
	host := parsed.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// emitTransitions records events for changes a person should notice.
func (r *CustomerPortalReconciler) emitTransitions(before *billingv1alpha1.CustomerPortalStatus, p *billingv1alpha1.CustomerPortal) {
	if r.Recorder == nil {
		return
	}
	if !meta.IsStatusConditionTrue(before.Conditions, ConditionInsecureLinks) {
		if c := meta.FindStatusCondition(p.Status.Conditions, ConditionInsecureLinks); c != nil && c.Status == metav1.ConditionTrue {
			r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, ConditionInsecureLinks, "Reconcile", "%s", c.Message)
		}
	}
	was, now := readyCondition(before.Conditions), readyCondition(p.Status.Conditions)
	if now == nil || (was != nil && was.Status == now.Status && was.Reason == now.Reason) {
		return
	}
	switch {
	case now.Status == metav1.ConditionTrue:
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, now.Reason, "Reconcile", "Portal is ready at %s", p.Status.URL)
	case isStalled(p.Status.Conditions):
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
	}
}

func readyCondition(conds []metav1.Condition) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == ConditionReady {
			return &conds[i]
		}
	}
	return nil
}

func isStalled(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == ConditionStalled && c.Status == metav1.ConditionTrue {
			return true
		}
	}
	return false
}

// finalize deletes what the portal owns, keeping the data volume when the user asked to, then
// releases the finalizer.
func (r *CustomerPortalReconciler) finalize(ctx context.Context, p *billingv1alpha1.CustomerPortal) error {
	if !controllerutil.ContainsFinalizer(p, portalFinalizer) {
		return nil
	}
	n := namesFor(p)
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: p.Namespace, Name: name} }
	objs := []client.Object{
		&networkingv1.Ingress{ObjectMeta: meta(n.ingress)},
		&corev1.Service{ObjectMeta: meta(n.service)},
		&appsv1.Deployment{ObjectMeta: meta(n.deployment)},
		&rbacv1.RoleBinding{ObjectMeta: meta(n.roleBinding)},
		&rbacv1.Role{ObjectMeta: meta(n.role)},
		&corev1.ServiceAccount{ObjectMeta: meta(n.serviceAccount)},
	}
	if !keepStorage(p) {
		objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: meta(n.pvc)})
	}
	for _, o := range objs {
		if err := r.Client.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %T %s: %w", o, o.GetName(), err)
		}
	}
	r.Metrics.forget(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	patch := client.MergeFrom(p.DeepCopy())
	controllerutil.RemoveFinalizer(p, portalFinalizer)
	if err := r.Client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

// SetupWithManager registers the controller: it watches CustomerPortals, every object they own, and
// the metadata (never the data) of Secrets, so a referenced Secret appearing or going is seen at once.
func (r *CustomerPortalReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.setup(mgr, r)
}

// setup registers rec (r, or a wrapper of it in tests) as the controller.
func (r *CustomerPortalReconciler) setup(mgr ctrl.Manager, rec reconcile.Reconciler) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &billingv1alpha1.CustomerPortal{}, indexPortalSecretRefs,
		func(o client.Object) []string { return referencedSecrets(&o.(*billingv1alpha1.CustomerPortal).Spec) }); err != nil {
		return fmt.Errorf("index portal secret refs: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &networkingv1.Ingress{}, indexIngressHost, func(o client.Object) []string {
		var hosts []string
		for _, rule := range o.(*networkingv1.Ingress).Spec.Rules {
			hosts = append(hosts, rule.Host)
		}
		return hosts
	}); err != nil {
		return fmt.Errorf("index ingress hosts: %w", err)
	}

	// A separate, metadata-only cache for Secrets: the main cache holds only Portero's own Secrets
	// (by label), but the Secrets a portal references are the user's. Portero's own Secrets (one
	// link Secret per session: tens of thousands) are left out of it, and of the others it keeps
	// the name and version only (secretName), never labels or annotations.
	notOurs, err := labels.Parse(LabelManagedBy + "!=" + ManagedByValue)
	if err != nil {
		return err
	}
	secretMeta, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultNamespaces:    namespaceConfigs(r.Namespaces),
		DefaultLabelSelector: notOurs,
		DefaultTransform:     secretName,
	})
	if err != nil {
		return fmt.Errorf("secret metadata cache: %w", err)
	}
	if err := mgr.Add(secretMeta); err != nil {
		return err
	}
	secretObj := secretMetadata()
	portalsForSecret := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
		list := &billingv1alpha1.CustomerPortalList{}
		if err := mgr.GetClient().List(ctx, list, client.InNamespace(o.Namespace), client.MatchingFields{indexPortalSecretRefs: o.Name}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list portals referencing secret", "secret", o.Name)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, p := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
		return reqs
	})
	// Another portal's Ingress going away may free the host this portal wants.
	portalsForIngressHost := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		list := &billingv1alpha1.CustomerPortalList{}
		if err := mgr.GetClient().List(ctx, list); err != nil {
			return nil
		}
		hosts := []string{}
		for _, rule := range o.(*networkingv1.Ingress).Spec.Rules {
			hosts = append(hosts, rule.Host)
		}
		for _, p := range list.Items {
			if p.Spec.Exposure != nil && slices.Contains(hosts, p.Spec.Exposure.Host) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
			}
		}
		return reqs
	})

	return ctrl.NewControllerManagedBy(mgr).
		Named("customerportal").
		// Status-only writes (ours) do not bring the portal back; spec, labels and annotations
		// (the keep-storage annotation) do.
		For(&billingv1alpha1.CustomerPortal{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{},
			deletionPredicate()))).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Watches(&networkingv1.Ingress{}, portalsForIngressHost, builder.WithPredicates(onlyDeletes())).
		// Sessions the portal created change which link Secrets its Role lets it read.
		Watches(&billingv1alpha1.PortalSession{}, handler.EnqueueRequestsFromMapFunc(portalOfSession),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return o.GetLabels()[LabelCreatedBy] == CreatedByPortal
			}))).
		WatchesRawSource(source.Kind(secretMeta, secretObj, portalsForSecret)).
		// Reconciles wait on the API server far more than they compute: run several at once.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Complete(rec)
}

func portalOfSession(_ context.Context, o client.Object) []reconcile.Request {
	s := o.(*billingv1alpha1.PortalSession)
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.PortalRef.Name}}}
}

// deletionPredicate lets through the update that sets deletionTimestamp (generation does not change).
func deletionPredicate() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}

func onlyDeletes() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
