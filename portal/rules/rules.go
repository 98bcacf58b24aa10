// Package rules keeps the portal's own CustomerPortal and its PortalSessions in memory through
// informers, so every request sees the rules as they are now: a `kubectl patch` applies to the next
// request, with no restart and no rollout.
package rules

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/scheme"
)

// indexTokenHash finds a session by the SHA-256 of its link token.
const indexTokenHash = "status.tokenHash"

// Rules is the live view of one portal's configuration and sessions, plus a client for the writes
// the portal makes (PortalSessions) and the Secrets it may read (always read from the API server).
type Rules struct {
	Key    types.NamespacedName
	cache  cache.Cache
	Client client.Client
}

// Start builds informers restricted to the one CustomerPortal (by name) and its PortalSessions (by
// the CRD's selectable field spec.portalRef.name), so the portal's Role need not read anything else.
func Start(ctx context.Context, cfg *rest.Config, key types.NamespacedName) (*Rules, error) {
	s := scheme.New()
	// Reads hand out the informer's own objects (a shallow copy of the struct, sharing its maps,
	// slices and pointers) instead of a deep copy: the portal reads its CustomerPortal and the
	// signed-in visitor's PortalSession on every request, and deep-copying them was most of what
	// those reads cost. Nothing in the portal modifies what it reads; see Portal.
	shared := ptr.To(true)
	c, err := cache.New(cfg, cache.Options{
		Scheme:            s,
		DefaultNamespaces: map[string]cache.Config{key.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&billingv1alpha1.CustomerPortal{}: {Field: fields.OneTermEqualSelector("metadata.name", key.Name), UnsafeDisableDeepCopy: shared},
			&billingv1alpha1.PortalSession{}:  {Field: fields.OneTermEqualSelector("spec.portalRef.name", key.Name), UnsafeDisableDeepCopy: shared},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rules cache: %w", err)
	}
	if err := c.IndexField(ctx, &billingv1alpha1.PortalSession{}, indexTokenHash, func(o client.Object) []string {
		if h := o.(*billingv1alpha1.PortalSession).Status.TokenHash; h != "" {
			return []string{h}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("index sessions by token hash: %w", err)
	}
	// Informers start now, not on first use: the first request must not wait for a list.
	for _, o := range []client.Object{&billingv1alpha1.CustomerPortal{}, &billingv1alpha1.PortalSession{}} {
		if _, err := c.GetInformer(ctx, o); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", o, err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		return nil, fmt.Errorf("rules cache did not sync: can the portal's ServiceAccount read CustomerPortal %s?", key)
	}
	// Secrets are never cached: the portal's Role allows get on named Secrets only (no list or
	// watch), so a cached read would start an informer that can never sync.
	cl, err := client.New(cfg, client.Options{Scheme: s, Cache: &client.CacheOptions{Reader: c, DisableFor: []client.Object{&corev1.Secret{}}}})
	if err != nil {
		return nil, err
	}
	return &Rules{Key: key, cache: c, Client: cl}, nil
}

// Portal returns the CustomerPortal as it is now, or nil if it is gone. It shares its maps, slices
// and pointers with the informer's cache: callers must not modify it, nor pass it to anything
// that writes into an object (a client's Update or Patch decodes the answer into it); DeepCopy
// it first. The same holds for the sessions below and for what Client reads of either kind.
func (r *Rules) Portal(ctx context.Context) *billingv1alpha1.CustomerPortal {
	p := &billingv1alpha1.CustomerPortal{}
	if err := r.cache.Get(ctx, r.Key, p); err != nil {
		return nil
	}
	return p
}

// Session returns the named PortalSession of this portal, or nil. Callers must not modify it
// (see Portal).
func (r *Rules) Session(ctx context.Context, name string) *billingv1alpha1.PortalSession {
	s := &billingv1alpha1.PortalSession{}
	if err := r.cache.Get(ctx, types.NamespacedName{Namespace: r.Key.Namespace, Name: name}, s); err != nil {
		return nil
	}
	if s.Spec.PortalRef.Name != r.Key.Name {
		return nil
	}
	return s
}

// SessionByTokenHash returns the session whose status.tokenHash equals hash (hex SHA-256), comparing
// in constant time, or nil. It does not judge whether the session is usable: see Usable. Callers
// must not modify it (see Portal).
func (r *Rules) SessionByTokenHash(ctx context.Context, hash string) *billingv1alpha1.PortalSession {
	list := &billingv1alpha1.PortalSessionList{}
	if err := r.cache.List(ctx, list, client.InNamespace(r.Key.Namespace), client.MatchingFields{indexTokenHash: hash}); err != nil {
		return nil
	}
	for i := range list.Items {
		s := &list.Items[i]
		if subtle.ConstantTimeCompare([]byte(s.Status.TokenHash), []byte(hash)) == 1 && s.Spec.PortalRef.Name == r.Key.Name {
			return s
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
