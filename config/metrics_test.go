package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
	"github.com/portero-dev/portero/internal/testlog"
)

// TestDashboardAndAlertMetricsAreExported runs the real operator and a real portal server (the
// binaries, as make run does) against a real API server, uses them the way a platform team's
// merchants and customers do — a portal, session links minted and revoked, sign-ins, payments
// that succeed, fail and wait for a method, merchant API calls — and checks that every series
// the dashboard and the alerts query (config/prometheus/metrics-used.txt, kept exact by
// hack/promcheck) is on their /metrics.
func TestDashboardAndAlertMetricsAreExported(t *testing.T) {
	root := testenv.RepoRoot()
	want := readMetricsList(t, filepath.Join(root, "config", "prometheus", "metrics-used.txt"))

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.AddUser(envtest.User{Name: "portero-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	for name, pkg := range map[string]string{"manager": "./cmd/manager", "portal": "./cmd/portal"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	operatorMetrics, operatorProbes := freePort(t), freePort(t)
	start(t, ctx, "operator", filepath.Join(dir, "manager"), "--kubeconfig="+kubeconfig,
		"--metrics-bind-address=127.0.0.1:"+operatorMetrics, "--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:"+operatorProbes, "--portal-image=registry.example/portero:test")

	const ns, portalName, apiKey = "shop", "acme", "test-merchant-api-key-0123456789abcdef"
	portalPort, portalMetrics := freePort(t), freePort(t)
	base := "http://127.0.0.1:" + portalPort
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	// Nothing listens on the SMTP port: the sign-in below is for an unknown address, which sends
	// nothing anyway.
	must(c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"},
		StringData: map[string]string{"host": "127.0.0.1", "port": "1", "tls": "none"}}))
	must(c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-key"},
		StringData: map[string]string{"key": apiKey}}))
	// The merchant's webhook endpoint: every event is delivered here, so the delivery series exist.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	must(c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hooks"},
		StringData: map[string]string{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}))
	p := portalObject(ns, portalName, "smtp")
	p.Spec.Webhooks = []billingv1alpha1.WebhookEndpoint{{Name: "backend", URL: hook.URL + "/hooks",
		SecretRef: billingv1alpha1.WebhookSecretReference{Name: "hooks"}}}
	p.Spec.Exposure = &billingv1alpha1.Exposure{PublicURL: base + "/"}
	p.Spec.MerchantAPI = &billingv1alpha1.MerchantAPI{KeySecretRef: billingv1alpha1.APIKeySecretReference{Name: "api-key", Key: "key"}}
	must(c.Create(ctx, p))
	waitLive(t, c, "CustomerPortal", client.ObjectKeyFromObject(p), "reconciled", func(s status) bool { return s.observed() })
	makeAvailable(t, c, ns, portalName+"-portal")

	start(t, ctx, "portal", filepath.Join(dir, "portal"), "--kubeconfig="+kubeconfig, "--portal="+ns+"/"+portalName,
		"--listen=127.0.0.1:"+portalPort, "--metrics-listen=127.0.0.1:"+portalMetrics, "--data-dir="+filepath.Join(dir, "data"))
	waitHTTP(t, base+"/readyz")

	// The merchant's backend: customers, a card that pays, one that is declined, none at all.
	api := func(method, path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, method, base+"/api/v1"+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		if method == http.MethodPost && strings.HasPrefix(path, "/payments") {
			req.Header.Set("Idempotency-Key", fmt.Sprintf("k-%d", time.Now().UnixNano()))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s %s", method, path, resp.Status, rb)
		}
		if out != nil {
			must(json.Unmarshal(rb, out))
		}
	}
	year := time.Now().Year() + 3
	for i, card := range []string{"4242424242424242", "4000000000000002", ""} {
		var cu struct {
			ID string `json:"id"`
		}
		api(http.MethodPost, "/customers", map[string]any{"email": fmt.Sprintf("customer%d@example.com", i), "name": "Test"}, &cu)
		if card != "" {
			api(http.MethodPost, "/customers/"+cu.ID+"/payment_methods", map[string]any{"type": "card",
				"card": map[string]any{"number": card, "exp_month": 12, "exp_year": year, "cvc": "123"}}, nil)
		}
		api(http.MethodPost, "/payments", map[string]any{"customer_id": cu.ID, "amount": 250000, "currency": "ARS", "description": "Consumo"}, nil)
	}

	// A session link, minted by the operator, then revoked.
	s := sessionObject(ns, "link", portalName, 30*time.Minute)
	must(c.Create(ctx, s))
	waitLive(t, c, "PortalSession", client.ObjectKeyFromObject(s), "Active", func(s status) bool {
		return s.observed() && s.phase == billingv1alpha1.SessionActive
	})
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"revoked":true}}`))
	must(c.Patch(ctx, &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "link"}}, patch))
	waitLive(t, c, "PortalSession", client.ObjectKeyFromObject(s), "Revoked", func(s status) bool {
		return s.observed() && s.phase == billingv1alpha1.SessionRevoked
	})

	// A customer: a link nobody issued, then a code asked for an address the portal does not know.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	if resp, err := browser.Get(base + "/s/not-a-token"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	resp, err := browser.Get(base + "/login")
	must(err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field on /login:\n%s", page)
	}
	resp, err = browser.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "email": {"nobody@example.com"}})
	must(err)
	resp.Body.Close()
	if resp.Request.URL.Path != "/login/code" {
		t.Fatalf("POST /login ended on %s (%s), want /login/code", resp.Request.URL.Path, resp.Status)
	}

	// Some series appear only after the request that feeds them returned (the code's delivery
	// runs after the response): poll until every name is there.
	targets := map[string]string{
		"operator": "http://127.0.0.1:" + operatorMetrics + "/metrics",
		"portal":   "http://127.0.0.1:" + portalMetrics + "/metrics",
	}
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		exported := map[string]dto.MetricType{}
		for _, u := range targets {
			maps.Copy(exported, scrape(t, u))
		}
		missing = missing[:0]
		for _, n := range want {
			if !isExported(n, exported) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard or the alerts query series neither the operator nor the portal exports: %v", missing)
	}
}

// isExported reports whether a series name is on a scrape: a family of that name that is not a
// histogram, or a histogram's _bucket, _sum or _count.
func isExported(name string, families map[string]dto.MetricType) bool {
	if typ, ok := families[name]; ok {
		return typ != dto.MetricType_HISTOGRAM && typ != dto.MetricType_SUMMARY
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if families[base] == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}

// scrape reads a /metrics page in Prometheus's text format: family name → type.
func scrape(t *testing.T, u string) map[string]dto.MetricType {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", u, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	out := map[string]dto.MetricType{}
	for name, f := range families {
		if len(f.GetMetric()) > 0 {
			out[name] = f.GetType()
		}
	}
	return out
}

func readMetricsList(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if len(out) == 0 || !slices.IsSorted(out) {
		t.Fatalf("%s: want a sorted, non-empty list of names", path)
	}
	return out
}

// start runs a program until the test ends; its output is shown if the test fails.
func start(t *testing.T, ctx context.Context, name, bin string, args ...string) {
	t.Helper()
	var logs testlog.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.String())
		}
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after a minute: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
