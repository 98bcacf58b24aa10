// Package web is the customer portal: server-rendered HTML (html/template, no JavaScript) in
// Spanish and English, for one CustomerPortal whose rules are read on every request, so a
// `kubectl patch` applies to the next page load.
//
// Customers get in by the public e-mail login (a one-time code) or by a PortalSession link, and
// then manage their payment methods, subscriptions, billing profile and payments within what
// the portal's permissions allow. Each section the rules switch off is absent from the
// navigation and refused by the server (403), whatever a hand-made request says.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

// Rules is the live view of the portal's configuration and sessions (portal/rules.Rules).
type Rules interface {
	// Portal returns the CustomerPortal as it is now, nil if it is gone.
	Portal(ctx context.Context) *billingv1alpha1.CustomerPortal
	// Session returns the named PortalSession of this portal, or nil.
	Session(ctx context.Context, name string) *billingv1alpha1.PortalSession
	// AwaitSessionByTokenHash returns the session whose token hashes (hex SHA-256) to hash. When
	// none has it yet, it waits until one is seen, wait passes (wait ≤ 0: not at all) or ctx
	// ends, and then answers nil: a link opened right after the operator published it may be
	// ahead of the portal's informer.
	AwaitSessionByTokenHash(ctx context.Context, hash string, wait time.Duration) *billingv1alpha1.PortalSession
}

// RateLimits bound abuse of the public entry points, per client IP and per e-mail address.
type RateLimits struct {
	// CodeRequestsPerIP limits e-mail submissions and resends from one IP.
	CodeRequestsPerIP auth.Limit
	// CodeVerificationsPerIP limits code guesses from one IP (each challenge has its own
	// maxAttempts on top).
	CodeVerificationsPerIP auth.Limit
	// CodesPerEmailPerHour caps the codes one address receives from all clients together
	// (browsers that signed in to it before have their own quota; see auth.CodePolicy).
	CodesPerEmailPerHour int
	// CodesPerEmailPerClientPerHour caps the codes one client IP (IPv6: /64) gets sent to one
	// address, so no one client uses up the address's cap.
	CodesPerEmailPerClientPerHour int
	// LinkExchangesPerIP limits /s/<token> exchanges from one IP.
	LinkExchangesPerIP auth.Limit
	// MethodAddsPerSession and MethodAddsPerIP limit attempts to add a payment method that
	// reach the processor: card adds in a loop would test stolen cards.
	MethodAddsPerSession, MethodAddsPerIP auth.Limit
}

// DefaultRateLimits are generous for people and tight for scripts.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		CodeRequestsPerIP:             auth.Limit{Hits: 20, Window: 10 * time.Minute},
		CodeVerificationsPerIP:        auth.Limit{Hits: 40, Window: 10 * time.Minute},
		CodesPerEmailPerHour:          15,
		CodesPerEmailPerClientPerHour: 3,
		LinkExchangesPerIP:            auth.Limit{Hits: 60, Window: 10 * time.Minute},
		MethodAddsPerSession:          auth.Limit{Hits: 10, Window: time.Hour},
		MethodAddsPerIP:               auth.Limit{Hits: 30, Window: time.Hour},
	}
}

// Options configure the portal's web handler.
type Options struct {
	Ledger *ledger.Store
	Auth   *auth.Store
	Rules  Rules
	// Mailer gives the sender for the portal's SMTP settings (SecretMailer in production).
	Mailer Mailer
	// Registry receives the portal's metrics; nil registers nowhere.
	Registry prometheus.Registerer
	// Clock is the time source; nil means the real clock.
	Clock clock.PassiveClock
	// Logger receives request errors and security events; nil discards them.
	Logger *slog.Logger
	// InsecureCookies drops the Secure attribute (and the __Host- prefix) on plain-http
	// requests from any host. Without it that happens only for localhost and 127.0.0.1, so
	// `make run` works over http on loopback while anything else needs https.
	InsecureCookies bool
	// RateLimits default to DefaultRateLimits().
	RateLimits *RateLimits
	// SendTimeout bounds one code e-mail (default 30s).
	SendTimeout time.Duration
	// PageCacheBytes bounds the memory of the signed-in pages kept for reuse while nothing
	// they show has changed (default 8 MiB; negative: keep none).
	PageCacheBytes int
	// LinkWait is how long a well-formed link token no session has yet waits for the session
	// view to learn it (default rules.TokenWait; negative: no wait).
	LinkWait time.Duration
	// Processors gives the portal's payment processor as its CustomerPortal names it now.
	Processors Processors
}

