package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// portalLabels returns the portal label of every session series in namespace ns.
func portalLabels(t *testing.T, ns string) map[string]bool {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "portero_session") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var inNS bool
			var portal string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					inNS = l.GetValue() == ns
				case "portal":
					portal = l.GetValue()
				}
			}
			if inNS {
				out[mf.GetName()+"/"+portal] = true
			}
		}
	}
	return out
}

// Whoever creates PortalSessions writes any portal name in spec.portalRef, and a session naming
// no portal still ends: revoked at once, or expired from its own ttl. Counted under that name,
// every made-up one was a series the operator kept until it restarted. They count under "",
// while sessions of a real portal keep its name.
func TestSessionMetricsIgnoreMadeUpPortalNames(t *testing.T) {
	ns := newNamespace(t)
	fc := testingclock.NewFakeClock(time.Now())
	startSessionController(t, fc, nil)
	createSessionPortal(t, ns, "acme", sessionPortalURL, nil)
	real := createSession(t, newSession(ns, "real", "acme", nil))
	waitSession(t, client.ObjectKeyFromObject(real), "active", isActive)

	const n = 12
	var madeUp []*billingv1alpha1.PortalSession
	for i := range n {
		revoke := i%2 == 0
		madeUp = append(madeUp, createSession(t, newSession(ns, fmt.Sprintf("made-up-%d", i), fmt.Sprintf("no-such-portal-%d", i),
			func(s *billingv1alpha1.PortalSession) { s.Spec.Revoked = revoke })))
	}
	for i, s := range madeUp {
		if i%2 == 0 {
			waitSession(t, client.ObjectKeyFromObject(s), "revoked", hasPhase(billingv1alpha1.SessionRevoked, SessionReasonRevoked))
		} else {
			waitSession(t, client.ObjectKeyFromObject(s), "waiting for its portal", hasReady("False", SessionReasonPortalNotFound))
		}
	}
	fc.Step(time.Hour) // past every ttl: the real session and the waiting ones expire
	for i, s := range madeUp {
		if i%2 == 1 {
			waitSession(t, client.ObjectKeyFromObject(s), "expired", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))
		}
	}
	waitSession(t, client.ObjectKeyFromObject(real), "expired", hasPhase(billingv1alpha1.SessionExpired, SessionReasonExpired))

	got := portalLabels(t, ns)
	for series := range got {
		if strings.Contains(series, "no-such-portal") {
			t.Errorf("series %s carries a made-up portal name (all: %v)", series, got)
		}
	}
	for _, want := range []string{"portero_sessions_minted_total/acme", "portero_sessions_expired_total/acme",
		"portero_sessions_revoked_total/", "portero_sessions_expired_total/"} {
		if !got[want] {
			t.Errorf("no series %s (all: %v)", want, got)
		}
	}
}
