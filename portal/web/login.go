package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
)

// codePolicy is the portal's otp settings now, with the CRD's defaults for objects that
// bypassed defaulting.
func (h *Handler) codePolicy(p *billingv1alpha1.CustomerPortal) auth.CodePolicy {
	o := p.Spec.OTP
	pol := auth.CodePolicy{Length: int(o.Length), MaxAttempts: int(o.MaxAttempts),
		TTL: 10 * time.Minute, ResendCooldown: 30 * time.Second, MaxSendsPerHour: h.limits.CodesPerEmailPerHour,
		MaxSendsPerClientPerHour: h.limits.CodesPerEmailPerClientPerHour}
	if o.TTL != nil {
		pol.TTL = o.TTL.Duration
	}
	if o.ResendCooldown != nil {
		pol.ResendCooldown = o.ResendCooldown.Duration
	}
	if pol.Length == 0 {
		pol.Length = 6
	}
	if pol.MaxAttempts == 0 {
		pol.MaxAttempts = 5
	}
	return pol
}

// home is the overview for a signed-in customer, or the way in for anyone else.
func (h *Handler) home(w http.ResponseWriter, v *visit) {
	ended, err := h.loadSession(w, v)
	switch {
	case err != nil:
		h.internal(w, v, err)
	case v.sess != nil && v.customer != nil:
		h.overview(w, v)
	case v.sess != nil:
		redirect(w, v, "/login/choose")
	case ended:
		h.sessionEnded(w, v)
	default:
		h.toSignIn(w, v)
	}
}

// publicOff answers the login pages of a portal whose public access is switched off.
func (h *Handler) publicOff(w http.ResponseWriter, v *visit) bool {
	if v.portal.Spec.Access.Public.IsEnabled() {
		return false
	}
	h.render(w, v, http.StatusNotFound, "nopublic", "title.nopublic", nil)
	return true
}

type loginData struct{ Email string }

func (h *Handler) loginPage(w http.ResponseWriter, v *visit) {
	if h.publicOff(w, v) {
		return
	}
	if _, err := h.loadSession(w, v); err == nil && v.customer != nil {
		redirect(w, v, "/")
		return
	}
	v.sess = nil // the login form is anonymous whatever the cookie says
	h.renderPre(w, v, http.StatusOK, "login", "title.login", loginData{}, nil)
}

// renderPre renders a page whose forms are protected by the pre-session token.
func (h *Handler) renderPre(w http.ResponseWriter, v *visit, status int, name, title string, data any, f *form) {
	v.preCSRF = h.preToken(w, v)
	h.renderForm(w, v, status, name, title, data, f)
}

func (h *Handler) loginSubmit(w http.ResponseWriter, v *visit) {
	if h.publicOff(w, v) || !h.checkPreCSRF(w, v) {
		return
	}
	f := newForm(v.r.PostForm)
	email, ok := auth.NormalizeEmail(v.r.PostForm.Get("email"))
	if !ok {
		f.fail("email", "form.email_invalid")
		h.renderPre(w, v, http.StatusUnprocessableEntity, "login", "title.login", loginData{}, f)
		return
	}
	if !h.allow(w, v, "code-requests:ip:"+v.clientIP(), h.limits.CodeRequestsPerIP) {
		return
	}
	// Known and unknown addresses take the same path to the same response; only whether an
	// e-mail goes out (in the background, after the response) differs.
	customers, err := h.customersByEmail(v.ctx, email)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	iss, err := h.auth.StartLogin(v.ctx, v.key, email, v.cookies.get(v.r, cookieChallenge), h.requester(v), h.codePolicy(v.portal))
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.deliverCode(v, iss, len(customers) > 0)
	v.cookies.set(w, cookieChallenge, iss.Handle, 0)
	redirect(w, v, "/login/code")
}

// requester is who asks for a code: the client's network and, if it signed in with a code
// before, the browser (see auth.RememberBrowser).
func (h *Handler) requester(v *visit) auth.Requester {
	return auth.Requester{Client: v.clientIP(), Browser: v.cookies.get(v.r, cookieKnown)}
}

