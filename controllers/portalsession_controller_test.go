package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/portal/mail"
)

const sessionPortalURL = "https://billing.acme.example/"

// startSessionController runs the PortalSession reconciler on a fake clock in its own manager.
func startSessionController(t *testing.T, fc *testingclock.FakeClock, mailer mail.Sender) *PortalSessionReconciler {
	t.Helper()
	r := &PortalSessionReconciler{Clock: fc, Mailer: mailer}
	startManager(t, func(mgr manager.Manager) error {
		r.Client, r.APIReader, r.Scheme = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme()
		return r.SetupWithManager(mgr)
	})
	return r
}

// startSessionManagerWith is startManager with a logger of the test's choosing and a stop function,
// for the tests that read the reconciler's logs or restart the manager.
func startSessionManagerWith(t *testing.T, fc *testingclock.FakeClock, mailer mail.Sender, logger logr.Logger) (*PortalSessionReconciler, func()) {
	t.Helper()
	mgr, err := manager.New(env.Config, manager.Options{
		Scheme:                 env.Scheme,
		Logger:                 logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
		Controller:             ControllerOptions(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &PortalSessionReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Clock: fc, Mailer: mailer,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("manager did not stop within a minute")
			}
		})
	}
	t.Cleanup(stop)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	return r, stop
}

// createSessionPortal creates a CustomerPortal and, when url is set, publishes it in status.url as
// the portal controller would (it does not run in these tests).
func createSessionPortal(t *testing.T, ns, name, url string, mutate func(*billingv1alpha1.CustomerPortal)) *billingv1alpha1.CustomerPortal {
	t.Helper()
	p := &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme Billing",
			Email:       &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: "smtp"}, From: "Acme <billing@acme.example>"},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if url != "" {
		setPortalURL(t, p, url)
	}
	return p
}

func setPortalURL(t *testing.T, p *billingv1alpha1.CustomerPortal, url string) {
	t.Helper()
	eventually(t, "portal status.url written", func() error {
		cur := &billingv1alpha1.CustomerPortal{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), cur); err != nil {
			return err
		}
		cur.Status.URL = url
		return k8s.Status().Update(context.Background(), cur)
	})
}

func newSession(ns, name, portal string, mutate func(*billingv1alpha1.PortalSession)) *billingv1alpha1.PortalSession {
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: portal},
			Customer:  billingv1alpha1.CustomerReference{Email: "jane@example.com"},
			TTL:       &metav1.Duration{Duration: 30 * time.Minute},
		},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func createSession(t *testing.T, s *billingv1alpha1.PortalSession) *billingv1alpha1.PortalSession {
	t.Helper()
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func getSession(key types.NamespacedName) (*billingv1alpha1.PortalSession, error) {
	s := &billingv1alpha1.PortalSession{}
	return s, k8s.Get(context.Background(), key, s)
}

// waitSession polls the session until check accepts it, and returns it.
func waitSession(t *testing.T, key types.NamespacedName, what string, check func(*billingv1alpha1.PortalSession) error) *billingv1alpha1.PortalSession {
	t.Helper()
	var s *billingv1alpha1.PortalSession
	eventually(t, key.Name+": "+what, func() error {
		var err error
		if s, err = getSession(key); err != nil {
			return err
		}
		return check(s)
	})
	return s
}

func hasReady(status metav1.ConditionStatus, reason string) func(*billingv1alpha1.PortalSession) error {
	return func(s *billingv1alpha1.PortalSession) error {
		c := meta.FindStatusCondition(s.Status.Conditions, ConditionReady)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("Ready is %+v, want %s/%s", c, status, reason)
		}
		if s.Status.ObservedGeneration != s.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", s.Status.ObservedGeneration, s.Generation)
		}
		return nil
	}
}

func isActive(s *billingv1alpha1.PortalSession) error {
	if s.Status.Phase != billingv1alpha1.SessionActive {
		return fmt.Errorf("phase %q", s.Status.Phase)
	}
	return hasReady(metav1.ConditionTrue, SessionReasonLinkReady)(s)
}

func hasPhase(phase billingv1alpha1.SessionPhase, reason string) func(*billingv1alpha1.PortalSession) error {
	return func(s *billingv1alpha1.PortalSession) error {
		if s.Status.Phase != phase {
			return fmt.Errorf("phase %q, want %s", s.Status.Phase, phase)
		}
		return hasReady(metav1.ConditionFalse, reason)(s)
	}
}

func hasDelivered(status metav1.ConditionStatus, reason string) func(*billingv1alpha1.PortalSession) error {
	return func(s *billingv1alpha1.PortalSession) error {
		c := meta.FindStatusCondition(s.Status.Conditions, ConditionDelivered)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("Delivered is %+v, want %s/%s", c, status, reason)
		}
		return nil
	}
}

