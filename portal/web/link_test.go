package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

func TestSessionLink(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane Doe")
	ps, tok := f.session("jane", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	link := "/s/" + tok
	b := f.browser()

	t.Run("GET shows a button and opens nothing", func(t *testing.T) {
		for i := 0; i < 2; i++ { // a mail scanner, then the person: neither burns the link
			r := b.get(link)
			wantStatus(t, r, http.StatusOK)
			wantBody(t, r, `action="`+link+`"`, "Continuar")
			if got := r.Header.Get("Referrer-Policy"); got != "no-referrer" {
				t.Fatalf("Referrer-Policy = %q", got)
			}
			if b.cookies["__Host-portero"] != "" {
				t.Fatal("a GET created a browser session")
			}
		}
		wantRedirect(t, b.get("/"), "/login")
	})

	t.Run("POST without the CSRF token is refused", func(t *testing.T) {
		wantStatus(t, b.forge(link, nil), http.StatusForbidden)
		if b.cookies["__Host-portero"] != "" {
			t.Fatal("session created")
		}
	})

	t.Run("POST exchanges the link for a browser session", func(t *testing.T) {
		b.get(link)
		r := b.submit(link, nil)
		wantRedirect(t, r, "/")
		if r.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatal("the exchange response may leak the token in a referrer")
		}
		r = b.get("/")
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, "Hola, Jane Doe")
		sess, err := f.auth.Session(f.ctx, f.portal.Namespace+"/"+f.portal.Name, b.cookies["__Host-portero"])
		if err != nil || sess.PortalSession != ps.Name || sess.CustomerID != c.ID || !sess.ExpiresAt.Equal(ps.Status.ExpiresAt.Time) {
			t.Fatalf("browser session = %+v, %v", sess, err)
		}
	})

	other := f.browser()
	t.Run("the link works again while usable", func(t *testing.T) {
		other.get(link)
		wantRedirect(t, other.submit(link, nil), "/")
		wantStatus(t, other.get("/methods"), http.StatusOK)
	})

	t.Run("revoking ends every browser session at once", func(t *testing.T) {
		cur := &billingv1alpha1.PortalSession{}
		if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(ps), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.Revoked = true
		if err := k8s.Update(f.ctx, cur); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the informer sees the revocation", func() bool {
			s := f.rules.Session(f.ctx, ps.Name)
			return s != nil && s.Spec.Revoked
		})
		for _, br := range []*browser{b, other} {
			r := br.get("/methods")
			wantStatus(t, r, http.StatusUnauthorized)
			wantBody(t, r, "Tu sesión terminó", `href="/login"`)
			if br.cookies["__Host-portero"] != "" {
				t.Fatal("the cookie of a revoked session was kept")
			}
		}
		r := f.browser().get(link)
		wantStatus(t, r, http.StatusGone)
		// It recovers (afterExpiration.recovery defaults to Login): a code for its customer.
		wantBody(t, r, "Este enlace ya no funciona", "Enviarme un código", `value="jane@example.com"`)
	})

	if strings.Contains(f.logs.String(), tok) {
		t.Fatal("the token is in the logs")
	}
	if !strings.Contains(f.logs.String(), ps.Name) {
		t.Fatal("the session name is not in the logs")
	}
}

func TestExpiredAndUnknownLinks(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	_, tok := f.session("short", billingv1alpha1.CustomerReference{ID: c.ID}, nil, 10*time.Minute)
	b := f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/")
	// The browser session never outlives the link, even with the controller not running.
	f.clock.Step(10 * time.Minute)
	wantStatus(t, b.get("/"), http.StatusUnauthorized)
	r := f.browser().get("/s/" + tok)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "Este enlace venció", "Enviarme un código")

	for _, bad := range []string{"/s/" + strings.Repeat("A", 43), "/s/short", "/s/" + tok + "x", "/s/..%2f..%2fetc"} {
		r := f.browser().get(bad)
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, "Este enlace no es válido")
	}

	// Without public access the page does not offer the e-mail login.
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Access.Public.Enabled = new(bool) })
	r = f.browser().get("/s/" + tok)
	wantStatus(t, r, http.StatusGone)
	wantNoBody(t, r, `href="/login"`)
	wantBody(t, r, "Pedile un enlace nuevo")
}

