package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	general      = 0 // every payment method, cancelling allowed
	estrategicas = 1 // bank transfer and direct debit only, no cancelling
)

// Journey 1 — public link: e-mail → code from the mail catcher → signed in → methods,
// subscriptions and history.
func TestJourney1PublicLinkLogin(t *testing.T) {
	ctx := browser(t)
	email := "ana.garcia@example.com" // seeded by make run with a card, a CBU, two plans and payments
	before := mails(t, email)
	do(t, ctx, "open the public link", chromedp.Navigate(sys.Portals[general].URL), chromedp.WaitVisible(`#email`))
	do(t, ctx, "type the e-mail", chromedp.SendKeys(`#email`, email))
	clickAndLoad(t, ctx, "ask for a code", `form[action="/login"] button[type=submit]`)
	do(t, ctx, "see the code form", chromedp.WaitVisible(`#code`))
	text := newMail(t, email, before)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(text)
	if code == "" {
		t.Fatalf("no 6-digit code in the e-mail:\n%s", text)
	}
	do(t, ctx, "type the code", chromedp.SendKeys(`#code`, code))
	clickAndLoad(t, ctx, "sign in", `form[action="/login/code"] button[type=submit]`)
	do(t, ctx, "see the portal", chromedp.WaitVisible(`nav.tabs`))
	expectText(t, ctx, "Hola, Ana")

	do(t, ctx, "open payment methods", chromedp.Navigate(sys.Portals[general].URL+"methods"), chromedp.WaitVisible(`li.method`))
	expectText(t, ctx, "4242", "Preferido")
	do(t, ctx, "open subscriptions", chromedp.Navigate(sys.Portals[general].URL+"subscriptions"))
	expectText(t, ctx, "Plan Profesional", "Soporte Premium")
	do(t, ctx, "open history", chromedp.Navigate(sys.Portals[general].URL+"payments"))
	expectText(t, ctx, "Consumo adicional", "Aprobado")
}

// Journey 2 — add a card (sandbox number) and make it preferred by moving it to the top: the next
// subscription charge uses it.
func TestJourney2AddCardMakePreferred(t *testing.T) {
	ctx := browser(t)
	c := newCustomer(t, "Bruno Díaz", directDebit)
	openLink(t, ctx, sessionLink(t, general, c.ID))

	addCard(t, ctx, general, "/methods/new?type=card", "5555 5555 5555 4444")
	do(t, ctx, "back to the list", chromedp.Navigate(sys.Portals[general].URL+"methods"), chromedp.WaitVisible(`li.method`))
	first := firstMethod(t, ctx)
	if !strings.Contains(first, "CBU") {
		t.Fatalf("the new card must be added last; first method is %q", first)
	}
	clickAndLoad(t, ctx, "move the card to the top", `li.method:last-child form:has(input[name=to][value=top]) button`)
	if first := firstMethod(t, ctx); !strings.Contains(first, "4444") || !strings.Contains(first, "Preferido") {
		t.Fatalf("after making it preferred the first method is %q", first)
	}

	// The next subscription charge uses the preferred method.
	var sub struct {
		InitialPayment payment `json:"initial_payment"`
	}
	merchant(t, general, "POST", "/subscriptions", map[string]any{"customer_id": c.ID, "plan": "Plan Básico", "amount": 99900, "currency": "ARS", "interval": "month"}, &sub, "Idempotency-Key", "e2e-sub-"+c.ID)
	if p := sub.InitialPayment; p.Status != "succeeded" || !strings.Contains(p.MethodSummary, "4444") {
		t.Fatalf("subscription charge = %+v, want succeeded on the card ending 4444", p)
	}
}

