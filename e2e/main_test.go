// Package e2e proves the seed documents' journeys end to end: the whole system as `make run` starts
// it (internal/localsys) driven by Debian's Chromium through chromedp, headless.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/portero-dev/portero/internal/localsys"
	"github.com/portero-dev/portero/internal/testenv"
)

var (
	sys      *localsys.System
	chromium string
	assets   string
	shotsDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard()) // envtest's own chatter; the system's logs are dumped on failure
	var err error
	if chromium, err = findChromium(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root := testenv.RepoRoot()
	assets = os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	tmp, err := os.MkdirTemp("", "portero-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	shotsDir = os.Getenv("E2E_SCREENSHOTS")
	if shotsDir == "" {
		shotsDir = filepath.Join(os.TempDir(), "portero-e2e-screenshots")
	}
	bin := filepath.Join(tmp, "bin")
	for name, pkg := range map[string]string{"manager": "./cmd/manager", "portal": "./cmd/portal"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			return 1
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var progress bytes.Buffer
	sys, err = localsys.Start(ctx, localsys.Options{Assets: assets, Bin: bin, State: filepath.Join(tmp, "state"), Root: root, Progress: &progress})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s", progress.String())
		dumpLogs(filepath.Join(tmp, "state"))
		// Last, so that a CI log showing only its tail still says why.
		fmt.Fprintf(os.Stderr, "e2e: start the local system: %v\n", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		dumpLogs(filepath.Join(tmp, "state"))
		fmt.Fprintln(os.Stderr, "e2e: a journey failed: its --- FAIL lines are above the logs")
	}
	sys.Stop()
	return code
}

func dumpLogs(state string) {
	for _, name := range []string{"manager", "general", "estrategicas"} {
		b, err := os.ReadFile(filepath.Join(state, name+".log"))
		if err != nil {
			continue
		}
		if len(b) > 1500 {
			b = b[len(b)-1500:]
		}
		fmt.Fprintf(os.Stderr, "--- tail of %s.log ---\n%s\n", name, b)
	}
}

// findChromium locates Debian's Chromium; the journeys do not run without a real browser.
func findChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("the browser journeys need Chromium: apt-get install -y chromium (.ci/run does this)")
}

// browser starts a fresh headless Chromium for one journey (its own profile, so no cookies leak
// between journeys) and saves a screenshot if the journey fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromium),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-quic", true),
			// The merchant's customers browse in Spanish. Headless Chromium asks for en-US
			// whatever --lang says, and the portal follows Accept-Language on a first visit.
			chromedp.Flag("accept-lang", "es-AR,es"),
			chromedp.UserDataDir(t.TempDir()),
			chromedp.WindowSize(1280, 900),
		)...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, ctx, "failure")
		}
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser now, so failures name it
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, label string) string {
	t.Helper()
	if err := os.MkdirAll(shotsDir, 0o755); err != nil {
		t.Log(err)
		return ""
	}
	// A failed journey may have spent its context; the screenshot gets a short one of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	buf, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // 100 = PNG
	if err != nil {
		t.Logf("screenshot: %v", err)
		return ""
	}
	name := filepath.Join(shotsDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+label+".png")
	if err := os.WriteFile(name, buf, 0o644); err != nil {
		t.Log(err)
		return ""
	}
	t.Logf("screenshot saved: %s", name)
	return name
}

// do runs browser steps and fails the journey with what it was doing.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// clickAndLoad clicks sel (a submit button or link) and waits until the next page has loaded, so
// what follows never reads the page it left.
func clickAndLoad(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	mark := chromedp.Evaluate[bool](`document.documentElement.dataset.e2eOld = "1", true`)
	loaded := chromedp.Evaluate[bool](`document.readyState === "complete" && !document.documentElement.dataset.e2eOld`)
	if _, err := chromedp.Run(ctx, mark); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	do(t, ctx, what, chromedp.Click(sel))
	poll(t, what+": next page", 15*time.Second, func() (bool, error) {
		ok, err := chromedp.Run(ctx, loaded)
		if err == nil && !ok {
			err = fmt.Errorf("still on the old page")
		}
		return ok, err
	})
}

// bodyText is the visible text of the page.
func bodyText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text("body"))
	if err != nil {
		t.Fatalf("read page: %v", err)
	}
	return s
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expectText waits until the page shows every one of want.
func expectText(t *testing.T, ctx context.Context, want ...string) {
	t.Helper()
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		body = bodyText(t, ctx)
		missing := false
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = true
			}
		}
		if !missing {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("page %s does not show %q; it shows:\n%s", location(t, ctx), want, body)
}

