package web

import (
	"image"
	"image/color"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"
	"rsc.io/qr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// qrSVG matches the payment page's QR code exactly as the template writes it: groups are the
// viewBox's side (twice), the accessible name, the background's side (twice) and the path.
var qrSVG = regexp.MustCompile(`<svg class="qr" viewBox="0 0 (\d+) (\d+)" width="220" height="220" shape-rendering="crispEdges" role="img" aria-label="([^"<>]+)"><rect width="(\d+)" height="(\d+)" fill="#fff"/><path d="([^"]*)" fill="#000"/></svg>`)

// qrRun is one subpath of a qrCode's path: a run of dark modules, one module high.
var qrRun = regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`)

// pageQRModules finds the one QR code on a page and reads its modules back.
func pageQRModules(t *testing.T, body string) (grid [][]bool, label string) {
	t.Helper()
	all := qrSVG.FindAllStringSubmatch(body, -1)
	if len(all) != 1 || strings.Count(body, "<svg") != 1 {
		t.Fatalf("want exactly one QR code on the page, found %d (of %d svg elements):\n%s", len(all), strings.Count(body, "<svg"), body)
	}
	m := all[0]
	side, _ := strconv.Atoi(m[1])
	if m[2] != m[1] || m[4] != m[1] || m[5] != m[1] {
		t.Fatalf("viewBox %sx%s and background %sx%s differ", m[1], m[2], m[4], m[5])
	}
	return qrModules(t, side, m[6]), m[3]
}

// qrModules draws path like a renderer would, on a side×side grid of modules, and fails on
// anything but whole-module runs inside it that never overlap.
func qrModules(t *testing.T, side int, path string) [][]bool {
	t.Helper()
	grid := make([][]bool, side)
	for i := range grid {
		grid[i] = make([]bool, side)
	}
	pos := 0
	for _, m := range qrRun.FindAllStringSubmatchIndex(path, -1) {
		if m[0] != pos {
			t.Fatalf("path has %q between runs", path[pos:m[0]])
		}
		pos = m[1]
		n := func(i int) int {
			v, err := strconv.Atoi(path[m[2*i]:m[2*i+1]])
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		x, y, w, back := n(1), n(2), n(3), n(4)
		if w == 0 || w != back || x+w > side || y >= side {
			t.Fatalf("run %q leaves the %d-module grid or is not a rectangle", path[m[0]:m[1]], side)
		}
		for i := x; i < x+w; i++ {
			if grid[y][i] {
				t.Fatalf("module %d,%d drawn twice", i, y)
			}
			grid[y][i] = true
		}
	}
	if pos != len(path) {
		t.Fatalf("path ends with %q", path[pos:])
	}
	return grid
}

// scanQR reads a module grid the way a phone reads the screen: rasterized (4 pixels a module,
// black on white) and decoded by an independent reader.
func scanQR(t *testing.T, grid [][]bool) string {
	t.Helper()
	const px = 4
	img := image.NewGray(image.Rect(0, 0, len(grid)*px, len(grid)*px))
	for y := range img.Rect.Dy() {
		for x := range img.Rect.Dx() {
			c := color.Gray{Y: 0xff}
			if grid[y/px][x/px] {
				c.Y = 0
			}
			img.SetGray(x, y, c)
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the code does not scan: %v", err)
	}
	return res.GetText()
}

// The drawn code is the encoder's matrix module for module, inside a blank quiet zone of four
// modules, and a reader gets the payload back from it.
func TestQRCodeScansAsItsPayload(t *testing.T) {
	payloads := []string{
		"sandbox-qr:7Q2M4X9KZP",
		"00020101021243650016COM.MERCADOLIBRE02013063638f1192a-5fd1-4180-a180-8bcae3556bc35204000053030325802AR5913Acme Billing6012Buenos Aires62070503***6304A1B2",
		"12345678901234567890",                   // numeric mode
		"PORTERO SANDBOX 0000003110000000123456", // alphanumeric mode
		`<svg onload="alert(1)">&'</svg>`,        // markup is data, never markup
		strings.Repeat("0123456789abcdef", 100),  // a large code (version 30-odd)
	}
	for _, p := range payloads {
		qc, err := newQRCode(p)
		if err != nil {
			t.Fatalf("%.20q: %v", p, err)
		}
		want, err := qr.Encode(p, qr.M)
		if err != nil {
			t.Fatal(err)
		}
		if qc.Side != want.Size+2*qrQuietZone {
			t.Fatalf("%.20q: side %d for a %d-module code", p, qc.Side, want.Size)
		}
		grid := qrModules(t, qc.Side, qc.Path)
		for y := range grid {
			for x := range grid[y] {
				if grid[y][x] != want.Black(x-qrQuietZone, y-qrQuietZone) { // Black is false off the code: the quiet zone
					t.Fatalf("%.20q: module %d,%d is %v, the encoder says %v", p, x, y, grid[y][x], !grid[y][x])
				}
			}
		}
		if got := scanQR(t, grid); got != p {
			t.Fatalf("scanned %q, want %q", got, p)
		}
	}
}

// A payload no QR code can hold is an error, not a truncated code.
func TestQRCodeTooLong(t *testing.T) {
	if qc, err := newQRCode(strings.Repeat("x", 3000)); err == nil || qc != nil {
		t.Fatalf("3000 bytes encoded: %v, %v", qc, err)
	}
}

// A pending QR payment whose payload no code can hold still shows the payload, as text, and
// says so in the log (without the payload).
func TestPaymentPageShowsAnOversizedPayloadAsText(t *testing.T) {
	pages, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	h := &Handler{pages: pages, log: slog.New(slog.NewTextHandler(&logs, nil))}
	portal := &billingv1alpha1.CustomerPortal{Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Acme"}}
	portal.Namespace, portal.Name = "ns", "acme"
	payload := "huge-" + strings.Repeat("x", 3000)
	p := ledger.Payment{ID: "pay_1", Amount: 100, Currency: ledger.ARS, Status: ledger.PaymentPending,
		MethodType: payments.MethodQR, Instructions: payload, CreatedAt: time.Now()}
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/payments/pay_1", nil)
	v := &visit{r: r, ctx: r.Context(), now: time.Now(), portal: portal, key: "ns/acme", locale: "es",
		sess: &auth.Session{ID: "s1", CSRFToken: "tok"}, customer: &ledger.Customer{ID: "cus_1"},
		due: &dueList{limit: dueCountCap}}
	d := h.paymentData(v, p)
	if d.QRCode != nil {
		t.Fatal("a 3005-byte payload was drawn")
	}
	rec := httptest.NewRecorder()
	h.render(rec, v, http.StatusOK, "payment", "title.payment", d)
	body := rec.Body.String()
	for _, want := range []string{"Pagá con tu billetera usando este código:", `<p class="mono copy">` + payload + "</p>"} {
		if !strings.Contains(body, want) {
			t.Fatalf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<svg") {
		t.Fatalf("page has an svg:\n%s", body)
	}
	if !strings.Contains(logs.String(), "shown as text only") || strings.Contains(logs.String(), "huge-") {
		t.Fatalf("log = %s", logs.String())
	}
}
