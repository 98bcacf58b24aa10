package webhooks

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/webhooks/signing"
)

// PreviousKey is the Secret key of the secret being rotated out: while it is present, every
// delivery is signed under it too.
const PreviousKey = signing.PreviousKey

// secretTTL is how long a read signing secret is used before it is read again: a rotated
// secret signs within this long, and a busy endpoint costs one Secret read per TTL, not one
// per delivery.
const secretTTL = 30 * time.Second

// PortalSource is where the live configuration comes from: the portal's CustomerPortal (from
// its informer) and a reader for the Secrets it names.
type PortalSource interface {
	Portal(context.Context) *billingv1alpha1.CustomerPortal
}

// Config turns the CustomerPortal's spec.webhooks into the ledger's subscribers and the
// worker's endpoints, reading each endpoint's Secret at most once per secretTTL.
type Config struct {
	rules   PortalSource
	secrets client.Reader
	log     *slog.Logger
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]cachedKeys // by namespace/name/key
}

type cachedKeys struct {
	keys [][]byte
	at   time.Time
}

// NewConfig returns the live webhook configuration of the portal.
func NewConfig(rules PortalSource, secrets client.Reader, log *slog.Logger) *Config {
	return &Config{rules: rules, secrets: secrets, log: log, now: time.Now, cache: map[string]cachedKeys{}}
}

func (c *Config) spec() (string, []billingv1alpha1.WebhookEndpoint) {
	p := c.rules.Portal(context.Background())
	if p == nil {
		return "", nil
	}
	return p.Namespace, p.Spec.Webhooks
}

// Subscribers are the endpoints events are written for (disabled ones too: their deliveries
// wait for them).
func (c *Config) Subscribers() []ledger.Subscriber {
	_, eps := c.spec()
	out := make([]ledger.Subscriber, 0, len(eps))
	for _, ep := range eps {
		s := ledger.Subscriber{Name: ep.Name}
		for _, t := range ep.Events {
			s.Events = append(s.Events, string(t))
		}
		out = append(out, s)
	}
	return out
}

// Endpoints are the endpoints with their signing keys. An endpoint whose Secret cannot be read
// or holds no usable secret is returned Disabled (its deliveries wait, never sent unsigned);
// the operator reports the same problem as Stalled.
func (c *Config) Endpoints() []Endpoint {
	ns, eps := c.spec()
	out := make([]Endpoint, 0, len(eps))
	for _, ep := range eps {
		e := Endpoint{Name: ep.Name, URL: ep.URL, Disabled: ep.Disabled}
		for _, t := range ep.Events {
			e.Events = append(e.Events, string(t))
		}
		if !e.Disabled {
			keys, ok := c.keys(ns, ep.SecretRef)
			e.Keys, e.Disabled = keys, !ok
		}
		if signing.CheckURL(e.URL) != nil {
			e.Disabled = true
		}
		out = append(out, e)
	}
	return out
}

// keys reads the endpoint's secret (and the previous one, while it rotates).
func (c *Config) keys(ns string, ref billingv1alpha1.WebhookSecretReference) ([][]byte, bool) {
	key := ref.Key
	if key == "" {
		key = "secret"
	}
	id := ns + "/" + ref.Name + "/" + key
	c.mu.Lock()
	cached, ok := c.cache[id]
	c.mu.Unlock()
	if ok && c.now().Sub(cached.at) < secretTTL {
		return cached.keys, cached.keys != nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s corev1.Secret
	var keys [][]byte
	if err := c.secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &s); err != nil {
		c.log.Warn("webhook secret unreadable; deliveries wait", "secret", ref.Name, "err", err)
	} else if k, err := signing.ParseSecret(string(s.Data[key])); err != nil {
		c.log.Warn("webhook secret unusable; deliveries wait", "secret", ref.Name, "key", key, "err", err)
	} else {
		keys = [][]byte{k}
		if prev, ok := s.Data[PreviousKey]; ok && key != PreviousKey {
			if pk, err := signing.ParseSecret(string(prev)); err == nil {
				keys = append(keys, pk)
			} else {
				c.log.Warn("previous webhook secret unusable; signing with the current one only", "secret", ref.Name)
			}
		}
	}
	c.mu.Lock()
	c.cache[id] = cachedKeys{keys: keys, at: c.now()}
	c.mu.Unlock()
	return keys, keys != nil
}
