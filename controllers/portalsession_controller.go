package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/mail"
)

// PortalSession names that are part of the API: users and tools match on them.
const (
	// FinalizerRevoke makes deleting a PortalSession delete its link Secret at once, instead of
	// whenever the garbage collector gets to it. A session gets it with its link Secret and keeps it
	// until it is deleted: removing it when the session ends would cost one more write in the
	// burst of expiries, and ending is the moment the API server is busiest.
	FinalizerRevoke = "billing.portero.dev/revoke"
	// AnnotationCustomerEmail gives the address to e-mail the link to when spec.customer has only an id.
	AnnotationCustomerEmail = "billing.portero.dev/customer-email"
	// ConditionDelivered reports the e-mail delivery of the link (only with spec.delivery.email).
	ConditionDelivered = "Delivered"
	// LinkSecretKeyToken and LinkSecretKeyURL are the keys of a session's link Secret.
	LinkSecretKeyToken = "token"
	LinkSecretKeyURL   = "url"
	// AnnotationLinkPortalURL on a link Secret records the portal URL its url was made from, so
	// that a portal moving is noticed from the Secret's metadata alone.
	AnnotationLinkPortalURL = "billing.portero.dev/portal-url"
	// IndexSessionPortal indexes PortalSessions by spec.portalRef.name in the manager's cache.
	IndexSessionPortal = "spec.portalRef.name"
)

// Reasons of a PortalSession's Ready condition.
const (
	SessionReasonLinkReady               = "LinkReady"
	SessionReasonPortalNotFound          = "PortalNotFound"
	SessionReasonPortalNotReady          = "PortalNotReady"
	SessionReasonTTLExceedsPortalMaximum = "TTLExceedsPortalMaximum"
	SessionReasonExpired                 = "Expired"
	SessionReasonRevoked                 = "Revoked"
	SessionReasonLinkSecretDeleted       = "LinkSecretDeleted"
	SessionReasonLinkSecretConflict      = "LinkSecretConflict"
)

// Reasons of a PortalSession's Delivered condition.
const (
	DeliveryReasonSending              = "Sending"
	DeliveryReasonSent                 = "Sent"
	DeliveryReasonSendFailed           = "SendFailed"
	DeliveryReasonCustomerEmailUnknown = "CustomerEmailUnknown"
	DeliveryReasonEmailNotConfigured   = "EmailNotConfigured"
	DeliveryReasonSMTPConfigInvalid    = "SMTPConfigInvalid"
	DeliveryReasonInterrupted          = "DeliveryInterrupted"
	DeliveryReasonSessionEnded         = "SessionEnded"
)

// Event reasons besides the Ready reasons above.
const (
	EventDelivered      = "Delivered"
	EventDeliveryFailed = "DeliveryFailed"
)

const (
	// defaultSessionTTL and defaultSessionMaxTTL apply when the portal's access.sessions leaves them
	// unset, which only objects that skipped the API server's defaulting can do.
	defaultSessionTTL    = time.Hour
	defaultSessionMaxTTL = 24 * time.Hour
	// sendTimeout bounds one SMTP delivery, so a dead server does not hold a worker.
	sendTimeout = 30 * time.Second
	// conflictRetry is how soon a reconcile that lost an optimistic-lock race looks again.
	conflictRetry = 100 * time.Millisecond
)

// PortalSessionReconciler turns a PortalSession into a link Secret with a fresh token, ends it at
// expiry or on revocation, optionally e-mails the link once, and deletes ended sessions when asked.
type PortalSessionReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads uncached: the portal's SMTP Secret (user Secrets are not cached), and link
	// Secrets the cache may not have seen yet.
	APIReader client.Reader
	// Scheme sets owner references.
	Scheme *runtime.Scheme
	// Clock is the time expiry and clean-up follow; tests inject a fake one.
	Clock clock.WithTicker
	// Recorder emits events.k8s.io Events; unset, an EventWriter (not mgr.GetEventRecorder,
	// whose memory grows with every Event of the last minutes: see EventWriter).
	Recorder events.EventRecorder
	// Mailer sends the link e-mails; nil sends through the SMTP server in the portal's
	// spec.email.smtpSecretRef Secret.
	Mailer mail.Sender

	wakeups *wakeups
	// ownDeletes holds the UIDs of link Secrets this controller is deleting, so their deletion
	// events are not mistaken for someone else's.
	ownDeletes sync.Map
}

