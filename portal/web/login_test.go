package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/mail"
)

var codeRE = regexp.MustCompile(`(?m)^\s*(\d{6,10})\s*$`)

// codes returns the login codes Mailpit received for to, oldest first, once there are n.
func (f *fixture) codes(to string, n int) []string {
	f.t.Helper()
	f.h.Wait()
	var out []string
	waitFor(f.t, "Mailpit has the code e-mails", func() bool {
		msgs, err := f.mailpit.Messages(to)
		if err != nil || len(msgs) < n {
			return false
		}
		out = out[:0]
		for i := len(msgs) - 1; i >= 0; i-- { // Mailpit lists newest first
			m, err := f.mailpit.Message(msgs[i].ID)
			if err != nil {
				return false
			}
			match := codeRE.FindStringSubmatch(m.Text)
			if match == nil {
				f.t.Fatalf("no code in the e-mail:\n%s", m.Text)
			}
			if !strings.Contains(m.Subject, "Acme Billing") || strings.Contains(m.Subject, match[1]) {
				f.t.Fatalf("subject %q: must name the portal and must not carry the code", m.Subject)
			}
			out = append(out, match[1])
		}
		return true
	})
	return out
}

func wrongCode(code string) string {
	b := []byte(code)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+1)%10
	}
	return string(b)
}

