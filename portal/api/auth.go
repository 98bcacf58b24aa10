package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/rules"
)

// keyCacheTTL is how long a key read from its Secret is trusted: a rotated key takes effect (and
// the old one stops working) within this time, without a restart, while a burst of requests costs
// one Secret read rather than one each.
const keyCacheTTL = 10 * time.Second

// defaultKeySecretKey is the key within the Secret when keySecretRef.key is unset (the CRD
// defaults it; objects that bypassed defaulting get the same value here).
const defaultKeySecretKey = "key"

// authenticate checks the request's bearer key against the portal's merchant API key. The portal
// is read live, so enabling, disabling or re-pointing the API applies to the next request.
func (a *API) authenticate(r *http.Request) *apiError {
	p := a.rules.Portal(r.Context())
	if p == nil {
		return errPortalUnavailable()
	}
	if p.Spec.MerchantAPI == nil {
		return errMerchantAPIDisabled()
	}
	want, err := a.keys.get(r.Context(), secretRef(p))
	if err != nil {
		a.log.Warn("merchant api key unavailable", "secret", p.Spec.MerchantAPI.KeySecretRef.Name, "err", err)
		return errKeyUnavailable()
	}
	got, ok := bearer(r)
	if !ok || !keysEqual(got, want) {
		return errUnauthorized()
	}
	return nil
}

// keysEqual compares in constant time. Hashing first makes the comparison's duration independent
// of the keys' lengths too, which ConstantTimeCompare alone is not.
func keysEqual(got, want []byte) bool {
	if len(want) == 0 {
		return false
	}
	g, w := sha256.Sum256(got), sha256.Sum256(want)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) ([]byte, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	token = strings.TrimSpace(token)
	return []byte(token), token != ""
}

// keyRef names a key within a Secret.
type keyRef struct {
	secret types.NamespacedName
	key    string
}

func secretRef(p *billingv1alpha1.CustomerPortal) keyRef {
	ref := p.Spec.MerchantAPI.KeySecretRef
	key := ref.Key
	if key == "" {
		key = defaultKeySecretKey
	}
	return keyRef{secret: types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}, key: key}
}

// keyCache holds the current API key for a short while.
type keyCache struct {
	rules *rules.Rules
	ttl   time.Duration

	mu      sync.Mutex
	ref     keyRef
	value   []byte
	fetched time.Time
}

func newKeyCache(r *rules.Rules, ttl time.Duration) *keyCache {
	return &keyCache{rules: r, ttl: ttl}
}

// get returns the key, reading the Secret when the cached value is older than ttl or the portal
// now points at another Secret. Readers wait on one fetch instead of each reading the Secret.
func (c *keyCache) get(ctx context.Context, ref keyRef) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ref == ref && c.value != nil && time.Since(c.fetched) < c.ttl {
		return c.value, nil
	}
	data, err := getSecretData(ctx, c.rules.Client, ref.secret)
	if err != nil {
		return nil, err
	}
	v := []byte(strings.TrimSpace(string(data[ref.key])))
	if len(v) == 0 {
		return nil, fmt.Errorf("secret %s has no %q key", ref.secret, ref.key)
	}
	c.ref, c.value, c.fetched = ref, v, time.Now()
	return v, nil
}

// getSecretData reads a Secret straight from the API server. It asks for it as unstructured
// because the rules client serves typed objects from its informer cache, and an informer for
// Secrets would need list and watch on every Secret in the namespace: the portal's Role grants
// only get, on the few Secrets it names.
func getSecretData(ctx context.Context, c client.Reader, key types.NamespacedName) (map[string][]byte, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.Get(ctx, key, u); err != nil {
		return nil, fmt.Errorf("get secret %s: %w", key, err)
	}
	var s corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
		return nil, fmt.Errorf("decode secret %s: %w", key, err)
	}
	return s.Data, nil
}
