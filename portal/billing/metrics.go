package billing

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portero-dev/portero/portal/ledger"
)

// metrics are the loops' Prometheus series.
type metrics struct {
	renewalRuns  *prometheus.CounterVec
	renewals     prometheus.Counter
	sweeps       prometheus.Counter
	linksCreated prometheus.Counter
	notifyErrors prometheus.Counter
	queueFull    prometheus.Counter
	// payments counts payment outcomes as the ledger reports them (its hooks), for the
	// dashboard's payments panel and the failure-ratio alert (config/prometheus).
	payments *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		renewalRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_billing_renewal_runs_total",
			Help: "Renewal passes over due subscriptions, by result (ok, error).",
		}, []string{"result"}),
		renewals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_billing_renewal_payments_total",
			Help: "Period payments created by renewals.",
		}),
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_billing_incomplete_sweeps_total",
			Help: "Sweeps over recently incomplete payments for missing completion links.",
		}),
		linksCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_billing_completion_links_total",
			Help: "PortalSessions created to e-mail customers a link to complete an incomplete payment.",
		}),
		notifyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_billing_completion_link_errors_total",
			Help: "Failures to create a completion link (retried by the next sweep).",
		}),
		queueFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portero_billing_completion_queue_full_total",
			Help: "Incomplete payments not queued because the queue was full (the sweep sends their link).",
		}),
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portero_payments_total",
			Help: "Charge attempts by outcome (succeeded, failed, pending), and payments left incomplete for want of a payment method (incomplete).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		m.renewalRuns = register(reg, m.renewalRuns)
		m.renewals = register(reg, m.renewals)
		m.sweeps = register(reg, m.sweeps)
		m.linksCreated = register(reg, m.linksCreated)
		m.notifyErrors = register(reg, m.notifyErrors)
		m.queueFull = register(reg, m.queueFull)
		m.payments = register(reg, m.payments)
	}
	return m
}

// payment counts one outcome. The label takes only the ledger's end states, so a status added
// later cannot grow the series unnoticed.
func (m *metrics) payment(status ledger.PaymentStatus) {
	switch status {
	case ledger.PaymentSucceeded, ledger.PaymentFailed, ledger.PaymentPending, ledger.PaymentIncomplete, ledger.PaymentRequiresAction:
		m.payments.WithLabelValues(string(status)).Inc()
	default:
		m.payments.WithLabelValues("other").Inc()
	}
}

// register registers c, or returns the collector already registered under its name (a second
// Loops on one registry, as in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a conflicting definition is a programming error
	}
	return c
}
