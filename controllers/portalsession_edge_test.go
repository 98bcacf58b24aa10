package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// A session whose expiry passes while it still waits for its portal — the portal missing, or
// there without a URL — ends Expired without ever getting a link, and stays so when the portal
// turns up.
func TestSessionExpiresWhileWaitingForItsPortal(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	unready := createSessionPortal(t, ns, "unready", "", nil)
	missing := createSession(t, newSession(ns, "no-portal", "later", nil))
	waiting := createSession(t, newSession(ns, "no-url", "unready", nil))

	var expiry time.Time
	for _, tc := range []struct {
		s      *billingv1alpha1.PortalSession
		reason string
	}{{missing, SessionReasonPortalNotFound}, {waiting, SessionReasonPortalNotReady}} {
		s := waitSession(t, client.ObjectKeyFromObject(tc.s), "waiting", hasReady(metav1.ConditionFalse, tc.reason))
		// spec.ttl is known, so the expiry is fixed from creation even with no portal to ask.
		if want := s.CreationTimestamp.Add(30 * time.Minute); s.Status.ExpiresAt == nil || !s.Status.ExpiresAt.Time.Equal(want) {
			t.Fatalf("%s: expiresAt %v, want creation + ttl = %s", s.Name, s.Status.ExpiresAt, want)
		}
		expiry = s.Status.ExpiresAt.Time
	}

	fc.SetTime(expiry.Add(time.Second))
	for _, s := range []*billingv1alpha1.PortalSession{missing, waiting} {
		got := waitSession(t, client.ObjectKeyFromObject(s), "expired while waiting", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))
		if got.Status.TokenHash != "" || got.Status.LinkSecretName != "" {
			t.Errorf("%s: a link was made for a session that never had a portal to link to: %+v", s.Name, got.Status)
		}
	}

	// The portals arrive: an expired session does not come back to life.
	createSessionPortal(t, ns, "later", sessionPortalURL, nil)
	setPortalURL(t, unready, sessionPortalURL)
	consistently(t, "sessions stay expired, without links, once their portals are there", time.Second, func() error {
		for _, s := range []*billingv1alpha1.PortalSession{missing, waiting} {
			got, err := getSession(client.ObjectKeyFromObject(s))
			if err != nil {
				return err
			}
			if err := hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired)(got); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if got.Status.TokenHash != "" {
				return fmt.Errorf("%s: a token was minted after expiry", s.Name)
			}
			if err := secretGone(got)(); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		return nil
	})
	for _, portal := range []string{"later", "unready"} {
		if got := testutil.ToFloat64(sessionsMinted.WithLabelValues(ns, portal)); got != 0 {
			t.Errorf("portero_sessions_minted_total{portal=%q} = %v, want 0", portal, got)
		}
	}
}

// A session refused for asking more than the portal's maxTTL is not dead: raising maxTTL gives
// it its link, with the ttl it asked for, counted from its creation.
func TestRaisingMaxTTLGivesARefusedSessionItsLink(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	p := createSessionPortal(t, ns, "acme", sessionPortalURL, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.DefaultTTL = &metav1.Duration{Duration: 30 * time.Minute}
		p.Spec.Access.Sessions.MaxTTL = &metav1.Duration{Duration: time.Hour}
	})
	s := createSession(t, newSession(ns, "long", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.TTL = &metav1.Duration{Duration: 2 * time.Hour}
	}))
	key := client.ObjectKeyFromObject(s)
	waitSession(t, key, "refused", hasReady(metav1.ConditionFalse, SessionReasonTTLExceedsPortalMaximum))

	update(t, p, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.MaxTTL = &metav1.Duration{Duration: 3 * time.Hour}
	})
	s = waitSession(t, key, "active once maxTTL allows its ttl", isActive)
	if want := s.CreationTimestamp.Add(2 * time.Hour); s.Status.ExpiresAt == nil || !s.Status.ExpiresAt.Time.Equal(want) {
		t.Errorf("expiresAt %v, want creation + the 2h it asked for = %s", s.Status.ExpiresAt, want)
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionStalled); c != nil {
		t.Errorf("Stalled still present: %+v", c)
	}
	sec, err := linkSecret(s)
	if err != nil {
		t.Fatalf("link Secret: %v", err)
	}
	if url := string(sec.Data[LinkSecretKeyURL]); !strings.HasPrefix(url, sessionPortalURL+"s/") || !TokenMatches(string(sec.Data[LinkSecretKeyToken]), s.Status.TokenHash) {
		t.Errorf("link Secret url %q does not carry the session's token", url)
	}
	if got := testutil.ToFloat64(sessionsMinted.WithLabelValues(ns, "acme")); got != 1 {
		t.Errorf("portero_sessions_minted_total = %v, want 1", got)
	}
}