// Handler serves the customer portal.
type Handler struct {
	ledger     *ledger.Store
	processors Processors
	auth       *auth.Store
	rules      Rules
	mailer     Mailer
	clock      clock.PassiveClock
	log        *slog.Logger
	insecure   bool
	limits     RateLimits
	sendTO     time.Duration
	linkWait   time.Duration
	metrics    *metrics
	pages      *templates
	cache      *pageCache // nil: off
	mux        *http.ServeMux
	chain      http.Handler
	sends      sync.WaitGroup
	// sendCtx is canceled by Close; e-mails in flight then stop.
	sendCtx    context.Context
	sendCancel context.CancelFunc
}

// New builds the handler.
func New(o Options) (*Handler, error) {
	if o.Ledger == nil || o.Auth == nil || o.Rules == nil || o.Mailer == nil || o.Processors == nil {
		return nil, errors.New("web: Ledger, Auth, Rules, Mailer and Processors are required")
	}
	h := &Handler{ledger: o.Ledger, processors: o.Processors, auth: o.Auth, rules: o.Rules, mailer: o.Mailer, clock: o.Clock,
		log: o.Logger, insecure: o.InsecureCookies, sendTO: o.SendTimeout, linkWait: o.LinkWait}
	if h.clock == nil {
		h.clock = clock.RealClock{}
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h.limits = DefaultRateLimits()
	if o.RateLimits != nil {
		h.limits = *o.RateLimits
	}
	if h.sendTO <= 0 {
		h.sendTO = 30 * time.Second
	}
	if h.linkWait == 0 {
		h.linkWait = rules.TokenWait
	}
	var err error
	if h.metrics, err = newMetrics(o.Registry); err != nil {
		return nil, err
	}
	if h.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	switch {
	case o.PageCacheBytes == 0:
		h.cache = newPageCache(defaultPageCacheBytes)
	case o.PageCacheBytes > 0:
		h.cache = newPageCache(o.PageCacheBytes)
	}
	h.sendCtx, h.sendCancel = context.WithCancel(context.Background())
	h.routes()
	h.chain = h.knownMethods(h.instrument(h.secure(h.mux)))
	return h, nil
}

// Close waits for code e-mails in flight, at most until ctx ends, then abandons them.
func (h *Handler) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.sends.Wait(); close(done) }()
	select {
	case <-done:
		h.sendCancel()
		return nil
	case <-ctx.Done():
		h.sendCancel()
		<-done
		return fmt.Errorf("web: e-mails still in flight at shutdown: %w", ctx.Err())
	}
}

// Wait blocks until every code e-mail started so far has been handed to the SMTP server or
// failed (tests use it instead of sleeping).
func (h *Handler) Wait() { h.sends.Wait() }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.chain.ServeHTTP(w, r)
}

// A permission is one of the portal's toggles, read from the live CustomerPortal.
type permission func(p *billingv1alpha1.CustomerPortal) bool

var (
	always          permission = func(*billingv1alpha1.CustomerPortal) bool { return true }
	canUpdateMethod permission = func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.Permissions.CanUpdatePaymentMethod() }
	canCancel       permission = func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.Permissions.CanCancelSubscriptions() }
	canEditBilling  permission = func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.Permissions.CanUpdateBillingInfo() }
	canSeeHistory   permission = func(p *billingv1alpha1.CustomerPortal) bool { return p.Spec.Permissions.CanViewPaymentHistory() }
)

