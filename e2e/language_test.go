package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestLanguageSwitch: the portal speaks Spanish by default (branding.locale es) and the customer can
// switch to English from any page, in a real browser. With E2E_README_SCREENSHOTS=<dir> it also
// saves the overview and payment-method pages in both languages for the README.
func TestLanguageSwitch(t *testing.T) {
	ctx := browser(t)
	openLink(t, ctx, sessionLink(t, general, sys.DemoCustomerID))
	expectText(t, ctx, "Hola, Ana", "Medio de pago preferido")
	save(t, ctx, "overview-es")
	do(t, ctx, "open methods", chromedp.Navigate(sys.Portals[general].URL+"methods"), chromedp.WaitVisible(`li.method`))
	save(t, ctx, "methods-es")

	clickAndLoad(t, ctx, "switch to English", `nav.lang a[hreflang=en]`)
	expectText(t, ctx, "Preferred")
	do(t, ctx, "open the overview", chromedp.Navigate(sys.Portals[general].URL), chromedp.WaitVisible(`nav.tabs`))
	expectText(t, ctx, "Hello, Ana")
	save(t, ctx, "overview-en")
	do(t, ctx, "open add-method", chromedp.Navigate(sys.Portals[general].URL+"methods/new?type=card"), chromedp.WaitVisible(`#number`))
	save(t, ctx, "add-card-en")
}

// save writes a screenshot for the README when E2E_README_SCREENSHOTS names a directory.
func save(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("E2E_README_SCREENSHOTS")
	if dir == "" {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 = PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}