// sessionReconcilers is how many sessions are reconciled at once: reconciles wait on the API
// server far more than they compute.
const sessionReconcilers = 16

// SetupWithManager registers the reconciler, its field index and its watches with mgr. Unset
// fields default to the manager's client, API reader, scheme and event recorder, and the real clock.
func (r *PortalSessionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Recorder == nil {
		w, err := NewEventWriter(mgr, "portalsession-controller", sessionReconcilers)
		if err != nil {
			return fmt.Errorf("start the Event writer: %w", err)
		}
		r.Recorder = w
	}
	r.wakeups = newWakeups(r.Clock)

	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &billingv1alpha1.PortalSession{}, IndexSessionPortal,
		func(o client.Object) []string {
			return []string{o.(*billingv1alpha1.PortalSession).Spec.PortalRef.Name}
		}); err != nil {
		return fmt.Errorf("index PortalSessions by %s: %w", IndexSessionPortal, err)
	}

	// Conflicts and SMTP failures retry with exponential backoff capped at 5 minutes, under an
	// overall budget so a broken SMTP server cannot turn into a retry storm.
	rateLimiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 5*time.Minute),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	)
	return ctrl.NewControllerManagedBy(mgr).
		For(&billingv1alpha1.PortalSession{}, builder.WithPredicates(sessionChangedByOthers())).
		// Link Secrets are cached as metadata only (one per session: their data would be most of
		// the manager's memory); ensureLink reads the data from the API server when it needs it.
		// A link Secret appearing is always the controller's own mint (the handler maps only
		// Secrets a session controls), and its deletion by the controller is known to it: neither
		// needs a second look, which would only work on a stale copy of the session.
		Owns(&corev1.Secret{}, builder.OnlyMetadata, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			DeleteFunc: func(e event.DeleteEvent) bool {
				_, ours := r.ownDeletes.LoadAndDelete(e.Object.GetUID())
				return !ours
			},
		})).
		Watches(&billingv1alpha1.CustomerPortal{},
			handler.EnqueueRequestsFromMapFunc(r.sessionsOfPortal),
			builder.WithPredicates(portalChangedForSessions())).
		WatchesRawSource(r.wakeups.source()).
		Named("portalsession").
		WithOptions(controller.Options{MaxConcurrentReconciles: sessionReconcilers, RateLimiter: rateLimiter}).
		Complete(r)
}

// sessionsOfPortal maps a CustomerPortal event to the sessions that reference it.
func (r *PortalSessionReconciler) sessionsOfPortal(ctx context.Context, o client.Object) []reconcile.Request {
	var list billingv1alpha1.PortalSessionList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{IndexSessionPortal: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list sessions of portal", "portal", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
	}
	return reqs
}

// sessionChangedByOthers lets through the session changes that need a reconcile: its spec, its
// deletion, its labels and annotations (the customer e-mail), and its finalizer going. The
// controller's own writes — adding the finalizer, status — do not: the reconcile that wrote them
// already did everything they imply, and looking again at once would only read a cached copy that
// has not caught up (costing a read and a conflicting write per session under load).
func sessionChangedByOthers() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			switch {
			case o.GetGeneration() != n.GetGeneration(), !n.GetDeletionTimestamp().IsZero(),
				!maps.Equal(o.GetLabels(), n.GetLabels()), !maps.Equal(o.GetAnnotations(), n.GetAnnotations()):
				return true
			}
			return controllerutil.ContainsFinalizer(o, FinalizerRevoke) && !controllerutil.ContainsFinalizer(n, FinalizerRevoke)
		},
	}
}

// portalChangedForSessions lets through the portal changes sessions care about: appearing,
// disappearing, its spec, and its URL — not the replica counts and conditions that churn its status.
func portalChangedForSessions() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*billingv1alpha1.CustomerPortal)
			n, ok2 := e.ObjectNew.(*billingv1alpha1.CustomerPortal)
			if !ok1 || !ok2 {
				return true
			}
			return o.Generation != n.Generation || o.Status.URL != n.Status.URL
		},
	}
}

