package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

func TestPageCacheBounds(t *testing.T) {
	c := newPageCache(1000)
	c.maxPages = 3
	st := pageStamp{customer: "cus_1", version: 1}
	page := func(n int) []byte { return []byte(strings.Repeat("x", n)) }

	c.put("s1", st, "csp", page(100))
	if p, ok := c.get("s1", st); !ok || string(p.body) != string(page(100)) || p.csp != "csp" {
		t.Fatalf("get after put = %v, %v", p, ok)
	}
	// Any difference in the stamp is a miss.
	for _, other := range []pageStamp{
		{customer: "cus_1", version: 2}, {customer: "cus_2", version: 1}, {customer: "cus_1", version: 1, locale: "en"},
		{customer: "cus_1", version: 1, portalRV: "2"}, {customer: "cus_1", version: 1, linkRV: "2"},
		{customer: "cus_1", version: 1, csrf: "t"}, {customer: "cus_1", version: 1, day: 1},
	} {
		if _, ok := c.get("s1", other); ok {
			t.Errorf("hit for stamp %+v, page stamped %+v", other, st)
		}
	}
	if _, ok := c.get("s2", st); ok {
		t.Error("another session got s1's page")
	}

	// The cache keeps its own copy.
	b := page(10)
	c.put("s2", st, "", b)
	b[0] = 'y'
	if p, _ := c.get("s2", st); p.body[0] != 'x' {
		t.Error("the cached page changed with the caller's buffer")
	}

	// Bounded by entries, least recently used out first.
	c.put("s3", st, "", page(10))
	c.get("s1", st)
	c.put("s4", st, "", page(10))
	if _, ok := c.get("s2", st); ok {
		t.Error("s2, least recently used, was kept beyond maxPages")
	}
	if n, _ := c.len(); n != 3 {
		t.Errorf("%d pages kept, want 3", n)
	}
	// Bounded by bytes.
	c.maxPages = 100
	for i := range 20 {
		c.put(fmt.Sprint("b", i), st, "", page(200))
	}
	if n, bytes := c.len(); bytes > 1000 || n != 5 {
		t.Errorf("%d pages of %d bytes kept, bound 1000", n, bytes)
	}
	// A page over a quarter of the cache is not kept, and drops what the session had.
	c.put("b19", st, "", page(300))
	if _, ok := c.get("b19", st); ok {
		t.Error("an outsized page was kept")
	}
	// Replacing a session's page accounts its bytes once.
	c.put("b18", st, "", page(100))
	c.put("b18", st, "", page(100))
	if n, bytes := c.len(); bytes != 100+3*200 || n != 4 {
		t.Errorf("after replacing: %d pages, %d bytes", n, bytes)
	}
	c.forget("b18")
	if _, ok := c.get("b18", st); ok {
		t.Error("forgotten page served")
	}
	var off *pageCache
	off.forget("x")
	if _, ok := off.stamp(&visit{}); ok {
		t.Error("a disabled cache stamps pages")
	}
}

// The overview's stamp changes at UTC midnight and with nothing finer.
func TestPageStampDay(t *testing.T) {
	c := newPageCache(1 << 20)
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{UID: "u", ResourceVersion: "1"}}
	stamp := func(now time.Time) pageStamp {
		s, ok := c.stamp(&visit{now: now, portal: p, sess: &auth.Session{CSRFToken: "t"}, customer: &ledger.Customer{ID: "cus_1"}})
		if !ok {
			t.Fatal("not cacheable")
		}
		return s
	}
	day := time.Date(2026, time.March, 4, 0, 0, 0, 0, time.UTC)
	if stamp(day) != stamp(day.Add(24*time.Hour-time.Nanosecond)) {
		t.Error("stamps differ within a UTC day")
	}
	if stamp(day) == stamp(day.Add(-time.Nanosecond)) {
		t.Error("stamps equal across midnight")
	}
	old := time.Date(1969, time.December, 31, 12, 0, 0, 0, time.UTC)
	if stamp(old) == stamp(old.Add(12*time.Hour)) {
		t.Error("stamps equal across midnight before 1970")
	}
}

