package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v84/webhook"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// tarjetas is make run's third portal: cards only, charged through Stripe (the local
// stripe-mock), entered on Stripe's page.
const tarjetas = 2

// TestTarjetasTakesCardsOnlyAtStripe is issue 15's "what must show" on make run's system: the
// tarjetas portal is Ready; no page of it holds a card-number field; its add-card page answers
// 303 off the portal's host; its merchant API refuses a raw card; an event signed with the
// webhook_secret of its Secret is accepted once, its replay changes nothing, and a bad
// signature or a timestamp 10 minutes old is 400.
func TestTarjetasTakesCardsOnlyAtStripe(t *testing.T) {
	ctx := context.Background()
	portal := sys.Portals[tarjetas]
	if portal.Name != "tarjetas" {
		t.Fatalf("third portal is %s", portal.Name)
	}
	poll(t, "tarjetas Ready", time.Minute, func() (bool, error) {
		var p billingv1alpha1.CustomerPortal
		if err := sys.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "tarjetas"}, &p); err != nil {
			return false, err
		}
		if !meta.IsStatusConditionTrue(p.Status.Conditions, "Ready") {
			return false, fmt.Errorf("conditions %+v", p.Status.Conditions)
		}
		if len(p.Status.PaymentMethods) != 1 || p.Status.PaymentMethods[0] != "card" {
			return false, fmt.Errorf("status.paymentMethods %v", p.Status.PaymentMethods)
		}
		return true, nil
	})

	var c struct {
		ID string `json:"id"`
	}
	merchant(t, tarjetas, "POST", "/customers", map[string]any{"email": "tarjetas-" + randomID() + "@example.com", "name": "Lucía Tarjeta"}, &c)
	status, e := merchantRefusal(t, tarjetas, "POST", "/customers/"+c.ID+"/payment_methods",
		map[string]any{"type": "card", "card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123"}})
	if status != http.StatusBadRequest || e.Code != "raw_card_not_accepted" {
		t.Fatalf("raw card: %d %+v, want 400 raw_card_not_accepted", status, e)
	}

	// The customer, signed in through a session link, as a browser would be.
	b := newHTTPBrowser(t)
	b.openLink(sessionLink(t, tarjetas, c.ID))
	for _, path := range []string{"", "methods", "methods/new", "payments"} {
		body := b.page(portal.URL + path)
		for _, field := range []string{`name="number"`, `autocomplete="cc-number"`, `name="cvc"`} {
			if strings.Contains(body, field) {
				t.Fatalf("/%s holds a card field (%s)", path, field)
			}
		}
	}
	resp := b.get(portal.URL + "methods/new?type=card")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	base, _ := url.Parse(portal.URL)
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Host == "" || loc.Host == base.Host {
		t.Fatalf("add a card: %d to %q, want 303 off the portal's host", resp.StatusCode, resp.Header.Get("Location"))
	}

	// POST /webhooks/stripe, signed with the webhook_secret of tarjetas's Stripe Secret.
	var sec corev1.Secret
	if err := sys.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "tarjetas-stripe"}, &sec); err != nil {
		t.Fatal(err)
	}
	whsec := string(sec.Data["webhook_secret"])
	ev := func(id string, at time.Time, secret string) (http.Header, []byte) {
		body, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": "payment_method.detached",
			"api_version": "2026-02-25.clover", "created": at.Unix(), "livemode": false, "pending_webhooks": 1,
			"data": map[string]any{"object": map[string]any{"id": "pm_e2e_" + id, "object": "payment_method", "customer": nil}}})
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
		h := http.Header{}
		h.Set("Stripe-Signature", sp.Header)
		h.Set("Content-Type", "application/json")
		return h, body
	}
	post := func(h http.Header, body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, portal.URL+"webhooks/stripe", bytes.NewReader(body))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := webhookCounts(t, portal.Metrics)
	id := "evt_e2e_" + randomID()
	h, body := ev(id, time.Now(), whsec)
	if code := post(h, body); code != http.StatusOK {
		t.Fatalf("signed event: %d, want 200", code)
	}
	if code := post(h, body); code != http.StatusOK {
		t.Fatalf("its replay: %d, want 200", code)
	}
	if code := post(ev("evt_e2e_forged", time.Now(), "whsec_not_tarjetas")); code != http.StatusBadRequest {
		t.Fatalf("bad signature: %d, want 400", code)
	}
	if code := post(ev("evt_e2e_stale", time.Now().Add(-10*time.Minute), whsec)); code != http.StatusBadRequest {
		t.Fatalf("10-minute-old timestamp: %d, want 400", code)
	}
	after := webhookCounts(t, portal.Metrics)
	for k, want := range map[string]float64{"method.detached/handled": 1, "method.detached/duplicate": 1, "unknown/bad_signature": 2} {
		if got := after[k] - before[k]; got != want {
			t.Errorf("webhooks %s: %v more, want %v (the replay must change nothing)", k, got, want)
		}
	}
}

// webhookCounts reads the portal's processor webhook counters, by "type/outcome".
func webhookCounts(t *testing.T, metricsURL string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^portero_portal_processor_webhooks_total\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		labels := map[string]string{}
		for _, kv := range strings.Split(m[1], ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		var f float64
		_ = json.Unmarshal([]byte(m[2]), &f)
		out[labels["type"]+"/"+labels["outcome"]] = f
	}
	return out
}

// httpBrowser is a cookie-keeping client that does not follow redirects: enough of a browser to
// open a session link and read pages, where the checks are about what the server answers.
type httpBrowser struct {
	t *testing.T
	c *http.Client
}

func newHTTPBrowser(t *testing.T) *httpBrowser {
	jar, _ := cookiejar.New(nil)
	return &httpBrowser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *httpBrowser) get(u string) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept-Language", "es-AR,es")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// page GETs u and returns its body, which must be a 200 page.
func (b *httpBrowser) page(u string) string {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept-Language", "es-AR,es")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, body)
	}
	return string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// openLink is the link page, then its Continue button.
func (b *httpBrowser) openLink(link string) {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(b.page(link))
	if m == nil {
		b.t.Fatal("the link page has no form token")
	}
	resp, err := b.c.PostForm(link, url.Values{"csrf": {m[1]}})
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("continue into the portal: %d", resp.StatusCode)
	}
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