func TestLinkDeepLinksAndCustomerResolution(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	p, err := f.ledger.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 150000, Currency: ledger.ARS, Description: "Plan Pro"})
	if err != nil || p.Status != ledger.PaymentIncomplete {
		t.Fatalf("payment = %+v, %v", p, err)
	}
	cases := []struct {
		name string
		flow *billingv1alpha1.Flow
		want string
	}{
		{"pay", &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCompletePayment, PaymentID: p.ID}, "/payments/" + p.ID},
		{"method", &billingv1alpha1.Flow{Type: billingv1alpha1.FlowUpdatePaymentMethod}, "/methods"},
		{"billing", &billingv1alpha1.Flow{Type: billingv1alpha1.FlowUpdateBillingInfo}, "/billing"},
		{"cancel", &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCancelSubscription, SubscriptionID: "sub_x"}, "/subscriptions/sub_x/cancel"},
	}
	for _, tc := range cases {
		_, tok := f.session(tc.name, billingv1alpha1.CustomerReference{ID: c.ID}, tc.flow, time.Hour)
		b := f.browser()
		b.get("/s/" + tok)
		wantRedirect(t, b.submit("/s/"+tok, nil), tc.want)
	}
	_, tok := f.session("pay-view", billingv1alpha1.CustomerReference{ID: c.ID}, cases[0].flow, time.Hour)
	b := f.browser()
	b.get("/s/" + tok)
	b.submit("/s/"+tok, nil)
	r := b.get("/payments/" + p.ID)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Plan Pro", "Para completar este pago")

	// By e-mail: one customer signs straight in; several choose; none is an error.
	_, tok = f.session("by-email", billingv1alpha1.CustomerReference{Email: "Jane@example.com"}, nil, time.Hour)
	b = f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/")
	f.customer("jane@example.com", "Jane SRL")
	b = f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/login/choose")
	wantBody(t, b.get("/login/choose"), "Jane SRL")

	_, tok = f.session("nobody", billingv1alpha1.CustomerReference{ID: "cus_missing"}, nil, time.Hour)
	b = f.browser()
	b.get("/s/" + tok)
	r = b.submit("/s/"+tok, url.Values{})
	wantStatus(t, r, http.StatusNotFound)
	wantBody(t, r, "no corresponde a ninguna cuenta")
}

func TestLinkSessionReturnURLOverride(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)
	wantBody(t, b.get("/"), `href="https://acme.example/account"`, "Volver a Acme Billing")

	ps, tok := f.session("ret", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	cur := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(ps), cur); err != nil {
		t.Fatal(err)
	}
	_ = cur
	// returnURL is immutable after creation, so make a session that has it from the start.
	s2 := &billingv1alpha1.PortalSession{}
	s2.Namespace, s2.Name = testNamespace, f.portal.Name+"-ret2"
	s2.Spec = billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: f.portal.Name},
		Customer: billingv1alpha1.CustomerReference{ID: c.ID}, ReturnURL: "https://app.acme.example/settings"}
	if err := k8s.Create(f.ctx, s2); err != nil {
		t.Fatal(err)
	}
	s2.Status = ps.Status
	s2.Status.TokenHash = hashToken(tok + "2")
	if err := k8s.Status().Update(f.ctx, s2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second session is seen", func() bool { return f.rules.SessionByTokenHash(f.ctx, hashToken(tok+"2")) != nil })
	b = f.browser()
	b.get("/s/" + tok + "2")
	wantRedirect(t, b.submit("/s/"+tok+"2", nil), "/")
	r := b.get("/")
	wantBody(t, r, `href="https://app.acme.example/settings"`)
	wantNoBody(t, r, `href="https://acme.example/account"`)
}

// awaitSignal is the portal's rules, telling the test when a link lookup starts waiting.
type awaitSignal struct {
	*rules.Rules
	waiting chan struct{}
}

func (a awaitSignal) AwaitSessionByTokenHash(ctx context.Context, hash string, wait time.Duration) *billingv1alpha1.PortalSession {
	if a.Rules.SessionByTokenHash(ctx, hash) == nil {
		a.waiting <- struct{}{}
	}
	return a.Rules.AwaitSessionByTokenHash(ctx, hash, wait)
}