func expectNoText(t *testing.T, ctx context.Context, unwanted ...string) {
	t.Helper()
	body := bodyText(t, ctx)
	for _, u := range unwanted {
		if strings.Contains(body, u) {
			t.Fatalf("page %s shows %q but must not:\n%s", location(t, ctx), u, body)
		}
	}
}

// poll retries f until it succeeds or the deadline passes.
func poll[T any](t *testing.T, what string, timeout time.Duration, f func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var v T
		if v, err = f(); err == nil {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
	var zero T
	return zero
}

// ---- the merchant API, as a merchant's backend uses it ----

func apiURL(portal int) string { return sys.Portals[portal].URL + "api/v1" }

func merchant(t *testing.T, portal int, method, path string, body any, out any, headers ...string) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, apiURL(portal)+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sys.MerchantAPIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return resp.StatusCode
}

// apiError is the merchant API's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// merchantRefusal sends a request the merchant API must refuse and returns its status and error.
func merchantRefusal(t *testing.T, portal int, method, path string, body any) (int, apiError) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, apiURL(portal)+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sys.MerchantAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	var e apiError
	if resp.StatusCode < 400 {
		return resp.StatusCode, e
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%s %s: %s: the error is not JSON: %v\n%s", method, path, resp.Status, err, raw)
	}
	return resp.StatusCode, e
}

type customer struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

type payment struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	MethodSummary string `json:"method_summary"`
	Attempts      []struct {
		Outcome string `json:"outcome"`
	} `json:"attempts"`
}

var uniq = time.Now().UnixNano()

// newCustomer creates a customer with a unique e-mail and the given methods.
func newCustomer(t *testing.T, name string, methods ...map[string]any) customer {
	t.Helper()
	uniq++
	var c customer
	merchant(t, 0, "POST", "/customers", map[string]any{"email": fmt.Sprintf("%s.%d@example.com", strings.ToLower(strings.Fields(name)[0]), uniq), "name": name}, &c)
	for _, m := range methods {
		merchant(t, 0, "POST", "/customers/"+c.ID+"/payment_methods", m, &map[string]any{})
	}
	return c
}

func cardMethod(number string) map[string]any {
	return map[string]any{"type": "card", "card": map[string]any{"number": number, "exp_month": 12, "exp_year": time.Now().Year() + 4, "cvc": "123"}}
}

var directDebit = map[string]any{"type": "direct_debit", "account": "2850590940090418135201"}

// sessionLink asks the merchant API of portal for a session link, as a merchant's backend does.
func sessionLink(t *testing.T, portal int, customerID string) string {
	t.Helper()
	var s struct {
		URL string `json:"url"`
	}
	merchant(t, portal, "POST", "/portal_sessions", map[string]any{"customer_id": customerID}, &s)
	if !strings.Contains(s.URL, "/s/") {
		t.Fatalf("session url %q", s.URL)
	}
	return s.URL
}

// openLink follows a session link like a person: the link page, then its Continue button.
func openLink(t *testing.T, ctx context.Context, link string) {
	t.Helper()
	do(t, ctx, "open session link", chromedp.Navigate(link), chromedp.WaitVisible(`form[action^="/s/"] button[type=submit]`))
	clickAndLoad(t, ctx, "continue into the portal", `form[action^="/s/"] button[type=submit]`)
	do(t, ctx, "see the portal", chromedp.WaitVisible(`nav.tabs`))
}

// ---- Mailpit ----

type mailSummary struct {
	ID      string `json:"ID"`
	Subject string `json:"Subject"`
}

func mails(t *testing.T, to string) []mailSummary {
	t.Helper()
	resp, err := http.Get(sys.MailpitURL + "api/v1/search?query=" + "to:" + to)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Messages []mailSummary `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

func mailText(t *testing.T, id string) string {
	t.Helper()
	resp, err := http.Get(sys.MailpitURL + "api/v1/message/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Text string `json:"Text"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Text
}

// newMail waits for a message to `to` that was not among before, and returns its text.
func newMail(t *testing.T, to string, before []mailSummary) string {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range before {
		seen[m.ID] = true
	}
	id := poll(t, "e-mail to "+to, 30*time.Second, func() (string, error) {
		for _, m := range mails(t, to) {
			if !seen[m.ID] {
				return m.ID, nil
			}
		}
		return "", fmt.Errorf("no new message")
	})
	return mailText(t, id)
}

var linkRE = regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]{43}`)

// ---- kubectl, as a platform engineer uses it ----

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(assets, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+sys.Kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
