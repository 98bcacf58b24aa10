package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core, vendored so the journeys need no network (testdata/axe-core/README.md
// says which version and how to check it).
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

// axeRun runs every rule of the vendored axe-core on the whole document and keeps what a
// report needs. Colour contrast is measured on the rendered page, so it sees portal.css and
// the palette /brand.css derived from the portal's colour, as a customer does.
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || "", help: v.help,
	nodes: v.nodes.map(n => ({target: JSON.stringify(n.target), html: n.html, summary: n.failureSummary || ""})),
})))`

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  string `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// axeViolations runs axe-core on the page the browser shows. The portal's CSP allows no script
// but its own (it has none), so axe cannot come in through a <script> element; it is evaluated
// through the DevTools protocol (Runtime.evaluate), which the page's CSP does not govern.
func axeViolations(ctx context.Context) ([]axeViolation, error) {
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === "object" && typeof window.axe.run === "function"`))
	if err != nil {
		return nil, fmt.Errorf("look for axe: %w", err)
	}
	if !loaded {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axeSource)); err != nil {
			return nil, fmt.Errorf("load axe-core: %w", err)
		}
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("run axe-core: %w", err)
	}
	var vs []axeViolation
	if err := json.Unmarshal(raw, &vs); err != nil {
		return nil, fmt.Errorf("decode axe-core's results: %w", err)
	}
	return vs, nil
}

// formatViolations is a report a person can act on: the rule, its impact, what it asks for, and
// each element with axe's explanation (the contrast it measured, the colours).
func formatViolations(vs []axeViolation) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "  [%s] %s: %s\n", v.Impact, v.ID, v.Help)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "    %s %s\n      %s\n", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n      "))
		}
	}
	return b.String()
}

// Every page of the portal, in Spanish and English, with the default brand colour, a light one
// and a dark one, has no serious or critical axe-core violation: colour contrast (the brand's
// derived shades on every surface), names, labels, landmarks, ARIA. The colour changes live,
// as a platform team's kubectl patch changes it.
func TestEveryPageIsAccessible(t *testing.T) {
	restorePortalAfter(t)
	cust := seedAccessibilityCustomer(t)
	for _, c := range []struct {
		name, set, want string
	}{
		{"default colour", "null", "#2354d6"},
		{"sample colour", `"#0a7cff"`, "#0a7cff"}, // config/samples' and make run's
		{"light colour", `"#ffd400"`, "#ffd400"},
		{"dark colour", `"#1a1a1a"`, "#1a1a1a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"branding":{"primaryColor":%s}}}`, c.set))
			awaitPortal(t, "brand.css", func(status int, body string) bool { return strings.Contains(body, "--brand:"+c.want+";") })
			for _, lang := range []string{"es", "en"} {
				t.Run(lang, func(t *testing.T) {
					a := newAxeTour(t, lang, c.want)
					a.signedIn(cust)
					a.endedLinks(cust)
				})
			}
			t.Run("e-mail sign-in", func(t *testing.T) { newAxeTour(t, "es", c.want).signIn() })
			t.Run("public access off", func(t *testing.T) {
				kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", `{"spec":{"access":{"public":{"enabled":false}}}}`)
				defer func() {
					kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", `{"spec":{"access":{"public":{"enabled":true}}}}`)
					awaitPortal(t, "login", func(status int, _ string) bool { return status == http.StatusOK })
				}()
				awaitPortal(t, "login", func(status int, _ string) bool { return status == http.StatusNotFound })
				for _, lang := range []string{"es", "en"} {
					a := newAxeTour(t, lang, c.want)
					a.open("login", "sign-in page of a portal without public access", http.StatusNotFound)
					a.open("s/not-a-link", "unknown link on a portal without public access", http.StatusNotFound)
				}
			})
		})
	}
}

