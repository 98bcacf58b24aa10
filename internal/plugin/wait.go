package plugin

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// errGone is returned by watchSession when the session is deleted while being watched.
var errGone = errors.New("deleted")

// watchSession follows one PortalSession with a watch — a list, then the API server's events,
// re-listing if the watch breaks, as `kubectl wait` does — until done reports true, returns an
// error, or ctx ends (then ctx's error). It returns the session as done last saw it.
func (c *cluster) watchSession(ctx context.Context, name string, done func(*billingv1alpha1.PortalSession) (bool, error)) (*billingv1alpha1.PortalSession, error) {
	byName := fields.OneTermEqualSelector("metadata.name", name)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := &billingv1alpha1.PortalSessionList{}
			err := c.client.List(ctx, list, client.InNamespace(c.namespace), client.MatchingFieldsSelector{Selector: byName}, &client.ListOptions{Raw: &opts})
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return c.client.Watch(ctx, &billingv1alpha1.PortalSessionList{}, client.InNamespace(c.namespace), client.MatchingFieldsSelector{Selector: byName}, &client.ListOptions{Raw: &opts})
		},
	}
	var last *billingv1alpha1.PortalSession
	_, err := watchtools.UntilWithSync(ctx, lw, &billingv1alpha1.PortalSession{}, nil, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, errGone
		case watch.Added, watch.Modified:
			s, ok := ev.Object.(*billingv1alpha1.PortalSession)
			if !ok {
				return false, nil
			}
			last = s
			return done(s)
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, errGone) {
		return last, ctx.Err()
	}
	return last, err
}

// stalled returns the Stalled condition of a session when it is True: the operator refused it
// and only a person can fix that.
func stalled(s *billingv1alpha1.PortalSession) *metav1.Condition {
	if c := meta.FindStatusCondition(s.Status.Conditions, conditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		return c
	}
	return nil
}

// readyMessage is the operator's latest word on why a session is not Active yet.
func readyMessage(s *billingv1alpha1.PortalSession) string {
	if s == nil {
		return "the operator has not reported on it yet (is the Portero operator running?)"
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, conditionReady); c != nil && c.Message != "" {
		return fmt.Sprintf("%s: %s", c.Reason, c.Message)
	}
	return "the operator has not reported on it yet (is the Portero operator running?)"
}

// ended reports whether a session reached a terminal phase.
func ended(s *billingv1alpha1.PortalSession) bool {
	return s.Status.Phase == billingv1alpha1.SessionExpired || s.Status.Phase == billingv1alpha1.SessionRevoked
}