// sessionDeleteHook is the reconciler's client with a hook that runs just before the reconciler
// deletes a PortalSession: the instant a person may delete a session and create another of the
// same name.
type sessionDeleteHook struct {
	client.Client
	mu     sync.Mutex
	before func(context.Context, *billingv1alpha1.PortalSession) error
	// done receives, once, what the hook did and what the reconciler's delete then returned.
	done chan hookResult
}

type hookResult struct {
	hookErr, deleteErr error
}

func (c *sessionDeleteHook) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	s, ok := obj.(*billingv1alpha1.PortalSession)
	c.mu.Lock()
	hook := c.before
	if ok {
		c.before = nil // once
	}
	c.mu.Unlock()
	if !ok || hook == nil {
		return c.Client.Delete(ctx, obj, opts...)
	}
	hookErr := hook(ctx, s)
	err := c.Client.Delete(ctx, obj, opts...)
	c.done <- hookResult{hookErr: hookErr, deleteErr: err}
	return err
}

func (c *sessionDeleteHook) arm(f func(context.Context, *billingv1alpha1.PortalSession) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.before = f
}

// The clean-up of an ended session deletes it with a UID precondition: a session deleted and
// created again under the same name just before the clean-up fires is another session, and
// survives.
func TestCleanUpSparesANewSessionWithTheSameName(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	hook := &sessionDeleteHook{done: make(chan hookResult, 1)}
	r := &PortalSessionReconciler{Clock: fc}
	startManager(t, func(mgr manager.Manager) error {
		hook.Client = mgr.GetClient()
		r.Client, r.APIReader, r.Scheme = hook, mgr.GetAPIReader(), mgr.GetScheme()
		return r.SetupWithManager(mgr)
	})
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	old := createSession(t, newSession(ns, "reused", "acme", func(s *billingv1alpha1.PortalSession) {
		s.Spec.TTLSecondsAfterExpired = ptr.To[int64](60)
	}))
	key := client.ObjectKeyFromObject(old)
	got := waitSession(t, key, "active", isActive)
	oldUID := got.UID
	fc.SetTime(got.Status.ExpiresAt.Add(time.Second))
	waitSession(t, key, "expired", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))

	// Right before the clean-up's delete: the old session goes (its finalizer released by hand,
	// as its controller is busy) and a new one takes its name. Runs on the reconciler's
	// goroutine, so it reports errors instead of failing the test.
	var newUID types.UID
	hook.arm(func(ctx context.Context, s *billingv1alpha1.PortalSession) error {
		if s.UID != oldUID {
			return fmt.Errorf("the reconciler deletes session uid %s, want the old one %s", s.UID, oldUID)
		}
		cur := &billingv1alpha1.PortalSession{}
		if err := k8s.Get(ctx, key, cur); err != nil {
			return err
		}
		base := cur.DeepCopy()
		cur.Finalizers = nil
		if err := k8s.Patch(ctx, cur, client.MergeFrom(base)); err != nil {
			return fmt.Errorf("release the old session's finalizer: %w", err)
		}
		if err := k8s.Delete(ctx, cur, client.Preconditions{UID: &oldUID}); err != nil {
			return fmt.Errorf("delete the old session: %w", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := k8s.Get(ctx, key, &billingv1alpha1.PortalSession{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the old session is still there: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Its ttl outlasts the fake clock's lead over the API server's creation timestamps.
		fresh := newSession(ns, old.Name, "acme", func(s *billingv1alpha1.PortalSession) {
			s.Spec.TTL = &metav1.Duration{Duration: 2 * time.Hour}
		})
		if err := k8s.Create(ctx, fresh); err != nil {
			return fmt.Errorf("create the new session: %w", err)
		}
		newUID = fresh.UID
		return nil
	})
	fc.Step(61 * time.Second)
	var res hookResult
	select {
	case res = <-hook.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the clean-up did not delete the expired session within 30s")
	}
	if res.hookErr != nil {
		t.Fatal(res.hookErr)
	}
	// The API server refused the delete: the object by that name is not the one it was for.
	if !apierrors.IsConflict(res.deleteErr) {
		t.Fatalf("the clean-up's delete returned %v, want a conflict (UID precondition failed)", res.deleteErr)
	}
	s := waitSession(t, key, "the new session gets its link", isActive)
	if s.UID != newUID {
		t.Fatalf("session uid %s, want the new session's %s", s.UID, newUID)
	}
	consistently(t, "the new session survives", time.Second, func() error {
		cur, err := getSession(key)
		if err != nil {
			return err
		}
		if cur.UID != newUID || !cur.DeletionTimestamp.IsZero() {
			return errors.New("the new session was deleted")
		}
		return nil
	})
}
