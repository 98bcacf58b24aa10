package rules

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// revokeFixture is a view fed by hand (no informer: the test decides what it has seen) with a
// client of the real API server, and an active session of its portal there.
func revokeFixture(t *testing.T, name string) (*Rules, *billingv1alpha1.PortalSession) {
	t.Helper()
	ns := newNamespace(t)
	r := newRules(types.NamespacedName{Namespace: ns, Name: "shop"})
	r.Client = k8s
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "shop"},
			Customer: billingv1alpha1.CustomerReference{ID: "cus_1"}},
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: "hash-" + name,
		ExpiresAt: &metav1.Time{Time: time.Now().Add(time.Hour)}}
	if err := k8s.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	r.setSession(s.DeepCopy(), false)
	return r, s
}

// A revocation shows in the portal's own view as soon as RevokeSession returns, and stays
// there while informer events older than it arrive; the informer's own copy takes over once
// it has the revocation.
func TestRevokeSessionShowsAtOnce(t *testing.T) {
	ctx := context.Background()
	r, s := revokeFixture(t, "shown")
	before := s.DeepCopy()
	inView := r.sessions[s.Name] // the informer's object, as far as the view knows

	got, err := r.RevokeSession(ctx, r.Session(ctx, s.Name), ReasonSignedOut)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Spec.Revoked || got.Spec.RevocationReason != ReasonSignedOut || got.ResourceVersion == before.ResourceVersion {
		t.Fatalf("RevokeSession answered %+v (rv %s)", got.Spec, got.ResourceVersion)
	}
	onServer := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), onServer); err != nil {
		t.Fatal(err)
	}
	if !onServer.Spec.Revoked || onServer.Spec.RevocationReason != ReasonSignedOut {
		t.Fatalf("on the API server: %+v", onServer.Spec)
	}

	seen := func(when string) {
		t.Helper()
		v := r.Session(ctx, s.Name)
		h := r.SessionByTokenHash(ctx, s.Status.TokenHash)
		if v == nil || h == nil {
			t.Fatalf("%s: the session is missing from the view", when)
		}
		if !v.Spec.Revoked || v.Spec.RevocationReason != ReasonSignedOut || Usable(h, time.Now()) {
			t.Fatalf("%s: the view shows revoked %v, reason %q; usable by its hash: %v", when, v.Spec.Revoked, v.Spec.RevocationReason, Usable(h, time.Now()))
		}
	}
	seen("before the informer has it")
	// A status write of the operator's from before the revocation, delivered late.
	stale := before.DeepCopy()
	stale.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Active", LastTransitionTime: metav1.Now()}}
	r.setSession(stale, false)
	seen("after an older event")
	if inView.Spec.Revoked || stale.Spec.Revoked {
		t.Fatal("the informer's objects were written into")
	}
	r.setSession(onServer, false)
	seen("after the informer has it")
	r.mu.RLock()
	pending := len(r.revoked)
	r.mu.RUnlock()
	if pending != 0 {
		t.Fatalf("%d revocations still held after the informer delivered them", pending)
	}
	r.setSession(onServer, true)
	if r.Session(ctx, s.Name) != nil {
		t.Fatal("deleted session still in the view")
	}
}

// Two revocations race (the merchant's revoke, the customer's sign-out): the first reason
// stays, as the CRD requires, and the second caller is told the session is revoked. A session
// deleted, or deleted and made again under its name, is gone: the patch is pinned to its UID.
func TestRevokeSessionRacesAndGoneSessions(t *testing.T) {
	ctx := context.Background()
	r, s := revokeFixture(t, "raced")
	stale := r.Session(ctx, s.Name) // read before the other revocation
	if _, err := r.RevokeSession(ctx, s.DeepCopy(), "revoked by the merchant API"); err != nil {
		t.Fatal(err)
	}
	got, err := r.RevokeSession(ctx, stale, ReasonSignedOut)
	if err != nil {
		t.Fatalf("the second revocation: %v", err)
	}
	if !got.Spec.Revoked || got.Spec.RevocationReason != "revoked by the merchant API" {
		t.Fatalf("the second revocation answered %+v", got.Spec)
	}

	r, s = revokeFixture(t, "remade")
	old := r.Session(ctx, s.Name)
	if err := k8s.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RevokeSession(ctx, old, ReasonSignedOut); !errors.Is(err, ErrSessionGone) {
		t.Fatalf("revoking a deleted session: %v", err)
	}
	again := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}, Spec: s.Spec}
	if err := k8s.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RevokeSession(ctx, old, ReasonSignedOut); !errors.Is(err, ErrSessionGone) {
		t.Fatalf("revoking a session made again under the same name: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(again), again); err != nil || again.Spec.Revoked {
		t.Fatalf("the new session was revoked: %+v %v", again.Spec, err)
	}
}
