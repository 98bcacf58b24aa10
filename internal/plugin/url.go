package plugin

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

func newURLCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "url PORTAL",
		Short: "Print a CustomerPortal's public URL (its public link: e-mail + one-time code)",
		Example: `  kubectl portero url acme
  open "$(kubectl portero url acme)"`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("url needs exactly one PORTAL: a CustomerPortal's name (kubectl get cportal lists them)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			p, err := c.getPortal(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			url, err := portalURL(p)
			if err != nil {
				return err
			}
			fmt.Fprintln(o.Out, url)
			return nil
		},
	}
}

// portalURL is status.url of a portal that is Ready for its current spec: an address that
// answers. Before that the URL may be one the portal is only moving to, or serve nothing yet.
func portalURL(p *billingv1alpha1.CustomerPortal) (string, error) {
	ready := meta.FindStatusCondition(p.Status.Conditions, conditionReady)
	switch {
	case ready == nil:
		return "", fmt.Errorf("CustomerPortal %q is not Ready yet: the operator has not reported on it (is the Portero operator running?)", p.Name)
	case p.Status.ObservedGeneration != p.Generation || ready.ObservedGeneration != p.Generation:
		return "", fmt.Errorf("CustomerPortal %q is not Ready yet: the operator has not caught up with its latest change; `kubectl wait --for=condition=Ready cportal/%s` waits for it", p.Name, p.Name)
	case ready.Status != metav1.ConditionTrue:
		hint := fmt.Sprintf("`kubectl wait --for=condition=Ready cportal/%s` waits for it", p.Name)
		if s := meta.FindStatusCondition(p.Status.Conditions, conditionStalled); s != nil && s.Status == metav1.ConditionTrue {
			hint = fmt.Sprintf("it needs a fix first: `kubectl describe cportal %s`", p.Name)
		}
		return "", fmt.Errorf("CustomerPortal %q is not Ready yet (%s: %s); %s", p.Name, ready.Reason, ready.Message, hint)
	case p.Status.URL == "":
		return "", fmt.Errorf("CustomerPortal %q is Ready but has no status.url; `kubectl describe cportal %s` shows what the operator reports", p.Name, p.Name)
	}
	return p.Status.URL, nil
}