func linkSecret(s *billingv1alpha1.PortalSession) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	return sec, k8s.Get(context.Background(), types.NamespacedName{Namespace: s.Namespace, Name: s.Name + "-link"}, sec)
}

func secretGone(s *billingv1alpha1.PortalSession) func() error {
	return func() error {
		if _, err := linkSecret(s); !apierrors.IsNotFound(err) {
			return fmt.Errorf("link Secret still there (err %v)", err)
		}
		return nil
	}
}

func sessionKStatus(t *testing.T, key types.NamespacedName) status.Status {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(testenv.GVK("PortalSession"))
	if err := k8s.Get(context.Background(), key, u); err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// sessionEvents lists the events.k8s.io Events about one session.
func sessionEvents(ns, name string) ([]eventsv1.Event, error) {
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "PortalSession" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out, nil
}

func waitEvent(t *testing.T, ns, name, eventType, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, fmt.Sprintf("%s event %s on %s", eventType, reason, name), func() error {
		evs, err := sessionEvents(ns, name)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.Type == eventType && e.Reason == reason {
				found = e
				return nil
			}
		}
		return fmt.Errorf("not among %d events", len(evs))
	})
	return found
}

func patchSession(t *testing.T, key types.NamespacedName, mutate func(*billingv1alpha1.PortalSession)) {
	t.Helper()
	s, err := getSession(key)
	if err != nil {
		t.Fatal(err)
	}
	base := s.DeepCopy()
	mutate(s)
	if err := k8s.Patch(context.Background(), s, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
}

func TestSessionCreateMintsLink(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	r := startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.DefaultTTL = &metav1.Duration{Duration: 2 * time.Hour}
	})
	own := createSession(t, newSession(ns, "own-ttl", "acme", nil))
	dflt := createSession(t, newSession(ns, "default-ttl", "acme", func(s *billingv1alpha1.PortalSession) { s.Spec.TTL = nil }))

	for _, tc := range []struct {
		s   *billingv1alpha1.PortalSession
		ttl time.Duration
	}{{own, 30 * time.Minute}, {dflt, 2 * time.Hour}} {
		key := client.ObjectKeyFromObject(tc.s)
		s := waitSession(t, key, "active", isActive)
		if c := meta.FindStatusCondition(s.Status.Conditions, ConditionReconciling); c != nil {
			t.Errorf("%s: Reconciling present on an active session: %+v", key.Name, c)
		}
		if got := sessionKStatus(t, key); got != status.CurrentStatus {
			t.Errorf("%s: kstatus %s, want Current", key.Name, got)
		}
		sec, err := linkSecret(s)
		if err != nil {
			t.Fatalf("%s: link Secret: %v", key.Name, err)
		}
		token := string(sec.Data["token"])
		if len(token) != 43 {
			t.Errorf("%s: token has %d characters, want 43", key.Name, len(token))
		}
		if want := "https://billing.acme.example/s/" + token; string(sec.Data["url"]) != want {
			t.Errorf("%s: url %q, want %q", key.Name, sec.Data["url"], want)
		}
		if s.Status.TokenHash != HashToken(token) {
			t.Errorf("%s: tokenHash %s is not sha256(token) %s", key.Name, s.Status.TokenHash, HashToken(token))
		}
		if s.Status.LinkSecretName != sec.Name {
			t.Errorf("%s: linkSecretName %q, want %q", key.Name, s.Status.LinkSecretName, sec.Name)
		}
		if want := s.CreationTimestamp.Add(tc.ttl); !s.Status.ExpiresAt.Time.Equal(want) {
			t.Errorf("%s: expiresAt %s, want creation + %s = %s", key.Name, s.Status.ExpiresAt, tc.ttl, want)
		}
		if !metav1.IsControlledBy(sec, s) {
			t.Errorf("%s: link Secret is not controlled by the session: %+v", key.Name, sec.OwnerReferences)
		}
		if sec.Labels[LabelManagedBy] != ManagedByValue || sec.Labels[LabelSession] != s.Name {
			t.Errorf("%s: link Secret labels %v", key.Name, sec.Labels)
		}
		if !slicesContains(s.Finalizers, FinalizerRevoke) {
			t.Errorf("%s: finalizers %v lack %s", key.Name, s.Finalizers, FinalizerRevoke)
		}
		// The expiry is armed on the injected clock.
		if at, ok := r.wakeups.pending(key); !ok || !at.Equal(s.Status.ExpiresAt.Time) {
			t.Errorf("%s: wake-up at %v (armed %v), want %s", key.Name, at, ok, s.Status.ExpiresAt)
		}
		waitEvent(t, ns, s.Name, corev1.EventTypeNormal, SessionReasonLinkReady)
	}

	// kubectl get psession shows the phase and the expiry instant.
	cols := printedColumns(t, client.ObjectKeyFromObject(own))
	ownNow, _ := getSession(client.ObjectKeyFromObject(own))
	if cols["Phase"] != "Active" || cols["Expires"] != ownNow.Status.ExpiresAt.UTC().Format(time.RFC3339) || cols["Portal"] != "acme" {
		t.Errorf("kubectl columns %v", cols)
	}

	// Mint once: more reconciles (annotation changes, portal changes, time passing short of expiry)
	// never replace the token.
	key := client.ObjectKeyFromObject(own)
	before, _ := getSession(key)
	sec, _ := linkSecret(before)
	for i := range 3 {
		patchSession(t, key, func(s *billingv1alpha1.PortalSession) {
			s.Annotations = map[string]string{"touch": fmt.Sprint(i)}
		})
		fc.Step(time.Minute)
	}
	setPortalURL(t, createdPortal(ns, "acme"), "https://billing.acme.example")
	consistently(t, "token unchanged", time.Second, func() error {
		s, err := getSession(key)
		if err != nil {
			return err
		}
		got, err := linkSecret(s)
		if err != nil {
			return err
		}
		if s.Status.TokenHash != before.Status.TokenHash || string(got.Data["token"]) != string(sec.Data["token"]) || got.UID != sec.UID {
			return fmt.Errorf("token or Secret replaced")
		}
		return nil
	})
	if got := testutil.ToFloat64(sessionsMinted.WithLabelValues(ns, "acme")); got != 2 {
		t.Errorf("portero_sessions_minted_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(sessionsActiveGauge.WithLabelValues(ns, "acme")); got != 2 {
		t.Errorf("portero_sessions_active = %v, want 2", got)
	}
}