// restorePortalAfter puts back, when t ends, what the test changes on the general portal: its
// colour, public access and plan-change rules.
func restorePortalAfter(t *testing.T) {
	t.Helper()
	var spec struct {
		Branding struct {
			PrimaryColor *string `json:"primaryColor"`
		} `json:"branding"`
		Access struct {
			Public struct {
				Enabled *bool `json:"enabled"`
			} `json:"public"`
		} `json:"access"`
		Permissions struct {
			UpdateSubscriptions *bool `json:"updateSubscriptions"`
		} `json:"permissions"`
		SubscriptionUpdate json.RawMessage `json:"subscriptionUpdate"`
	}
	if err := json.Unmarshal([]byte(kubectl(t, "", "get", "cportal", "general", "-o", "jsonpath={.spec}")), &spec); err != nil {
		t.Fatalf("read the general portal's spec: %v", err)
	}
	if len(spec.SubscriptionUpdate) == 0 {
		spec.SubscriptionUpdate = json.RawMessage("null") // absent: removed again
	}
	restore, err := json.Marshal(map[string]any{"spec": map[string]any{
		"branding":           map[string]any{"primaryColor": spec.Branding.PrimaryColor},
		"access":             map[string]any{"public": map[string]any{"enabled": spec.Access.Public.Enabled}},
		"permissions":        map[string]any{"updateSubscriptions": spec.Permissions.UpdateSubscriptions},
		"subscriptionUpdate": spec.SubscriptionUpdate,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", string(restore)) })
}

// accessibilityCustomer has something on every page: methods of several types, subscriptions
// paid, pending by QR and failed, billing data and payments due.
type accessibilityCustomer struct {
	id                           string
	card, debit                  string // payment method ids
	active, qrSub, planSub       string // subscription ids
	upgrade                      string // a plan planSub may change to
	succeeded, pendingQR, failed string // payment ids
}

func seedAccessibilityCustomer(t *testing.T) accessibilityCustomer {
	t.Helper()
	qr := map[string]any{"type": "qr"}
	c := newCustomer(t, "Lucía Benítez", cardMethod("4242424242424242"), directDebit, qr, cardMethod("4000000000000002"))
	merchant(t, general, "PATCH", "/customers/"+c.ID, map[string]any{"billing": map[string]any{
		"legal_name": "Benítez Diseño SRL", "tax_id": "30-71234567-1", "tax_condition": "responsable_inscripto"}}, &map[string]any{})
	var methods struct {
		Data []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Card *struct {
				Last4 string `json:"last4"`
			} `json:"card"`
		} `json:"data"`
	}
	merchant(t, general, "GET", "/customers/"+c.ID+"/payment_methods", nil, &methods)
	ids := map[string]string{}
	for _, m := range methods.Data {
		key := m.Type
		if m.Card != nil {
			key += m.Card.Last4
		}
		ids[key] = m.ID
	}
	out := accessibilityCustomer{id: c.ID, card: ids["card4242"], debit: ids["direct_debit"]}
	qrID, declining := ids["qr"], ids["card0002"]
	if out.card == "" || out.debit == "" || qrID == "" || declining == "" {
		t.Fatalf("customer %s's methods: %+v", c.ID, methods.Data)
	}
	// Each subscription pins the method its first payment is charged to.
	n := 0
	sub := func(plan string, amount int, method string) (string, payment) {
		n++
		var s struct {
			ID             string  `json:"id"`
			InitialPayment payment `json:"initial_payment"`
		}
		merchant(t, general, "POST", "/subscriptions", map[string]any{"customer_id": c.ID, "plan": plan, "amount": amount,
			"currency": "ARS", "interval": "month", "payment_method_id": method}, &s, "Idempotency-Key", fmt.Sprintf("e2e-a11y-%s-%d", c.ID, n))
		return s.ID, s.InitialPayment
	}
	var p payment
	out.active, p = sub("Plan Hogar", 150000, out.card)
	out.succeeded = wantStatus(t, p, "succeeded")
	out.qrSub, p = sub("Plan Oficina", 90000, qrID)
	out.pendingQR = wantStatus(t, p, "pending")
	_, p = sub("Plan Depósito", 45000, declining)
	out.failed = wantStatus(t, p, "failed")

	// A catalogue plan that customers may change, in the middle of its period so that the
	// review shows an amount due now.
	uniq++
	basic, pro := fmt.Sprintf("e2e-a11y-basico-%d", uniq), fmt.Sprintf("e2e-a11y-pro-%d", uniq)
	for _, pl := range []struct {
		id, es, en string
		amount     int
	}{{basic, "Básico", "Basic", 250000}, {pro, "Profesional", "Professional", 400000}} {
		merchant(t, general, "POST", "/plans", map[string]any{"id": pl.id, "name": map[string]any{"es": pl.es, "en": pl.en},
			"amount": pl.amount, "currency": "ARS", "interval": "month", "max_quantity": 10}, &map[string]any{})
	}
	kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", fmt.Sprintf(
		`{"spec":{"permissions":{"updateSubscriptions":true},"subscriptionUpdate":{"enabled":true,"quantity":true,"plans":[%q,%q]}}}`, basic, pro))
	var s struct {
		ID string `json:"id"`
	}
	merchant(t, general, "POST", "/subscriptions", map[string]any{"customer_id": c.ID, "plan_id": basic, "payment_method_id": out.card,
		"start_at": time.Now().Add(-10 * 24 * time.Hour).UTC().Format(time.RFC3339)}, &s, "Idempotency-Key", fmt.Sprintf("e2e-a11y-%s-plan", c.ID))
	out.planSub, out.upgrade = s.ID, pro
	return out
}