// sessionScope is one reconcile's working state.
type sessionScope struct {
	s      *billingv1alpha1.PortalSession
	before billingv1alpha1.PortalSessionStatus // as read: status is written only if it differs
	key    types.NamespacedName
	now    time.Time
	portal *billingv1alpha1.CustomerPortal // nil when it does not exist

	// outcome feeds the kstatus conditions; ended marks a terminal phase (Expired, Revoked).
	outcome outcome
	ended   bool

	// token and linkURL are held in memory only, for the e-mail; never logged or stored elsewhere.
	token, linkURL string
	// mail is the message to send after the Sending marker is written; sender sends it.
	mail   *mail.Message
	sender mail.Sender
	// retry is an error to return after status is written, so the workqueue retries with backoff.
	retry error
}

// Reconcile drives one PortalSession through its life: pending → Active → Expired/Revoked → deleted.
func (r *PortalSessionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcileSession(ctx, req)
	if apierrors.IsConflict(err) {
		// Our cached copy was behind. The newer object may be one of our own writes, whose event
		// does not bring the session back (sessionChangedByOthers): look again shortly, once the
		// cache has caught up — without the rate limiter, which capped throughput under load.
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}

func (r *PortalSessionReconciler) reconcileSession(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	s := &billingv1alpha1.PortalSession{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		if apierrors.IsNotFound(err) {
			r.wakeups.cancel(req.NamespacedName)
			activeSessions.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get PortalSession: %w", err)
	}
	if !s.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, s)
	}

	sc := &sessionScope{s: s, before: *s.Status.DeepCopy(), key: req.NamespacedName, now: r.Clock.Now()}
	if err := r.run(ctx, sc); err != nil {
		return ctrl.Result{}, err
	}
	activeSessions.set(sc.key, sessionPortal(s), s.Status.Phase == billingv1alpha1.SessionActive)
	if sc.retry != nil {
		return ctrl.Result{}, sc.retry
	}
	if sc.outcome.reason == SessionReasonLinkSecretConflict {
		// The conflicting Secret is not ours, so no watch sees it go: look again now and then.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}

	if sc.mail != nil {
		if err := r.deliver(ctx, sc); err != nil {
			return ctrl.Result{}, err
		}
	}

	if sc.ended {
		deleted, err := r.cleanUp(ctx, sc)
		if err != nil || deleted {
			return ctrl.Result{}, err
		}
	}

	next, ok := r.nextWakeup(sc)
	if !ok {
		return ctrl.Result{}, nil
	}
	if !next.After(sc.now) {
		// Due already (run ends expired sessions and cleanUp deletes due ones, so this is a
		// failed step): look again in a second.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	// Again, now that status is written: a revoked session's clean-up instant counts from the
	// Ready transition that write recorded. The wake-ups alone bring the session back; a
	// RequeueAfter as well would hold a second entry per live session in the work queue (about
	// 19 MB at 50,000 sessions, in the benchmark's heap profile).
	r.wakeups.schedule(sc.key, next)
	log.V(1).Info("next check", "at", next)
	return ctrl.Result{}, nil
}

// run decides the session's state, writes its link Secret and status, and schedules its next
// wake-up. The phases are checked in order of precedence: an ended session stays ended; revocation
// beats expiry; expiry beats everything the portal could say.
func (r *PortalSessionReconciler) run(ctx context.Context, sc *sessionScope) error {
	s := sc.s
	switch {
	case s.Status.Phase == billingv1alpha1.SessionExpired || s.Status.Phase == billingv1alpha1.SessionRevoked:
		if err := r.end(ctx, sc, s.Status.Phase); err != nil {
			return err
		}
	case s.Spec.Revoked:
		if err := r.end(ctx, sc, billingv1alpha1.SessionRevoked); err != nil {
			return err
		}
	default:
		if err := r.lookupPortal(ctx, sc); err != nil {
			return err
		}
		r.resolveExpiry(sc)
		if exp := s.Status.ExpiresAt; exp != nil && !sc.now.Before(exp.Time) {
			if err := r.end(ctx, sc, billingv1alpha1.SessionExpired); err != nil {
				return err
			}
			break
		}
		if err := r.ensureLink(ctx, sc); err != nil {
			return err
		}
		if s.Status.Phase == billingv1alpha1.SessionActive {
			if err := r.ensureFinalizer(ctx, sc); err != nil {
				return err
			}
		}
		if err := r.planDelivery(ctx, sc); err != nil {
			return err
		}
	}
	r.settleDelivery(sc)

	// Schedule before writing status: whoever sees the new status (a test about to step its fake
	// clock) can rely on the timer being armed.
	if next, ok := r.nextWakeup(sc); ok && next.After(sc.now) {
		r.wakeups.schedule(sc.key, next)
	} else {
		r.wakeups.cancel(sc.key)
	}
	return r.writeStatus(ctx, sc)
}

// ensureFinalizer adds FinalizerRevoke to a session that has a link Secret. It comes right after the
// Secret, not before it, so that the link is out after a single write: a session deleted in between
// still loses its Secret to the garbage collector (it owns it), and its link stops working at once
// anyway, because portals only honour tokens of sessions that exist.
func (r *PortalSessionReconciler) ensureFinalizer(ctx context.Context, sc *sessionScope) error {
	if controllerutil.ContainsFinalizer(sc.s, FinalizerRevoke) {
		return nil
	}
	// Patch a copy: sc.s already holds this reconcile's new status, which the patch response (the
	// server's status) would overwrite. Only the metadata comes back.
	obj := sc.s.DeepCopy()
	base := obj.DeepCopy()
	controllerutil.AddFinalizer(obj, FinalizerRevoke)
	if err := r.Client.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("add finalizer %s: %w", FinalizerRevoke, err)
	}
	sc.s.ObjectMeta = obj.ObjectMeta
	return nil
}

// removeFinalizer drops FinalizerRevoke once the link Secret of a deleted session is gone.
func (r *PortalSessionReconciler) removeFinalizer(ctx context.Context, s *billingv1alpha1.PortalSession) error {
	if !controllerutil.ContainsFinalizer(s, FinalizerRevoke) {
		return nil
	}
	base := s.DeepCopy()
	controllerutil.RemoveFinalizer(s, FinalizerRevoke)
	if err := r.Client.Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("remove finalizer %s: %w", FinalizerRevoke, err)
	}
	return nil
}