// printedColumns returns the columns `kubectl get psession` prints for one session, by name.
func printedColumns(t *testing.T, key types.NamespacedName) map[string]any {
	t.Helper()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/apis/billing.portero.dev/v1alpha1/namespaces/%s/portalsessions/%s", strings.TrimSuffix(env.Config.Host, "/"), key.Namespace, key.Name)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows", len(table.Rows))
	}
	cols := map[string]any{}
	for i, c := range table.ColumnDefinitions {
		cols[c.Name] = table.Rows[0].Cells[i]
	}
	return cols
}

func createdPortal(ns, name string) *billingv1alpha1.CustomerPortal {
	return &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSessionExpiresWhenClockPassesExpiry(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "s", "acme", nil))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "active", isActive)

	// Just short of expiry nothing happens.
	fc.SetTime(s.Status.ExpiresAt.Add(-time.Second))
	consistently(t, "still active a second before expiry", 300*time.Millisecond, func() error {
		s, err := getSession(key)
		if err != nil {
			return err
		}
		return isActive(s)
	})

	fc.SetTime(s.Status.ExpiresAt.Add(time.Second))
	s = waitSession(t, key, "expired", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))
	eventually(t, "link Secret deleted", secretGone(s))
	if s.Status.LinkSecretName != "" {
		t.Errorf("linkSecretName %q on an expired session", s.Status.LinkSecretName)
	}
	if s.Status.TokenHash == "" {
		t.Error("tokenHash cleared; it should stay as a record of the ended link")
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionReconciling); c != nil {
		t.Errorf("Reconciling present on an expired session: %+v", c)
	}
	// Terminal: Stalled, so kstatus says Failed instead of waiting forever.
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != SessionReasonExpired {
		t.Errorf("Stalled = %+v, want True/Expired", c)
	}
	if got := sessionKStatus(t, key); got != status.FailedStatus {
		t.Errorf("kstatus %s, want Failed", got)
	}
	waitEvent(t, ns, s.Name, corev1.EventTypeNormal, SessionReasonExpired)
	if got := testutil.ToFloat64(sessionsExpired.WithLabelValues(ns, "acme")); got != 1 {
		t.Errorf("portero_sessions_expired_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(sessionsActiveGauge.WithLabelValues(ns, "acme")); got != 0 {
		t.Errorf("portero_sessions_active = %v, want 0", got)
	}

	// The finalizer stays on the ended session (no extra write at expiry) and lets it go at once
	// when it is deleted.
	if !slicesContains(s.Finalizers, FinalizerRevoke) {
		t.Errorf("finalizers %v: %s was removed at expiry", s.Finalizers, FinalizerRevoke)
	}
	if err := k8s.Delete(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "expired session deleted", func() error {
		if _, err := getSession(key); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		return nil
	})
	if got := testutil.ToFloat64(sessionsRevoked.WithLabelValues(ns, "acme")); got != 0 {
		t.Errorf("portero_sessions_revoked_total = %v after deleting an expired session, want 0", got)
	}
}

