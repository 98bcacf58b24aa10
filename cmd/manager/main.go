// Command manager runs Portero's operator: the CustomerPortal and PortalSession controllers.
package main

import (
	// Mozilla's CA roots, used only where the system has none (the scratch image): the
	// portal and the operator reach SMTP servers and PostgreSQL over TLS.
	_ "golang.org/x/crypto/x509roots/fallback"

	"crypto/tls"
	"flag"
	"fmt"
	"os"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/scheme"
)

// defaultPortalImage is set at build time from the Makefile's IMG (-ldflags -X main.defaultPortalImage=…).
var defaultPortalImage = "ghcr.io/portero-dev/portero:latest"

func main() {
	var (
		metricsAddr, probeAddr, portalImage, pprofAddr string
		leaderElect, secureMetrics                     bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so only one of several manager replicas reconciles.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address to serve Go pprof profiles on (off when empty); for benchmarks and debugging.")
	flag.StringVar(&portalImage, "portal-image", defaultPortalImage, "Container image of the portal server run for each CustomerPortal.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	if err := run(metricsAddr, probeAddr, portalImage, pprofAddr, leaderElect, secureMetrics); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr, portalImage, pprofAddr string, leaderElect, secureMetrics bool) error {
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	if secureMetrics {
		// HTTP/2 is off for the metrics endpoint: the rapid-reset and stream-cancellation CVEs.
		metricsOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	opts := controllers.ManagerOptions(scheme.New(), false)
	opts.Metrics = metricsOpts
	opts.HealthProbeBindAddress = probeAddr
	opts.PprofBindAddress = pprofAddr
	opts.LeaderElection = leaderElect
	opts.LeaderElectionID = "portero-operator.billing.portero.dev"
	opts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), opts)
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
		Metrics:     portalMetrics,
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
	ctrl.Log.WithName("setup").Info("starting manager", "portalImage", portalImage)
	return mgr.Start(ctrl.SetupSignalHandler())
}
