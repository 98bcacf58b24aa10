// Package rules keeps the portal's own CustomerPortal and its PortalSessions in memory through
// informers, so every request sees the rules as they are now: a `kubectl patch` applies to the next
// request, with no restart and no rollout.
package rules

import (
	"context"
	"crypto/subtle"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/scheme"
)

// Rules is the live view of one portal's configuration and sessions, plus a client for the writes
// the portal makes (PortalSessions) and the Secrets it may read (always read from the API server).
type Rules struct {
	Key    types.NamespacedName
	cache  cache.Cache
	Client client.Client
	// The lookups made on every request read these, kept by event handlers on the informers
	// (which run right after the informer's store is updated) and holding the informers' own
	// objects: a read through the cache costs a REST mapping (to learn the kind is namespaced),
	// a per-namespace dispatch and a deep copy, ~5% of the portal's CPU under load.
	portal   atomic.Pointer[billingv1alpha1.CustomerPortal]
	mu       sync.RWMutex
	sessions map[string]*billingv1alpha1.PortalSession // by name
	byHash   map[string]map[string]struct{}            // status.tokenHash → names
	// revoked holds the sessions this portal revoked (by UID, with the reason) whose
	// revocation the informer has not delivered yet (see RevokeSession).
	revoked map[types.UID]string
	// seen is closed (and dropped) under mu when a session with a token hash is added or
	// updated, waking AwaitSessionByTokenHash; nil while nobody waits, so the informer's
	// handler allocates nothing then.
	seen chan struct{}
	// waiters counts the AwaitSessionByTokenHash calls parked now; beyond maxWaiters a call
	// answers at once.
	waiters    atomic.Int32
	maxWaiters int32
}

const (
	// TokenWait is how long a link's lookup may wait for the session view to learn its token:
	// the operator creates the link Secret before it writes the session's status, and this
	// informer lags the API server anyway, so a merchant that sends the customer on as soon as
	// the Secret exists can be a few milliseconds ahead of the view.
	TokenWait = 2 * time.Second
	// MaxTokenWaiters bounds the lookups parked at once, so made-up tokens cannot pile up
	// goroutines: beyond it an unknown token is answered at once.
	MaxTokenWaiters = 256
)

// newRules is an empty view of the portal key.
func newRules(key types.NamespacedName) *Rules {
	return &Rules{Key: key, sessions: map[string]*billingv1alpha1.PortalSession{}, byHash: map[string]map[string]struct{}{},
		revoked: map[types.UID]string{}, maxWaiters: MaxTokenWaiters}
}

