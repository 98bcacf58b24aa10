package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pesos formats minor units as the Spanish pages do: "$ 1.234,56".
func pesos(n int64) string {
	whole, cents := n/100, n%100
	s := strconv.FormatInt(whole, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf("$ %s,%02d", b.String(), cents)
}

// Plan changes — a customer changes plan in the portal: sees the exact amount due now before
// confirming, confirms, and sees the new plan and the charge; then moves down and sees the credit.
func TestPlanChangeJourney(t *testing.T) {
	ctx := browser(t)
	uniq++
	basic, pro := fmt.Sprintf("e2e-basico-%d", uniq), fmt.Sprintf("e2e-pro-%d", uniq)
	for _, p := range []struct {
		id, es, en string
		amount     int
	}{{basic, "Básico", "Basic", 250000}, {pro, "Profesional", "Professional", 400000}} {
		merchant(t, general, "POST", "/plans", map[string]any{"id": p.id, "name": map[string]any{"es": p.es, "en": p.en},
			"amount": p.amount, "currency": "ARS", "interval": "month", "max_quantity": 10}, &map[string]any{})
	}
	// The platform team lets customers switch between the two: a rule, applied live.
	rules := func(on bool) string {
		if !on {
			return `{"spec":{"permissions":{"updateSubscriptions":false},"subscriptionUpdate":{"enabled":false,"plans":null}}}`
		}
		return fmt.Sprintf(`{"spec":{"permissions":{"updateSubscriptions":true},"subscriptionUpdate":{"enabled":true,"quantity":true,"plans":[%q,%q]}}}`, basic, pro)
	}
	kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", rules(true))
	t.Cleanup(func() { kubectl(t, "", "patch", "cportal", "general", "--type=merge", "-p", rules(false)) })

	c := newCustomer(t, "Irene Paz", cardMethod("4242424242424242"))
	// The period began ten days ago, so the change falls in the middle of it.
	var sub struct {
		ID     string `json:"id"`
		PlanID string `json:"plan_id"`
	}
	merchant(t, general, "POST", "/subscriptions", map[string]any{"customer_id": c.ID, "plan_id": basic,
		"start_at": time.Now().Add(-10 * 24 * time.Hour).UTC().Format(time.RFC3339)}, &sub, "Idempotency-Key", "e2e-plan-"+c.ID)
	openLink(t, ctx, sessionLink(t, general, c.ID))
	subURL := sys.Portals[general].URL + "subscriptions/" + sub.ID
	poll(t, "the portal offers the plan change", 30*time.Second, func() (bool, error) {
		if err := chromedp.Do(ctx, chromedp.Navigate(subURL), chromedp.WaitVisible(`main`)); err != nil {
			return false, err
		}
		if !strings.Contains(bodyText(t, ctx), "Cambiar de plan") {
			return false, fmt.Errorf("no plan change on the subscription yet")
		}
		return true, nil
	})

	clickAndLoad(t, ctx, "open the plan change", `a[href$="/change"]`)
	expectText(t, ctx, "Elegí el plan", "Básico", "tu plan actual", "Profesional", "$ 4.000,00 por mes")
	do(t, ctx, "choose Profesional", chromedp.Click(`input[name=plan][value="`+pro+`"]`))
	clickAndLoad(t, ctx, "review the change", `form[action$="/change/review"] button[type=submit]`)
	shown, err := chromedp.Run(ctx, chromedp.Text(`#change-amount`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(shown, "Hoy se cobran $ ") {
		t.Fatalf("the review says %q, not the amount due now", shown)
	}
	save(t, ctx, "plan-change-es") // for the README, with E2E_README_SCREENSHOTS
	clickAndLoad(t, ctx, "confirm the change", `form[action$="/change"] button[type=submit]`)
	expectText(t, ctx, "Listo, cambiaste tu plan.", "Profesional", "Básico → Profesional")

	// The merchant sees the new plan and the charge: exactly the amount the review showed.
	merchant(t, general, "GET", "/subscriptions/"+sub.ID, nil, &sub)
	if sub.PlanID != pro {
		t.Fatalf("the subscription is on %q after the change", sub.PlanID)
	}
	var pays struct {
		Data []struct {
			Amount      int64  `json:"amount"`
			Description string `json:"description"`
			Status      string `json:"status"`
		} `json:"data"`
	}
	merchant(t, general, "GET", "/payments?subscription_id="+sub.ID, nil, &pays)
	if len(pays.Data) != 2 || pays.Data[0].Description != "Básico → Profesional" || pays.Data[0].Status != "succeeded" {
		t.Fatalf("payments of the subscription: %+v", pays.Data)
	}
	charged := pesos(pays.Data[0].Amount)
	if !strings.Contains(shown, charged) {
		t.Fatalf("charged %s, but the review showed %q", charged, shown)
	}
	expectText(t, ctx, charged)

	// Back down: a credit, which the subscription page shows as the balance.
	clickAndLoad(t, ctx, "open the plan change again", `a[href$="/change"]`)
	do(t, ctx, "choose Básico", chromedp.Click(`input[name=plan][value="`+basic+`"]`))
	clickAndLoad(t, ctx, "review the downgrade", `form[action$="/change/review"] button[type=submit]`)
	credit, err := chromedp.Run(ctx, chromedp.Text(`#change-amount`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(credit, "Se acreditan $ ") {
		t.Fatalf("the review of a downgrade says %q", credit)
	}
	amount := strings.TrimSuffix(strings.TrimPrefix(credit, "Se acreditan "), " a tu saldo a favor, que se descuenta de tus próximos cobros.")
	clickAndLoad(t, ctx, "confirm the downgrade", `form[action$="/change"] button[type=submit]`)
	expectText(t, ctx, "Listo, cambiaste tu plan.", "Saldo a favor", amount)
	merchant(t, general, "GET", "/payments?subscription_id="+sub.ID, nil, &pays)
	if len(pays.Data) != 2 {
		t.Fatalf("a credit made a payment: %+v", pays.Data)
	}
}