// rememberBrowser marks the browser as one that signed in to email with a code, which keeps
// it a quota of code e-mails for the address that strangers cannot use up. A failure costs
// only that, so the sign-in goes on.
func (h *Handler) rememberBrowser(w http.ResponseWriter, v *visit, email string) {
	known, err := h.auth.RememberBrowser(v.ctx, v.key, email, v.cookies.get(v.r, cookieKnown))
	if err != nil {
		h.log.Warn("remember browser", "err", err)
		return
	}
	v.cookies.set(w, cookieKnown, known, auth.KnownBrowserTTL)
}

// customersByEmail returns the customers with this address (several may share one).
func (h *Handler) customersByEmail(ctx context.Context, email string) ([]ledger.Customer, error) {
	if email == "" {
		return nil, nil // to the ledger, no e-mail means no filter: never list everyone
	}
	page, err := h.ledger.ListCustomers(ctx, ledger.ListCustomersParams{Email: email, Limit: ledger.MaxPageSize})
	if err != nil {
		return nil, err
	}
	return page.Items, nil
}

// deliverCode e-mails a freshly issued code in the background, so the response takes the same
// time whether or not the address is a customer's (and whether or not SMTP is slow). For an
// address that is no customer's nothing is sent, but the SMTP server is probed the same way, so
// that when it is down the challenge is given back (auth.ReleaseSend) for every address alike:
// the code page then says the code could not be sent, and asking again sends it at once, with
// no cooldown or hourly cap spent on the outage.
func (h *Handler) deliverCode(v *visit, iss auth.Issue, known bool) {
	if iss.Code == "" {
		h.metrics.code("not_sent_cooldown")
		return
	}
	portal := v.portal.DeepCopy()
	locale := v.locale
	pol := h.codePolicy(portal)
	key, from := v.key, h.requester(v)
	h.sends.Add(1)
	go func() {
		defer h.sends.Done()
		ctx, cancel := context.WithTimeout(h.sendCtx, h.sendTO)
		defer cancel()
		var err error
		if known {
			err = h.sendCode(ctx, portal, locale, iss.Email, iss.Code, pol.TTL)
		} else {
			err = h.probeMail(ctx, portal)
		}
		switch {
		case err == nil && known:
			h.metrics.code("sent")
			return
		case err == nil:
			h.metrics.code("not_sent_unknown_email")
			return
		case known:
			h.metrics.code("failed")
			h.log.Error("send login code", "portal", portal.Name, "err", err)
		default:
			h.metrics.code("not_sent_unknown_email")
			h.log.Error("SMTP server unreachable", "portal", portal.Name, "err", err)
		}
		// The release is recorded even when the request's time is up: it is what lets the
		// customer try again at once.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if err := h.auth.ReleaseSend(rctx, key, iss.Handle, from, pol); err != nil {
			h.log.Warn("give back a login code that was not sent", "portal", portal.Name, "err", err)
		}
	}()
}

// probeMail checks that a code e-mail could go out now, sending nothing (see deliverCode).
// Senders that cannot probe count as reachable.
func (h *Handler) probeMail(ctx context.Context, p *billingv1alpha1.CustomerPortal) error {
	if p.Spec.Email == nil {
		return errors.New("the CustomerPortal has no spec.email to send codes with")
	}
	sender, err := h.mailer.Sender(ctx, p)
	if err != nil {
		return err
	}
	if pr, ok := sender.(interface{ Probe(context.Context) error }); ok {
		return pr.Probe(ctx)
	}
	return nil
}

func (h *Handler) sendCode(ctx context.Context, p *billingv1alpha1.CustomerPortal, locale, to, code string, ttl time.Duration) error {
	if p.Spec.Email == nil {
		return errors.New("the CustomerPortal has no spec.email to send codes with")
	}
	sender, err := h.mailer.Sender(ctx, p)
	if err != nil {
		return err
	}
	msg, err := loginCodeMail{Locale: locale, PortalName: p.Spec.DisplayName, Code: code, TTL: ttl,
		SupportEmail: p.Spec.Branding.SupportEmail}.render(p.Spec.Email.From, to)
	if err != nil {
		return err
	}
	return sender.Send(ctx, msg)
}

type codeData struct {
	Email string
	// SendFailed: the code's e-mail could not be sent (the SMTP server is down); ask again.
	SendFailed bool
	Length     int
	Remaining  int
	Locked     bool
	Expired    bool
	Resent     bool
	RetryAfter int // seconds until another code may be asked for
}

