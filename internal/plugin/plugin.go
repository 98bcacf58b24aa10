// Package plugin is `kubectl portero`: PortalSessions and portal URLs from a terminal, for the
// people who would otherwise open a dashboard to share a customer's portal ("compartir portal de
// cliente"). It talks to the API server like kubectl does (same flags, same kubeconfig) and
// leaves the work to the operator: it creates and revokes PortalSessions and reads what the
// operator reports.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/scheme"
)

// Names shared with the operator (controllers/options.go, controllers/portalsession_controller.go).
// They are repeated rather than imported so the plugin does not link the controllers.
const (
	// labelCreatedBy marks who made a PortalSession; the operator grants a portal read access
	// to link Secrets only for the value "portal", so this one grants nothing.
	labelCreatedBy   = "billing.portero.dev/created-by"
	createdByPlugin  = "kubectl-portero"
	labelPortal      = "billing.portero.dev/portal"
	linkSecretKeyURL = "url"
	// annotationCustomerEmail is where the operator e-mails the link when spec.customer has an id.
	annotationCustomerEmail = "billing.portero.dev/customer-email"
	conditionReady          = "Ready"
	conditionStalled        = "Stalled"
	conditionDelivered      = "Delivered"
	// defaultMaxTTL is the CRD's default access.sessions.maxTTL, for portals that bypassed defaulting.
	defaultMaxTTL = 24 * time.Hour
	fieldManager  = "kubectl-portero"
)

// Options are what every command shares: where to print, which cluster, and the clock.
type Options struct {
	genericiooptions.IOStreams
	// Flags are kubectl's connection flags (--kubeconfig, --context, -n, --as …), registered on
	// the root command.
	Flags *genericclioptions.ConfigFlags
	// Now is the time "time left" is measured from; nil means time.Now.
	Now func() time.Time
	// Version is what --version prints.
	Version string
}

// NewCommand returns `kubectl portero` with its subcommands. Errors are returned, not printed:
// the caller prints them once and sets the exit code.
func NewCommand(o Options) *cobra.Command {
	if o.Flags == nil {
		o.Flags = genericclioptions.NewConfigFlags(true)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	root := &cobra.Command{
		Use: "kubectl-portero",
		// kubectl runs the program kubectl-portero for `kubectl portero`; help speaks of the latter.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl portero"},
		Short:       "Share, list and revoke Portero customer portal links",
		Long: `kubectl portero works with Portero's PortalSessions: temporary, pre-authenticated links that open
a CustomerPortal as one customer.

  kubectl portero share cus_123 --portal acme           # a link for a customer, printed
  kubectl portero share jane@example.com --portal acme --email --qr
  kubectl portero sessions --portal acme               # who has a link, and for how long
  kubectl portero revoke acme-x7k2p --reason "sent to the wrong person"
  kubectl portero url acme                             # the portal's public address`,
		Version:       o.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without subcommand, help: a bare `kubectl portero` should teach, not fail.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetIn(o.In)
	root.SetOut(o.Out)
	root.SetErr(o.ErrOut)
	o.Flags.AddFlags(root.PersistentFlags())
	root.AddCommand(newShareCommand(&o), newSessionsCommand(&o), newRevokeCommand(&o), newURLCommand(&o))
	return root
}

// cluster is what a command talks to: a client and the namespace the flags and kubeconfig chose.
type cluster struct {
	client    client.WithWatch
	rest      *rest.Config
	scheme    *runtime.Scheme
	namespace string
}

func (o *Options) connect() (*cluster, error) {
	// Without any kubeconfig client-go falls back to http://localhost:8080, whose "connection
	// refused" says nothing about the real problem.
	if raw, err := o.Flags.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Contexts) == 0 &&
		(o.Flags.APIServer == nil || *o.Flags.APIServer == "") && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, errors.New("no cluster to talk to: no kubeconfig was found (--kubeconfig, $KUBECONFIG or ~/.kube/config); with `make run`, `source bin/local/env` first")
	}
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("read the kubeconfig: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-portero"
	// The API server's warnings (a deprecated field, say) reach the person, as kubectl shows them.
	cfg.WarningHandler = rest.NewWarningWriter(o.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
	ns, _, err := o.Flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("find the namespace: %w", err)
	}
	s := scheme.New()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("connect to the API server %s: %w", cfg.Host, err)
	}
	return &cluster{client: c, rest: cfg, scheme: s, namespace: ns}, nil
}

// getPortal reads a CustomerPortal; a missing one is an error that lists the portals that do
// exist in the namespace, which is usually the fix.
func (c *cluster) getPortal(ctx context.Context, name string) (*billingv1alpha1.CustomerPortal, error) {
	p := &billingv1alpha1.CustomerPortal{}
	err := c.client.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, p)
	if err == nil {
		return p, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, apiError(fmt.Sprintf("read CustomerPortal %q in namespace %q", name, c.namespace), err)
	}
	msg := fmt.Sprintf("CustomerPortal %q not found in namespace %q", name, c.namespace)
	var list billingv1alpha1.CustomerPortalList
	if lerr := c.client.List(ctx, &list, client.InNamespace(c.namespace)); lerr == nil {
		names := make([]string, 0, len(list.Items))
		for _, it := range list.Items {
			names = append(names, it.Name)
		}
		slices.Sort(names)
		switch len(names) {
		case 0:
			msg += " (it has no portals): `kubectl get cportal -A` lists them all; choose the namespace with -n"
		default:
			msg += "; portals there: " + strings.Join(names, ", ")
		}
	}
	return nil, errors.New(msg)
}

// apiError says what was being done and, for the refusals a person can fix, what to do.
func apiError(what string, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %s: ask a cluster admin for that permission, or pick an identity that has it (--context, --as)", what, errMessage(err))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server did not accept your credentials: refresh them (kubectl config view --minify shows which ones)", what)
	case apierrors.IsInvalid(err):
		return fmt.Errorf("%s: the API server refused it: %s", what, invalidCauses(err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func errMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

// invalidCauses lists the schema's and CEL rules' messages, one per refused field: they already
// say what to fix.
func invalidCauses(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil || len(st.Status().Details.Causes) == 0 {
		return errMessage(err)
	}
	var msgs []string
	for _, c := range st.Status().Details.Causes {
		m := c.Message
		if c.Field != "" {
			m = c.Field + ": " + m
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}