// uncached is a second handler on the fixture's stores and rules that keeps no pages: what
// the overview is when rendered afresh.
func (f *fixture) uncached() *Handler {
	f.t.Helper()
	h, err := New(Options{Ledger: f.ledger.Store, Processors: f.procs, Auth: f.auth, Rules: f.rules, Mailer: SecretMailer{Reader: f.rules.Client},
		Registry: prometheus.NewRegistry(), Clock: f.clock, PageCacheBytes: -1})
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// cacheCounts are the overview cache's hits and misses so far.
func (f *fixture) cacheCounts() (hits, misses int) {
	return int(testutil.ToFloat64(f.h.metrics.pageCacheHits)), int(testutil.ToFloat64(f.h.metrics.pageCacheMisses))
}

// overviewChecker fetches the overview as a browser and checks it is exactly what a fresh
// render shows, and whether it came from the cache.
type overviewChecker struct {
	t     *testing.T
	f     *fixture
	b     *browser
	fresh *Handler
	last  string
}

func (o *overviewChecker) get(wantHit bool) *response {
	o.t.Helper()
	hits, misses := o.f.cacheCounts()
	r := o.b.get("/")
	wantStatus(o.t, r, http.StatusOK)
	want := o.b.doOn(o.fresh, http.MethodGet, "/", nil, nil)
	if r.Body != want.Body {
		o.t.Fatalf("the overview served differs from a fresh render:\n%s\n--- fresh:\n%s", r.Body, want.Body)
	}
	if got, want := r.Header.Get("Content-Security-Policy"), want.Header.Get("Content-Security-Policy"); got != want {
		o.t.Fatalf("CSP %q, fresh %q", got, want)
	}
	h2, m2 := o.f.cacheCounts()
	if wantHit && (h2 != hits+1 || m2 != misses) {
		o.t.Fatalf("not served from the cache (hits %d → %d, misses %d → %d)", hits, h2, misses, m2)
	}
	if !wantHit && (h2 != hits || m2 != misses+1) {
		o.t.Fatalf("served from the cache (hits %d → %d, misses %d → %d)", hits, h2, misses, m2)
	}
	o.last = r.Body
	return r
}

// TestOverviewShowsEveryWrite: the overview is kept while nothing changes, and after every kind
// of write to the customer's data, through the ledger (as the merchant API and the billing
// runner write) or the portal's own forms, the next page is rendered afresh and is exactly
// what a handler without the cache shows. On SQLite and PostgreSQL.
func TestOverviewShowsEveryWrite(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var opts []fixtureOption
			if engine == "postgres" {
				opts = append(opts, withPostgres())
			}
			f := newFixture(t, opts...)
			c := f.customer("cache@example.com", "Cache Customer")
			b := f.browser()
			b.signIn(c)
			o := &overviewChecker{t: t, f: f, b: b, fresh: f.uncached()}
			o.get(true) // signIn got the page: kept since
			o.get(true)

			ctx := f.ctx
			var m1, m2, transfer ledger.PaymentMethod
			var sub ledger.Subscription
			var failed, pending ledger.Payment
			steps := []struct {
				name string
				do   func() error
				// shows is text the overview has after the step (and, where it did not, before).
				shows string
			}{
				{"add a method (ledger)", func() (err error) {
					m1, err = f.ledger.AddPaymentMethod(ctx, c.ID, cardInput("4242424242424242"))
					return
				}, "Visa •••• 4242"},
				{"add a declining method", func() (err error) {
					m2, err = f.ledger.AddPaymentMethod(ctx, c.ID, cardInput("4000000000000002"))
					return
				}, "Medios de pago guardados: 2"},
				{"make it preferred", func() error { _, err := f.ledger.MakePreferred(ctx, c.ID, m2.ID); return err }, "Visa •••• 0002"},
				{"reorder", func() error { _, err := f.ledger.ReorderPaymentMethods(ctx, c.ID, []string{m1.ID, m2.ID}); return err }, ""},
				{"rename the customer", func() error {
					name := "Renamed Customer"
					_, err := f.ledger.UpdateCustomer(ctx, c.ID, ledger.CustomerUpdate{Name: &name})
					return err
				}, "Renamed Customer"},
				{"update billing data", func() error {
					_, err := f.ledger.UpdateCustomer(ctx, c.ID, ledger.CustomerUpdate{Billing: &ledger.BillingProfile{LegalName: "Cache SRL", TaxID: "27280335148", TaxCondition: ledger.ResponsableInscripto}})
					return err
				}, "Cache SRL"},
				{"create a subscription", func() (err error) {
					sub, _, err = f.ledger.CreateSubscription(ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Plan Cacheado", Amount: 123400, Currency: ledger.ARS, Interval: ledger.Month})
					return
				}, "Plan Cacheado"},
				{"pin a method to it", func() error { _, err := f.ledger.SetSubscriptionPaymentMethod(ctx, c.ID, sub.ID, m1.ID); return err }, ""},
				{"cancel it at period end", func() error {
					_, err := f.ledger.CancelSubscription(ctx, c.ID, sub.ID, ledger.CancelAtPeriodEnd, "")
					return err
				}, ""},
				{"resume it", func() error { _, err := f.ledger.ResumeSubscription(ctx, c.ID, sub.ID); return err }, ""},
				{"a failed payment", func() (err error) {
					if _, err = f.ledger.MakePreferred(ctx, c.ID, m2.ID); err != nil {
						return err
					}
					failed, err = f.ledger.CreatePayment(ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 5500, Currency: ledger.ARS, Description: "Pago rechazado"})
					return
				}, "Pago rechazado"},
				{"retry it", func() error {
					if _, err := f.ledger.MakePreferred(ctx, c.ID, m1.ID); err != nil {
						return err
					}
					_, err := f.ledger.RetryPayment(ctx, c.ID, failed.ID)
					return err
				}, ""},
				{"a pending transfer", func() (err error) {
					if transfer, err = f.ledger.AddPaymentMethod(ctx, c.ID, flowtest.Method{Type: payments.MethodBankTransfer}); err != nil {
						return err
					}
					if _, err = f.ledger.MakePreferred(ctx, c.ID, transfer.ID); err != nil {
						return err
					}
					pending, err = f.ledger.CreatePayment(ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 7700, Currency: ledger.ARS, Description: "Transferencia esperada"})
					return
				}, "Transferencia esperada"},
				{"settle it", func() error { _, err := f.ledger.ConfirmPayment(ctx, pending.ID); return err }, ""},
				{"remove a method", func() error { return f.ledger.RemovePaymentMethod(ctx, c.ID, transfer.ID) }, ""},
				{"renew the subscription", func() error {
					res, err := f.ledger.RenewDue(ctx, sub.CurrentPeriodEnd)
					if err == nil && len(res.Payments) != 1 {
						err = fmt.Errorf("renewed %d", len(res.Payments))
					}
					return err
				}, ""},
				{"cancel it now", func() error {
					_, err := f.ledger.CancelSubscription(ctx, c.ID, sub.ID, ledger.CancelImmediately, "")
					return err
				}, ""},
				{"add a method (portal form)", func() error {
					b.get("/methods/new?type=wallet")
					if r := b.submit("/methods", url.Values{"type": {"wallet"}, "wallet": {"uala"}}); r.Code != http.StatusSeeOther {
						return fmt.Errorf("add wallet: %d", r.Code)
					}
					b.get("/methods") // shows and clears the flash
					return nil
				}, "Medios de pago guardados: 3"},
				{"edit billing data (portal form)", func() error {
					b.get("/billing")
					form := billingForm()
					form.Set("legal_name", "Por Formulario SA")
					r := b.submit("/billing", form)
					if r.Code != http.StatusSeeOther {
						return fmt.Errorf("billing form: %d\n%s", r.Code, r.Body)
					}
					b.get("/billing")
					return nil
				}, "Por Formulario SA"},
			}
			for _, s := range steps {
				before := o.last
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				r := o.get(false)
				if s.shows != "" && (!strings.Contains(r.Body, s.shows) || strings.Contains(before, s.shows)) {
					t.Fatalf("%s: the overview should show %q now and not before", s.name, s.shows)
				}
				o.get(true)
			}
		})
	}
}

