package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Watch streams the events of one kind in ns (matching sel, nil for all) from now on, calling
// fn with each event and the instant it arrived. It follows the stream across the API server's
// watch timeouts, and stops when ctx ends or stop is called. fn runs on one goroutine.
func (c *Cluster) Watch(ctx context.Context, list client.ObjectList, ns string, sel labels.Selector, fn func(ev watch.Event, at time.Time)) (stop func(), err error) {
	wc, err := client.NewWithWatch(c.Config, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		return nil, err
	}
	opts := func(raw *metav1.ListOptions) *client.ListOptions {
		o := &client.ListOptions{Namespace: ns, Raw: raw}
		if sel != nil {
			o.LabelSelector = sel
		}
		return o
	}
	// A one-item list gives the resource version to start from.
	probe := list.DeepCopyObject().(client.ObjectList)
	if err := wc.List(ctx, probe, opts(&metav1.ListOptions{Limit: 1})); err != nil {
		return nil, fmt.Errorf("list to start watch: %w", err)
	}
	rv := probe.GetResourceVersion()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			w, err := wc.Watch(ctx, list, opts(&metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}))
			if err != nil {
				if ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			for ev := range w.ResultChan() {
				at := time.Now()
				if ev.Type == watch.Error {
					if err := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
						// Not expected within a benchmark's minutes. Events are lost: the
						// benchmark waiting for them times out and says how many it saw.
						fmt.Fprintf(os.Stderr, "bench: watch fell behind (%v); restarting from now\n", err)
						if err := wc.List(ctx, probe, opts(&metav1.ListOptions{Limit: 1})); err == nil {
							rv = probe.GetResourceVersion()
						}
						break
					}
					continue
				}
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
				}
				if ev.Type == watch.Bookmark {
					continue
				}
				fn(ev, at)
			}
			w.Stop()
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// firstSeen records the first instant a watch saw each name satisfy a condition.
type firstSeen struct {
	mu   sync.Mutex
	seen map[string]time.Time
	want int
	all  chan struct{} // closed once want names were seen
}

func newFirstSeen(want int) *firstSeen {
	return &firstSeen{seen: map[string]time.Time{}, want: want, all: make(chan struct{})}
}

// mark records name at at unless already seen.
func (f *firstSeen) mark(name string, at time.Time) (first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.seen[name]; ok {
		return false
	}
	f.seen[name] = at
	if len(f.seen) == f.want {
		close(f.all)
	}
	return true
}

func (f *firstSeen) get(name string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.seen[name]
	return t, ok
}

func (f *firstSeen) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// wait blocks until every wanted name was seen, ctx ends or timeout passes.
func (f *firstSeen) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-f.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("saw %d of %d within %s", f.count(), f.want, timeout)
	}
}

// last is the latest instant recorded.
func (f *firstSeen) last() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t time.Time
	for _, at := range f.seen {
		if at.After(t) {
			t = at
		}
	}
	return t
}
