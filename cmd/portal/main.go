// Command portal serves one CustomerPortal: the customers' web UI, the merchant API and the ledger
// behind them. It reads the portal's rules live from the API server (see portal/rules).
package main

import (
	// Mozilla's CA roots, used only where the system has none (the scratch image): the
	// portal and the operator reach SMTP servers and PostgreSQL over TLS.
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portero-dev/portero/portal/api"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/billing"
	"github.com/portero-dev/portero/portal/charging/live"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/rules"
	"github.com/portero-dev/portero/portal/server"
	"github.com/portero-dev/portero/portal/web"
	"github.com/portero-dev/portero/portal/webhooks"
)

// config is the portal process's flags.
type config struct {
	portal        string // namespace/name
	listen        string
	dataDir       string
	dsnEnv        string
	logLevel      string
	insecureDev   bool
	pprofListen   string
	metricsListen string
}

func main() {
	var c config
	flag.StringVar(&c.portal, "portal", "", "The CustomerPortal to serve, as namespace/name.")
	flag.StringVar(&c.listen, "listen", ":8080", "Address to serve pages, API and probes on.")
	flag.StringVar(&c.metricsListen, "metrics-listen", "", "Address to serve Prometheus /metrics on, apart from the public one (off when empty).")
	flag.StringVar(&c.dataDir, "data-dir", "", "Directory for the SQLite ledger (storage.sqlite).")
	flag.StringVar(&c.dsnEnv, "database-dsn-env", "", "Environment variable holding the PostgreSQL DSN (storage.postgres).")
	flag.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error.")
	flag.BoolVar(&c.insecureDev, "insecure-cookies", false, "Set session cookies without Secure on plain-http requests from any host (development only). "+
		"Plain http on localhost and 127.0.0.1 needs no flag.")
	flag.StringVar(&c.pprofListen, "pprof-listen", os.Getenv("PORTERO_PPROF_LISTEN"), "Loopback address to serve /debug/pprof/ on (off when empty; default $PORTERO_PPROF_LISTEN).")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		// The live heap is small (a few MB), so at the default 100 the collector runs every
		// few hundred page views and took ~10% of the portal's CPU under load; twice the
		// headroom halves that for a few MB more.
		debug.SetGCPercent(200)
	}

	log := newLogger(c.logLevel)
	ctrl.SetLogger(logrFromSlog(log)) // client-go and controller-runtime log through the same handler
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("portal stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	ns, name, ok := strings.Cut(c.portal, "/")
	if !ok || ns == "" || name == "" {
		return errors.New("--portal must be namespace/name")
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	if c.pprofListen != "" {
		if err := servePprof(ctx, c.pprofListen, log); err != nil {
			return err
		}
	}

	dsn, secret, err := storage(c)
	if err != nil {
		return err
	}
	srv := server.New(log)
	// The billing loops (renewals, completion links for incomplete payments) hook into the ledger,
	// so they exist before it opens and run once the rules are known.
	loops := billing.New(billing.Options{Log: log.With("component", "billing"), Registry: srv.Registry()})
	// The event log's endpoints come from the rules and its worker needs the ledger: both are
	// reached through these, set below before anything writes an event.
	var hooks webhookHooks
	store, err := ledger.Open(ctx, dsn, ledger.Options{Logger: log.With("component", "ledger"), Hooks: loops.Hooks(),
		Events: ledger.EventOptions{Portal: key.String(), Render: api.RenderEvent, Subscribers: hooks.subscribers, Written: hooks.written}})
	if err != nil {
		return err
	}
	defer store.Close()

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	rl, err := rules.Start(ctx, cfg, key)
	if err != nil {
		return err
	}
	whConfig := webhooks.NewConfig(rl, rl.Client, log.With("component", "webhooks"))
	worker, err := webhooks.New(webhooks.Options{Store: store, Endpoints: whConfig.Endpoints, Owner: podName(),
		Logger: log.With("component", "webhooks"), Metrics: srv.Registry()})
	if err != nil {
		return err
	}
	hooks.set(whConfig, worker)
	// The processor is a rule like the others: spec.processor and its Secret, read live. The
	// sandbox, when named without a Secret, runs under the key kept beside the ledger.
	procs, err := live.New(live.Options{Rules: rl, Secrets: rl.Client, Recorder: store, SandboxSecret: secret,
		Log: log.With("component", "charging"), Metrics: srv.Registry()})
	if err != nil {
		return err
	}
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); worker.Run(workerCtx) }()
	defer func() { stopWorker(); <-workerDone }()

	ctx, cancel := context.WithCancel(ctx)
	loopsDone := make(chan struct{})
	go func() { defer close(loopsDone); _ = loops.Run(ctx, store, rl, procs) }()
	defer func() { cancel(); <-loopsDone }() // stop the loops before the ledger closes

	srv.AddReadiness(store.Ping)
	srv.AddReadiness(func(ctx context.Context) error {
		if rl.Portal(ctx) == nil {
			return fmt.Errorf("CustomerPortal %s not found", key)
		}
		return nil
	})
	srv.Mux().Handle(api.Prefix, api.New(api.Deps{Store: store, Rules: rl, Processors: procs,
		Log: log.With("component", "merchant-api"), Registry: srv.Registry()}))
	// The processor's signed notifications, on the same Service as the pages (outside /api/v1:
	// they carry the processor's signature, not the merchant's key). Mercado Pago signs the
	// notification URL's data.id, which WebhookRequest hands to its adapter; other processors
	// ignore it.
	srv.Mux().Handle("POST /webhooks/{processor}", mercadopago.WebhookRequest(procs.WebhookHandler()))

	ui, err := customerUI(ctx, c, log, store, rl, srv, secret, procs)
	if err != nil {
		return err
	}
	// Everything the probes, metrics and merchant API do not claim is the customers' portal.
	srv.Mux().Handle("/", ui)
	defer func() {
		// Let code e-mails already accepted by the UI reach the SMTP server.
		drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := ui.Close(drain); err != nil {
			log.Warn("stopping the customer UI", "err", err)
		}
	}()
	log.Info("portal serving", "portal", key.String(), "listen", c.listen, "metrics", c.metricsListen)
	if c.metricsListen == "" {
		return srv.Serve(ctx, c.listen, srv.Mux())
	}
	// Either listener failing stops both: a portal whose metrics port is taken is misconfigured.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	metricsDone := make(chan error, 1)
	go func() { metricsDone <- srv.Serve(ctx, c.metricsListen, srv.MetricsHandler()); stop() }()
	err = srv.Serve(ctx, c.listen, srv.Mux())
	stop()
	if merr := <-metricsDone; err == nil && merr != nil {
		err = fmt.Errorf("metrics: %w", merr)
	}
	return err
}