// The portal's rules, its link session and the language are in what a kept page was made
// from: a change to any of them shows on the next page.
func TestOverviewFollowsRulesAndLanguage(t *testing.T) {
	f := newFixture(t)
	c := f.customer("rules@example.com", "Rules Customer")
	f.addMethod(c, cardInput("4242424242424242"))
	b := f.browser()
	b.signIn(c)
	o := &overviewChecker{t: t, f: f, b: b, fresh: f.uncached()}
	o.get(true) // signIn got the page: kept since

	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.DisplayName = "Acme Renamed" })
	wantBody(t, o.get(false), "Acme Renamed")
	f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdatePaymentMethod = ptr.To(false) })
	wantNoBody(t, o.get(false), "Visa •••• 4242", `href="/methods"`)
	o.get(true)

	wantRedirect(t, b.get("/?lang=en"), "/")
	wantBody(t, o.get(false), "Sign out")
	wantRedirect(t, b.get("/?lang=es"), "/")
	wantBody(t, o.get(false), "Cerrar sesión")

	// A notice to show once is shown, and the page after it is kept again.
	sess, err := f.auth.Session(f.ctx, f.portal.Namespace+"/"+f.portal.Name, b.cookies["__Host-portero"])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.auth.SetFlash(f.ctx, sess.ID, "flash.billing_saved"); err != nil {
		t.Fatal(err)
	}
	hits, misses := f.cacheCounts()
	wantBody(t, b.get("/"), "Guardamos tus datos de facturación")
	if h, m := f.cacheCounts(); h != hits || m != misses {
		t.Errorf("a page with a notice went through the cache (hits %d → %d, misses %d → %d)", hits, h, misses, m)
	}
	// The notice is gone with the page that showed it; the page kept before it is good again.
	wantNoBody(t, o.get(true), "Guardamos tus datos de facturación")

	// A link session's PortalSession: its return URL is on the page; revoking it ends the
	// session before any kept page is looked at.
	ps, tok := f.session("cached", billingv1alpha1.CustomerReference{ID: c.ID}, nil, time.Hour)
	lb := f.browser()
	lb.get("/s/" + tok)
	wantRedirect(t, lb.submit("/s/"+tok, nil), "/")
	lo := &overviewChecker{t: t, f: f, b: lb, fresh: o.fresh}
	lo.get(false)
	lo.get(true)
	cur := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(ps), cur); err != nil {
		t.Fatal(err)
	}
	base := cur.DeepCopy()
	cur.Spec.Revoked = true
	if err := k8s.Patch(f.ctx, cur, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer sees the revocation", func() bool {
		s := f.rules.Session(f.ctx, ps.Name)
		return s != nil && s.Spec.Revoked
	})
	r := lb.get("/")
	wantStatus(t, r, http.StatusUnauthorized)
	wantNoBody(t, r, "Rules Customer")
}

