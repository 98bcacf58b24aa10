package controllers

import (
	"container/heap"
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
// time with the workqueue's real clock; a timer on the injected clock also fires the moment a test
// steps a fake clock. Each session has at most one pending wake-up: the next thing due.
//
// All wake-ups share one min-heap and one timer for the earliest, driven by one goroutine: 50,000
// live sessions cost 50,000 small heap entries, not 50,000 goroutines and timers (which took
// ≈116 MB of stacks in the benchmark).
type wakeups struct {
	clock clock.WithTicker

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request] // nil while the controller is not running
	byKey map[types.NamespacedName]*wakeup
	heap  wakeupHeap
	// kick tells the loop that the earliest wake-up may have changed.
	kick chan struct{}
}

type wakeup struct {
	key   types.NamespacedName
	at    time.Time
	index int // in heap
}

func newWakeups(c clock.WithTicker) *wakeups {
	return &wakeups{clock: c, byKey: map[types.NamespacedName]*wakeup{}, kick: make(chan struct{}, 1)}
}

// source hands the controller's queue to the wake-ups when the controller starts and runs the
// timer loop until it stops (losing leadership, shutdown), when every wake-up is dropped: the next
// leader's initial list re-evaluates every session, so nothing is lost.
func (w *wakeups) source() source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.mu.Lock()
		w.queue = q
		w.mu.Unlock()
		go w.run(ctx)
		return nil
	})
}

// run waits for the earliest wake-up on the injected clock and queues every key that is due.
func (w *wakeups) run(ctx context.Context) {
	defer w.stopAll()
	for {
		due, next, ok := w.popDue()
		for _, key := range due {
			w.add(key)
		}
		var fire <-chan time.Time
		var t clock.Timer
		if ok {
			t = w.clock.NewTimer(next.Sub(w.clock.Now()))
			fire = t.C()
			// A fake clock stepped while the timer was being made would not fire it: look again.
			if !w.clock.Now().Before(next) {
				t.Stop()
				continue
			}
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-w.kick:
		case <-fire:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// popDue removes and returns the keys due now, and the instant of the next one (ok false: none).
func (w *wakeups) popDue() (due []types.NamespacedName, next time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	for len(w.heap) > 0 {
		first := w.heap[0]
		if first.at.After(now) {
			return due, first.at, true
		}
		heap.Pop(&w.heap)
		delete(w.byKey, first.key)
		due = append(due, first.key)
	}
	return due, time.Time{}, false
}

func (w *wakeups) add(key types.NamespacedName) {
	w.mu.Lock()
	q := w.queue
	w.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

// schedule makes key reconcile at at, replacing an earlier wake-up for key. An instant already
// past queues key at once.
func (w *wakeups) schedule(key types.NamespacedName, at time.Time) {
	w.mu.Lock()
	if w.queue == nil {
		w.mu.Unlock()
		return
	}
	if !at.After(w.clock.Now()) {
		w.removeLocked(key)
		q := w.queue
		w.mu.Unlock()
		q.Add(reconcile.Request{NamespacedName: key})
		return
	}
	if cur, ok := w.byKey[key]; ok {
		if cur.at.Equal(at) {
			w.mu.Unlock()
			return
		}
		cur.at = at
		heap.Fix(&w.heap, cur.index)
	} else {
		wk := &wakeup{key: key, at: at}
		heap.Push(&w.heap, wk)
		w.byKey[key] = wk
	}
	earliest := w.heap[0].key == key
	w.mu.Unlock()
	if earliest {
		w.nudge()
	}
}

// nudge wakes the loop without blocking; one pending nudge is enough.
func (w *wakeups) nudge() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// cancel drops key's pending wake-up, if any.
func (w *wakeups) cancel(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(key)
}

func (w *wakeups) removeLocked(key types.NamespacedName) {
	if cur, ok := w.byKey[key]; ok {
		heap.Remove(&w.heap, cur.index)
		delete(w.byKey, key)
	}
}

// pending reports key's scheduled instant, for tests.
func (w *wakeups) pending(key types.NamespacedName) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur, ok := w.byKey[key]
	if !ok {
		return time.Time{}, false
	}
	return cur.at, true
}

func (w *wakeups) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byKey = map[types.NamespacedName]*wakeup{}
	w.heap = nil
	w.queue = nil
}

// wakeupHeap orders wake-ups by instant (container/heap).
type wakeupHeap []*wakeup

func (h wakeupHeap) Len() int           { return len(h) }
func (h wakeupHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeupHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *wakeupHeap) Push(x any) {
	wk := x.(*wakeup)
	wk.index = len(*h)
	*h = append(*h, wk)
}
func (h *wakeupHeap) Pop() any {
	old := *h
	wk := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return wk
}
