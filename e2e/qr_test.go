package e2e

import (
	"bytes"
	"image"
	_ "image/png" // chromedp's screenshots
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"
)

// A payment by QR waits for the customer: its page shows a code that a phone scans off the
// screen. The browser draws the inline SVG under the portal's CSP; a screenshot of it, decoded by
// an independent reader, gives back the payload the processor issued.
func TestPendingQRPaymentShowsAScannableCode(t *testing.T) {
	ctx := browser(t)
	c := newCustomer(t, "Elena Sosa", map[string]any{"type": "qr"})
	var p struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		Instructions string `json:"instructions"`
	}
	merchant(t, general, "POST", "/payments", map[string]any{"customer_id": c.ID, "amount": 120000, "currency": "ARS", "description": "Cuota de enero"}, &p, "Idempotency-Key", "e2e-qr-"+c.ID)
	if p.Status != "pending" || p.Instructions == "" {
		t.Fatalf("QR payment = %+v, want pending with instructions", p)
	}
	openLink(t, ctx, sessionLink(t, general, c.ID))
	do(t, ctx, "open the payment", chromedp.Navigate(sys.Portals[general].URL+"payments/"+p.ID), chromedp.WaitVisible(`svg[role=img]`))
	expectText(t, ctx, "Escaneá este código QR", p.Instructions)

	label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("svg[role=img]").getAttribute("aria-label")`))
	if err != nil || label != "Código QR para pagar" {
		t.Fatalf("accessible name %q (%v)", label, err)
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("svg[role=img]").getBoundingClientRect().width`))
	if err != nil || width < 200 || width > 240 {
		t.Fatalf("the code is %vpx wide (%v), want about 220", width, err)
	}
	shot, err := chromedp.Run(ctx, chromedp.Screenshot(`svg[role=img]`))
	if err != nil {
		t.Fatalf("screenshot the code: %v", err)
	}
	img, _, err := image.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		screenshot(t, ctx, "qr")
		t.Fatalf("the code on screen does not scan: %v", err)
	}
	if got := res.GetText(); got != p.Instructions {
		t.Fatalf("the code on screen scans as %q, want %q", got, p.Instructions)
	}
	if body := bodyText(t, ctx); strings.Count(body, p.Instructions) != 1 {
		t.Fatalf("the payload should be shown once, as text under the code:\n%s", body)
	}
}