// Kept pages never cross sessions: each customer, and each session of one customer, gets its
// own page with its own CSRF token, which its forms then pass with; signing out drops the
// session's page.
func TestOverviewCacheIsolation(t *testing.T) {
	f := newFixture(t)
	ana := f.customer("ana@example.com", "Ana Uno")
	bob := f.customer("bob@example.com", "Bob Dos")
	f.addMethod(ana, cardInput("4242424242424242"))
	f.addMethod(bob, cardInput("5555555555554444"))
	fresh := f.uncached()
	browsers := map[string]*browser{}
	for _, s := range []struct {
		name string
		c    ledger.Customer
	}{{"ana-1", ana}, {"ana-2", ana}, {"bob", bob}} {
		b := f.browser()
		b.signIn(s.c)
		browsers[s.name] = b
	}
	tokens := map[string]string{}
	for range 2 {
		for name, b := range browsers {
			o := &overviewChecker{t: t, f: f, b: b, fresh: fresh}
			hits, _ := f.cacheCounts()
			r := b.get("/")
			o.last = r.Body
			if want := b.doOn(fresh, http.MethodGet, "/", nil, nil); r.Body != want.Body {
				t.Fatalf("%s: served page differs from a fresh render", name)
			}
			if h, _ := f.cacheCounts(); h != hits+1 {
				t.Fatalf("%s: not served from the cache", name)
			}
			mine, other := "Ana Uno", "Bob Dos"
			if name == "bob" {
				mine, other = other, mine
			}
			wantBody(t, r, mine)
			wantNoBody(t, r, other)
			if tokens[name] == "" {
				tokens[name] = b.csrf()
			} else if tokens[name] != b.csrf() {
				t.Fatalf("%s: CSRF token changed between kept pages", name)
			}
		}
	}
	if tokens["ana-1"] == tokens["ana-2"] {
		t.Fatal("two sessions share a CSRF token")
	}
	before, _ := f.h.cache.len()
	b := browsers["ana-2"]
	b.get("/")
	r := b.submit("/logout", nil)
	wantStatus(t, r, http.StatusOK)
	if after, _ := f.h.cache.len(); after != before-1 {
		t.Errorf("pages kept: %d before signing out, %d after", before, after)
	}
	if r := b.get("/"); r.Code == http.StatusOK && strings.Contains(r.Body, "Ana Uno") {
		t.Fatal("signed-out browser still sees the overview")
	}
	wantBody(t, browsers["ana-1"].get("/"), "Ana Uno")
}