func (h *Handler) routes() {
	m := http.NewServeMux()
	h.mux = m

	m.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	m.HandleFunc("GET /brand.css", h.brandCSS)
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m.HandleFunc("GET /robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /\n")
	})

	// Getting in.
	m.Handle("GET /{$}", h.public(h.home))
	m.Handle("GET /login", h.public(h.loginPage))
	m.Handle("POST /login", h.public(h.loginSubmit))
	m.Handle("GET /login/code", h.public(h.codePage))
	m.Handle("POST /login/code", h.public(h.codeSubmit))
	m.Handle("POST /login/resend", h.public(h.codeResend))
	m.Handle("GET /login/choose", h.public(h.choosePage))
	m.Handle("POST /login/choose", h.public(h.chooseSubmit))
	m.Handle("GET /s/{token}", h.public(h.linkPage))
	m.Handle("POST /s/{token}", h.public(h.linkExchange))
	m.Handle("POST /s/{token}/recover", h.public(h.linkRecover))
	m.Handle("POST /logout", h.public(h.logout))

	// Inside.
	m.Handle("GET /methods", h.inside(canUpdateMethod, h.methodsPage))
	m.Handle("GET /methods/new", h.inside(canUpdateMethod, h.methodNewPage))
	m.Handle("POST /methods", h.inside(canUpdateMethod, h.methodAdd))
	m.Handle("GET /methods/return", h.inside(canUpdateMethod, h.methodSetupReturn))
	m.Handle("POST /methods/return", h.inside(canUpdateMethod, h.methodSetupReturn))
	m.Handle("GET /methods/{id}/remove", h.inside(canUpdateMethod, h.methodRemovePage))
	m.Handle("POST /methods/{id}/remove", h.inside(canUpdateMethod, h.methodRemove))
	m.Handle("POST /methods/{id}/move", h.inside(canUpdateMethod, h.methodMove))

	m.Handle("GET /subscriptions", h.inside(always, h.subscriptionsPage))
	m.Handle("GET /subscriptions/{id}", h.inside(always, h.subscriptionPage))
	m.Handle("POST /subscriptions/{id}/method", h.inside(canUpdateMethod, h.subscriptionSetMethod))
	m.Handle("GET /subscriptions/{id}/cancel", h.inside(canCancel, h.subscriptionCancelPage))
	m.Handle("POST /subscriptions/{id}/cancel", h.inside(canCancel, h.subscriptionCancel))
	m.Handle("POST /subscriptions/{id}/resume", h.inside(canCancel, h.subscriptionResume))
	h.planChangeRoutes(m)

	m.Handle("GET /billing", h.inside(canEditBilling, h.billingPage))
	m.Handle("POST /billing", h.inside(canEditBilling, h.billingSubmit))

	m.Handle("GET /payments", h.inside(canSeeHistory, h.paymentsPage))
	// Payments waiting for the customer are reachable whatever the history permission says:
	// completing them is the point of the e-mailed deep link.
	m.Handle("GET /payments/due", h.inside(always, h.paymentsDuePage))
	m.Handle("GET /payments/{id}", h.inside(always, h.paymentPage))
	m.Handle("GET /payments/{id}/pay", h.inside(always, h.paymentPayPage))
	m.Handle("POST /payments/{id}/pay", h.inside(always, h.paymentPay))
	m.Handle("GET /payments/{id}/pay/return", h.inside(always, h.paymentPayReturn))
	m.Handle("POST /payments/{id}/pay/return", h.inside(always, h.paymentPayReturn))
	m.Handle("GET /payments/{id}/authenticate", h.inside(always, h.paymentAuthenticate))
	m.Handle("GET /payments/{id}/authenticated", h.inside(always, h.paymentAuthenticated))
	m.Handle("GET /payments/{id}/receipt", h.inside(canSeeHistory, h.receiptPage))
	m.Handle("GET /payments/{id}/receipt.pdf", h.inside(canSeeHistory, h.receiptPDF))

	m.Handle("/", h.public(func(w http.ResponseWriter, v *visit) { h.fail(w, v, http.StatusNotFound, "error.not_found") }))
}