func wantStatus(t *testing.T, p payment, status string) string {
	t.Helper()
	if p.ID == "" || p.Status != status {
		t.Fatalf("payment %+v, want %s", p, status)
	}
	return p.ID
}

// awaitPortal polls the general portal's path until ok accepts the answer: rule changes reach
// the portal through its informer, a moment after the API server took them.
func awaitPortal(t *testing.T, path string, ok func(status int, body string) bool) {
	t.Helper()
	poll(t, "the portal applies the change ("+path+")", 30*time.Second, func() (bool, error) {
		resp, err := http.Get(sys.Portals[general].URL + path)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		if !ok(resp.StatusCode, string(b)) {
			return false, fmt.Errorf("%s answered %s", path, resp.Status)
		}
		return true, nil
	})
}

// axeTour is one browser going through the general portal in one language, checking each page
// it lands on.
type axeTour struct {
	t           *testing.T
	ctx         context.Context
	lang, brand string
	pages       int // checked so far
}

func newAxeTour(t *testing.T, lang, brand string) *axeTour {
	a := &axeTour{t: t, ctx: browser(t), lang: lang, brand: brand}
	t.Cleanup(func() { t.Logf("axe-core checked %d pages with brand %s", a.pages, brand) })
	// The language switch works on any page and is remembered in a cookie.
	do(t, a.ctx, "choose "+lang, chromedp.Navigate(sys.Portals[general].URL+"nope?lang="+lang))
	return a
}

func (a *axeTour) url(path string) string {
	return sys.Portals[general].URL + strings.TrimPrefix(path, "/")
}

// open loads path, which must answer status, and checks the page.
func (a *axeTour) open(path, what string, status int) {
	a.t.Helper()
	resp, err := chromedp.Run(a.ctx, chromedp.NavigateResponse(a.url(path)))
	if err != nil {
		a.t.Fatalf("open %s: %v", what, err)
	}
	if resp.Status != int64(status) {
		a.t.Fatalf("open %s: %s answered %d, want %d", what, path, resp.Status, status)
	}
	a.check(what)
}

// submit clicks sel and checks the page it leads to, which must show shows.
func (a *axeTour) submit(sel, what, shows string) {
	a.t.Helper()
	// Clicking waits for sel to appear: say at once that it is not there.
	a.expect(sel, "before: "+what)
	clickAndLoad(a.t, a.ctx, what, sel)
	a.expect(shows, what)
	a.check(what)
}

// expect fails the test at once if the page has no sel.
func (a *axeTour) expect(sel, what string) {
	a.t.Helper()
	if found, err := chromedp.Run(a.ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", sel))); err != nil || !found {
		a.t.Fatalf("%s: no %s on %s (%v)", what, sel, location(a.t, a.ctx), err)
	}
}