// finalize revokes a session being deleted: its link Secret goes at once, then the finalizer.
func (r *PortalSessionReconciler) finalize(ctx context.Context, s *billingv1alpha1.PortalSession) error {
	key := client.ObjectKeyFromObject(s)
	r.wakeups.cancel(key)
	if !controllerutil.ContainsFinalizer(s, FinalizerRevoke) {
		return nil
	}
	if err := r.deleteLinkSecret(ctx, s); err != nil {
		return err
	}
	wasActive := s.Status.Phase == billingv1alpha1.SessionActive
	if err := r.removeFinalizer(ctx, s); err != nil {
		return err
	}
	// Counted once the finalizer is gone, so a retried finalize does not count twice.
	activeSessions.forget(key)
	if wasActive {
		sessionsRevoked.WithLabelValues(s.Namespace, sessionPortal(s)).Inc()
		r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, SessionReasonRevoked, "Revoke",
			"Session deleted: its link Secret was deleted and the link no longer works")
		ctrl.LoggerFrom(ctx).Info("session deleted while active: link revoked")
	}
	return nil
}

// lookupPortal finds the session's CustomerPortal in the session's namespace.
func (r *PortalSessionReconciler) lookupPortal(ctx context.Context, sc *sessionScope) error {
	p := &billingv1alpha1.CustomerPortal{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: sc.s.Namespace, Name: sc.s.Spec.PortalRef.Name}, p)
	switch {
	case apierrors.IsNotFound(err):
		sc.portal = nil
		return nil
	case err != nil:
		return fmt.Errorf("get CustomerPortal %s: %w", sc.s.Spec.PortalRef.Name, err)
	}
	sc.portal = p
	return nil
}

// sessionTTL is the session's lifetime: its own ttl, else the portal's defaultTTL. ok is false when
// it cannot be known yet (no ttl and no portal).
func sessionTTL(s *billingv1alpha1.PortalSession, p *billingv1alpha1.CustomerPortal) (time.Duration, bool) {
	if s.Spec.TTL != nil {
		return s.Spec.TTL.Duration, true
	}
	if p == nil {
		return 0, false
	}
	if d := p.Spec.Access.Sessions.DefaultTTL; d != nil {
		return d.Duration, true
	}
	return defaultSessionTTL, true
}

func portalMaxTTL(p *billingv1alpha1.CustomerPortal) time.Duration {
	if d := p.Spec.Access.Sessions.MaxTTL; d != nil {
		return d.Duration
	}
	return defaultSessionMaxTTL
}

