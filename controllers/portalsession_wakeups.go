package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// wakeups re-queues a session at one instant of the injected clock (its expiry, or its clean-up),
// so that time-driven transitions happen on time without polling. RequeueAfter alone would measure
// time with the workqueue's real clock; timers on the injected clock also fire the moment a test
// steps a fake clock. Each session has at most one pending wake-up: the next thing due.
type wakeups struct {
	clock clock.WithTicker

	mu     sync.Mutex
	queue  workqueue.TypedRateLimitingInterface[reconcile.Request] // nil until the controller starts
	timers map[types.NamespacedName]*wakeup
}

type wakeup struct {
	at   time.Time
	stop chan struct{}
}

func newWakeups(c clock.WithTicker) *wakeups {
	return &wakeups{clock: c, timers: map[types.NamespacedName]*wakeup{}}
}

// source hands the controller's queue to the wake-ups when the controller starts, and stops every
// timer when it stops (losing leadership, shutdown): the next leader's initial list re-evaluates
// every session, so nothing is lost.
func (w *wakeups) source() source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.mu.Lock()
		w.queue = q
		w.mu.Unlock()
		go func() {
			<-ctx.Done()
			w.stopAll()
		}()
		return nil
	})
}

// schedule makes key reconcile at at. It replaces an earlier wake-up for key; scheduling the same
// instant again keeps the running timer.
func (w *wakeups) schedule(key types.NamespacedName, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.timers[key]; ok {
		if cur.at.Equal(at) {
			return
		}
		close(cur.stop)
		delete(w.timers, key)
	}
	if w.queue == nil {
		return
	}
	d := at.Sub(w.clock.Now())
	if d <= 0 {
		w.queue.Add(reconcile.Request{NamespacedName: key})
		return
	}
	wk := &wakeup{at: at, stop: make(chan struct{})}
	w.timers[key] = wk
	t := w.clock.NewTimer(d)
	go func() {
		select {
		case <-t.C():
			w.fire(key, wk)
		case <-wk.stop:
			t.Stop()
		}
	}()
}

func (w *wakeups) fire(key types.NamespacedName, wk *wakeup) {
	w.mu.Lock()
	if w.timers[key] == wk {
		delete(w.timers, key)
	}
	q := w.queue
	w.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

// cancel drops key's pending wake-up, if any.
func (w *wakeups) cancel(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.timers[key]; ok {
		close(cur.stop)
		delete(w.timers, key)
	}
}

// pending reports key's scheduled instant, for tests.
func (w *wakeups) pending(key types.NamespacedName) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur, ok := w.timers[key]
	if !ok {
		return time.Time{}, false
	}
	return cur.at, true
}

func (w *wakeups) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, cur := range w.timers {
		close(cur.stop)
		delete(w.timers, key)
	}
	w.queue = nil
}
