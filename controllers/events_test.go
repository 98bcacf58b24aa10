package controllers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/scheme"
)

// testEventWriter is an EventWriter on a fake client whose Create answers with create's errors.
func testEventWriter(t *testing.T, queue int, create func(attempt int) error) (*EventWriter, client.Client) {
	t.Helper()
	var attempts atomic.Int32
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := create(int(attempts.Add(1))); err != nil {
				return err
			}
			return cl.Create(ctx, obj, opts...)
		},
	}).Build()
	old := eventBackoff
	eventBackoff = wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 5}
	t.Cleanup(func() { eventBackoff = old })
	return &EventWriter{client: c, scheme: scheme.New(), controller: "test-controller", instance: "test-controller-host",
		clock: clock.RealClock{}, log: logr.Discard(), queue: make(chan *eventsv1.Event, queue), workers: 2}, c
}

func runWriter(t *testing.T, w *EventWriter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitEvents(t *testing.T, c client.Client, n int) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.List(context.Background(), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) >= n || time.Now().After(deadline) {
			return list.Items
		}
		time.Sleep(5 * time.Millisecond) // polling a fake client; no timing is asserted
	}
}

func testSession() *billingv1alpha1.PortalSession {
	return &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s1", UID: "u1"}}
}

// An Event is written once with what events.k8s.io asks of it, after the API server's transient
// refusals; an Event it rejects is not retried.
func TestEventWriterWritesOnceAndRetriesOnlyTransientErrors(t *testing.T) {
	unavailable := apierrors.NewServiceUnavailable("busy")
	w, c := testEventWriter(t, 8, func(attempt int) error {
		if attempt <= 2 {
			return unavailable
		}
		return nil
	})
	runWriter(t, w)
	w.Eventf(testSession(), nil, corev1.EventTypeNormal, "Expired", "Reconcile", "expired at %s", "noon")
	evs := waitEvents(t, c, 1)
	if len(evs) != 1 {
		t.Fatalf("%d Events written, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Namespace != "shop" || ev.Regarding.Name != "s1" || ev.Regarding.Kind != "PortalSession" || ev.Reason != "Expired" ||
		ev.Action != "Reconcile" || ev.Note != "expired at noon" || ev.Type != corev1.EventTypeNormal ||
		ev.ReportingController != "test-controller" || ev.ReportingInstance == "" || ev.EventTime.IsZero() {
		t.Errorf("Event = %+v", ev)
	}

	if !retriable(unavailable) || !retriable(errors.New("connection refused")) {
		t.Error("a busy or unreachable API server should be retried")
	}
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "events.k8s.io", Kind: "Event"}, "x", nil)
	if retriable(invalid) || retriable(context.Canceled) {
		t.Error("a rejected Event or a cancelled writer should not be retried")
	}
}

// Eventf never blocks: with the queue full, the Event is dropped and counted.
func TestEventWriterDropsWhenQueueFull(t *testing.T) {
	w, _ := testEventWriter(t, 1, func(int) error { return nil })
	before := testutil.ToFloat64(eventsDropped.WithLabelValues("test-controller"))
	done := make(chan struct{})
	go func() {
		for range 3 { // no workers: the first fills the queue
			w.Eventf(testSession(), nil, corev1.EventTypeNormal, "Expired", "Reconcile", "x")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Eventf blocked on a full queue")
	}
	if got := testutil.ToFloat64(eventsDropped.WithLabelValues("test-controller")) - before; got != 2 {
		t.Errorf("dropped %v Events, want 2", got)
	}
}