func TestSessionRevokedAndDeleted(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	revoked := createSession(t, newSession(ns, "revoked", "acme", nil))
	deleted := createSession(t, newSession(ns, "deleted", "acme", nil))
	for _, s := range []*billingv1alpha1.PortalSession{revoked, deleted} {
		waitSession(t, client.ObjectKeyFromObject(s), "active", isActive)
	}

	patchSession(t, client.ObjectKeyFromObject(revoked), func(s *billingv1alpha1.PortalSession) { s.Spec.Revoked = true })
	s := waitSession(t, client.ObjectKeyFromObject(revoked), "revoked", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
	eventually(t, "revoked session's Secret deleted", secretGone(s))
	waitEvent(t, ns, s.Name, corev1.EventTypeNormal, SessionReasonRevoked)

	// Deleting revokes at once: the finalizer deletes the Secret (no garbage collector in envtest).
	if err := k8s.Delete(context.Background(), deleted); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted session's Secret deleted", secretGone(deleted))
	eventually(t, "deleted session gone", func() error {
		if _, err := getSession(client.ObjectKeyFromObject(deleted)); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		return nil
	})
	if got := testutil.ToFloat64(sessionsRevoked.WithLabelValues(ns, "acme")); got != 2 {
		t.Errorf("portero_sessions_revoked_total = %v, want 2 (one revoked, one deleted while active)", got)
	}
	// A revoked session stays (no ttlSecondsAfterExpired), even long after.
	fc.Step(200 * time.Hour)
	consistently(t, "revoked session kept", 500*time.Millisecond, func() error {
		_, err := getSession(client.ObjectKeyFromObject(revoked))
		return err
	})
}

// TestSessionRevocationReasonShown: the reason a revoker gives (spec.revocationReason, e.g. the portal
// when the customer signs out) leads the Ready message and the Revoked event, for the merchant to
// read; without one the message stays as it was.
func TestSessionRevocationReasonShown(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "signed-out", "acme", nil))
	key := client.ObjectKeyFromObject(s)
	waitSession(t, key, "active", isActive)

	patchSession(t, key, func(s *billingv1alpha1.PortalSession) {
		s.Spec.Revoked, s.Spec.RevocationReason = true, "customer signed out"
	})
	s = waitSession(t, key, "revoked", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
	const want = "Revoked: customer signed out"
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionReady); !strings.HasPrefix(c.Message, want) || !strings.Contains(c.Message, "link no longer works") {
		t.Errorf("Ready message %q does not start with %q and say the link is dead", c.Message, want)
	}
	if e := waitEvent(t, ns, s.Name, corev1.EventTypeNormal, SessionReasonRevoked); !strings.HasPrefix(e.Note, want) {
		t.Errorf("Revoked event note %q does not start with %q", e.Note, want)
	}
}

func TestRevokedMessage(t *testing.T) {
	for reason, want := range map[string]string{
		"":                    "the session was revoked (spec.revoked: true); its link Secret was deleted and the link no longer works",
		"customer signed out": "Revoked: customer signed out (spec.revocationReason); its link Secret was deleted and the link no longer works",
		"fraude\nsospechada ": "Revoked: fraude sospechada (spec.revocationReason); its link Secret was deleted and the link no longer works",
		" \t ":                "the session was revoked (spec.revoked: true); its link Secret was deleted and the link no longer works",
	} {
		if got := revokedMessage(reason); got != want {
			t.Errorf("revokedMessage(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestSessionTTLAbovePortalMaximumIsRefused(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.DefaultTTL = &metav1.Duration{Duration: 30 * time.Minute}
		p.Spec.Access.Sessions.MaxTTL = &metav1.Duration{Duration: time.Hour}
	})
	s := createSession(t, newSession(ns, "too-long", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.TTL = &metav1.Duration{Duration: 2 * time.Hour}
	}))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "refused", hasReady(metav1.ConditionFalse, SessionReasonTTLExceedsPortalMaximum))
	stalled := meta.FindStatusCondition(s.Status.Conditions, ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != SessionReasonTTLExceedsPortalMaximum {
		t.Fatalf("Stalled = %+v, want True/TTLExceedsPortalMaximum", stalled)
	}
	if !strings.Contains(stalled.Message, "2h0m0s") || !strings.Contains(stalled.Message, "1h0m0s") {
		t.Errorf("message does not name both durations: %q", stalled.Message)
	}
	if got := sessionKStatus(t, key); got != status.FailedStatus {
		t.Errorf("kstatus %s, want Failed", got)
	}
	consistently(t, "no token minted", 500*time.Millisecond, func() error {
		s, err := getSession(key)
		if err != nil {
			return err
		}
		if s.Status.TokenHash != "" || s.Status.Phase != "" {
			return fmt.Errorf("tokenHash %q phase %q", s.Status.TokenHash, s.Status.Phase)
		}
		return secretGone(s)()
	})
	waitEvent(t, ns, s.Name, corev1.EventTypeWarning, SessionReasonTTLExceedsPortalMaximum)
	if got := testutil.ToFloat64(sessionsMinted.WithLabelValues(ns, "acme")); got != 0 {
		t.Errorf("portero_sessions_minted_total = %v, want 0", got)
	}
}

