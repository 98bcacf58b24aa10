package localsys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// localPortal is one sample portal served by a local portal process.
type localPortal struct {
	name string
	port string
	spec billingv1alpha1.CustomerPortalSpec
}

func (p localPortal) url() string { return "http://127.0.0.1:" + p.port + "/" }

// localPortals are the profiles that show the point of portal configurations: a general one
// allowing every method, a strategic-accounts one allowing only bank transfer and direct debit
// (both on the sandbox, sharing one customer base), and tarjetas, whose processor is Stripe (the
// local stripe-mock): cards only, typed on Stripe's page, never on the portal's.
func localPortals(ports []string, catcherURL string) []localPortal {
	email := &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: "portero-smtp"}, From: "Portero Demo <facturacion@portero.local>"}
	api := &billingv1alpha1.MerchantAPI{KeySecretRef: billingv1alpha1.APIKeySecretReference{Name: "portero-api-key", Key: "key"}}
	return []localPortal{
		{name: "general", port: ports[0], spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme — Portal de clientes",
			Permissions: billingv1alpha1.Permissions{
				UpdateBillingInfo: ptr.To(true), ViewPaymentHistory: ptr.To(true),
				UpdatePaymentMethod: ptr.To(true), CancelSubscriptions: ptr.To(true),
				UpdateSubscriptions: ptr.To(true),
			},
			// Customers switch between the demo's monthly plans (seeded through the merchant
			// API) and change their quantity, prorated to the second.
			SubscriptionUpdate: billingv1alpha1.SubscriptionUpdate{Enabled: true, Quantity: true, Plans: demoPlanIDs()},
			Cancellation:       billingv1alpha1.Cancellation{Mode: billingv1alpha1.CancelAtPeriodEnd, CollectReason: true},
			PaymentMethods:     &billingv1alpha1.PaymentMethods{All: true},
			ReturnURL:          "http://localhost/cuenta",
			Branding:           billingv1alpha1.Branding{Locale: "es", PrimaryColor: "#0a7cff", SupportEmail: "soporte@portero.local"},
			Email:              email,
			MerchantAPI:        api,
			Exposure:           &billingv1alpha1.Exposure{PublicURL: "http://127.0.0.1:" + ports[0] + "/"},
			Webhooks: []billingv1alpha1.WebhookEndpoint{{Name: "catcher", URL: catcherURL,
				SecretRef: billingv1alpha1.WebhookSecretReference{Name: "portero-webhooks"}}},
		}},
		{name: "estrategicas", port: ports[1], spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme — Cuentas estratégicas",
			Permissions: billingv1alpha1.Permissions{
				UpdateBillingInfo: ptr.To(true), ViewPaymentHistory: ptr.To(true),
				UpdatePaymentMethod: ptr.To(true), CancelSubscriptions: ptr.To(false),
			},
			PaymentMethods: &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{billingv1alpha1.PaymentMethodBankTransfer, billingv1alpha1.PaymentMethodDirectDebit}},
			Branding:       billingv1alpha1.Branding{Locale: "es", PrimaryColor: "#1f3a5f", SupportEmail: "cuentas@portero.local"},
			Email:          email,
			MerchantAPI:    api,
			Exposure:       &billingv1alpha1.Exposure{PublicURL: "http://127.0.0.1:" + ports[1] + "/"},
		}},
		{name: "tarjetas", port: ports[2], spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme — Tarjetas",
			Permissions: billingv1alpha1.Permissions{
				UpdateBillingInfo: ptr.To(true), ViewPaymentHistory: ptr.To(true),
				UpdatePaymentMethod: ptr.To(true), CancelSubscriptions: ptr.To(true),
			},
			PaymentMethods: &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{billingv1alpha1.PaymentMethodCard}},
			Processor: &billingv1alpha1.Processor{Type: billingv1alpha1.ProcessorStripe,
				SecretRef: &billingv1alpha1.LocalObjectReference{Name: "tarjetas-stripe"}},
			Branding:    billingv1alpha1.Branding{Locale: "es", PrimaryColor: "#635bff", SupportEmail: "tarjetas@portero.local"},
			Email:       email,
			MerchantAPI: api,
			Exposure:    &billingv1alpha1.Exposure{PublicURL: "http://127.0.0.1:" + ports[2] + "/"},
		}},
	}
}

// localSecrets are what the local portals' Secrets hold.
type localSecrets struct {
	smtpPort, apiKey, webhookSecret string
	// stripeAPIBase and stripeWebhookSecret go to tarjetas's Stripe Secret; its secret key is a
	// test key stripe-mock accepts like any other.
	stripeAPIBase, stripeWebhookSecret string
}

