// Command manager runs Portero's operator: the CustomerPortal and PortalSession controllers.
package main

import (
	// Mozilla's CA roots, used only where the system has none (the scratch image): the
	// portal and the operator reach SMTP servers and PostgreSQL over TLS.
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/scheme"
)

// defaultLeaderElectionID is the leader election Lease of an install that does not name one.
const defaultLeaderElectionID = "portero-operator.billing.portero.dev"

// defaultPortalImage is set at build time from the Makefile's IMG (-ldflags -X main.defaultPortalImage=…).
var defaultPortalImage = "ghcr.io/portero-dev/portero:latest"

func main() {
	var (
		metricsAddr, probeAddr, portalImage, pprofAddr, watchNamespaces string
		leaderElectionNamespace, leaderElectionID                       string
		leaderElect, secureMetrics, localURLs                           bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so only one of several manager replicas reconciles.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; empty: the pod's own namespace (required outside a cluster).")
	flag.StringVar(&leaderElectionID, "leader-election-id", defaultLeaderElectionID, "Name of the leader election Lease: installs that share a namespace need one each (the Helm chart sets <release>.billing.portero.dev for releases not named portero).")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address to serve Go pprof profiles on (off when empty); for benchmarks and debugging.")
	flag.StringVar(&portalImage, "portal-image", defaultPortalImage, "Container image of the portal server run for each CustomerPortal.")
	flag.BoolVar(&localURLs, "local-urls", false, "Publish the URL in a portal's "+controllers.LocalURLAnnotation+" annotation as its status.url (make run only: never in a cluster).")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to run portals in, for an install that holds a RoleBinding in each (config/namespaced); empty: every namespace, under the ClusterRoleBinding.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	namespaces, err := parseNamespaces(watchNamespaces)
	if err != nil {
		log.Error(err, "bad --watch-namespaces")
		os.Exit(2)
	}
	if err := run(metricsAddr, probeAddr, portalImage, pprofAddr, leaderElectionNamespace, leaderElectionID, namespaces, leaderElect, secureMetrics, localURLs); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// parseNamespaces reads --watch-namespaces: names separated by commas, spaces around them allowed,
// duplicates dropped. No names means every namespace.
func parseNamespaces(s string) ([]string, error) {
	var out []string
	for n := range strings.SplitSeq(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return nil, fmt.Errorf("%q is not a namespace name: %s", n, strings.Join(errs, "; "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// accessCheckTimeout is how long the manager waits for its permissions at start: RBAC just applied
// by the same install reaches the API server's authorizer a moment later.
const accessCheckTimeout = 30 * time.Second

// checkAccess asks the API server whether the manager may watch CustomerPortals where it is told
// to run — every namespace, or each of namespaces — so that a namespace left out of the install's
// RoleBindings fails at once with a sentence saying what to do, instead of a cache that never syncs.
func checkAccess(ctx context.Context, cfg *rest.Config, namespaces []string) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("client for the access check: %w", err)
	}
	scopes := namespaces
	if len(scopes) == 0 {
		scopes = []string{""}
	}
	denied := map[string]bool{}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, accessCheckTimeout, true, func(ctx context.Context) (bool, error) {
		for _, ns := range scopes {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "watch", Group: "billing.portero.dev", Resource: "customerportals"}}}
			if err := c.Create(ctx, review); err != nil {
				return false, fmt.Errorf("ask the API server for the manager's permissions: %w", err)
			}
			denied[ns] = !review.Status.Allowed
		}
		for _, d := range denied {
			if d {
				return false, nil
			}
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	if !wait.Interrupted(err) {
		return err
	}
	if denied[""] {
		return errors.New("the manager may not watch CustomerPortals in every namespace: install it with its ClusterRoleBinding (make deploy), " +
			"or pass --watch-namespaces with the namespaces its RoleBindings cover (WATCH_NAMESPACES=… make deploy)")
	}
	var missing []string
	for _, ns := range namespaces {
		if denied[ns] {
			missing = append(missing, ns)
		}
	}
	return fmt.Errorf("the manager may not watch CustomerPortals in namespace(s) %s: bind it there "+
		"(a RoleBinding to ClusterRole portero-manager-role for ServiceAccount portero-controller-manager; "+
		"WATCH_NAMESPACES=… make deploy writes them), or leave them out of --watch-namespaces", strings.Join(missing, ", "))
}

func run(metricsAddr, probeAddr, portalImage, pprofAddr, leaderElectionNamespace, leaderElectionID string, namespaces []string, leaderElect, secureMetrics, localURLs bool) error {
	cfg := ctrl.GetConfigOrDie()
	ctx := ctrl.SetupSignalHandler()
	if err := checkAccess(ctx, cfg, namespaces); err != nil {
		return err
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	if secureMetrics {
		// HTTP/2 is off for the metrics endpoint: the rapid-reset and stream-cancellation CVEs.
		metricsOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	opts := controllers.ManagerOptions(scheme.New(), false, namespaces...)
	opts.Metrics = metricsOpts
	opts.HealthProbeBindAddress = probeAddr
	opts.PprofBindAddress = pprofAddr
	opts.LeaderElection = leaderElect
	if errs := validation.IsDNS1123Subdomain(leaderElectionID); len(errs) > 0 {
		return fmt.Errorf("--leader-election-id %q is not a valid Lease name: %s", leaderElectionID, strings.Join(errs, "; "))
	}
	opts.LeaderElectionID = leaderElectionID
	opts.LeaderElectionNamespace = leaderElectionNamespace
	opts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	portalMetrics, err := controllers.NewPortalMetrics(metrics.Registry)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	if err := (&controllers.CustomerPortalReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Scheme:      mgr.GetScheme(),
		Recorder:    mgr.GetEventRecorder("customerportal-controller"),
		PortalImage: portalImage,
		LocalURLs:   localURLs,
		Metrics:     portalMetrics,
		Namespaces:  namespaces,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up CustomerPortal controller: %w", err)
	}
	if err := (&controllers.PortalSessionReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Clock:     clock.RealClock{},
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up PortalSession controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager", "portalImage", portalImage, "namespaces", namespaces)
	return mgr.Start(ctx)
}