func TestSessionWaitsForMissingPortal(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	s := createSession(t, newSession(ns, "early", "later", func(s *billingv1alpha1.PortalSession) { s.Spec.TTL = nil }))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "portal not found", hasReady(metav1.ConditionFalse, SessionReasonPortalNotFound))
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Reconciling = %+v, want True while waiting for the portal", c)
	}
	if s.Status.ExpiresAt != nil {
		t.Errorf("expiresAt %s set without a ttl or a portal to default it", s.Status.ExpiresAt)
	}
	waitEvent(t, ns, s.Name, corev1.EventTypeWarning, SessionReasonPortalNotFound)

	// The portal appears without a URL yet: the session waits on.
	p := createSessionPortal(t, ns, "later", "", func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.DefaultTTL = &metav1.Duration{Duration: 45 * time.Minute}
	})
	s = waitSession(t, key, "portal not ready", hasReady(metav1.ConditionFalse, SessionReasonPortalNotReady))
	if want := s.CreationTimestamp.Add(45 * time.Minute); s.Status.ExpiresAt == nil || !s.Status.ExpiresAt.Time.Equal(want) {
		t.Errorf("expiresAt %v, want creation + portal defaultTTL = %s", s.Status.ExpiresAt, want)
	}
	if _, err := linkSecret(s); !apierrors.IsNotFound(err) {
		t.Errorf("link Secret made before the portal has a URL (err %v)", err)
	}

	setPortalURL(t, p, "https://late.acme.example")
	s = waitSession(t, key, "active once the portal has a URL", isActive)
	sec, err := linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(sec.Data["url"]), "https://late.acme.example/s/") {
		t.Errorf("url %q", sec.Data["url"])
	}
}

func TestSessionCleanUpAfterExpiry(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	withTTL := func(s *billingv1alpha1.PortalSession) { s.Spec.TTLSecondsAfterExpired = ptr.To[int64](60) }
	cleaned := createSession(t, newSession(ns, "cleaned", "acme", withTTL))
	kept := createSession(t, newSession(ns, "kept", "acme", nil))
	revoked := createSession(t, newSession(ns, "revoked-cleaned", "acme", withTTL))
	var expiresAt time.Time
	for _, s := range []*billingv1alpha1.PortalSession{cleaned, kept, revoked} {
		got := waitSession(t, client.ObjectKeyFromObject(s), "active", isActive)
		expiresAt = got.Status.ExpiresAt.Time
	}
	gone := func(s *billingv1alpha1.PortalSession) func() error {
		return func() error {
			if _, err := getSession(client.ObjectKeyFromObject(s)); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s still there (err %v)", s.Name, err)
			}
			return nil
		}
	}

	// Revoked now: deleted 60s after the revocation, not after the original expiry.
	patchSession(t, client.ObjectKeyFromObject(revoked), func(s *billingv1alpha1.PortalSession) { s.Spec.Revoked = true })
	waitSession(t, client.ObjectKeyFromObject(revoked), "revoked", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
	fc.Step(30 * time.Second)
	consistently(t, "revoked session kept for its first 30s", 300*time.Millisecond, func() error {
		_, err := getSession(client.ObjectKeyFromObject(revoked))
		return err
	})
	fc.Step(31 * time.Second)
	eventually(t, "revoked session deleted 60s after revocation", gone(revoked))

	fc.SetTime(expiresAt.Add(time.Second))
	waitSession(t, client.ObjectKeyFromObject(cleaned), "expired", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))
	waitSession(t, client.ObjectKeyFromObject(kept), "expired", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))
	fc.Step(61 * time.Second)
	eventually(t, "expired session deleted 60s after expiry", gone(cleaned))
	fc.Step(100 * time.Hour)
	consistently(t, "session without ttlSecondsAfterExpired kept", 500*time.Millisecond, func() error {
		_, err := getSession(client.ObjectKeyFromObject(kept))
		return err
	})
}

func TestSessionRestartExpiresSessionsThatExpiredWhileDown(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	_, stop := startSessionManagerWith(t, fc, nil, logr.Discard())
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "s", "acme", nil))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "active", isActive)
	stop()

	fc.SetTime(s.Status.ExpiresAt.Add(time.Hour))
	consistently(t, "nothing changes while the operator is down", 300*time.Millisecond, func() error {
		s, err := getSession(key)
		if err != nil {
			return err
		}
		return isActive(s)
	})

	startSessionManagerWith(t, fc, nil, logr.Discard())
	s = waitSession(t, key, "expired by the new manager", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))
	eventually(t, "link Secret deleted", secretGone(s))
}