func (h *Handler) codePage(w http.ResponseWriter, v *visit) {
	if h.publicOff(w, v) {
		return
	}
	d, ok := h.codeState(w, v)
	if !ok {
		return
	}
	d.Resent = v.r.URL.Query().Get("resent") == "1"
	h.renderPre(w, v, http.StatusOK, "code", "title.code", d, nil)
}

// codeState reads the browser's challenge for the code page; false means it redirected.
func (h *Handler) codeState(w http.ResponseWriter, v *visit) (codeData, bool) {
	pol := h.codePolicy(v.portal)
	handle := v.cookies.get(v.r, cookieChallenge)
	ch, err := h.auth.Challenge(v.ctx, v.key, handle, pol)
	if errors.Is(err, auth.ErrNoChallenge) || handle == "" {
		v.cookies.clear(w, cookieChallenge)
		redirect(w, v, "/login")
		return codeData{}, false
	}
	if err != nil {
		h.internal(w, v, err)
		return codeData{}, false
	}
	return codeData{Email: ch.Email, SendFailed: ch.SendFailed, Length: pol.Length, Remaining: ch.Remaining, Locked: ch.Locked,
		Expired: ch.Expired, RetryAfter: int((ch.RetryAfter + time.Second - 1) / time.Second)}, true
}

func (h *Handler) codeSubmit(w http.ResponseWriter, v *visit) {
	if h.publicOff(w, v) || !h.checkPreCSRF(w, v) {
		return
	}
	pol := h.codePolicy(v.portal)
	handle := v.cookies.get(v.r, cookieChallenge)
	if handle == "" {
		redirect(w, v, "/login")
		return
	}
	if !h.allow(w, v, "code-verify:ip:"+v.clientIP(), h.limits.CodeVerificationsPerIP) {
		return
	}
	f := newForm(nil) // the code is never written back into the form
	again := func(msg string) {
		d, ok := h.codeState(w, v)
		if !ok {
			return
		}
		if msg != "" {
			f.fail("code", msg)
		}
		h.renderPre(w, v, http.StatusUnprocessableEntity, "code", "title.code", d, f)
	}
	code, ok := auth.ParseCode(v.r.PostForm.Get("code"), pol.Length)
	if !ok {
		again("form.code_format")
		return
	}
	email, err := h.auth.VerifyCode(v.ctx, v.key, handle, code, pol)
	var wrong *auth.WrongCodeError
	switch {
	case errors.As(err, &wrong):
		h.metrics.login("code", "wrong_code")
		again("login.code_wrong")
		return
	case errors.Is(err, auth.ErrLocked):
		h.metrics.login("code", "locked")
		h.log.Warn("login challenge locked after too many wrong codes", "portal", v.portal.Name)
		again("")
		return
	case errors.Is(err, auth.ErrCodeExpired):
		h.metrics.login("code", "expired")
		again("login.code_expired")
		return
	case errors.Is(err, auth.ErrNoChallenge):
		v.cookies.clear(w, cookieChallenge)
		redirect(w, v, "/login")
		return
	case err != nil:
		h.internal(w, v, err)
		return
	}
	v.cookies.clear(w, cookieChallenge)
	h.rememberBrowser(w, v, email)
	customers, err := h.customersByEmail(v.ctx, email)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	if len(customers) == 0 {
		// Codes go only to customers' addresses, so the customer was removed meanwhile.
		h.metrics.login("code", "no_customer")
		h.fail(w, v, http.StatusForbidden, "error.no_account")
		return
	}
	ns := auth.NewSession{Portal: v.key, Email: email, Method: auth.MethodCode}
	if len(customers) == 1 {
		ns.CustomerID = customers[0].ID
	}
	if !h.startSession(w, v, ns) {
		return
	}
	h.metrics.login("code", "success")
	h.log.Info("signed in with a one-time code", "customer", ns.CustomerID, "accounts", len(customers))
	if ns.CustomerID == "" {
		redirect(w, v, "/login/choose")
		return
	}
	redirect(w, v, takeNext(w, v))
}