// Start builds informers restricted to the one CustomerPortal (by name) and its PortalSessions (by
// the CRD's selectable field spec.portalRef.name), so the portal's Role need not read anything else.
func Start(ctx context.Context, cfg *rest.Config, key types.NamespacedName) (*Rules, error) {
	s := scheme.New()
	c, err := cache.New(cfg, cache.Options{
		Scheme:            s,
		DefaultNamespaces: map[string]cache.Config{key.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&billingv1alpha1.CustomerPortal{}: {Field: fields.OneTermEqualSelector("metadata.name", key.Name)},
			&billingv1alpha1.PortalSession{}:  {Field: fields.OneTermEqualSelector("spec.portalRef.name", key.Name)},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rules cache: %w", err)
	}
	r := newRules(key)
	r.cache = c
	// Informers start now, not on first use: the first request must not wait for a list.
	var regs []toolscache.ResourceEventHandlerRegistration
	for _, h := range []struct {
		o client.Object
		h toolscache.ResourceEventHandler
	}{
		{&billingv1alpha1.CustomerPortal{}, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.setPortal(o, false) },
			UpdateFunc: func(_, o any) { r.setPortal(o, false) },
			DeleteFunc: func(o any) { r.setPortal(o, true) },
		}},
		{&billingv1alpha1.PortalSession{}, toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.setSession(o, false) },
			UpdateFunc: func(_, o any) { r.setSession(o, false) },
			DeleteFunc: func(o any) { r.setSession(o, true) },
		}},
	} {
		inf, err := c.GetInformer(ctx, h.o)
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", h.o, err)
		}
		reg, err := inf.AddEventHandler(h.h)
		if err != nil {
			return nil, fmt.Errorf("watch %T: %w", h.o, err)
		}
		regs = append(regs, reg)
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		return nil, fmt.Errorf("rules cache did not sync: can the portal's ServiceAccount read CustomerPortal %s?", key)
	}
	// ...and until the handlers have seen what the informers listed.
	for _, reg := range regs {
		for !reg.HasSynced() {
			select {
			case <-syncCtx.Done():
				return nil, fmt.Errorf("rules cache did not sync: %w", syncCtx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	// Secrets are never cached: the portal's Role allows get on named Secrets only (no list or
	// watch), so a cached read would start an informer that can never sync.
	cl, err := client.New(cfg, client.Options{Scheme: s, Cache: &client.CacheOptions{Reader: c, DisableFor: []client.Object{&corev1.Secret{}}}})
	if err != nil {
		return nil, err
	}
	r.Client = cl
	return r, nil
}

// object unwraps a deleted object's tombstone.
func object(o any) any {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return o
}

func (r *Rules) setPortal(o any, deleted bool) {
	p, ok := object(o).(*billingv1alpha1.CustomerPortal)
	if !ok || p.Namespace != r.Key.Namespace || p.Name != r.Key.Name {
		return
	}
	if deleted {
		r.portal.Store(nil)
		return
	}
	r.portal.Store(p)
}

func (r *Rules) setSession(o any, deleted bool) {
	s, ok := object(o).(*billingv1alpha1.PortalSession)
	if !ok || s.Namespace != r.Key.Namespace {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.sessions[s.Name]; old != nil {
		if names := r.byHash[old.Status.TokenHash]; names != nil {
			delete(names, s.Name)
			if len(names) == 0 {
				delete(r.byHash, old.Status.TokenHash)
			}
		}
		delete(r.sessions, s.Name)
	}
	if deleted {
		delete(r.revoked, s.UID)
		return
	}
	if reason, ok := r.revoked[s.UID]; ok {
		if s.Spec.Revoked {
			delete(r.revoked, s.UID)
		} else {
			s = revokedCopy(s, reason)
		}
	}
	r.sessions[s.Name] = s
	if h := s.Status.TokenHash; h != "" {
		if r.byHash[h] == nil {
			r.byHash[h] = map[string]struct{}{}
		}
		r.byHash[h][s.Name] = struct{}{}
		if r.seen != nil {
			close(r.seen)
			r.seen = nil
		}
	}
}

// Portal returns the CustomerPortal as it is now, or nil if it is gone. It is a shallow copy of
// the informer's object, sharing its maps, slices and pointers: callers must not modify it, nor
// pass it to anything that writes into an object (a client's Update or Patch decodes the answer
// into it); DeepCopy it first. The same holds for the sessions below.
func (r *Rules) Portal(context.Context) *billingv1alpha1.CustomerPortal {
	p := r.portal.Load()
	if p == nil {
		return nil
	}
	c := *p // a shallow copy, as the cache's reads return
	return &c
}

// Session returns the named PortalSession of this portal, or nil. Callers must not modify it
// (see Portal).
func (r *Rules) Session(_ context.Context, name string) *billingv1alpha1.PortalSession {
	r.mu.RLock()
	s := r.sessions[name]
	r.mu.RUnlock()
	if s == nil || s.Spec.PortalRef.Name != r.Key.Name {
		return nil
	}
	c := *s
	return &c
}

// SessionByTokenHash returns the session whose status.tokenHash equals hash (hex SHA-256), comparing
// in constant time, or nil. It does not judge whether the session is usable: see Usable. Callers
// must not modify it (see Portal).
func (r *Rules) SessionByTokenHash(_ context.Context, hash string) *billingv1alpha1.PortalSession {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byHashLocked(hash)
}

// AwaitSessionByTokenHash is SessionByTokenHash for a token someone is presenting now: if no
// session has that hash yet, it waits until one is seen, wait passes or ctx ends, and then
// answers nil. The view learns a session's hash from the informer, which lags the API server
// (and the operator publishes the link before it writes the hash), so a link followed at once
// would otherwise be "unknown" for a few milliseconds. The wait is woken by the informer's
// events, holds no lock while parked, and at most MaxTokenWaiters calls wait at once; the others
// answer at once.
func (r *Rules) AwaitSessionByTokenHash(ctx context.Context, hash string, wait time.Duration) *billingv1alpha1.PortalSession {
	if s := r.SessionByTokenHash(ctx, hash); s != nil || wait <= 0 {
		return s
	}
	if r.waiters.Add(1) > r.maxWaiters {
		r.waiters.Add(-1)
		return nil
	}
	defer r.waiters.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		// Looking and taking the channel under the lock setSession closes it under: an event
		// after the look closes the channel this call is about to wait on, so none is missed.
		r.mu.RLock()
		s, seen := r.byHashLocked(hash), r.seen
		r.mu.RUnlock()
		if s == nil && seen == nil {
			r.mu.Lock()
			if s = r.byHashLocked(hash); s == nil {
				if r.seen == nil {
					r.seen = make(chan struct{})
				}
				seen = r.seen
			}
			r.mu.Unlock()
		}
		if s != nil {
			return s
		}
		select {
		case <-seen:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// byHashLocked is SessionByTokenHash with r.mu held.
func (r *Rules) byHashLocked(hash string) *billingv1alpha1.PortalSession {
	for name := range r.byHash[hash] {
		s := r.sessions[name]
		if s != nil && subtle.ConstantTimeCompare([]byte(s.Status.TokenHash), []byte(hash)) == 1 && s.Spec.PortalRef.Name == r.Key.Name {
			c := *s
			return &c
		}
	}
	return nil
}

// Usable reports whether a session still opens the portal at now: Active, not revoked, not past
// expiresAt. The controller expires sessions too; the portal checks anyway, at the point of use.
func Usable(s *billingv1alpha1.PortalSession, now time.Time) bool {
	return s != nil && !s.Spec.Revoked && s.DeletionTimestamp.IsZero() &&
		s.Status.Phase == billingv1alpha1.SessionActive &&
		s.Status.ExpiresAt != nil && now.Before(s.Status.ExpiresAt.Time)
}