// resolveExpiry fixes status.expiresAt = creation + ttl the first time it can be known. It never
// moves afterwards: a later change of the portal's defaultTTL does not stretch or cut live links.
// Whole seconds, rounded down, because that is what the API stores.
func (r *PortalSessionReconciler) resolveExpiry(sc *sessionScope) {
	if sc.s.Status.ExpiresAt != nil {
		return
	}
	ttl, ok := sessionTTL(sc.s, sc.portal)
	if !ok {
		return
	}
	at := metav1.NewTime(sc.s.CreationTimestamp.Add(ttl).Truncate(time.Second))
	sc.s.Status.ExpiresAt = &at
}

// ensureLink makes sure an Active session has its link Secret, minting the token the first time.
// It sets the Ready outcome.
func (r *PortalSessionReconciler) ensureLink(ctx context.Context, sc *sessionScope) error {
	ctx = withoutBodyDumps(ctx)
	s, p := sc.s, sc.portal
	if p == nil {
		sc.outcome = outcome{reason: SessionReasonPortalNotFound, message: fmt.Sprintf(
			"CustomerPortal %q does not exist in namespace %s; the session waits for it", s.Spec.PortalRef.Name, s.Namespace)}
		return nil
	}
	minted := s.Status.TokenHash != ""
	if !minted {
		ttl, _ := sessionTTL(s, p)
		if maxTTL := portalMaxTTL(p); ttl > maxTTL {
			// Refused, not clamped: a backend asking for 48h and silently getting 24h would hand out
			// links that die earlier than it told its customer.
			sc.outcome = outcome{stalled: true, reason: SessionReasonTTLExceedsPortalMaximum, message: fmt.Sprintf(
				"spec.ttl %s exceeds CustomerPortal %q's access.sessions.maxTTL %s; no link was made: create a new PortalSession with a ttl of at most %s, or raise the portal's maxTTL",
				ttl, p.Name, maxTTL, maxTTL)}
			return nil
		}
	}
	if p.Status.URL == "" {
		sc.outcome = outcome{reason: SessionReasonPortalNotReady, message: fmt.Sprintf(
			"CustomerPortal %q has no status.url yet; the link is made once the portal publishes its URL", p.Name)}
		return nil
	}

	name := linkSecretName(s.Name)
	key := types.NamespacedName{Namespace: s.Namespace, Name: name}
	m := secretMetadata()
	err := r.Client.Get(ctx, key, m)
	if !minted && apierrors.IsNotFound(err) {
		// The common case by far: a new session, no Secret yet. Create it straight away — the link
		// is out after one write. A Secret the cache has not seen yet (ours from an attempt whose
		// status write was lost, or someone else's) makes the create fail, and the lookup below
		// sorts it out.
		err = r.mint(ctx, sc, name)
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	if apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) {
		// Only the API server can say whether a Secret written moments ago exists.
		err = r.APIReader.Get(ctx, key, m)
	}
	switch {
	case apierrors.IsNotFound(err):
		if minted {
			// Someone deleted the Secret of an active session. The token is gone (only its hash
			// remains) and minting another would silently break a link the customer may already
			// have (e-mailed, or handed out by the merchant): leave it to a person.
			s.Status.LinkSecretName = ""
			sc.outcome = outcome{stalled: true, reason: SessionReasonLinkSecretDeleted, message: fmt.Sprintf(
				"link Secret %s was deleted; its token cannot be recovered and the link keeps working until %s: set spec.revoked: true to end it, or create a new PortalSession for a new link",
				name, s.Status.ExpiresAt.UTC().Format(time.RFC3339))}
			return nil
		}
		return r.mint(ctx, sc, name)
	case err != nil:
		return fmt.Errorf("get link Secret %s: %w", name, err)
	}
	if !metav1.IsControlledBy(m, s) {
		sc.outcome = outcome{stalled: true, reason: SessionReasonLinkSecretConflict, message: fmt.Sprintf(
			"Secret %s exists and does not belong to this session; it is left alone: delete or rename it, or create the session under another name", name)}
		return nil
	}
	// The usual reconcile of an active session needs nothing but the metadata: the Secret is ours,
	// nobody else wrote its data, and its url was made from the portal's current URL.
	if minted && !deliveryPending(s) && m.Annotations[AnnotationLinkPortalURL] == p.Status.URL && m.Annotations[cachedDataWriterAnnotation] == "" {
		r.activate(sc, name, "", "")
		return nil
	}

	// Otherwise read the data: a session adopting a Secret written by an attempt whose status write
	// was lost, a link to e-mail, a portal that moved, or data someone else wrote.
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, sec); err != nil {
		// NotFound included: the metadata said it exists, so look again with backoff.
		return fmt.Errorf("get link Secret %s: %w", name, err)
	}
	if !metav1.IsControlledBy(sec, s) {
		return fmt.Errorf("link Secret %s changed owner while being read; retrying", name)
	}
	token := string(sec.Data[LinkSecretKeyToken])
	if minted && !TokenMatches(token, s.Status.TokenHash) || len(token) != TokenLength {
		s.Status.LinkSecretName = ""
		sc.outcome = outcome{stalled: true, reason: SessionReasonLinkSecretDeleted, message: fmt.Sprintf(
			"link Secret %s no longer holds this session's token (it was edited); the original link keeps working until %s: set spec.revoked: true to end it, or create a new PortalSession",
			name, s.Status.ExpiresAt.UTC().Format(time.RFC3339))}
		return nil
	}
	url := linkURL(p.Status.URL, token)
	if string(sec.Data[LinkSecretKeyURL]) != url || sec.Annotations[AnnotationLinkPortalURL] != p.Status.URL {
		// The portal moved: the token is unchanged, only the address in front of it.
		base := sec.DeepCopy()
		sec.Data[LinkSecretKeyURL] = []byte(url)
		metav1.SetMetaDataAnnotation(&sec.ObjectMeta, AnnotationLinkPortalURL, p.Status.URL)
		if err := r.Client.Patch(ctx, sec, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("update url in link Secret %s: %w", name, err)
		}
		ctrl.LoggerFrom(ctx).Info("link Secret url follows the portal's URL", "secret", name)
	}
	r.activate(sc, name, token, url)
	return nil
}

