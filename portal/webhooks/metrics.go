package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the delivery series. The endpoint label is a name from spec.webhooks (at most
// ten, DNS labels): bounded by the CustomerPortal, never by a request.
type metrics struct {
	events          *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	latency         prometheus.Histogram
	attemptDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, store Store) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_events_total",
			Help: "Events written to the merchant's event log, by type (a fixed list).",
		}, []string{"type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_portal_webhook_deliveries_total",
			Help: "Webhook delivery attempts by endpoint and outcome: delivered, retrying (failed, will retry), failed (gave up).",
		}, []string{"endpoint", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portero_portal_webhook_delivery_latency_seconds",
			Help:    "Time from an event's commit to its successful delivery to an endpoint.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300, 1800, 7200, 36000, 100000},
		}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portero_portal_webhook_attempt_duration_seconds",
			Help:    "Time one delivery attempt took, from request to the endpoint's answer.",
			Buckets: prometheus.DefBuckets,
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.events, m.deliveries, m.latency, m.attemptDuration, backlogCollector{store}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return m, nil
}

var (
	backlogDesc = prometheus.NewDesc("portero_portal_webhook_backlog",
		"Deliveries pending (not yet delivered nor given up).", nil, nil)
	oldestDesc = prometheus.NewDesc("portero_portal_webhook_oldest_pending_age_seconds",
		"Age of the oldest event with a pending delivery (0 when none).", nil, nil)
)

// backlogCollector reads the backlog from the ledger at scrape time: it is shared by every
// replica, so each reports the same figures.
type backlogCollector struct{ store Store }

func (backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backlogDesc; ch <- oldestDesc }

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := c.store.DeliveryBacklog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(backlogDesc, err)
		return
	}
	age := 0.0
	if !b.OldestEvent.IsZero() {
		age = time.Since(b.OldestEvent).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(b.Pending))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