func TestSessionLinkSecretDeletedIsNotReminted(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "s", "acme", nil))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "active", isActive)
	hash := s.Status.TokenHash
	sec, err := linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	s = waitSession(t, key, "stalled", hasReady(metav1.ConditionFalse, SessionReasonLinkSecretDeleted))
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled = %+v, want True", c)
	}
	if s.Status.Phase != billingv1alpha1.SessionActive || s.Status.TokenHash != hash {
		t.Errorf("phase %q tokenHash changed %v: the original link must keep working", s.Status.Phase, s.Status.TokenHash != hash)
	}
	consistently(t, "no second token", 500*time.Millisecond, secretGone(s))
	if got := testutil.ToFloat64(sessionsMinted.WithLabelValues(ns, "acme")); got != 1 {
		t.Errorf("portero_sessions_minted_total = %v, want 1", got)
	}
	// Revoking still ends it.
	patchSession(t, key, func(s *billingv1alpha1.PortalSession) { s.Spec.Revoked = true })
	waitSession(t, key, "revoked", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
}

// The manager caches link Secrets as metadata only; the link still follows a portal that moves,
// and data edited by someone else is still noticed.
func TestSessionLinkFollowsPortalURLAndNoticesEditedToken(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "moving", "acme", nil))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "active", isActive)
	sec, err := linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	token := string(sec.Data[LinkSecretKeyToken])
	if got := sec.Annotations[AnnotationLinkPortalURL]; got != sessionPortalURL {
		t.Errorf("annotation %s = %q, want %q", AnnotationLinkPortalURL, got, sessionPortalURL)
	}

	const moved = "https://new.acme.example/"
	setPortalURL(t, createdPortal(ns, "acme"), moved)
	eventually(t, "link url follows the portal", func() error {
		got, err := linkSecret(s)
		if err != nil {
			return err
		}
		if string(got.Data[LinkSecretKeyToken]) != token || got.UID != sec.UID {
			return fmt.Errorf("token or Secret replaced")
		}
		if u := string(got.Data[LinkSecretKeyURL]); u != moved+"s/"+token {
			return fmt.Errorf("url %q", u)
		}
		if a := got.Annotations[AnnotationLinkPortalURL]; a != moved {
			return fmt.Errorf("annotation %q", a)
		}
		return nil
	})
	waitSession(t, key, "still ready", hasReady(metav1.ConditionTrue, SessionReasonLinkReady))

	// Someone else labels the Secret: that is no edit.
	got, err := linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	update(t, got, func(got *corev1.Secret) { got.Labels["team"] = "billing" })
	consistently(t, "a label is no edit", 500*time.Millisecond, func() error {
		cur, err := getSession(key)
		if err != nil {
			return err
		}
		return hasReady(metav1.ConditionTrue, SessionReasonLinkReady)(cur)
	})

	// Someone else rewrites the token: reported, never re-minted.
	got, err = linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	update(t, got, func(got *corev1.Secret) { got.Data[LinkSecretKeyToken] = []byte(strings.Repeat("x", TokenLength)) })
	edited := waitSession(t, key, "edit reported", hasReady(metav1.ConditionFalse, SessionReasonLinkSecretDeleted))
	if edited.Status.Phase != billingv1alpha1.SessionActive || edited.Status.TokenHash != s.Status.TokenHash {
		t.Errorf("phase %q, token hash changed %v: the original link must keep working", edited.Status.Phase, edited.Status.TokenHash != s.Status.TokenHash)
	}

	// Put back, the link is ready again.
	got, err = linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	update(t, got, func(got *corev1.Secret) { got.Data[LinkSecretKeyToken] = []byte(token) })
	waitSession(t, key, "restored", hasReady(metav1.ConditionTrue, SessionReasonLinkReady))
}

// createSMTPSecret points the portal's smtp Secret at a local server, plain SMTP.
func createSMTPSecret(t *testing.T, ns string, port int) {
	t.Helper()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"},
		StringData: map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(port), "tls": "none"},
	}
	if err := k8s.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
}

