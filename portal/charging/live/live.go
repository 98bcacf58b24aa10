// Package live gives a portal the charging driver of the processor its CustomerPortal names now.
// spec.processor is a rule like the others, read live: a change applies to the next request
// without a rollout. The processor's Secret is read from the API server at most once per
// SecretTTL; while the type and the Secret's contents stay the same the same adapter is kept,
// so what an adapter remembers in memory (the sandbox's book of charges) survives the re-read.
//
// A processor that cannot be built — its Secret missing or incomplete, which the operator also
// reports as Stalled — answers every call with an error matching payments.ErrUnavailable, so
// customers see "try again later" and nothing is written half-done. Errors name Secrets and
// keys, never a value.
package live

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/processors"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// SecretTTL is how long a read processor Secret is used before it is read again: a rotated key
// applies within this long, and a busy portal costs one Secret read per TTL.
const SecretTTL = 30 * time.Second

// Rules is where the portal's live configuration comes from (portal/rules).
type Rules interface {
	Portal(ctx context.Context) *billingv1alpha1.CustomerPortal
}

// Options configure Processors.
type Options struct {
	Rules Rules
	// Secrets reads the processor's Secret (from the API server, not a cache).
	Secrets client.Reader
	// Recorder is where outcomes are recorded: the ledger.
	Recorder charging.Recorder
	// SandboxSecret is the sandbox's key when the portal names no Secret for it: the key
	// cmd/portal keeps beside the ledger, under which the saved sandbox cards were tokenized.
	SandboxSecret []byte
	// Registry maps types to adapters; nil means processors.Registry().
	Registry *payments.Registry
	// HTTPClient makes the processors' API calls; nil lets each adapter choose.
	HTTPClient *http.Client
	Log        *slog.Logger
	// Now is the clock (Secret TTL, webhook timestamps); nil means time.Now.
	Now func() time.Time
	// Metrics receives the webhook counters; nil registers nowhere.
	Metrics prometheus.Registerer
}

// Processors is the portal's processor as its CustomerPortal names it now. Safe for concurrent use.
type Processors struct {
	o        Options
	webhooks *prometheus.CounterVec
	// calls and callSeconds count and time every call to the processor (charging.Observer).
	calls       *prometheus.CounterVec
	callSeconds *prometheus.HistogramVec

	mu  sync.Mutex
	cur *entry
}

type entry struct {
	typ     payments.ProcessorType
	secret  string   // the Secret's name; "" for the sandbox's own key
	sum     [32]byte // of the type and the Secret's data
	drv     *charging.Driver
	checked time.Time
}

