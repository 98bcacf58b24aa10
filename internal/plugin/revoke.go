package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// maxReasonLength is the CRD's limit on spec.revocationReason.
const maxReasonLength = 256

type revokeOptions struct {
	*Options
	reason string
	wait   time.Duration
}

func newRevokeCommand(o *Options) *cobra.Command {
	ro := &revokeOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "End a PortalSession's link at once",
		Long: `revoke sets spec.revoked: true on the PortalSession NAME (and spec.revocationReason with
--reason): the portal refuses the link from that moment, and the operator deletes the link Secret
and records phase Revoked. A revoked session cannot be restored; share again for a new link.`,
		Example: `  kubectl portero revoke acme-x7k2p
  kubectl portero revoke acme-x7k2p --reason "sent to the wrong address"`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("revoke needs exactly one NAME: the PortalSession (kubectl portero sessions lists them)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return ro.run(cmd.Context(), args[0]) },
	}
	cmd.Flags().StringVar(&ro.reason, "reason", "", "why, for the merchant to read later (spec.revocationReason; cannot be changed once set)")
	cmd.Flags().DurationVar(&ro.wait, "wait", 30*time.Second, "how long to wait for the operator to record the revocation (0: do not wait)")
	return cmd
}

func (ro *revokeOptions) run(ctx context.Context, name string) error {
	ro.reason = strings.TrimSpace(ro.reason)
	if n := utf8.RuneCountInString(ro.reason); n > maxReasonLength {
		return fmt.Errorf("--reason is %d characters long; at most %d fit in spec.revocationReason", n, maxReasonLength)
	}
	if ro.wait < 0 {
		return fmt.Errorf("--wait %s is negative", ro.wait)
	}
	c, err := ro.connect()
	if err != nil {
		return err
	}
	var s *billingv1alpha1.PortalSession
	wrote := false
	// Each attempt patches the copy it just read (its UID and resourceVersion travel in the
	// patch): a session changed in between — the operator writes its status often — is read
	// again rather than overwritten, and one deleted and made again under the same name is
	// never revoked on the strength of what was read about the old one.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s = &billingv1alpha1.PortalSession{}
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, s); err != nil {
			return err
		}
		if s.Spec.Revoked && (ro.reason == "" || ro.reason == s.Spec.RevocationReason) {
			return nil // already done: a retried revoke is harmless
		}
		if s.Spec.RevocationReason != "" && ro.reason != s.Spec.RevocationReason {
			return fmt.Errorf("PortalSession %s is already revoked with reason %q, and a reason cannot be changed once set", name, s.Spec.RevocationReason)
		}
		spec := map[string]any{"revoked": true}
		if ro.reason != "" {
			spec["revocationReason"] = ro.reason
		}
		body, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"uid": s.UID, "resourceVersion": s.ResourceVersion},
			"spec":     spec,
		})
		if err != nil {
			return err
		}
		if err := c.client.Patch(ctx, s, client.RawPatch(types.MergePatchType, body), client.FieldOwner(fieldManager)); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("PortalSession %q not found in namespace %q: `kubectl portero sessions -n %s` lists them", name, c.namespace, c.namespace)
	case apierrors.IsConflict(err):
		return fmt.Errorf("PortalSession %s kept changing while being revoked; nothing was written: try again", name)
	case err != nil:
		var st apierrors.APIStatus
		if errors.As(err, &st) {
			return apiError("revoke PortalSession "+name, err)
		}
		return err
	}
	if !wrote {
		fmt.Fprintf(ro.Out, "portalsession/%s was already revoked%s\n", name, reasonSuffix(s.Spec.RevocationReason))
		return nil
	}
	if ended(s) || ro.wait == 0 {
		fmt.Fprintf(ro.Out, "portalsession/%s revoked%s\n", name, reasonSuffix(ro.reason))
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, ro.wait)
	defer cancel()
	_, err = c.watchSession(wctx, name, func(s *billingv1alpha1.PortalSession) (bool, error) { return ended(s), nil })
	switch {
	case err == nil, errors.Is(err, errGone):
		fmt.Fprintf(ro.Out, "portalsession/%s revoked%s: its link no longer works\n", name, reasonSuffix(ro.reason))
		return nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// The portal checks spec.revoked itself, so the link is refused already; only the
		// operator's bookkeeping (phase Revoked, the link Secret gone) is missing.
		return fmt.Errorf("spec.revoked is set on PortalSession %s and the portal refuses its link, but the operator has not recorded phase Revoked after %s: is the Portero operator running?", name, ro.wait)
	}
	return fmt.Errorf("follow PortalSession %s: %w", name, err)
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return fmt.Sprintf(" (reason: %s)", reason)
}