// startSession replaces whatever session the browser had with a new one; false means an
// error page was sent.
func (h *Handler) startSession(w http.ResponseWriter, v *visit, ns auth.NewSession) bool {
	if old := v.cookies.get(v.r, cookieSession); old != "" {
		if sess, err := h.auth.Session(v.ctx, v.key, old); err == nil {
			if err := h.auth.EndSession(v.ctx, sess.ID); err != nil {
				h.internal(w, v, err)
				return false
			}
			h.metrics.sessionEnded("replaced")
		}
	}
	cookie, _, err := h.auth.CreateSession(v.ctx, ns)
	if err != nil {
		h.internal(w, v, err)
		return false
	}
	// No Max-Age: the cookie dies with the browser, the server enforces the timeouts.
	v.cookies.set(w, cookieSession, cookie, 0)
	h.metrics.sessionCreated(string(ns.Method))
	return true
}

func (h *Handler) codeResend(w http.ResponseWriter, v *visit) {
	if h.publicOff(w, v) || !h.checkPreCSRF(w, v) {
		return
	}
	handle := v.cookies.get(v.r, cookieChallenge)
	if handle == "" {
		redirect(w, v, "/login")
		return
	}
	if !h.allow(w, v, "code-requests:ip:"+v.clientIP(), h.limits.CodeRequestsPerIP) {
		return
	}
	iss, err := h.auth.Resend(v.ctx, v.key, handle, h.requester(v), h.codePolicy(v.portal))
	switch {
	case errors.Is(err, auth.ErrNoChallenge):
		v.cookies.clear(w, cookieChallenge)
		redirect(w, v, "/login")
		return
	case errors.Is(err, auth.ErrLocked):
		redirect(w, v, "/login/code")
		return
	case err != nil:
		h.internal(w, v, err)
		return
	}
	customers, err := h.customersByEmail(v.ctx, iss.Email)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.deliverCode(v, iss, len(customers) > 0)
	if iss.Code != "" {
		redirect(w, v, "/login/code?resent=1")
		return
	}
	redirect(w, v, "/login/code")
}

type chooseData struct {
	Accounts []ledger.Customer
}

// choosePage lets a person whose address several customers share pick the account.
func (h *Handler) choosePage(w http.ResponseWriter, v *visit) {
	accounts, ok := h.chooseState(w, v)
	if !ok {
		return
	}
	h.render(w, v, http.StatusOK, "choose", "title.choose", chooseData{Accounts: accounts})
}

// chooseState loads the session waiting for a choice and its candidate accounts.
func (h *Handler) chooseState(w http.ResponseWriter, v *visit) ([]ledger.Customer, bool) {
	ended, err := h.loadSession(w, v)
	switch {
	case err != nil:
		h.internal(w, v, err)
		return nil, false
	case v.sess == nil && ended:
		h.sessionEnded(w, v)
		return nil, false
	case v.sess == nil:
		h.toSignIn(w, v)
		return nil, false
	case v.customer != nil:
		redirect(w, v, "/")
		return nil, false
	}
	accounts, err := h.customersByEmail(v.ctx, v.sess.Email)
	if err != nil {
		h.internal(w, v, err)
		return nil, false
	}
	if len(accounts) == 0 {
		_ = h.auth.EndSession(v.ctx, v.sess.ID)
		v.cookies.clear(w, cookieSession)
		v.sess = nil
		h.fail(w, v, http.StatusForbidden, "error.no_account")
		return nil, false
	}
	return accounts, true
}

func (h *Handler) chooseSubmit(w http.ResponseWriter, v *visit) {
	accounts, ok := h.chooseState(w, v)
	if !ok || !h.checkSessionCSRF(w, v) {
		return
	}
	id := v.r.PostForm.Get("customer")
	for _, c := range accounts {
		if c.ID == id {
			if err := h.auth.ChooseCustomer(v.ctx, v.sess.ID, c.ID); err != nil {
				h.internal(w, v, err)
				return
			}
			h.log.Info("account chosen", "customer", c.ID, "portal_session", v.sess.PortalSession)
			if v.psess != nil {
				redirect(w, v, flowTarget(v.portal, v.psess))
				return
			}
			redirect(w, v, takeNext(w, v))
			return
		}
	}
	f := newForm(nil)
	f.fail("customer", "form.choose_account")
	h.renderForm(w, v, http.StatusUnprocessableEntity, "choose", "title.choose", chooseData{Accounts: accounts}, f)
}