// A merchant sends the customer to the link as soon as the link Secret exists, which the operator
// creates before it writes the session's token hash (and the informer lags anyway): the page
// waits for the session to be seen instead of calling the link unknown.
func TestLinkOpenedBeforeThePortalSeesItsSession(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	sig := awaitSignal{Rules: f.rules, waiting: make(chan struct{}, 1)}
	h, err := New(Options{Ledger: f.ledger.Store, Processors: f.procs, Auth: f.auth, Rules: sig, Mailer: SecretMailer{Reader: f.rules.Client},
		Clock: f.clock, LinkWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	f.h = h

	tok := auth.NewPreSession()
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: f.portal.Name + "-early"},
		Spec:       billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: f.portal.Name}, Customer: billingv1alpha1.CustomerReference{ID: c.ID}},
	}
	if err := k8s.Create(f.ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
	waitFor(t, "the informer sees the session, still without status", func() bool { return f.rules.Session(f.ctx, s.Name) != nil })

	b := f.browser()
	page := make(chan *response, 1)
	go func() { page <- b.do(http.MethodGet, "/s/"+tok, nil, nil) }()
	select {
	case <-sig.waiting:
	case r := <-page:
		t.Fatalf("answered before the session had its token hash: %d\n%s", r.Code, r.Body)
	}
	s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hashToken(tok),
		ExpiresAt: &metav1.Time{Time: f.clock.Now().Add(time.Hour)}}
	if err := k8s.Status().Update(f.ctx, s); err != nil {
		t.Fatal(err)
	}
	r := <-page
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `action="/s/`+tok+`"`, "Continuar")
	b.last = r
	wantRedirect(t, b.submit("/s/"+tok, nil), "/")

	// A token no session gets is still unknown once the wait is over.
	f.h, err = New(Options{Ledger: f.ledger.Store, Processors: f.procs, Auth: f.auth, Rules: f.rules, Mailer: SecretMailer{Reader: f.rules.Client},
		Clock: f.clock, LinkWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.h.Close(context.Background()) })
	r = f.browser().get("/s/" + auth.NewPreSession())
	wantStatus(t, r, http.StatusNotFound)
	wantBody(t, r, "Este enlace no es válido")
}

// storedEmail shows every PortalSession as naming the customer by email: a session stored while
// the schema accepted addresses the portal cannot use (a trailing dot, two dots in a row).
type storedEmail struct {
	Rules
	email string
}

func (s storedEmail) rename(ps *billingv1alpha1.PortalSession) *billingv1alpha1.PortalSession {
	if ps == nil {
		return nil
	}
	ps = ps.DeepCopy()
	ps.Spec.Customer = billingv1alpha1.CustomerReference{Email: s.email}
	return ps
}

func (s storedEmail) Session(ctx context.Context, name string) *billingv1alpha1.PortalSession {
	return s.rename(s.Rules.Session(ctx, name))
}

func (s storedEmail) AwaitSessionByTokenHash(ctx context.Context, hash string, wait time.Duration) *billingv1alpha1.PortalSession {
	return s.rename(s.Rules.AwaitSessionByTokenHash(ctx, hash, wait))
}

// A link whose e-mail the portal cannot use names nobody: refused, never read as "no filter"
// (which would offer every customer's account to whoever holds the link).
func TestLinkWithAnUnusableEmailNamesNobody(t *testing.T) {
	for _, email := range []string{"jane@example.com.", "a..b@example.com", "a,b@example.com", " "} {
		t.Run(email, func(t *testing.T) {
			f := newFixture(t, withRules(func(r Rules) Rules { return storedEmail{Rules: r, email: email} }))
			f.customer("jane@example.com", "Jane")
			f.customer("victim@example.com", "Víctima SA")
			_, tok := f.session("loose", billingv1alpha1.CustomerReference{Email: "jane@example.com"}, nil, time.Hour)
			b := f.browser()
			b.get("/s/" + tok)
			r := b.submit("/s/"+tok, url.Values{})
			wantStatus(t, r, http.StatusNotFound)
			wantBody(t, r, "no corresponde a ninguna cuenta")
			wantNoBody(t, r, "Víctima")
			r = b.get("/login/choose")
			wantNoBody(t, r, "Víctima", "Jane")
			wantStatus(t, b.get("/"), http.StatusSeeOther)
		})
	}
}

// Deleting a PortalSession ends its browser sessions, and a new object that takes the same name
// (for the same customer or another) does not bring them back: they stand on the object's UID.
func TestRecreatedSessionNameDoesNotReviveBrowserSessions(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane Doe")
	ps, tok := f.session("support", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	b := f.browser()
	b.get("/s/" + tok)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/")
	wantStatus(t, b.get("/"), http.StatusOK)

	if err := k8s.Delete(f.ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer sees the deletion", func() bool { return f.rules.Session(f.ctx, ps.Name) == nil })
	again, tok2 := f.session("support", billingv1alpha1.CustomerReference{ID: c.ID}, nil, 2*time.Hour)
	if again.Name != ps.Name || again.UID == ps.UID {
		t.Fatalf("not a new object under the same name: %s/%s vs %s/%s", again.Name, again.UID, ps.Name, ps.UID)
	}
	r := b.get("/")
	wantStatus(t, r, http.StatusUnauthorized)
	wantBody(t, r, "Tu sesión terminó")

	// The new object's own link works.
	nb := f.browser()
	nb.get("/s/" + tok2)
	wantRedirect(t, nb.submit("/s/"+tok2, nil), "/")
	wantStatus(t, nb.get("/"), http.StatusOK)
}