func firstMethod(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(`li.method:first-child`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// addCard fills the card form at path and submits it.
func addCard(t *testing.T, ctx context.Context, portal int, path, number string) {
	t.Helper()
	do(t, ctx, "open the card form", chromedp.Navigate(sys.Portals[portal].URL+strings.TrimPrefix(path, "/")), chromedp.WaitVisible(`#number`))
	do(t, ctx, "fill the card",
		chromedp.SendKeys(`#number`, number),
		chromedp.SendKeys(`#exp_month`, "12"),
		chromedp.SendKeys(`#exp_year`, fmt.Sprint(time.Now().Year()+4)),
		chromedp.SendKeys(`#cvc`, "123"))
	clickAndLoad(t, ctx, "submit the card", `form:has(#number) button[type=submit]`)
}

// Journey 3 — incomplete payment: a customer without a method is charged; the e-mailed deep link
// leads to the payment; adding a method of an allowed type completes it, exactly once.
func TestJourney3IncompletePayment(t *testing.T) {
	ctx := browser(t)
	c := newCustomer(t, "Carla Ruiz")
	var p payment
	merchant(t, general, "POST", "/payments", map[string]any{"customer_id": c.ID, "amount": 350000, "currency": "ARS", "description": "Cuota de diciembre"}, &p, "Idempotency-Key", "e2e-"+c.ID)
	if p.Status != "incomplete" {
		t.Fatalf("payment without a method is %q, want incomplete", p.Status)
	}
	text := newMail(t, c.Email, nil)
	link := linkRE.FindString(text)
	if link == "" {
		t.Fatalf("no portal link in the e-mail:\n%s", text)
	}
	openLink(t, ctx, link)
	if loc := location(t, ctx); !strings.Contains(loc, "/payments/"+p.ID) {
		t.Fatalf("the deep link opened %s, want the payment %s", loc, p.ID)
	}
	addCard(t, ctx, general, "/payments/"+p.ID+"/pay?type=card", "4242424242424242")
	expectText(t, ctx, "Aprobado")

	var got payment
	merchant(t, general, "GET", "/payments/"+p.ID, nil, &got)
	if got.Status != "succeeded" || len(got.Attempts) != 1 {
		t.Fatalf("payment after completion = %+v, want succeeded with exactly one attempt", got)
	}
}

// Journey 4 — profiles: on the strategic-accounts portal only bank transfer and direct debit are
// offered, and a card is refused even by a hand-made request.
func TestJourney4StrategicProfileRefusesCards(t *testing.T) {
	ctx := browser(t)
	c := newCustomer(t, "Diego Paz", directDebit)
	openLink(t, ctx, sessionLink(t, estrategicas, c.ID))
	do(t, ctx, "open add-method", chromedp.Navigate(sys.Portals[estrategicas].URL+"methods/new"), chromedp.WaitVisible(`main`))
	expectText(t, ctx, "Transferencia bancaria", "Débito automático")
	expectNoText(t, ctx, "Tarjeta", "CVU", "QR")

	// Hand-made: take the direct-debit form and turn it into a complete, valid card submission
	// (every card field filled), so the only thing wrong with it is the type the portal refuses.
	do(t, ctx, "open the direct debit form", chromedp.Navigate(sys.Portals[estrategicas].URL+"methods/new?type=direct_debit"), chromedp.WaitVisible(`#account`))
	forge := fmt.Sprintf(`(() => {
		const f = document.querySelector("form:has(#account)");
		f.querySelector("input[name=type]").value = "card";
		const card = {number: "4242424242424242", exp_month: "12", exp_year: "%d", cvc: "123", holder: "Diego Paz"};
		for (const [name, value] of Object.entries(card)) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = name; i.value = value;
			f.appendChild(i);
		}
		return f.querySelectorAll("input[type=hidden]").length;
	})()`, time.Now().Year()+4)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](forge)); err != nil {
		t.Fatalf("forge a card submission: %v", err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(`form:has(#account) button[type=submit]`))
	if err != nil {
		t.Fatalf("submit the forged form: %v", err)
	}
	if resp.Status != 403 {
		t.Fatalf("the forged card submission answered %d, want 403", resp.Status)
	}
	expectText(t, ctx, "Este portal no acepta ese medio de pago.")
	var methods struct {
		Data []struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	merchant(t, estrategicas, "GET", "/customers/"+c.ID+"/payment_methods", nil, &methods)
	if len(methods.Data) != 1 || methods.Data[0].Type != "direct_debit" {
		t.Fatalf("methods after the forged request: %+v, want only the direct debit", methods.Data)
	}
	// The API refuses it as well, and says why.
	if code, e := merchantRefusal(t, estrategicas, "POST", "/customers/"+c.ID+"/payment_methods", cardMethod("4242424242424242")); code != 422 || e.Code != "payment_method_type_not_allowed" {
		t.Fatalf("merchant API on a card for the strategic portal: %d %+v, want 422 payment_method_type_not_allowed", code, e)
	}
}

// Journey 5 — change a subscription's method; cancel where allowed; no cancel where not.
func TestJourney5Subscriptions(t *testing.T) {
	ctx := browser(t)
	c := newCustomer(t, "Elena Vidal", directDebit, cardMethod("4242424242424242"))
	cardID := methodID(t, general, c.ID, "card")
	sub := subscribe(t, c.ID, "Plan Familiar", 120000)
	// Never cancelled: what the strategic portal's page is checked on, as a subscription already
	// set to end shows no cancel button whatever the portal allows.
	kept := subscribe(t, c.ID, "Plan Individual", 80000)
	openLink(t, ctx, sessionLink(t, general, c.ID))

	do(t, ctx, "open the subscription", chromedp.Navigate(sys.Portals[general].URL+"subscriptions/"+sub), chromedp.WaitVisible(`form[action$="/method"]`))
	do(t, ctx, "choose the card", chromedp.Click(`form[action$="/method"] input[value="`+cardID+`"]`))
	clickAndLoad(t, ctx, "assign the card to the subscription", `form[action$="/method"] button[type=submit]`)
	var got struct {
		PaymentMethodID string `json:"payment_method_id"`
	}
	merchant(t, general, "GET", "/subscriptions/"+sub, nil, &got)
	if got.PaymentMethodID != cardID {
		t.Fatalf("the subscription is pinned to %q after choosing the card %s", got.PaymentMethodID, cardID)
	}

	do(t, ctx, "cancel it", chromedp.Navigate(sys.Portals[general].URL+"subscriptions/"+sub+"/cancel"), chromedp.WaitVisible(`#reason`))
	do(t, ctx, "give a reason", chromedp.SendKeys(`#reason`, "Ya no lo uso"))
	clickAndLoad(t, ctx, "confirm the cancellation", `form:has(#reason) button[type=submit]`)
	expectText(t, ctx, "se cancela el")
	// Where cancelling is allowed, the other subscription offers it.
	do(t, ctx, "open the other subscription", chromedp.Navigate(sys.Portals[general].URL+"subscriptions/"+kept), chromedp.WaitVisible(`main`))
	expectText(t, ctx, "Plan Individual", "Cancelar suscripción")

	// The strategic portal does not allow cancelling: no button, and the page itself is refused.
	openLink(t, ctx, sessionLink(t, estrategicas, c.ID))
	do(t, ctx, "open the subscription there", chromedp.Navigate(sys.Portals[estrategicas].URL+"subscriptions/"+kept), chromedp.WaitVisible(`main`))
	expectText(t, ctx, "Plan Individual")
	expectNoText(t, ctx, "Cancelar suscripción")
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(sys.Portals[estrategicas].URL+"subscriptions/"+kept+"/cancel"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 403 {
		t.Fatalf("cancel page on a portal that forbids it answered %d, want 403", resp.Status)
	}
}

// subscribe creates a monthly ARS subscription through the merchant API and returns its id.
func subscribe(t *testing.T, customerID, plan string, amount int) string {
	t.Helper()
	var sub struct {
		ID string `json:"id"`
	}
	merchant(t, general, "POST", "/subscriptions", map[string]any{"customer_id": customerID, "plan": plan, "amount": amount, "currency": "ARS", "interval": "month"},
		&sub, "Idempotency-Key", fmt.Sprintf("e2e-sub-%s-%d", customerID, amount))
	return sub.ID
}

// methodID is the id of the customer's only method of type typ.
func methodID(t *testing.T, portal int, customerID, typ string) string {
	t.Helper()
	var methods struct {
		Data []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"data"`
	}
	merchant(t, portal, "GET", "/customers/"+customerID+"/payment_methods", nil, &methods)
	var ids []string
	for _, m := range methods.Data {
		if m.Type == typ {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("customer %s has %d methods of type %s, want 1: %+v", customerID, len(ids), typ, methods.Data)
	}
	return ids[0]
}

// Journey 6 — a merchant session made with kubectl opens signed in; revoking it ends the browser
// session.
func TestJourney6KubectlSession(t *testing.T) {
	ctx := browser(t)
	name := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	kubectl(t, fmt.Sprintf(`apiVersion: billing.portero.dev/v1alpha1
kind: PortalSession
metadata:
  name: %s
  namespace: default
spec:
  portalRef: {name: general}
  customer: {email: ana.garcia@example.com}
  ttl: 15m
`, name), "create", "-f", "-")
	kubectl(t, "", "wait", "--for=condition=Ready", "psession/"+name, "--timeout=60s")
	secret := strings.TrimSpace(kubectl(t, "", "get", "psession", name, "-o", "jsonpath={.status.linkSecretName}"))
	link := kubectl(t, "", "get", "secret", secret, "-o", "jsonpath={.data.url}")
	decoded := poll(t, "decode link", time.Second, func() (string, error) { return decodeBase64(link) })
	openLink(t, ctx, decoded)
	expectText(t, ctx, "Hola, Ana")

	kubectl(t, "", "patch", "psession", name, "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	poll(t, "revocation ends the browser session", 30*time.Second, func() (bool, error) {
		if err := chromedp.Do(ctx, chromedp.Navigate(sys.Portals[general].URL+"methods"), chromedp.WaitVisible(`main`)); err != nil {
			return false, err
		}
		if strings.Contains(bodyText(t, ctx), "Tu sesión terminó") {
			return true, nil
		}
		return false, fmt.Errorf("still signed in at %s", location(t, ctx))
	})
}

// Journey 7 — a rule change by kubectl patch shows in the open portal on the next page load.
func TestJourney7LiveRuleChange(t *testing.T) {
	ctx := browser(t)
	c := newCustomer(t, "Fabián Gómez", directDebit)
	openLink(t, ctx, sessionLink(t, general, c.ID))
	do(t, ctx, "open the overview", chromedp.Navigate(sys.Portals[general].URL), chromedp.WaitVisible(`nav.tabs`))
	if html := navHTML(t, ctx); !strings.Contains(html, `href="/payments"`) {
		t.Fatalf("history tab missing before the change: %s", html)
	}
	patch := func(v bool) {
		kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", fmt.Sprintf(`{"spec":{"permissions":{"viewPaymentHistory":%t}}}`, v))
	}
	patch(false)
	t.Cleanup(func() { patch(true) })
	poll(t, "history tab gone after the patch", 15*time.Second, func() (bool, error) {
		if err := chromedp.Do(ctx, chromedp.Navigate(sys.Portals[general].URL), chromedp.WaitVisible(`nav.tabs`)); err != nil {
			return false, err
		}
		if strings.Contains(navHTML(t, ctx), `href="/payments"`) {
			return false, fmt.Errorf("history tab still shown")
		}
		return true, nil
	})
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(sys.Portals[general].URL+"payments"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 403 {
		t.Fatalf("history with the permission off answered %d, want 403", resp.Status)
	}
}

func navHTML(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.OuterHTML(`nav.tabs`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeBase64(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	return string(b), err
}