func TestSessionEmailDeliveredExactlyOnce(t *testing.T) {
	ns := newNamespace(t)
	mp := testenv.StartMailpit(t, testenv.MailpitOptions{})
	createSMTPSecret(t, ns, mp.SMTPPort)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)

	to := ns + "@example.com" // unique per run: Mailpit is per test, but be explicit
	byEmail := createSession(t, newSession(ns, "by-email", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.Customer = billingv1alpha1.CustomerReference{Email: to}
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}))
	annotated := "annotated-" + to
	byID := createSession(t, newSession(ns, "by-id", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.Customer = billingv1alpha1.CustomerReference{ID: "cus_123"}
		s.Annotations = map[string]string{AnnotationCustomerEmail: annotated}
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}))
	unknown := createSession(t, newSession(ns, "unknown", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.Customer = billingv1alpha1.CustomerReference{ID: "cus_456"}
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}))

	for _, tc := range []struct {
		s  *billingv1alpha1.PortalSession
		to string
	}{{byEmail, to}, {byID, annotated}} {
		key := client.ObjectKeyFromObject(tc.s)
		s := waitSession(t, key, "delivered", hasDelivered(metav1.ConditionTrue, DeliveryReasonSent))
		sec, err := linkSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []testenv.MailpitSummary
		eventually(t, "message in Mailpit", func() error {
			msgs, err = mp.Messages(tc.to)
			if err != nil {
				return err
			}
			if len(msgs) != 1 {
				return fmt.Errorf("%d messages to %s, want 1", len(msgs), tc.to)
			}
			return nil
		})
		if msgs[0].Subject != "Tu acceso a Acme Billing" {
			t.Errorf("subject %q", msgs[0].Subject)
		}
		if msgs[0].From.Address != "billing@acme.example" {
			t.Errorf("from %+v", msgs[0].From)
		}
		full, err := mp.Message(msgs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(full.Text, string(sec.Data["url"])) {
			t.Errorf("message text lacks the link:\n%s", full.Text)
		}
		if !strings.Contains(full.Text, fmt.Sprint(s.Status.ExpiresAt.UTC().Year())) {
			t.Errorf("message text lacks the expiry:\n%s", full.Text)
		}
		waitEvent(t, ns, s.Name, corev1.EventTypeNormal, EventDelivered)
	}
	s := waitSession(t, client.ObjectKeyFromObject(unknown), "no address", hasDelivered(metav1.ConditionFalse, DeliveryReasonCustomerEmailUnknown))
	if err := isActive(s); err != nil {
		t.Errorf("a session without an address must still be usable: %v", err)
	}

	// Further reconciles — annotation changes, time passing — send nothing more.
	for i := range 3 {
		patchSession(t, client.ObjectKeyFromObject(byEmail), func(s *billingv1alpha1.PortalSession) {
			s.Annotations = map[string]string{"touch": fmt.Sprint(i)}
		})
		fc.Step(time.Minute)
	}
	waitSession(t, client.ObjectKeyFromObject(byEmail), "touched", func(s *billingv1alpha1.PortalSession) error {
		if s.Annotations["touch"] != "2" {
			return fmt.Errorf("annotation not seen yet")
		}
		return nil
	})
	consistently(t, "still exactly one message each", time.Second, func() error {
		for _, addr := range []string{to, annotated} {
			msgs, err := mp.Messages(addr)
			if err != nil {
				return err
			}
			if len(msgs) != 1 {
				return fmt.Errorf("%d messages to %s", len(msgs), addr)
			}
		}
		return nil
	})
}

func TestSessionEmailRetriedWhenSMTPComesBack(t *testing.T) {
	ns := newNamespace(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	createSMTPSecret(t, ns, port) // nothing listens there yet
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, func(p *billingv1alpha1.CustomerPortal) { p.Spec.Branding.Locale = "en" })
	s := createSession(t, newSession(ns, "s", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}))
	key := client.ObjectKeyFromObject(s)
	waitSession(t, key, "send failed", hasDelivered(metav1.ConditionFalse, DeliveryReasonSendFailed))
	waitEvent(t, ns, s.Name, corev1.EventTypeWarning, EventDeliveryFailed)

	mp := testenv.StartMailpit(t, testenv.MailpitOptions{SMTPPort: port})
	waitSession(t, key, "delivered after SMTP came back", hasDelivered(metav1.ConditionTrue, DeliveryReasonSent))
	msgs, err := mp.Messages("jane@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Subject != "Your access to Acme Billing" {
		t.Fatalf("messages %+v, want one English message", msgs)
	}
}

// crashingMailer records a message as sent and then panics, as a process dying between the SMTP
// server accepting the message and the status write would.
type crashingMailer struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (m *crashingMailer) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	m.sent = append(m.sent, msg)
	m.mu.Unlock()
	panic("simulated crash after the e-mail left")
}

func (m *crashingMailer) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sent)
}

