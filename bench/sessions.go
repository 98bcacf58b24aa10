package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
)

// SessionLatencyOptions size the session link latency benchmark.
type SessionLatencyOptions struct {
	// N sessions (and N ConfigMaps) are measured after Warmup of each that are not.
	N, Warmup int
	// Rate is the creations per second of each stream.
	Rate float64
}

// SessionLatency measures the time from creating a PortalSession to a watcher seeing its link
// Secret, with the manager running, against the floor of one API write: creating a ConfigMap to a
// watcher seeing it. The two streams are interleaved at the same rate, so both see the same load.
func SessionLatency(ctx context.Context, c *Cluster, o SessionLatencyOptions) Section {
	sec := Section{Title: "Session link latency", Method: []string{
		fmt.Sprintf("Operator running as its own process (`bin/manager`) against a fresh kube-apiserver + etcd on loopback; one CustomerPortal; %d PortalSessions created open-loop at %.0f/s (each create on its own goroutine at its scheduled instant, so a slow create does not delay the next).", o.N, o.Rate),
		"Figure: from just before the Create call to the instant a watch on the namespace's Secrets delivers the session's link Secret (`<session>-link`). The operator has to add its finalizer, look the Secret up on the API server and create it: three round trips.",
		fmt.Sprintf("Baseline: a ConfigMap created → seen by a watch on ConfigMaps, one API write — the floor. ConfigMaps are created in the same run, interleaved half a period after each session (also %.0f/s), so both streams see the same API server and CPU load, the operator's work included.", o.Rate),
		fmt.Sprintf("The first %d of each stream warm caches and connections and are not counted. Percentiles are nearest-rank.", o.Warmup),
	}}
	p50, p99, err := sessionLatency(ctx, c, o)
	if err != nil {
		sec.Err = err
		return sec
	}
	sec.Rows = []Row{
		{Benchmark: "Session link latency p50", Figure: ms(p50[0]), Baseline: ms(p50[1]) + " (ConfigMap)", Ratio: ratio(float64(p50[0]), float64(p50[1])),
			Target: "≤ 3× baseline", Result: verdict(float64(p50[0]) <= 3*float64(p50[1]))},
		{Benchmark: "Session link latency p99", Figure: ms(p99[0]), Baseline: ms(p99[1]) + " (ConfigMap)", Ratio: ratio(float64(p99[0]), float64(p99[1])),
			Target: "≤ 5× baseline p99", Result: verdict(float64(p99[0]) <= 5*float64(p99[1]))},
	}
	return sec
}

// sessionLatency returns p50 and p99 of {session, configmap}.
func sessionLatency(ctx context.Context, c *Cluster, o SessionLatencyOptions) (p50, p99 [2]time.Duration, err error) {
	const ns = "bench-latency"
	if err := c.Namespace(ctx, ns); err != nil {
		return p50, p99, err
	}
	if err := CreatePortalSecrets(ctx, c.Client, ns, "", strings.Repeat("k", 64)); err != nil {
		return p50, p99, err
	}
	if _, err := CreatePortal(ctx, c.Client, ns, "latency", "http://127.0.0.1:9/"); err != nil {
		return p50, p99, err
	}
	if err := WaitPortalURL(ctx, c.Client, ns, "latency"); err != nil {
		return p50, p99, err
	}

	total := o.Warmup + o.N
	links, cms := newFirstSeen(total), newFirstSeen(total)
	stopSecrets, err := c.Watch(ctx, &corev1.SecretList{}, ns,
		labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: controllers.ManagedByValue}),
		func(ev watch.Event, at time.Time) {
			if ev.Type == watch.Added {
				links.mark(strings.TrimSuffix(ev.Object.(*corev1.Secret).Name, "-link"), at)
			}
		})
	if err != nil {
		return p50, p99, err
	}
	defer stopSecrets()
	stopCMs, err := c.Watch(ctx, &corev1.ConfigMapList{}, ns, labels.SelectorFromSet(labels.Set{"bench": "latency"}),
		func(ev watch.Event, at time.Time) {
			if ev.Type == watch.Added {
				cms.mark(ev.Object.(*corev1.ConfigMap).Name, at)
			}
		})
	if err != nil {
		return p50, p99, err
	}
	defer stopCMs()

	var (
		mu       sync.Mutex
		started  = map[string]time.Time{}
		failures atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	fire := func(name string, obj client.Object) {
		defer wg.Done()
		at := time.Now()
		mu.Lock()
		started[name] = at
		mu.Unlock()
		if err := c.Client.Create(ctx, obj); err != nil {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
	}
	period := time.Duration(float64(time.Second) / o.Rate)
	t0 := time.Now().Add(100 * time.Millisecond)
	for i := 0; i < total; i++ {
		name := fmt.Sprintf("s%05d", i)
		session := &billingv1alpha1.PortalSession{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: billingv1alpha1.PortalSessionSpec{
				PortalRef: billingv1alpha1.PortalReference{Name: "latency"},
				Customer:  billingv1alpha1.CustomerReference{ID: fmt.Sprintf("cus_%05d", i)},
				TTL:       &metav1.Duration{Duration: time.Hour},
			},
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cm-" + name, Labels: map[string]string{"bench": "latency"}},
			// About what a link Secret holds: a token and a URL.
			Data: map[string]string{"token": strings.Repeat("x", 43), "url": "http://127.0.0.1:9/s/" + strings.Repeat("x", 43)},
		}
		sleepUntil(ctx, t0.Add(time.Duration(i)*period))
		wg.Add(1)
		go fire("session/"+name, session)
		sleepUntil(ctx, t0.Add(time.Duration(i)*period+period/2))
		wg.Add(1)
		go fire("cm/cm-"+name, cm)
		if ctx.Err() != nil {
			return p50, p99, ctx.Err()
		}
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		return p50, p99, fmt.Errorf("%d creates failed, first: %v", n, firstErr.Load())
	}
	if err := links.wait(ctx, time.Minute); err != nil {
		return p50, p99, fmt.Errorf("link Secrets: %w (manager log: %s)", err, c.Manager.LogPath)
	}
	if err := cms.wait(ctx, time.Minute); err != nil {
		return p50, p99, fmt.Errorf("ConfigMaps: %w", err)
	}

	var lat [2][]time.Duration
	for i := o.Warmup; i < total; i++ {
		name := fmt.Sprintf("s%05d", i)
		seen, _ := links.get(name)
		lat[0] = append(lat[0], seen.Sub(started["session/"+name]))
		seen, _ = cms.get("cm-" + name)
		lat[1] = append(lat[1], seen.Sub(started["cm/cm-"+name]))
	}
	for k := range 2 {
		p50[k], p99[k] = Percentile(lat[k], 50), Percentile(lat[k], 99)
	}

	// Clean up: the operator finalizes the sessions (deletes their Secrets) before they go.
	if err := deleteAllAndWait(ctx, c.Client, ns, &billingv1alpha1.PortalSession{}, &billingv1alpha1.PortalSessionList{}, 2*time.Minute); err != nil {
		return p50, p99, fmt.Errorf("clean up sessions: %w", err)
	}
	if err := c.Client.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.MatchingLabels{"bench": "latency"}); err != nil {
		return p50, p99, err
	}
	return p50, p99, nil
}