// mint creates the session's token and link Secret: once per session.
func (r *PortalSessionReconciler) mint(ctx context.Context, sc *sessionScope, name string) error {
	s, p := sc.s, sc.portal
	token, err := MintToken()
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	url := linkURL(p.Status.URL, token)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: s.Namespace,
			Labels: map[string]string{
				LabelManagedBy: ManagedByValue,
				LabelSession:   labelValue(s.Name),
				LabelPortal:    labelValue(p.Name),
			},
			Annotations: map[string]string{AnnotationLinkPortalURL: p.Status.URL},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{LinkSecretKeyToken: []byte(token), LinkSecretKeyURL: []byte(url)},
	}
	if err := controllerutil.SetControllerReference(s, sec, r.Scheme); err != nil {
		return fmt.Errorf("own link Secret %s: %w", name, err)
	}
	if err := r.Client.Create(ctx, sec, client.FieldOwner(FieldOwner)); err != nil {
		// AlreadyExists passes through wrapped: ensureLink then adopts or reports the Secret.
		return fmt.Errorf("create link Secret %s: %w", name, err)
	}
	sessionsMinted.WithLabelValues(s.Namespace, p.Name).Inc()
	sessionLinkReady.Observe(max(r.Clock.Since(s.CreationTimestamp.Time).Seconds(), 0))
	ctrl.LoggerFrom(ctx).Info("minted session link", "secret", name, "expiresAt", s.Status.ExpiresAt)
	r.activate(sc, name, token, url)
	return nil
}

// activate marks the session Active with its link in secretName. token and url are empty when
// this reconcile did not need to read them (the hash is in status already).
func (r *PortalSessionReconciler) activate(sc *sessionScope, secretName, token, url string) {
	s := sc.s
	s.Status.Phase = billingv1alpha1.SessionActive
	if token != "" {
		s.Status.TokenHash = HashToken(token)
	}
	s.Status.LinkSecretName = secretName
	sc.token, sc.linkURL = token, url
	sc.outcome = outcome{ready: true, reason: SessionReasonLinkReady, message: fmt.Sprintf(
		"the link is in Secret %s (key %s) and works until %s", secretName, LinkSecretKeyURL, s.Status.ExpiresAt.UTC().Format(time.RFC3339))}
}