// check runs axe-core on the page shown, once it is in the tour's language and colour, and
// fails the test on any serious or critical violation.
func (a *axeTour) check(what string) {
	a.t.Helper()
	state, err := chromedp.Run(a.ctx, chromedp.Evaluate[[]string](`[document.documentElement.lang,
		getComputedStyle(document.documentElement).getPropertyValue("--brand").trim(), location.pathname]`))
	if err != nil {
		a.t.Fatalf("%s: read the page: %v", what, err)
	}
	if state[0] != a.lang || state[1] != a.brand {
		a.t.Fatalf("%s (%s): the page is in %q with brand %q, want %q and %q", what, state[2], state[0], state[1], a.lang, a.brand)
	}
	vs, err := axeViolations(a.ctx)
	if err != nil {
		a.t.Fatalf("%s (%s): %v", what, state[2], err)
	}
	a.pages++
	var bad []axeViolation
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v)
		}
	}
	if len(bad) > 0 {
		a.t.Errorf("%s (%s, %s, brand %s): %d serious or critical axe-core violations:\n%s",
			what, state[2], a.lang, a.brand, len(bad), formatViolations(bad))
	}
}

// signedIn goes through every page inside the portal, from a session link.
func (a *axeTour) signedIn(c accessibilityCustomer) {
	t := a.t
	_, link := newSessionLink(t, c.id)
	do(t, a.ctx, "open the session link", chromedp.Navigate(link), chromedp.WaitVisible(`form[action^="/s/"] button[type=submit]`))
	a.check("session link")
	a.submit(`form[action^="/s/"] button[type=submit]`, "overview", `nav.tabs`)

	a.open("methods", "payment methods", http.StatusOK)
	a.open("methods/new", "choice of a method type", http.StatusOK)
	for _, typ := range []string{"direct_debit", "cvu", "bank_transfer", "qr", "wallet", "card"} {
		a.open("methods/new?type="+typ, "form to add "+typ, http.StatusOK)
	}
	a.submit(`form:has(#number) button[type=submit]`, "empty card form sent", `#number[aria-invalid="true"]`)
	a.open("methods/"+c.debit+"/remove", "removing a method", http.StatusOK)

	a.open("subscriptions", "subscriptions", http.StatusOK)
	a.open("subscriptions/"+c.qrSub, "a subscription", http.StatusOK)
	a.open("subscriptions/"+c.active+"/cancel", "cancelling a subscription", http.StatusOK)
	do(t, a.ctx, "give a reason", chromedp.SendKeys(`#reason`, "Prueba de accesibilidad"))
	a.submit(`form:has(#reason) button[type=submit]`, "a subscription set to end", `form[action$="/resume"]`)
	a.submit(`form[action$="/resume"] button[type=submit]`, "a subscription resumed", `a[href$="/cancel"]`)

	a.open("subscriptions/"+c.planSub, "a subscription on a catalogue plan", http.StatusOK)
	a.open("subscriptions/"+c.planSub+"/change", "choice of a new plan", http.StatusOK)
	do(t, a.ctx, "choose the upgrade", chromedp.Click(`input[name=plan][value="`+c.upgrade+`"]`))
	a.submit(`form[action$="/change/review"] button[type=submit]`, "review of a plan change", `#change-amount`)

	a.open("billing", "billing data", http.StatusOK)
	do(t, a.ctx, "type a wrong CUIT", chromedp.Clear(`#tax_id`), chromedp.SendKeys(`#tax_id`, "30-71234567-2"))
	a.submit(`form[action="/billing"] button[type=submit]`, "billing data with an error", `#tax_id[aria-invalid="true"]`)

	a.open("payments", "payment history", http.StatusOK)
	a.open("payments/due", "payments due", http.StatusOK)
	a.open("payments/"+c.succeeded, "a payment that succeeded", http.StatusOK)
	a.open("payments/"+c.succeeded+"/receipt", "a payment's receipt", http.StatusOK)
	a.open("payments/"+c.pendingQR, "a payment waiting for a QR scan", http.StatusOK)
	a.open("payments/"+c.failed, "a failed payment", http.StatusOK)
	a.open("payments/"+c.failed+"/pay", "paying a failed payment", http.StatusOK)
	a.open("payments/"+c.failed+"/pay?type=card", "paying it by card", http.StatusOK)

	a.submit(`form[action="/logout"] button[type=submit]`, "signed out", `main h1`)
	// Signing out revoked the link; the portal learns it through its informer.
	poll(t, "the link is refused after signing out", 30*time.Second, func() (bool, error) {
		resp, err := chromedp.Run(a.ctx, chromedp.NavigateResponse(link))
		if err != nil {
			return false, err
		}
		if resp.Status != http.StatusGone {
			return false, fmt.Errorf("the link answered %d", resp.Status)
		}
		return true, nil
	})
	a.check("a revoked link")
	a.open("s/not-a-link", "an unknown link", http.StatusNotFound)
	a.open("nope", "page not found", http.StatusNotFound)
}

