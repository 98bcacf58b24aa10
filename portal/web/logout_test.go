package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/rules"
)

// exchange signs b in with a session link, as a customer pressing "Continue" does.
func exchange(t *testing.T, b *browser, tok string) {
	t.Helper()
	wantStatus(t, b.get("/s/"+tok), http.StatusOK)
	wantRedirect(t, b.submit("/s/"+tok, nil), "/")
}

// stored reads a PortalSession from the API server (not the portal's informer).
func stored(t *testing.T, ps *billingv1alpha1.PortalSession) *billingv1alpha1.PortalSession {
	t.Helper()
	cur := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ps), cur); err != nil {
		t.Fatal(err)
	}
	return cur
}

// Finding 5 of the outside review: on a shared computer, a customer signs out of the portal a
// link opened, and the next person opens the link again from the browser's history. Signing
// out ends the link: the PortalSession is revoked, saying why, and neither the link's page nor
// its "Continue" button signs anyone in again; the browser sessions the link opened elsewhere
// end too.
func TestSignOutOfALinkSessionRevokesTheLink(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane Doe")
	ps, tok := f.session("shared-pc", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	link := "/s/" + tok

	b := f.browser()
	exchange(t, b, tok)
	phone := f.browser() // the same link, opened on another device
	exchange(t, phone, tok)
	// The next person at the shared computer finds the link's page in the history; its
	// "Continue" form was loaded before the sign-out.
	next := f.browser()
	wantStatus(t, next.get(link), http.StatusOK)

	wantStatus(t, b.get("/"), http.StatusOK)
	out := b.submit("/logout", nil)
	wantStatus(t, out, http.StatusOK)
	if b.cookies["__Host-portero"] != "" {
		t.Fatal("cookie kept after sign-out")
	}

	// At once, whatever the informer has seen yet (see the test below for a portal whose
	// informer never sees it).
	if got := stored(t, ps); !got.Spec.Revoked || got.Spec.RevocationReason != "customer signed out" {
		t.Errorf("PortalSession after sign-out: revoked %v, reason %q", got.Spec.Revoked, got.Spec.RevocationReason)
	}
	r := next.submit(link, nil)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "Este enlace ya no funciona")
	if next.cookies["__Host-portero"] != "" {
		t.Fatal("the link signed the next person in after the customer signed out")
	}
	wantStatus(t, f.browser().get(link), http.StatusGone)
	wantBody(t, out, "Cerraste sesión", "El enlace de acceso con el que entraste quedó desactivado")
	wantNoBody(t, out, "No pudimos desactivar")
	r = phone.get("/methods")
	wantStatus(t, r, http.StatusUnauthorized)
	wantBody(t, r, "Tu sesión terminó")

	logs := f.logs.String()
	if strings.Contains(logs, tok) {
		t.Fatal("the token is in the logs")
	}
	if !strings.Contains(logs, "session link revoked at sign-out") || !strings.Contains(logs, ps.Name) {
		t.Errorf("the revocation is not logged with the session's name:\n%s", logs)
	}
}

// The portal that revoked the link refuses it at once, before its informer delivers the
// revocation: here the informer is stopped after the link was exchanged, so it never does.
func TestSignOutRevokesTheLinkBeforeTheInformerSeesIt(t *testing.T) {
	f := newFixture(t)
	informerCtx, stopInformer := context.WithCancel(f.ctx)
	defer stopInformer()
	rl, err := rules.Start(informerCtx, env.Config, types.NamespacedName{Namespace: testNamespace, Name: f.portal.Name})
	if err != nil {
		t.Fatal(err)
	}
	f.h, err = New(Options{Ledger: f.ledger.Store, Processors: f.procs, Auth: f.auth, Rules: rl, Mailer: SecretMailer{Reader: rl.Client},
		Clock: f.clock, Logger: f.h.log, LinkWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.h.Close(context.Background()) })
	c := f.customer("jane@example.com", "Jane Doe")
	ps, tok := f.session("frozen", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	waitFor(t, "the second view sees the session", func() bool {
		s := rl.Session(f.ctx, ps.Name)
		return s != nil && rules.Usable(s, f.clock.Now())
	})

	b := f.browser()
	exchange(t, b, tok)
	next := f.browser()
	wantStatus(t, next.get("/s/"+tok), http.StatusOK)
	stopInformer()

	b.get("/")
	out := b.submit("/logout", nil)
	if !stored(t, ps).Spec.Revoked {
		t.Error("the PortalSession was not revoked")
	}
	r := next.submit("/s/"+tok, nil)
	if next.cookies["__Host-portero"] != "" {
		t.Fatal("the link signed in again before the informer saw its revocation")
	}
	wantStatus(t, r, http.StatusGone)
	wantBody(t, out, "quedó desactivado")
	if s := rl.Session(f.ctx, ps.Name); s == nil || !s.Spec.Revoked || s.Spec.RevocationReason != rules.ReasonSignedOut {
		t.Fatalf("the portal's view of the session: %+v", s)
	}
}

// A code-login session stands on no PortalSession: signing out of it revokes none, not even
// a live link of the same customer.
func TestSignOutOfACodeSessionChangesNoPortalSession(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane Doe")
	ps, tok := f.session("untouched", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	before := stored(t, ps)

	b := f.browser()
	b.signIn(c)
	r := b.submit("/logout", nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Cerraste sesión")
	wantNoBody(t, r, "enlace de acceso")
	if after := stored(t, ps); after.ResourceVersion != before.ResourceVersion || after.Spec.Revoked {
		t.Fatalf("signing out of a code session changed a PortalSession: %+v", after.Spec)
	}
	exchange(t, f.browser(), tok)
}

// With the API server out of reach, signing out still signs out; the customer is told that the
// link still works, and until when, and the portal logs a warning (never the token).
func TestSignOutWhenKubernetesIsUnreachable(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane Doe")
	ps, tok := f.session("unreachable", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	b := f.browser()
	exchange(t, b, tok)
	en := f.browser()
	exchange(t, en, tok)

	// Nothing listens on port 1: the portal's writes to Kubernetes are refused at connect.
	down := rest.CopyConfig(env.Config)
	down.Host = "https://127.0.0.1:1"
	dead, err := client.New(down, client.Options{Scheme: env.Scheme, Mapper: f.rules.Client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	f.rules.Client = dead

	b.get("/")
	r := b.submit("/logout", nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Cerraste sesión", "No pudimos desactivar el enlace de acceso con el que entraste",
		"todavía abre el portal hasta el "+formatDateTime("es", ps.Status.ExpiresAt.Time), "borrá el historial del navegador")
	if b.cookies["__Host-portero"] != "" {
		t.Fatal("cookie kept after sign-out")
	}
	wantRedirect(t, b.get("/methods"), "/login")

	wantRedirect(t, en.get("/?lang=en"), "/")
	en.get("/")
	r = en.submit("/logout", nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "We could not disable the access link you signed in with", "it still opens the portal until "+formatDateTime("en", ps.Status.ExpiresAt.Time))

	if stored(t, ps).Spec.Revoked {
		t.Fatal("revoked through an unreachable API server?")
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "sign-out could not disable the session link") || !strings.Contains(logs, ps.Name) {
		t.Errorf("no warning with the session's name:\n%s", logs)
	}
	if strings.Contains(logs, tok) {
		t.Fatal("the token is in the logs")
	}
}