// end moves the session to a terminal phase (or keeps it there): link Secret deleted, Ready=False.
func (r *PortalSessionReconciler) end(ctx context.Context, sc *sessionScope, phase billingv1alpha1.SessionPhase) error {
	s := sc.s
	if err := r.deleteLinkSecret(ctx, s); err != nil {
		return err
	}
	s.Status.Phase = phase
	s.Status.LinkSecretName = ""
	sc.ended = true
	// Ended is terminal, so it is reported as stalled: kstatus reads a Ready=False that is neither
	// Reconciling nor Stalled as "in progress", and tools waiting on the session would wait forever.
	if phase == billingv1alpha1.SessionRevoked {
		sc.outcome = outcome{stalled: true, reason: SessionReasonRevoked, message: revokedMessage(s.Spec.RevocationReason)}
	} else {
		sc.outcome = outcome{stalled: true, reason: SessionReasonExpired, message: fmt.Sprintf(
			"the session expired at %s; its link Secret was deleted", s.Status.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	return nil
}

// revokedMessage is the Ready message (and the Revoked event's note) of a revoked session, led by
// the reason its revoker gave, if any. Control characters become spaces: the reason is free text,
// and a line break in it would split `kubectl describe` output and log lines.
func revokedMessage(reason string) string {
	const rest = "its link Secret was deleted and the link no longer works"
	reason = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, reason))
	if reason == "" {
		return "the session was revoked (spec.revoked: true); " + rest
	}
	return "Revoked: " + reason + " (spec.revocationReason); " + rest
}

// deleteLinkSecret deletes the session's link Secret if it exists and belongs to the session. A
// Secret missing from the cache is looked up on the API server too, unless s (as read) is already
// ended with no Secret name: its Secret was confirmed gone then, and the cache is enough, which
// keeps a restart or a deletion from GETting every old session's Secret.
func (r *PortalSessionReconciler) deleteLinkSecret(ctx context.Context, s *billingv1alpha1.PortalSession) error {
	ended := s.Status.Phase == billingv1alpha1.SessionExpired || s.Status.Phase == billingv1alpha1.SessionRevoked
	confirm := !ended || s.Status.LinkSecretName != ""
	name := linkSecretName(s.Name)
	key := types.NamespacedName{Namespace: s.Namespace, Name: name}
	m := secretMetadata()
	err := r.Client.Get(ctx, key, m)
	if apierrors.IsNotFound(err) && confirm {
		err = r.APIReader.Get(ctx, key, m)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get link Secret %s: %w", name, err)
	}
	if !metav1.IsControlledBy(m, s) {
		return nil
	}
	uid := m.UID
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	r.ownDeletes.Store(uid, struct{}{})
	if err := r.Client.Delete(ctx, sec, client.Preconditions{UID: &uid}); err != nil {
		r.ownDeletes.Delete(uid)
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete link Secret %s: %w", name, err)
		}
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("deleted link Secret", "secret", name)
	return nil
}

// writeStatus sets the conditions and writes status if it changed, with an optimistic lock: a
// decision made on a stale cached copy must fail rather than overwrite newer state (that is what
// keeps the e-mail from going out twice). Events and counters follow a successful write.
func (r *PortalSessionReconciler) writeStatus(ctx context.Context, sc *sessionScope) error {
	s := sc.s
	s.Status.ObservedGeneration = s.Generation
	applyConditions(&s.Status.Conditions, s.Generation, sc.outcome)
	oldReady := meta.FindStatusCondition(sc.before.Conditions, ConditionReady)
	newReady := meta.FindStatusCondition(s.Status.Conditions, ConditionReady)
	if sc.ended && sc.before.Phase != s.Status.Phase {
		// Ready's lastTransitionTime records, on the injected clock, when the session ended: the
		// start of ttlSecondsAfterExpired for revoked sessions.
		newReady.LastTransitionTime = metav1.NewTime(sc.now.Truncate(time.Second))
	}
	if equality.Semantic.DeepEqual(sc.before, s.Status) {
		return nil
	}
	base := s.DeepCopy()
	base.Status = *sc.before.DeepCopy()
	if err := r.Client.Status().Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("write status: %w", err)
	}

	ns, portal := s.Namespace, sessionPortal(s)
	if sc.before.Phase != s.Status.Phase {
		switch s.Status.Phase {
		case billingv1alpha1.SessionExpired:
			sessionsExpired.WithLabelValues(ns, portal).Inc()
		case billingv1alpha1.SessionRevoked:
			sessionsRevoked.WithLabelValues(ns, portal).Inc()
		}
		ctrl.LoggerFrom(ctx).Info("session phase changed", "from", sc.before.Phase, "to", s.Status.Phase)
	}
	if oldReady == nil || oldReady.Reason != newReady.Reason {
		eventType := corev1.EventTypeNormal
		switch newReady.Reason {
		case SessionReasonPortalNotFound, SessionReasonTTLExceedsPortalMaximum, SessionReasonLinkSecretDeleted, SessionReasonLinkSecretConflict:
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(s, nil, eventType, newReady.Reason, "Reconcile", "%s", eventNote(newReady.Message))
	}
	oldDelivered := meta.FindStatusCondition(sc.before.Conditions, ConditionDelivered)
	newDelivered := meta.FindStatusCondition(s.Status.Conditions, ConditionDelivered)
	if newDelivered != nil && newDelivered.Status == metav1.ConditionFalse && (oldDelivered == nil || oldDelivered.Reason != newDelivered.Reason) {
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, EventDeliveryFailed, "Deliver", "%s", eventNote(newDelivered.Message))
	}
	return nil
}

