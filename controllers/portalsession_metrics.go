package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// Session metrics, served on the manager's /metrics with controller-runtime's own. They are
// package-level because a Prometheus registry takes each name once per process; labels are the
// session's namespace and portal (see sessionPortal), both bounded by what the platform team
// creates. No metric ever carries a token or a customer.
var (
	sessionsMinted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_sessions_minted_total",
		Help: "Session tokens minted: one per PortalSession that got a link.",
	}, []string{"namespace", "portal"})
	sessionsActiveGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portero_sessions_active",
		Help: "PortalSessions whose link currently works (phase Active).",
	}, []string{"namespace", "portal"})
	sessionsExpired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_sessions_expired_total",
		Help: "PortalSessions that reached their expiry.",
	}, []string{"namespace", "portal"})
	sessionsRevoked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_sessions_revoked_total",
		Help: "PortalSessions revoked by spec.revoked or by deleting them while active.",
	}, []string{"namespace", "portal"})
	sessionLinkReady = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "portero_session_link_ready_seconds",
		Help:    "Time from a PortalSession's creation to its link Secret being written.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14), // 50ms … ~7m
	})
)

func init() {
	metrics.Registry.MustRegister(sessionsMinted, sessionsActiveGauge, sessionsExpired, sessionsRevoked, sessionLinkReady)
}

// sessionPortal is a session's portal label: the portal that minted its link, "" for a session
// that never had one. Whoever creates PortalSessions (a merchant's backend, say) writes any name
// in spec.portalRef, and a session naming no portal still expires or is revoked: counted under
// that name, each made-up one would be a series kept for the life of the operator. A link is
// minted only for a CustomerPortal that exists, and portalRef cannot change afterwards.
func sessionPortal(s *billingv1alpha1.PortalSession) string {
	if s.Status.TokenHash == "" {
		return ""
	}
	return s.Spec.PortalRef.Name
}

// activeSessions keeps portero_sessions_active exact: every reconcile reports whether its session
// is Active, so the gauge follows phase changes, deletions and, after a restart, the initial list.
var activeSessions = &activeSet{portals: map[types.NamespacedName]string{}}

type activeSet struct {
	mu      sync.Mutex
	portals map[types.NamespacedName]string // session → its portal, for Active sessions
}

// set records whether key is Active (on portal).
func (a *activeSet) set(key types.NamespacedName, portal string, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old, was := a.portals[key]
	if was && (!active || old != portal) {
		sessionsActiveGauge.WithLabelValues(key.Namespace, old).Dec()
		delete(a.portals, key)
		was = false
	}
	if active && !was {
		sessionsActiveGauge.WithLabelValues(key.Namespace, portal).Inc()
		a.portals[key] = portal
	}
}

// forget drops a session that no longer exists.
func (a *activeSet) forget(key types.NamespacedName) { a.set(key, "", false) }
