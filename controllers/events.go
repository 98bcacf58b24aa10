package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	recordutil "k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// EventWriter is an events.EventRecorder that writes each events.k8s.io Event to the API server
// once, from a bounded queue drained by a fixed number of workers.
//
// The session controller uses it instead of mgr.GetEventRecorder: client-go's events
// broadcaster keeps a copy of every Event it wrote for six to twelve minutes, to fold repeats of
// one into a series, and writes each from a goroutine of its own. When 10,000 sessions expired at
// once that was 20 MB of Events (and as many goroutines) in the manager, whose garbage collector
// then took most of its CPU (expiry benchmark, heap and CPU profiles). A session records an Event
// per transition of its own and never repeats one, so there is nothing to fold.
//
// Eventf never blocks a reconcile: when the queue is full — the API server unreachable for long —
// the Event is dropped, logged and counted in portero_events_dropped_total, as client-go drops
// Events when its own queue is full.
type EventWriter struct {
	client     client.Client
	scheme     *runtime.Scheme
	controller string
	instance   string
	clock      clock.PassiveClock
	log        logr.Logger
	queue      chan *eventsv1.Event
	workers    int
}

var _ events.EventRecorder = (*EventWriter)(nil)

// eventQueueLen leaves room for a burst of Events from every reconciler at once.
const eventQueueLen = 4096

var eventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "portero_events_dropped_total",
	Help: "Kubernetes Events not written because the queue of Events to write was full.",
}, []string{"controller"})

func init() { metrics.Registry.MustRegister(eventsDropped) }

// NewEventWriter returns a writer of controller's Events, added to mgr, which starts its workers:
// as many as the controller's reconcilers, so that Events keep up with them.
func NewEventWriter(mgr manager.Manager, controller string, workers int) (*EventWriter, error) {
	host, _ := os.Hostname()
	w := &EventWriter{
		client: mgr.GetClient(), scheme: mgr.GetScheme(), controller: controller,
		instance: controller + "-" + host, clock: clock.RealClock{},
		log:   mgr.GetLogger().WithName("events").WithValues("controller", controller),
		queue: make(chan *eventsv1.Event, eventQueueLen), workers: workers,
	}
	return w, mgr.Add(w)
}

// Eventf queues an Event about regarding (and related, which may be nil), as events.EventRecorder.
func (w *EventWriter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(w.scheme, regarding)
	if err != nil {
		w.log.Error(err, "no reference to the object; Event not recorded", "reason", reason)
		return
	}
	if !recordutil.ValidateEventType(eventtype) {
		w.log.Error(nil, "unsupported Event type; Event not recorded", "type", eventtype, "reason", reason)
		return
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		relatedRef, _ = reference.GetReference(w.scheme, related)
	}
	now := w.clock.Now()
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: recordutil.GenerateEventName(ref.Name, now.UnixNano()), Namespace: ns},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: w.controller, ReportingInstance: w.instance,
		Action: action, Reason: reason, Type: eventtype,
		Regarding: *ref, Related: relatedRef,
		Note: fmt.Sprintf(note, args...),
	}
	w.log.V(1).Info(ev.Note, "type", eventtype, "reason", reason, "object", ref.Namespace+"/"+ref.Name)
	select {
	case w.queue <- ev:
	default:
		eventsDropped.WithLabelValues(w.controller).Inc()
		w.log.Error(nil, "too many Events waiting to be written; Event dropped", "reason", reason, "object", ref.Namespace+"/"+ref.Name)
	}
}

// Start writes queued Events until ctx ends (manager.Runnable).
func (w *EventWriter) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range w.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-w.queue:
					w.write(ctx, ev)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection is false: the writer only writes what the controllers give it, and whatever
// they queued before losing the lease is still worth writing.
func (w *EventWriter) NeedLeaderElection() bool { return false }

// eventBackoff retries a write the API server could not take (≈ 8 s in all), as client-go does
// for its Events.
var eventBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.25, Steps: 5}

func (w *EventWriter) write(ctx context.Context, ev *eventsv1.Event) {
	err := retry.OnError(eventBackoff, retriable, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return w.client.Create(ctx, ev)
	})
	if err != nil && ctx.Err() == nil && !apierrors.IsAlreadyExists(err) {
		w.log.Error(err, "Event not written", "reason", ev.Reason, "object", ev.Regarding.Namespace+"/"+ev.Regarding.Name)
	}
}

// retriable tells errors worth another try (the API server busy or unreachable) from an Event it
// refused, which would be refused again.
func retriable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err)
}