// endedAt is when an ended session ended: its expiry, or the moment it was seen revoked.
func endedAt(s *billingv1alpha1.PortalSession) (time.Time, bool) {
	if s.Status.Phase == billingv1alpha1.SessionExpired && s.Status.ExpiresAt != nil {
		return s.Status.ExpiresAt.Time, true
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionReady); c != nil && c.Reason == SessionReasonRevoked {
		return c.LastTransitionTime.Time, true
	}
	return time.Time{}, false
}

// nextWakeup is the next instant this session needs looking at: its expiry while it lives, its
// clean-up once it ended (with ttlSecondsAfterExpired).
func (r *PortalSessionReconciler) nextWakeup(sc *sessionScope) (time.Time, bool) {
	s := sc.s
	if !sc.ended {
		if s.Status.ExpiresAt == nil {
			return time.Time{}, false
		}
		return s.Status.ExpiresAt.Time, true
	}
	if s.Spec.TTLSecondsAfterExpired == nil {
		return time.Time{}, false
	}
	at, ok := endedAt(s)
	if !ok {
		return time.Time{}, false
	}
	return at.Add(time.Duration(*s.Spec.TTLSecondsAfterExpired) * time.Second), true
}

// cleanUp deletes an ended session once ttlSecondsAfterExpired has passed. The UID precondition
// keeps a late clean-up from deleting a new session that reuses the name.
func (r *PortalSessionReconciler) cleanUp(ctx context.Context, sc *sessionScope) (bool, error) {
	at, ok := r.nextWakeup(sc)
	if !ok || sc.now.Before(at) {
		return false, nil
	}
	uid := sc.s.UID
	err := r.Client.Delete(ctx, sc.s, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Gone already, or replaced by a new session of the same name.
	case err != nil:
		return false, fmt.Errorf("delete ended session: %w", err)
	default:
		ctrl.LoggerFrom(ctx).Info("deleted ended session", "ttlSecondsAfterExpired", *sc.s.Spec.TTLSecondsAfterExpired)
	}
	r.wakeups.cancel(sc.key)
	activeSessions.forget(sc.key)
	return true, nil
}

// linkURL is the session link: the portal's URL, then /s/ and the token.
func linkURL(portalURL, token string) string {
	return strings.TrimSuffix(portalURL, "/") + "/s/" + token
}

// linkSecretName is "<session>-link", shortened with a hash when that would exceed the 253
// characters an object name may have.
func linkSecretName(session string) string {
	const suffix = "-link"
	if len(session)+len(suffix) <= 253 {
		return session + suffix
	}
	return shorten(session, 253-len(suffix)) + suffix
}

// labelValue fits a name into the 63 characters a label value may have.
func labelValue(name string) string {
	if len(name) <= 63 {
		return name
	}
	return shorten(name, 63)
}

// shorten cuts s to at most n characters, keeping it unique with a hash of the whole and ending
// in an alphanumeric character as names and label values must.
func shorten(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:8]
	return strings.TrimRight(s[:n-len(h)-1], "-.") + "-" + h
}

// eventNote keeps an event's note within the 1kB the events API accepts; a longer note would make
// the API server drop the event.
func eventNote(msg string) string {
	const limit = 1000
	if len(msg) <= limit {
		return msg
	}
	return strings.ToValidUTF8(msg[:limit], "") + "…"
}