func TestSessionEmailNeverSentTwiceAfterCrash(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	m := &crashingMailer{}
	startSessionController(t, fc, m)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "s", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}))
	key := client.ObjectKeyFromObject(s)
	waitSession(t, key, "delivery interrupted", hasDelivered(metav1.ConditionFalse, DeliveryReasonInterrupted))
	consistently(t, "sent once, never again", 500*time.Millisecond, func() error {
		if n := m.count(); n != 1 {
			return fmt.Errorf("%d sends", n)
		}
		return nil
	})
}

// syncBuffer is a bytes.Buffer safe for the manager's concurrent loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) write(prefix, args string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(prefix + " " + args + "\n")
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// recordingMailer keeps what it was asked to send.
type recordingMailer struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (m *recordingMailer) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

func TestSessionTokenNeverInStatusEventsLogsOrMetrics(t *testing.T) {
	ns := newNamespace(t)
	logs := &syncBuffer{}
	logger := funcr.New(logs.write, funcr.Options{Verbosity: 10})
	fc := testingclock.NewFakeClock(time.Now())
	m := &recordingMailer{}
	_, stop := startSessionManagerWith(t, fc, m, logger)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	s := createSession(t, newSession(ns, "s", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}))
	live := createSession(t, newSession(ns, "live", "acme", nil))
	key := client.ObjectKeyFromObject(s)
	s = waitSession(t, key, "delivered", hasDelivered(metav1.ConditionTrue, DeliveryReasonSent))
	sec, err := linkSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	token := string(sec.Data["token"])
	// The token's only other legitimate home is the e-mail body.
	m.mu.Lock()
	if len(m.sent) != 1 || !strings.Contains(m.sent[0].Text, token) {
		t.Fatalf("the e-mail should carry the token: %d messages", len(m.sent))
	}
	m.mu.Unlock()
	patchSession(t, key, func(s *billingv1alpha1.PortalSession) { s.Spec.Revoked = true })
	waitSession(t, key, "revoked", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
	waitEvent(t, ns, s.Name, corev1.EventTypeNormal, SessionReasonRevoked)

	final, err := getSession(key)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(final)
	if strings.Contains(string(js), token) {
		t.Error("token in the PortalSession object")
	}
	evs, err := sessionEvents(ns, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	var coreEvents corev1.EventList
	if err := k8s.List(context.Background(), &coreEvents, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal([]any{evs, coreEvents.Items})
	if len(evs) < 3 {
		t.Errorf("only %d events; expected LinkReady, Delivered, Revoked at least", len(evs))
	}
	if strings.Contains(string(evJSON), token) {
		t.Error("token in an event")
	}
	// A restart lists every link Secret into the new manager's cache: that must not log them either.
	live = waitSession(t, client.ObjectKeyFromObject(live), "active", isActive)
	liveSecret, err := linkSecret(live)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	_, stop2 := startSessionManagerWith(t, fc, m, logger)
	patchSession(t, client.ObjectKeyFromObject(live), func(s *billingv1alpha1.PortalSession) { s.Spec.Revoked = true })
	waitSession(t, client.ObjectKeyFromObject(live), "revoked after restart", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
	stop2()

	out := logs.String()
	if !strings.Contains(out, "minted session link") || !strings.Contains(out, "Request Body") {
		t.Fatalf("log capture did not see the reconciler and client-go at -v=10:\n%s", out)
	}
	for _, tok := range []string{token, string(liveSecret.Data["token"])} {
		// Any 12 characters of the token count: client-go's hex dumps split bodies into 16-byte rows.
		for i := 0; i+12 <= len(tok); i++ {
			if strings.Contains(out, tok[i:i+12]) {
				t.Fatalf("token fragment %q in the logs", tok[i:i+12])
			}
		}
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(families), token) {
		t.Error("token in the metrics")
	}
}

func TestSessionLinkSecretNameAndLabelValueFitLimits(t *testing.T) {
	long := strings.Repeat("a", 200) + "." + strings.Repeat("b", 52) // 253: the longest object name
	if got := linkSecretName("x"); got != "x-link" {
		t.Errorf("linkSecretName(x) = %q", got)
	}
	got := linkSecretName(long)
	if len(got) > 253 || !strings.HasSuffix(got, "-link") {
		t.Errorf("linkSecretName(253 chars) = %q (%d chars)", got, len(got))
	}
	if linkSecretName(long) == linkSecretName(long[:252]+"c") {
		t.Error("two long names map to the same Secret")
	}
	for _, name := range []string{"short", strings.Repeat("a", 63), strings.Repeat("a", 62) + ".b" + strings.Repeat("c", 10), long} {
		v := labelValue(name)
		if len(v) > 63 || strings.HasSuffix(v, "-") || strings.HasSuffix(v, ".") {
			t.Errorf("labelValue(%d chars) = %q", len(name), v)
		}
		if len(name) <= 63 && v != name {
			t.Errorf("labelValue changed a short name: %q", v)
		}
	}
}