// applyLocalPortals creates the SMTP, API-key and webhook Secrets and the portals, or updates their
// URLs on a rerun (a remembered port may have been taken), leaving the rest of what a person
// changed alone.
func applyLocalPortals(ctx context.Context, c client.Client, portals []localPortal, sec localSecrets) error {
	secrets := map[string]map[string]string{
		"portero-smtp":     {"host": "127.0.0.1", "port": sec.smtpPort, "tls": "none"},
		"portero-api-key":  {"key": sec.apiKey},
		"portero-webhooks": {"secret": sec.webhookSecret},
		"tarjetas-stripe": {"secret_key": "sk_test_PorteroLocal", "webhook_secret": sec.stripeWebhookSecret,
			"api_base": sec.stripeAPIBase},
	}
	for name, data := range secrets {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); apierrors.IsNotFound(err) {
			s.StringData = data
			if err := c.Create(ctx, s); err != nil {
				return fmt.Errorf("create secret %s: %w", name, err)
			}
			continue
		} else if err != nil {
			return err
		}
		s.StringData = data
		if err := c.Update(ctx, s); err != nil {
			return fmt.Errorf("update secret %s: %w", name, err)
		}
	}
	for _, lp := range portals {
		p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: lp.name}}
		err := c.Get(ctx, client.ObjectKeyFromObject(p), p)
		if apierrors.IsNotFound(err) {
			p.Spec = lp.spec
			if err := c.Create(ctx, p); err != nil {
				return fmt.Errorf("create portal %s: %w", lp.name, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		p.Spec.Exposure = lp.spec.Exposure
		// The catcher's endpoint follows the catcher if its port moved; other endpoints a
		// person added (or removed) stay as they are.
		for i, wh := range p.Spec.Webhooks {
			for _, want := range lp.spec.Webhooks {
				if wh.Name == want.Name {
					p.Spec.Webhooks[i].URL = want.URL
				}
			}
		}
		if err := c.Update(ctx, p); err != nil {
			return fmt.Errorf("update portal %s URL: %w", lp.name, err)
		}
	}
	return nil
}

// loadOrCreate returns the content of path, creating it with gen() the first time.
func loadOrCreate(path string, gen func() string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	v := gen()
	return v, os.WriteFile(path, []byte(v+"\n"), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// merchant is a tiny client of the merchant API, used to seed demo data the way a merchant would.
type merchant struct {
	base, key string
	http      *http.Client
}

// do sends one merchant API request. A 503 — the API's "nothing was recorded, try again
// shortly" (a portal just started whose configuration or key is not readable yet) — and a
// connection refused (the request never left) are retried for up to a minute, as a merchant's
// client would: on a loaded machine a portal's first reads of the API server can take seconds.
func (m merchant) do(ctx context.Context, method, path string, body any, out any, headers ...string) error {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		wait := func() error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(time.Duration(attempt)*250*time.Millisecond, 2*time.Second)):
				return nil
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(m.base, "/")+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+m.key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := m.http.Do(req)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) && time.Now().Before(deadline) {
				if err := wait(); err != nil {
					return err
				}
				continue
			}
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			if err := wait(); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
}

type idOnly struct {
	ID string `json:"id"`
}

// demoPlans are the general portal's plan catalogue, in ARS cents, switchable in the portal
// (spec.subscriptionUpdate.plans): three monthly plans and a yearly one (choosing it starts a
// new, yearly period).
var demoPlans = []struct {
	id, es, en  string
	amount      int64
	maxQuantity int
	interval    string
}{
	{"plan-inicial", "Plan Inicial", "Starter plan", 800000, 5, "month"},
	{"plan-profesional", "Plan Profesional", "Professional plan", 1500000, 10, "month"},
	{"plan-empresa", "Plan Empresa", "Business plan", 3500000, 50, "month"},
	{"plan-profesional-anual", "Plan Profesional anual", "Professional plan, yearly", 15000000, 10, "year"},
}

func demoPlanIDs() []string {
	ids := make([]string, len(demoPlans))
	for i, p := range demoPlans {
		ids[i] = p.id
	}
	return ids
}

// demoCustomer is the customer the printed session link opens.
const demoCustomerEmail = "ana.garcia@example.com"

// seedDemo fills the ledger through the merchant API, once: customers with methods, subscriptions
// and payment history, and one customer with no method and an incomplete payment.
func seedDemo(ctx context.Context, m merchant, marker string) (demoID string, err error) {
	if b, err := os.ReadFile(marker); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	type card struct {
		Number   string `json:"number"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
		CVC      string `json:"cvc"`
	}
	year := time.Now().Year() + 3
	customers := []struct {
		email, name, legal, cuit string
		methods                  []map[string]any
		plans                    []map[string]any
		payments                 int
	}{
		{demoCustomerEmail, "Ana García", "Ana García", "27-28033514-8",
			[]map[string]any{
				{"type": "card", "card": card{"4242424242424242", 12, year, "123"}},
				{"type": "direct_debit", "account": "2850590940090418135201"},
			},
			[]map[string]any{
				// From the catalogue, begun ten days ago: changing it shows a prorated amount.
				{"plan_id": "plan-profesional", "start_at": time.Now().Add(-10 * 24 * time.Hour).UTC().Format(time.RFC3339)},
				{"plan": "Soporte Premium", "amount": 450000, "currency": "ARS", "interval": "month"},
			}, 4},
		{"estudio.lopez@example.com", "Estudio López", "Estudio López SRL", "30-71234567-1",
			[]map[string]any{{"type": "bank_transfer"}},
			[]map[string]any{{"plan": "Plan Empresa", "amount": 9900000, "currency": "ARS", "interval": "year"}}, 1},
		{"martin.sosa@example.com", "Martín Sosa", "", "",
			nil, nil, 0},
	}
	for _, p := range demoPlans {
		// Sending a plan again answers 200 with it, so a seeding interrupted halfway can rerun.
		body := map[string]any{"id": p.id, "name": map[string]any{"es": p.es, "en": p.en}, "amount": p.amount,
			"currency": "ARS", "interval": p.interval, "max_quantity": p.maxQuantity}
		if err := m.do(ctx, http.MethodPost, "/api/v1/plans", body, nil); err != nil {
			return "", fmt.Errorf("seed plan %s: %w", p.id, err)
		}
	}
	for _, cu := range customers {
		var c idOnly
		body := map[string]any{"email": cu.email, "name": cu.name}
		if cu.legal != "" {
			body["billing"] = map[string]any{"legal_name": cu.legal, "tax_id": cu.cuit, "tax_condition": "responsable_inscripto",
				"address": map[string]any{"line1": "Av. Corrientes 1234", "city": "CABA", "province": "Buenos Aires", "postal_code": "C1043", "country": "AR"}}
		}
		if err := m.do(ctx, http.MethodPost, "/api/v1/customers", body, &c); err != nil {
			return "", fmt.Errorf("seed customer %s: %w", cu.email, err)
		}
		if cu.email == demoCustomerEmail {
			demoID = c.ID
		}
		for _, pm := range cu.methods {
			if err := m.do(ctx, http.MethodPost, "/api/v1/customers/"+c.ID+"/payment_methods", pm, nil); err != nil {
				return "", fmt.Errorf("seed method for %s: %w", cu.email, err)
			}
		}
		for i, pl := range cu.plans {
			pl["customer_id"] = c.ID
			if err := m.do(ctx, http.MethodPost, "/api/v1/subscriptions", pl, nil, "Idempotency-Key", "seed-sub-"+c.ID+fmt.Sprint(i)); err != nil {
				return "", fmt.Errorf("seed subscription for %s: %w", cu.email, err)
			}
		}
		for i := 0; i < cu.payments; i++ {
			p := map[string]any{"customer_id": c.ID, "amount": 250000 + i*10000, "currency": "ARS", "description": fmt.Sprintf("Consumo adicional #%d", i+1)}
			if err := m.do(ctx, http.MethodPost, "/api/v1/payments", p, nil, "Idempotency-Key", "seed-"+c.ID+fmt.Sprint(i)); err != nil {
				return "", fmt.Errorf("seed payment for %s: %w", cu.email, err)
			}
		}
		if len(cu.methods) == 0 {
			// No method: the payment is left incomplete and the customer is e-mailed a link to complete it.
			p := map[string]any{"customer_id": c.ID, "amount": 1200000, "currency": "ARS", "description": "Cuota de noviembre"}
			if err := m.do(ctx, http.MethodPost, "/api/v1/payments", p, nil, "Idempotency-Key", "seed-incomplete-"+c.ID); err != nil {
				return "", fmt.Errorf("seed incomplete payment: %w", err)
			}
		}
	}
	return demoID, os.WriteFile(marker, []byte(demoID+"\n"), 0o644)
}

// demoSession creates a PortalSession for the demo customer with kubectl's path (the API server)
// and returns its link once the operator has minted it.
func demoSession(ctx context.Context, c client.Client, portal, customerID string) (string, error) {
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", GenerateName: "demo-"},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef:              billingv1alpha1.PortalReference{Name: portal},
			Customer:               billingv1alpha1.CustomerReference{ID: customerID},
			TTL:                    &metav1.Duration{Duration: 24 * time.Hour},
			TTLSecondsAfterExpired: ptr.To[int64](3600),
		},
	}
	if err := c.Create(ctx, s); err != nil {
		return "", fmt.Errorf("create demo session: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return "", err
		}
		if s.Status.Phase == billingv1alpha1.SessionActive && s.Status.LinkSecretName != "" {
			sec := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: s.Status.LinkSecretName}, sec); err != nil {
				return "", err
			}
			return string(sec.Data["url"]), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("the operator did not mint PortalSession %s within a minute: see %s", s.Name, filepath.Join("bin", "local", "manager.log"))
}