// New returns the portal's live processor.
func New(o Options) (*Processors, error) {
	if o.Rules == nil || o.Recorder == nil {
		return nil, errors.New("live processors: Rules and Recorder are required")
	}
	if o.Registry == nil {
		o.Registry = processors.Registry()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Processors{o: o, webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_portal_processor_webhooks_total",
		Help: "Payment processor webhooks received, by processor, normalised event type and outcome " +
			"(handled, duplicate, ignored, bad_signature, malformed, failed, unavailable, wrong_processor).",
	}, []string{"processor", "type", "outcome"})}
	p.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portero_portal_processor_requests_total",
		Help: "Calls to the payment processor, by processor, operation (charge, lookup_charge, start_setup, " +
			"complete_setup, …) and outcome (ok; a charge's succeeded, failed, pending or requires_action; " +
			"not_found, refused, unavailable, error — a charge that is unavailable or error has an unknown outcome, re-driven later).",
	}, []string{"processor", "operation", "outcome"})
	p.callSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portero_portal_processor_request_duration_seconds",
		Help:    "How long calls to the payment processor took, by processor and operation.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"processor", "operation"})
	if o.Metrics != nil {
		for _, c := range []prometheus.Collector{p.webhooks, p.calls, p.callSeconds} {
			if err := o.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("register processor metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Type is the processor type the portal names now (the sandbox when it names none, or while
// its CustomerPortal is not known yet).
func (p *Processors) Type(ctx context.Context) payments.ProcessorType {
	if cp := p.o.Rules.Portal(ctx); cp != nil {
		return payments.ProcessorType(cp.Spec.ProcessorType())
	}
	return payments.ProcessorSandbox
}

// Driver returns the charging driver of the processor the portal names now. Its error matches
// payments.ErrUnavailable when the processor cannot be built now.
func (p *Processors) Driver(ctx context.Context) (*charging.Driver, error) {
	cp := p.o.Rules.Portal(ctx)
	if cp == nil {
		return nil, payments.Unavailable("processor", errors.New("the CustomerPortal is not known yet"))
	}
	typ := payments.ProcessorType(cp.Spec.ProcessorType())
	var secretName string
	if pr := cp.Spec.Processor; pr != nil && pr.SecretRef != nil {
		secretName = pr.SecretRef.Name
	}
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.cur; c != nil && c.typ == typ && c.secret == secretName && now.Sub(c.checked) < SecretTTL {
		return c.drv, nil
	}
	data, err := p.secretData(ctx, cp.Namespace, typ, secretName)
	if err != nil {
		return nil, payments.Unavailable("processor "+string(typ), err)
	}
	sum := fingerprint(typ, data)
	if c := p.cur; c != nil && c.typ == typ && c.secret == secretName && c.sum == sum {
		c.checked = now
		return c.drv, nil
	}
	a, err := p.o.Registry.New(typ, payments.Config{Secret: data, HTTPClient: p.o.HTTPClient,
		Log: p.o.Log.With("processor", string(typ)), Now: p.o.Now})
	if err != nil {
		p.o.Log.Error("payment processor not usable; payments wait", "processor", typ, "secret", secretName, "err", err)
		return nil, payments.Unavailable("processor "+string(typ), err)
	}
	processor := string(typ)
	d, err := charging.New(charging.Options{Adapter: a, Recorder: p.o.Recorder, Log: p.o.Log,
		Observer: func(op string, took time.Duration, outcome string) {
			p.calls.WithLabelValues(processor, op, outcome).Inc()
			p.callSeconds.WithLabelValues(processor, op).Observe(took.Seconds())
		}})
	if err != nil {
		return nil, err
	}
	if p.cur != nil {
		p.o.Log.Info("payment processor configuration changed", "processor", typ, "secret", secretName)
	}
	p.cur = &entry{typ: typ, secret: secretName, sum: sum, drv: d, checked: now}
	return d, nil
}

// secretData is the adapter's configuration: the named Secret's data, or the sandbox's own key.
func (p *Processors) secretData(ctx context.Context, ns string, typ payments.ProcessorType, name string) (map[string][]byte, error) {
	if name == "" {
		if typ != payments.ProcessorSandbox {
			return nil, fmt.Errorf("spec.processor.secretRef names no Secret for processor %s", typ)
		}
		return map[string][]byte{sandbox.SecretKey: p.o.SandboxSecret}, nil
	}
	if p.o.Secrets == nil {
		return nil, errors.New("no Secret reader")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var s corev1.Secret
	if err := p.o.Secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("read the processor Secret %s: %w", name, err)
	}
	return s.Data, nil
}

// fingerprint identifies a configuration without keeping it.
func fingerprint(typ payments.ProcessorType, data map[string][]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(typ))
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%d:%s\x00%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// WebhookHandler serves POST /webhooks/{processor}: the processor's signed notifications, for
// the processor the portal names now (another type's are 404: they cannot be verified here).
// Changes they cause are recorded with source processor. 503 while the processor cannot be
// built, so the processor delivers the event again later.
func (p *Processors) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ := r.PathValue("processor")
		if !slices.Contains(p.o.Registry.Types(), payments.ProcessorType(typ)) {
			http.NotFound(w, r)
			return
		}
		d, err := p.Driver(r.Context())
		if err != nil {
			p.webhooks.WithLabelValues(typ, "unknown", "unavailable").Inc()
			p.o.Log.Warn("processor webhook not handled: the processor is not usable", "processor", typ, "err", err)
			http.Error(w, "processor unavailable; deliver again later", http.StatusServiceUnavailable)
			return
		}
		if string(d.Adapter().Type()) != typ {
			p.webhooks.WithLabelValues(typ, "unknown", "wrong_processor").Inc()
			http.Error(w, "this portal does not use processor "+typ, http.StatusNotFound)
			return
		}
		r = r.WithContext(ledger.WithSource(r.Context(), ledger.SourceProcessor))
		ev, outcome := d.ServeWebhook(w, r)
		evType := string(ev.Type)
		if evType == "" {
			evType = "unknown"
		}
		p.webhooks.WithLabelValues(typ, evType, string(outcome)).Inc()
	})
}
