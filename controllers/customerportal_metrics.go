package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// PortalMetrics exports one gauge per portal with its Ready condition, so a failing portal can be
// found from Prometheus: portero_portal_ready{namespace,name} is 1 (True), 0 (False) or -1 (Unknown).
type PortalMetrics struct {
	ready *prometheus.GaugeVec
}

// NewPortalMetrics creates the gauges and registers them with reg.
func NewPortalMetrics(reg prometheus.Registerer) (*PortalMetrics, error) {
	m := &PortalMetrics{ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portero_portal_ready",
		Help: "Ready condition of each CustomerPortal: 1 True, 0 False, -1 Unknown.",
	}, []string{"namespace", "name"})}
	if err := reg.Register(m.ready); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *PortalMetrics) observe(p *billingv1alpha1.CustomerPortal) {
	if m == nil {
		return
	}
	v := -1.0
	if c := readyCondition(p.Status.Conditions); c != nil {
		switch c.Status {
		case "True":
			v = 1
		case "False":
			v = 0
		}
	}
	m.ready.WithLabelValues(p.Namespace, p.Name).Set(v)
}

func (m *PortalMetrics) forget(key types.NamespacedName) {
	if m == nil {
		return
	}
	m.ready.DeleteLabelValues(key.Namespace, key.Name)
}