// sleepUntil sleeps until t or ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// PortalSpec is a CustomerPortal like the sample: every method, sessions up to 24h, SQLite.
// publicURL is where its links point.
func PortalSpec(publicURL string) billingv1alpha1.CustomerPortalSpec {
	return billingv1alpha1.CustomerPortalSpec{
		DisplayName: "Bench Billing",
		Permissions: billingv1alpha1.Permissions{
			UpdateBillingInfo: ptr.To(true), ViewPaymentHistory: ptr.To(true),
			UpdatePaymentMethod: ptr.To(true), CancelSubscriptions: ptr.To(true),
		},
		PaymentMethods: &billingv1alpha1.PaymentMethods{All: true},
		Branding:       billingv1alpha1.Branding{Locale: "es", PrimaryColor: "#0a7cff", SupportEmail: "soporte@bench.example"},
		Email:          &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: smtpSecret}, From: "Bench <billing@bench.example>"},
		MerchantAPI:    &billingv1alpha1.MerchantAPI{KeySecretRef: billingv1alpha1.APIKeySecretReference{Name: apiKeySecret, Key: "key"}},
		Exposure:       &billingv1alpha1.Exposure{PublicURL: publicURL},
	}
}

// The Secrets every benchmark portal references, as a real portal does.
const (
	smtpSecret   = "bench-smtp"
	apiKeySecret = "bench-api-key"
)

// CreatePortalSecrets creates the SMTP and merchant API key Secrets in ns. smtpPort may be "" when
// nothing sends mail.
func CreatePortalSecrets(ctx context.Context, c client.Client, ns, smtpPort, apiKey string) error {
	if smtpPort == "" {
		smtpPort = "25"
	}
	for name, data := range map[string]map[string]string{
		smtpSecret:   {"host": "127.0.0.1", "port": smtpPort, "tls": "none"},
		apiKeySecret: {"key": apiKey},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
		if err := c.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Secret %s: %w", name, err)
		}
	}
	return nil
}

// CreatePortal creates a CustomerPortal.
func CreatePortal(ctx context.Context, c client.Client, ns, name, publicURL string) (*billingv1alpha1.CustomerPortal, error) {
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: PortalSpec(publicURL)}
	if err := c.Create(ctx, p); err != nil {
		return nil, fmt.Errorf("create CustomerPortal %s: %w", name, err)
	}
	return p, nil
}

// WaitPortalURL waits until the operator has published the portal's status.url.
func WaitPortalURL(ctx context.Context, c client.Client, ns, name string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		p := &billingv1alpha1.CustomerPortal{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return err
		}
		if p.Status.URL != "" {
			return nil
		}
		sleepUntil(ctx, time.Now().Add(50*time.Millisecond))
	}
	return fmt.Errorf("CustomerPortal %s/%s got no status.url within a minute: is the operator running?", ns, name)
}

// deleteAllAndWait deletes every obj-kind object in ns and waits until the list is empty.
func deleteAllAndWait(ctx context.Context, c client.Client, ns string, obj client.Object, list client.ObjectList, timeout time.Duration) error {
	if err := c.DeleteAllOf(ctx, obj, client.InNamespace(ns)); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := c.List(ctx, list, client.InNamespace(ns), client.Limit(1)); err != nil {
			return err
		}
		if meta.LenList(list) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%T in %s not gone after %s", obj, ns, timeout)
		}
		sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
	}
}
