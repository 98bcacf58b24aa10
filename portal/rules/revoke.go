package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// ReasonSignedOut is the revocationReason of a link whose customer signed out of the browser
// session it opened.
const ReasonSignedOut = "customer signed out"

// ErrSessionGone means the PortalSession to revoke no longer exists: it was deleted, perhaps
// made again under the same name (a link that ended either way).
var ErrSessionGone = errors.New("portal session gone")

// RevokeSession ends the PortalSession s: spec.revoked: true with spec.revocationReason (none if
// reason is ""), which the operator turns into phase Revoked. It returns the session as the API
// server has it now. A session already revoked, by anyone and for any reason, is not written
// again: revoking is done, and revocationReason is immutable once set.
//
// From its return on, this portal's view shows the session revoked, so its links and browser
// sessions end here at once rather than when the informer catches up (a customer who signs out
// and goes back in the browser's history must not find the link still open).
func (r *Rules) RevokeSession(ctx context.Context, s *billingv1alpha1.PortalSession, reason string) (*billingv1alpha1.PortalSession, error) {
	if s.Spec.Revoked {
		r.noteRevoked(s)
		return s.DeepCopy(), nil
	}
	spec := map[string]any{"revoked": true}
	if reason != "" {
		spec["revocationReason"] = reason
	}
	// The UID pins the patch to the session the caller checked, not one made under the same
	// name in between (perhaps of another portal): a patch cannot change an object's UID, so
	// the API server refuses it.
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": s.UID}, "spec": spec})
	if err != nil {
		return nil, fmt.Errorf("revoke PortalSession %s: %w", s.Name, err)
	}
	out := s.DeepCopy() // the caller's object may be the informer's, which must not be written into
	err = r.Client.Patch(ctx, out, client.RawPatch(types.MergePatchType, body))
	switch {
	case err == nil:
	case apierrors.IsNotFound(err) || uidChanged(err):
		return nil, fmt.Errorf("revoke PortalSession %s: %w", s.Name, ErrSessionGone)
	case apierrors.IsInvalid(err):
		// Revoked meanwhile by someone else with a reason of their own, which ours may not
		// replace: the session is revoked, as asked. Anything else is the caller's to see.
		cur, gerr := r.readSession(ctx, s.Namespace, s.Name)
		if gerr != nil || cur.UID != s.UID || !cur.Spec.Revoked {
			return nil, fmt.Errorf("revoke PortalSession %s: %w", s.Name, err)
		}
		out = cur
	default:
		return nil, fmt.Errorf("revoke PortalSession %s: %w", s.Name, err)
	}
	r.noteRevoked(out)
	return out, nil
}

// readSession reads a PortalSession from the API server. Unstructured, because the client
// serves typed PortalSessions from the informer.
func (r *Rules) readSession(ctx context.Context, namespace, name string) (*billingv1alpha1.PortalSession, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(billingv1alpha1.GroupVersion.WithKind("PortalSession"))
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, u); err != nil {
		return nil, fmt.Errorf("get PortalSession %s: %w", name, err)
	}
	s := &billingv1alpha1.PortalSession{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		return nil, fmt.Errorf("decode PortalSession %s: %w", name, err)
	}
	return s, nil
}

// uidChanged reports whether a patch carrying metadata.uid failed because the object now has
// another UID (it was deleted and made again).
func uidChanged(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

// noteRevoked makes the view show s (by UID) revoked until the informer does: events older
// than the revocation may still be on their way, and must not bring the link back.
func (r *Rules) noteRevoked(s *billingv1alpha1.PortalSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.sessions[s.Name]
	if cur != nil && cur.UID == s.UID && cur.Spec.Revoked {
		return // the informer is there already
	}
	r.revoked[s.UID] = s.Spec.RevocationReason
	if cur != nil && cur.UID == s.UID {
		r.sessions[s.Name] = revokedCopy(cur, s.Spec.RevocationReason)
	}
}

// revokedCopy is s as revoked, without writing into s (an informer's object).
func revokedCopy(s *billingv1alpha1.PortalSession, reason string) *billingv1alpha1.PortalSession {
	c := *s
	c.Spec.Revoked, c.Spec.RevocationReason = true, reason
	return &c
}
