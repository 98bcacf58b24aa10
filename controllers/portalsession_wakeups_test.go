package controllers

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// startWakeups runs w's loop against a fresh queue until the test ends.
func startWakeups(t *testing.T, w *wakeups) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	t.Helper()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); q.ShutDown() })
	if err := w.source().Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	return q
}

// next takes the next queued key, failing after a deadline.
func next(t *testing.T, q workqueue.TypedRateLimitingInterface[reconcile.Request]) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		r, shutdown := q.Get()
		if shutdown {
			return
		}
		q.Done(r)
		got <- r.Name
	}()
	select {
	case n := <-got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up queued within 10s")
		return ""
	}
}

func TestWakeupsFireInOrderOnTheInjectedClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	w := newWakeups(clk)
	q := startWakeups(t, w)
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }

	w.schedule(key("c"), start.Add(3*time.Hour))
	w.schedule(key("a"), start.Add(time.Hour))
	w.schedule(key("b"), start.Add(2*time.Hour))
	w.schedule(key("gone"), start.Add(90*time.Minute))
	w.cancel(key("gone"))
	// Rescheduling moves a wake-up; the old instant no longer fires.
	w.schedule(key("moved"), start.Add(10*time.Minute))
	w.schedule(key("moved"), start.Add(150*time.Minute))

	if at, ok := w.pending(key("a")); !ok || !at.Equal(start.Add(time.Hour)) {
		t.Fatalf("pending(a) = %v, %v", at, ok)
	}
	if _, ok := w.pending(key("gone")); ok {
		t.Fatal("a cancelled wake-up is still pending")
	}

	for _, step := range []struct {
		to   time.Duration
		want []string
	}{
		{time.Hour, []string{"a"}},
		{2 * time.Hour, []string{"b"}},
		{4 * time.Hour, []string{"moved", "c"}},
	} {
		clk.SetTime(start.Add(step.to))
		for _, want := range step.want {
			if got := next(t, q); got != want {
				t.Fatalf("at +%s: queued %q, want %q", step.to, got, want)
			}
		}
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("%d more keys queued than scheduled", n)
	}
	if _, ok := w.pending(key("c")); ok {
		t.Fatal("a fired wake-up is still pending")
	}

	// An instant already past queues at once.
	w.schedule(key("late"), start)
	if got := next(t, q); got != "late" {
		t.Fatalf("queued %q, want late", got)
	}
}

// TestWakeupsCostNoGoroutinePerSession guards the reason the heap exists: 10,000 pending wake-ups
// must not mean 10,000 goroutines.
func TestWakeupsCostNoGoroutinePerSession(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	w := newWakeups(clk)
	startWakeups(t, w)
	before := runtime.NumGoroutine()
	for i := range 10000 {
		w.schedule(types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)}, clk.Now().Add(time.Duration(i+1)*time.Second))
	}
	if after := runtime.NumGoroutine(); after > before+10 {
		t.Fatalf("goroutines: %d before scheduling 10,000 wake-ups, %d after", before, after)
	}
}