func TestEmailLoginAgainstMailpit(t *testing.T) {
	f := newFixture(t, withMailpit())
	f.customer("jane@example.com", "Jane Doe")
	b := f.browser()

	r := b.get("/login")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Ingresá a Acme Billing", `autocomplete="email"`)
	wantRedirect(t, b.submit("/login", url.Values{"email": {"  Jane@Example.com "}}), "/login/code")
	r = b.get("/login/code")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "jane@example.com", `autocomplete="one-time-code"`, "Te quedan 3 intentos")
	code := f.codes("jane@example.com", 1)[0]
	if strings.Contains(f.logs.String(), code) {
		t.Fatal("the code is in the logs")
	}

	t.Run("wrong code is counted", func(t *testing.T) {
		r := b.submit("/login/code", url.Values{"code": {wrongCode(code)}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantFieldError(t, r, "code")
		wantBody(t, r, "El código no es correcto", "Te quedan 2 intentos")
		if _, ok := b.cookies["__Host-portero"]; ok {
			t.Fatal("a wrong code opened a session")
		}
		// Not a code at all: a field error that spends no attempt.
		r = b.submit("/login/code", url.Values{"code": {"12ab56"}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantBody(t, r, "solo números", "Te quedan 2 intentos")
	})

	challenge := b.cookies["__Host-portero-login"]
	pre, preToken := b.cookies["__Host-portero-pre"], b.csrf()

	t.Run("right code signs in, once", func(t *testing.T) {
		r := b.submit("/login/code", url.Values{"code": {code[:3] + " " + code[3:]}})
		wantRedirect(t, r, "/")
		if b.cookies["__Host-portero"] == "" {
			t.Fatal("no session cookie")
		}
		if _, ok := b.cookies["__Host-portero-login"]; ok {
			t.Fatal("the challenge cookie outlived the login")
		}
		wantBody(t, b.get("/"), "Hola, Jane Doe")
		// The same code again, with the same challenge, from a copy of the browser.
		replay := f.browser()
		replay.cookies["__Host-portero-login"], replay.cookies["__Host-portero-pre"] = challenge, pre
		r = replay.do(http.MethodPost, "/login/code", url.Values{"code": {code}, "csrf": {preToken}}, nil)
		wantRedirect(t, r, "/login")
		if replay.cookies["__Host-portero"] != "" {
			t.Fatal("a used code opened a second session")
		}
	})

	t.Run("lockout after maxAttempts", func(t *testing.T) {
		f.clock.Step(31 * time.Second) // past the resend cooldown
		b := f.browser()
		b.get("/login")
		wantRedirect(t, b.submit("/login", url.Values{"email": {"jane@example.com"}}), "/login/code")
		b.get("/login/code")
		code := f.codes("jane@example.com", 2)[1]
		for i := 0; i < 2; i++ {
			wantStatus(t, b.submit("/login/code", url.Values{"code": {wrongCode(code)}}), http.StatusUnprocessableEntity)
		}
		r := b.submit("/login/code", url.Values{"code": {wrongCode(code)}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantBody(t, r, "demasiados intentos", `href="/login"`)
		wantNoBody(t, r, `name="code"`)
		r = b.do(http.MethodPost, "/login/code", url.Values{"code": {code}, "csrf": {preToken}}, nil)
		if r.Code == http.StatusSeeOther || b.cookies["__Host-portero"] != "" {
			t.Fatalf("the right code worked after the lockout: %d", r.Code)
		}
		if got := testutil.ToFloat64(f.h.metrics.logins.WithLabelValues("code", "locked")); got != 1 {
			t.Fatalf("locked logins metric = %v", got)
		}
	})

	t.Run("resend waits for the cooldown", func(t *testing.T) {
		f.clock.Step(31 * time.Second)
		b := f.browser()
		b.ip = "198.51.100.44" // the first IP had its hour's three codes for the address
		b.get("/login")
		b.submit("/login", url.Values{"email": {"jane@example.com"}})
		b.get("/login/code")
		f.codes("jane@example.com", 3)
		wantRedirect(t, b.submit("/login/resend", nil), "/login/code")
		wantBody(t, b.get("/login/code"), "Podés pedir otro código en 30 segundos")
		f.clock.Step(30 * time.Second)
		wantRedirect(t, b.submit("/login/resend", nil), "/login/code?resent=1")
		wantBody(t, b.get("/login/code?resent=1"), "Te enviamos un código nuevo")
		codes := f.codes("jane@example.com", 4)
		wantRedirect(t, b.submit("/login/code", url.Values{"code": {codes[3]}}), "/")
	})

	if got := testutil.ToFloat64(f.h.metrics.codes.WithLabelValues("sent")); got != 4 {
		t.Fatalf("codes sent metric = %v, want 4", got)
	}
}

// The response to an address nobody has is the response to a customer's: same status, same
// redirect, same cookies, same page; only no e-mail goes out.
func TestLoginDoesNotRevealWhoIsACustomer(t *testing.T) {
	f := newFixture(t, withMailpit())
	f.customer("jane@example.com", "Jane")
	type outcome struct {
		post, page *response
		cookies    []string
	}
	try := func(email string) outcome {
		b := f.browser()
		b.get("/login")
		post := b.submit("/login", url.Values{"email": {email}})
		page := b.get("/login/code")
		var names []string
		for k := range b.cookies {
			names = append(names, k)
		}
		return outcome{post: post, page: page, cookies: names}
	}
	known, unknown := try("jane@example.com"), try("nobody@example.com")
	if known.post.Code != unknown.post.Code || known.post.location() != unknown.post.location() || len(known.cookies) != len(unknown.cookies) {
		t.Fatalf("known → %d %q %v; unknown → %d %q %v", known.post.Code, known.post.location(), known.cookies,
			unknown.post.Code, unknown.post.location(), unknown.cookies)
	}
	normalize := func(r *response, email string) string {
		return csrfRE.ReplaceAllString(strings.ReplaceAll(r.Body, email, "EMAIL"), "CSRF")
	}
	if normalize(known.page, "jane@example.com") != normalize(unknown.page, "nobody@example.com") {
		t.Fatalf("the code pages differ:\n%s\n----\n%s", known.page.Body, unknown.page.Body)
	}
	f.codes("jane@example.com", 1)
	if msgs, _ := f.mailpit.Messages("nobody@example.com"); len(msgs) != 0 {
		t.Fatalf("an unknown address got %d e-mails", len(msgs))
	}
	if got := testutil.ToFloat64(f.h.metrics.codes.WithLabelValues("not_sent_unknown_email")); got != 1 {
		t.Fatalf("unknown-address metric = %v", got)
	}
}

// blockingSender holds every message until released, to show the response does not wait for
// SMTP (so its timing cannot tell customers from strangers either).
type blockingSender struct{ release chan struct{} }

func (s blockingSender) Send(ctx context.Context, _ mail.Message) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestCodeIsSentAfterTheResponse(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	f.h.mailer = MailerFunc(func(context.Context, *billingv1alpha1.CustomerPortal) (mail.Sender, error) {
		return blockingSender{release: release}, nil
	})
	f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.get("/login")
	// The SMTP send is still blocked when the response is complete.
	wantRedirect(t, b.submit("/login", url.Values{"email": {"jane@example.com"}}), "/login/code")
	close(release)
	f.h.Wait()
	if got := testutil.ToFloat64(f.h.metrics.codes.WithLabelValues("sent")); got != 1 {
		t.Fatalf("sent = %v", got)
	}
}

func TestSMTPFailureIsCountedNotShown(t *testing.T) {
	f := newFixture(t) // its SMTP Secret points at port 1, where nothing listens
	f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.get("/login")
	wantRedirect(t, b.submit("/login", url.Values{"email": {"jane@example.com"}}), "/login/code")
	f.h.Wait()
	if got := testutil.ToFloat64(f.h.metrics.codes.WithLabelValues("failed")); got != 1 {
		t.Fatalf("failed = %v", got)
	}
	wantStatus(t, b.get("/login/code"), http.StatusOK)
}

func TestSeveralCustomersShareAnEmail(t *testing.T) {
	f := newFixture(t, withMailpit())
	f.customer("shared@example.com", "Personal")
	work := f.customer("shared@example.com", "Empresa SA")
	stranger := f.customer("other@example.com", "Other")
	b := f.browser()
	b.get("/login")
	b.submit("/login", url.Values{"email": {"shared@example.com"}})
	b.get("/login/code")
	code := f.codes("shared@example.com", 1)[0]
	wantRedirect(t, b.submit("/login/code", url.Values{"code": {code}}), "/login/choose")
	// Before choosing, nothing inside opens.
	wantRedirect(t, b.get("/methods"), "/login/choose")
	wantRedirect(t, b.get("/"), "/login/choose")
	r := b.get("/login/choose")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Personal", "Empresa SA")
	wantNoBody(t, r, stranger.ID)
	wantStatus(t, b.forge("/login/choose", url.Values{"customer": {work.ID}}), http.StatusForbidden)
	r = b.submit("/login/choose", url.Values{"customer": {stranger.ID}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantBody(t, r, `id="customer-error"`, "Elegí una de las cuentas")
	wantRedirect(t, b.submit("/login/choose", url.Values{"customer": {work.ID}}), "/")
	wantBody(t, b.get("/"), "Hola, Empresa SA")
}

func TestLoginFormsRefuseBadInput(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.get("/login")
	r := b.submit("/login", url.Values{"email": {"not an address"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantFieldError(t, r, "email")
	wantBody(t, r, `value="not an address"`)
	for _, path := range []string{"/login", "/login/code", "/login/resend"} {
		wantStatus(t, b.forge(path, url.Values{"email": {"jane@example.com"}}), http.StatusForbidden)
		r := b.do(http.MethodPost, path, url.Values{"email": {"jane@example.com"}, "csrf": {"forged"}}, nil)
		wantStatus(t, r, http.StatusForbidden)
	}
	// Without a challenge the code page sends the visitor back to the start.
	wantRedirect(t, b.get("/login/code"), "/login")
}

func TestCodeRequestsAreRateLimitedPerIP(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.get("/login")
	limit := f.h.limits.CodeRequestsPerIP.Hits
	for i := 0; i < limit; i++ {
		wantRedirect(t, b.submit("/login", url.Values{"email": {"someone@example.com"}}), "/login/code")
	}
	r := b.submit("/login", url.Values{"email": {"someone@example.com"}})
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	other := f.browser()
	other.ip = "198.51.100.9"
	other.get("/login")
	wantRedirect(t, other.submit("/login", url.Values{"email": {"someone@example.com"}}), "/login/code")
}

func TestPublicAccessOff(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Access.Public.Enabled = new(bool) })
	// The e-mail login is gone, and so is the session it opened.
	r := b.get("/")
	wantStatus(t, r, http.StatusUnauthorized)
	wantBody(t, r, "Tu sesión terminó")
	wantNoBody(t, r, `href="/login"`)
	anon := f.browser()
	r = anon.get("/login")
	wantStatus(t, r, http.StatusNotFound)
	wantBody(t, r, "Este portal se abre con un enlace", "ayuda@acme.example")
	wantStatus(t, anon.get("/"), http.StatusUnauthorized)
	wantStatus(t, anon.forge("/login", url.Values{"email": {"jane@example.com"}}), http.StatusNotFound)
}

func TestSignOut(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)
	wantStatus(t, b.forge("/logout", nil), http.StatusForbidden)
	r := b.submit("/logout", nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Cerraste sesión")
	if b.cookies["__Host-portero"] != "" {
		t.Fatal("cookie kept after sign-out")
	}
	wantRedirect(t, b.get("/methods"), "/login")
}

func TestIdleAndAbsoluteTimeouts(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)
	f.clock.Step(29 * time.Minute)
	wantStatus(t, b.get("/methods"), http.StatusOK)
	f.clock.Step(31 * time.Minute)
	r := b.get("/methods")
	wantStatus(t, r, http.StatusUnauthorized)
	wantBody(t, r, "Tu sesión terminó", `href="/login"`)

	b.signIn(c)
	elapsed := time.Duration(0)
	for elapsed+25*time.Minute < 12*time.Hour { // active every 25 minutes
		f.clock.Step(25 * time.Minute)
		elapsed += 25 * time.Minute
		wantStatus(t, b.get("/"), http.StatusOK)
	}
	f.clock.Step(25 * time.Minute) // past 12 hours since sign-in, however active
	wantStatus(t, b.get("/"), http.StatusUnauthorized)
}

// A signed-out visitor who opens a page inside (an e-mailed link to a payment, a bookmark) is
// taken back to it once the code signs them in — and only ever to a page of this portal.
func TestSignInLeadsBackToTheRequestedPage(t *testing.T) {
	f := newFixture(t, withMailpit())
	f.customer("jane@example.com", "Jane Doe")
	f.customer("shared@example.com", "Personal")
	work := f.customer("shared@example.com", "Empresa SA")
	sent := map[string]int{}
	signIn := func(t *testing.T, b *browser, email string) *response {
		t.Helper()
		f.clock.Step(31 * time.Second) // past the resend cooldown of the previous sign-in
		b.get("/login")
		wantRedirect(t, b.submit("/login", url.Values{"email": {email}}), "/login/code")
		b.get("/login/code")
		sent[email]++
		code := f.codes(email, sent[email])[sent[email]-1]
		return b.submit("/login/code", url.Values{"code": {code}})
	}

	t.Run("back to the page asked for", func(t *testing.T) {
		b := f.browser()
		wantRedirect(t, b.get("/payments/due?from=mail"), "/login")
		wantRedirect(t, signIn(t, b, "jane@example.com"), "/payments/due?from=mail")
		if _, ok := b.cookies["__Host-"+cookieNext]; ok {
			t.Fatal("the remembered page outlived the sign-in")
		}
		// Used once: the next sign-in goes to the overview.
		b.get("/")
		wantStatus(t, b.submit("/logout", nil), http.StatusOK)
		wantRedirect(t, signIn(t, b, "jane@example.com"), "/")
	})

	t.Run("through the account choice", func(t *testing.T) {
		b := f.browser()
		wantRedirect(t, b.get("/subscriptions"), "/login")
		wantRedirect(t, signIn(t, b, "shared@example.com"), "/login/choose")
		b.get("/login/choose")
		wantRedirect(t, b.submit("/login/choose", url.Values{"customer": {work.ID}}), "/subscriptions")
	})

	t.Run("a session link goes where it says and forgets the page", func(t *testing.T) {
		c := f.customer("linked@example.com", "Linked")
		_, tok := f.session("linked", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
		b := f.browser()
		wantRedirect(t, b.get("/subscriptions"), "/login")
		b.get("/s/" + tok)
		wantRedirect(t, b.submit("/s/"+tok, nil), "/")
		if _, ok := b.cookies["__Host-"+cookieNext]; ok {
			t.Fatal("the remembered page outlived a link sign-in: a later code sign-in would go there")
		}
	})

	t.Run("a POST is not remembered", func(t *testing.T) {
		b := f.browser()
		b.get("/login")
		wantStatus(t, b.do(http.MethodPost, "/billing", url.Values{"csrf": {b.csrf()}}, nil), http.StatusForbidden)
		if _, ok := b.cookies["__Host-"+cookieNext]; ok {
			t.Fatal("a refused POST was remembered")
		}
	})

	t.Run("never another site", func(t *testing.T) {
		// Planted by hand (or by a sibling site): a code lands on the overview all the same.
		var planted []string
		for _, to := range []string{"//evil.example/x", "/\\evil.example", "https://evil.example/", "/login/code", "/s/abc", "not-a-path"} {
			planted = append(planted, base64.RawURLEncoding.EncodeToString([]byte(to)))
		}
		for i, cookie := range append(planted, "!!not base64!!") {
			email := fmt.Sprintf("planted%d@example.com", i)
			f.customer(email, "Planted")
			b := f.browser()
			b.cookies["__Host-"+cookieNext] = cookie
			wantRedirect(t, signIn(t, b, email), "/")
		}
	})
}

func TestLocalTarget(t *testing.T) {
	for in, want := range map[string]string{
		"/payments/p_1":          "/payments/p_1",
		"/payments/due?from=m#x": "/payments/due?from=m",
		"/":                      "/",
		"//evil.example":         "",
		"/\\evil.example":        "",
		"/%5Cevil":               "",
		"/payments/":             "/payments/",
		"/a//b":                  "",
		"https://evil.example/":  "",
		"javascript:alert(1)":    "",
		"/login":                 "",
		"/login/code":            "",
		"/loginx":                "/loginx",
		"/s/tok":                 "",
		"/logout":                "",
		"/static/app.css":        "",
		"/a b":                   "",
		"/a\nb":                  "",
		// Re-encoding must not make "//": Go rebuilds the path from its decoded form when
		// a character needs escaping.
		"/%2Fevil.example/|":        "",
		"/%2F%2Fevil/|":             "",
		"/%2Fevil.example/x":        "",
		"/./login":                  "",
		"/payments/../login/choose": "",
		"/%2E%2E//evil":             "",
		"/S/tok":                    "/S/tok",
		"":                          "",
	} {
		got, ok := localTarget(in)
		if ok != (want != "") || got != want {
			t.Errorf("localTarget(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