// customerUI builds the customers' web UI: auth tables in the ledger's database, codes e-mailed
// through the SMTP Secret the portal names (read live), and a sweeper for expired sign-ins.
func customerUI(ctx context.Context, c config, log *slog.Logger, store *ledger.Store, rl *rules.Rules, srv *server.Server, secret []byte, procs *live.Processors) (*web.Handler, error) {
	// The pepper keeps auth's HMAC keys out of reach of a database copy alone; derived rather
	// than reused, so the processor's key serves only the processor.
	pepper := hmac.New(sha256.New, secret)
	pepper.Write([]byte("portero auth pepper"))
	authStore, err := auth.OpenLedger(ctx, store, auth.Options{Logger: log.With("component", "auth"), Pepper: pepper.Sum(nil)})
	if err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			if err := authStore.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn("sweep expired sign-ins", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return web.New(web.Options{
		Ledger:          store,
		Processors:      procs,
		Auth:            authStore,
		Rules:           rl,
		Mailer:          web.SecretMailer{Reader: rl.Client},
		Registry:        srv.Registry(),
		Clock:           clock.RealClock{},
		Logger:          log.With("component", "web"),
		InsecureCookies: c.insecureDev,
	})
}

// storage returns the ledger DSN and the sandbox processor's secret (which fingerprints cards, so
// it must survive restarts: it lives beside the SQLite file, or comes from the environment).
func storage(c config) (dsn string, secret []byte, err error) {
	switch {
	case c.dsnEnv != "":
		dsn = os.Getenv(c.dsnEnv)
		if dsn == "" {
			return "", nil, fmt.Errorf("environment variable %s (the PostgreSQL DSN) is empty", c.dsnEnv)
		}
	case c.dataDir != "":
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return "", nil, err
		}
		dsn = "sqlite://" + filepath.Join(c.dataDir, "ledger.db")
	default:
		return "", nil, errors.New("set --data-dir (SQLite) or --database-dsn-env (PostgreSQL)")
	}
	if s := os.Getenv("PORTERO_PROCESSOR_SECRET"); s != "" {
		return dsn, []byte(s), nil
	}
	if c.dataDir == "" {
		return "", nil, errors.New("PORTERO_PROCESSOR_SECRET must be set when the ledger is on PostgreSQL")
	}
	secret, err = loadOrCreateKey(filepath.Join(c.dataDir, "processor.key"))
	return dsn, secret, err
}

// loadOrCreateKey returns the processor key kept in path, creating it on first start. Saved
// cards are tokens under this key, so it must never change: creation writes a complete temporary
// file and links it into place (a crash leaves no short key; two processes starting on one data
// directory agree on the first key linked), and a file that is there but short or unreadable is
// an error to fix by hand, never replaced.
func loadOrCreateKey(path string) ([]byte, error) {
	if b, err := readKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".processor.key-*")
	if err != nil {
		return nil, fmt.Errorf("write processor key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(b)
	if serr := tmp.Sync(); werr == nil {
		werr = serr
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write processor key: %w", werr)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return readKey(path) // another process on this directory created it first
	} else if err != nil {
		return nil, fmt.Errorf("write processor key: %w", err)
	}
	return b, nil
}

func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read processor key: %w", err)
	case len(b) < 32:
		return nil, fmt.Errorf("processor key %s holds %d bytes, not 32: restore it from a backup (a new key would invalidate every saved card)", path, len(b))
	}
	return b, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// webhookHooks connects the ledger, opened first, to the webhook configuration and worker,
// which need the rules and the ledger: until set, events are logged with no deliveries.
type webhookHooks struct {
	state atomic.Pointer[webhookState]
}

type webhookState struct {
	config *webhooks.Config
	worker *webhooks.Worker
}

func (h *webhookHooks) set(c *webhooks.Config, w *webhooks.Worker) {
	h.state.Store(&webhookState{config: c, worker: w})
}

func (h *webhookHooks) subscribers() []ledger.Subscriber {
	if s := h.state.Load(); s != nil {
		return s.config.Subscribers()
	}
	return nil
}

func (h *webhookHooks) written(types []string, deliveries bool) {
	if s := h.state.Load(); s != nil {
		s.worker.Written(types, deliveries)
	}
}

// podName names this process in delivery leases: the pod's name (its hostname) and a random
// suffix, so a restarted pod never mistakes its predecessor's leases for its own.
func podName() string {
	h, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return h + "-" + hex.EncodeToString(b[:])
}