// endedLinks: a link revoked while its customer browses ends the browser session.
func (a *axeTour) endedLinks(c accessibilityCustomer) {
	t := a.t
	id, link := newSessionLink(t, c.id)
	openLink(t, a.ctx, link)
	merchant(t, general, "POST", "/portal_sessions/"+id+"/revoke", map[string]any{}, &map[string]any{})
	poll(t, "the revoked link ends the session", 30*time.Second, func() (bool, error) {
		resp, err := chromedp.Run(a.ctx, chromedp.NavigateResponse(a.url("methods")))
		if err != nil {
			return false, err
		}
		if resp.Status != http.StatusUnauthorized {
			return false, fmt.Errorf("still answered %d", resp.Status)
		}
		return true, nil
	})
	a.check("a session that ended")
}

// signIn goes through the e-mail sign-in in both languages, to an address two customers
// share. One code serves both: the language switch keeps the sign-in where it is, and code
// e-mails are limited per client.
func (a *axeTour) signIn() {
	t := a.t
	uniq++
	email := fmt.Sprintf("compartido.%d@example.com", uniq)
	for _, name := range []string{"Hogar Benítez", "Estudio Benítez"} {
		merchant(t, general, "POST", "/customers", map[string]any{"email": email, "name": name}, &customer{})
	}
	a.open("login", "sign-in page", http.StatusOK)
	a.submit(`form[action="/login"] button[type=submit]`, "sign-in without an address", `#email[aria-invalid="true"]`)
	a.switchLanguage("sign-in without an address, after switching language")
	a.submit(`form[action="/login"] button[type=submit]`, "sign-in without an address", `#email[aria-invalid="true"]`)
	do(t, a.ctx, "type the address", chromedp.SendKeys(`#email`, email))
	a.submit(`form[action="/login"] button[type=submit]`, "code form", `#code`)
	do(t, a.ctx, "type a short code", chromedp.SendKeys(`#code`, "12"))
	a.submit(`form[action="/login/code"] button[type=submit]`, "code form with an error", `#code[aria-invalid="true"]`)
	a.switchLanguage("code form, after switching language")
	do(t, a.ctx, "type a short code", chromedp.SendKeys(`#code`, "12"))
	a.submit(`form[action="/login/code"] button[type=submit]`, "code form with an error", `#code[aria-invalid="true"]`)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(newMail(t, email, nil))
	if code == "" {
		t.Fatal("no 6-digit code in the e-mail")
	}
	do(t, a.ctx, "type the code", chromedp.SendKeys(`#code`, code))
	a.submit(`form[action="/login/code"] button[type=submit]`, "choice of account", `form[action="/login/choose"]`)
	a.switchLanguage("choice of account, after switching language")
	clickAndLoad(t, a.ctx, "choose the first account", `form[action="/login/choose"] button[type=submit]`)
	do(t, a.ctx, "see the portal", chromedp.WaitVisible(`nav.tabs`))
}

// switchLanguage moves to the other language with the page's switcher, as a customer does, and
// checks the page again.
func (a *axeTour) switchLanguage(what string) {
	a.t.Helper()
	a.lang = map[string]string{"es": "en", "en": "es"}[a.lang]
	a.submit(`nav.lang a[hreflang=`+a.lang+`]`, what, `main`)
}

// newSessionLink asks the merchant API for a session link and returns the session's id too.
func newSessionLink(t *testing.T, customerID string) (id, url string) {
	t.Helper()
	var s struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	merchant(t, general, "POST", "/portal_sessions", map[string]any{"customer_id": customerID}, &s)
	if s.ID == "" || !strings.Contains(s.URL, "/s/") {
		t.Fatalf("portal session %+v", s)
	}
	return s.ID, s.URL
}
