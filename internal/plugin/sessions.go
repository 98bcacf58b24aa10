package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

type sessionsOptions struct {
	*Options
	portal        string
	allNamespaces bool
}

func newSessionsCommand(o *Options) *cobra.Command {
	so := &sessionsOptions{Options: o}
	cmd := &cobra.Command{
		Use:     "sessions",
		Aliases: []string{"session", "ls"},
		Short:   "List PortalSessions: who has a link, and for how long",
		Example: `  kubectl portero sessions
  kubectl portero sessions --portal acme
  kubectl portero sessions -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return so.run(cmd.Context()) },
	}
	cmd.Flags().StringVar(&so.portal, "portal", "", "only the sessions of this CustomerPortal")
	cmd.Flags().BoolVarP(&so.allNamespaces, "all-namespaces", "A", false, "sessions of every namespace")
	return cmd
}

func (so *sessionsOptions) run(ctx context.Context) error {
	c, err := so.connect()
	if err != nil {
		return err
	}
	opts := []client.ListOption{}
	where := "namespace " + c.namespace
	if !so.allNamespaces {
		opts = append(opts, client.InNamespace(c.namespace))
	} else {
		where = "any namespace"
	}
	if so.portal != "" {
		// spec.portalRef.name is a selectable field of the CRD: the API server filters.
		opts = append(opts, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.portalRef.name", so.portal)})
		where += fmt.Sprintf(" for portal %q", so.portal)
	}
	var list billingv1alpha1.PortalSessionList
	if err := c.client.List(ctx, &list, opts...); err != nil {
		return apiError("list PortalSessions in "+where, err)
	}
	if len(list.Items) == 0 {
		fmt.Fprintf(so.ErrOut, "No PortalSessions found in %s.\n", where)
		return nil
	}
	w := printers.GetNewTabWriter(so.Out)
	cols := []string{"NAME", "PORTAL", "CUSTOMER", "PHASE", "TIME LEFT"}
	if so.allNamespaces {
		cols = append([]string{"NAMESPACE"}, cols...)
	}
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	now := so.Now()
	for i := range list.Items {
		s := &list.Items[i]
		row := []string{s.Name, s.Spec.PortalRef.Name, s.Spec.Customer.ID + s.Spec.Customer.Email, phase(s), timeLeft(s, now)}
		if so.allNamespaces {
			row = append([]string{s.Namespace}, row...)
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	return w.Flush()
}

// phase is what a person needs from a session's state: the operator's phase, with the moments
// before it spelled out (a revocation the operator has not recorded yet, a refusal, a wait).
func phase(s *billingv1alpha1.PortalSession) string {
	switch {
	case ended(s):
		return string(s.Status.Phase)
	case s.Spec.Revoked || !s.DeletionTimestamp.IsZero():
		// The portal refuses the link already; the operator records it in a moment.
		return "Revoking"
	case s.Status.Phase == billingv1alpha1.SessionActive:
		return string(s.Status.Phase)
	case stalled(s) != nil:
		return "Refused"
	}
	return "Pending"
}

// timeLeft is how long an active link still works, in kubectl's AGE style.
func timeLeft(s *billingv1alpha1.PortalSession, now time.Time) string {
	if s.Status.ExpiresAt == nil || phase(s) != string(billingv1alpha1.SessionActive) {
		return "-"
	}
	left := s.Status.ExpiresAt.Sub(now)
	if left <= 0 {
		// Past its expiry, the portal refuses the link even before the operator records it.
		return "expired"
	}
	return duration.HumanDuration(left)
}
