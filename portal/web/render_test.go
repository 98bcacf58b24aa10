package web

import (
	"bytes"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
)

var scriptWithBody = regexp.MustCompile(`<script[^>]*>[^<]|<script[^>]*>$|<script(\s[^>]*)?>\s*<[^/]`)

// Pretranslated fixed texts are escaped with html/template's table for HTML text and quoted
// attributes, so each must stand in one of those (not in a URL, script, style or unquoted
// attribute, where it escapes differently).
func TestPretranslateContexts(t *testing.T) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := fs.Glob(templateFS, "templates/pages/*.html")
	files = append(files, pages...)
	n := 0
	for _, f := range files {
		b, _ := templateFS.ReadFile(f)
		src := string(b)
		// A script element that only names its source (the add-card page's processor SDK)
		// holds no text; one with a body, or a style element, would.
		if scriptWithBody.MatchString(src) || strings.Contains(src, "<style") {
			t.Errorf("%s has a script or style element with a body: check pretranslate's contexts", f)
		}
		for _, loc := range fixedText.FindAllStringIndex(src, -1) {
			n++
			before := src[:loc[0]]
			open, closed := strings.LastIndex(before, "<"), strings.LastIndex(before, ">")
			if closed > open {
				continue // HTML text
			}
			tag := before[open:]
			eq := strings.LastIndex(tag, `="`)
			if eq < 0 || strings.Count(tag[eq+2:], `"`) != 0 || strings.Count(tag, `"`)%2 != 1 {
				t.Errorf("%s: %s is not in HTML text or a double-quoted attribute", f, src[loc[0]:loc[1]])
				continue
			}
			name := strings.ToLower(tag[strings.LastIndexAny(tag[:eq], " \n\t")+1 : eq])
			switch {
			case strings.HasPrefix(name, "on"), name == "href", name == "src", name == "action", name == "formaction", name == "style", name == "srcset":
				t.Errorf("%s: %s is in attribute %s, which is not escaped as text", f, src[loc[0]:loc[1]], name)
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d fixed texts found: is fixedText still matching the templates?", n)
	}
}

// The pretranslated sets render byte for byte what the plain templates do.
func TestPretranslatedPagesRenderTheSame(t *testing.T) {
	now := time.Date(2026, time.March, 4, 10, 0, 0, 0, time.UTC)
	pay := func(id, desc, status string) paymentRow {
		return paymentView("es", ledger.Payment{ID: id, Description: desc, Amount: 123456, Currency: ledger.ARS,
			Status: ledger.PaymentStatus(status), MethodType: "card", MethodSummary: "Visa •••• 4242", CreatedAt: now})
	}
	overview := overviewData{Name: "Ana <Benchmark> & Co's +1", ShowMethods: true, ShowBilling: true, ShowHistory: true,
		Preferred: &methodRow{ID: "pm_1", Label: "Visa •••• 4242", Preferred: true}, MethodCount: 5,
		Subscriptions: []subscriptionRow{{ID: "sub_1", Plan: "Plan \"Pro\"", Amount: 150000, Currency: ledger.ARS, Interval: "month",
			Status: "active", PeriodEnd: now, Href: "/subscriptions/sub_1"}},
		LegalName: "Ana SA", TaxID: "27-28033514-8", TaxCondition: "responsable_inscripto",
		Recent: []paymentRow{pay("pay_1", "Consumo #1", "succeeded"), pay("pay_2", "", "pending")},
		Due:    []paymentRow{pay("pay_3", "Consumo #3", "failed")}}
	cases := []struct {
		name, path string
		data       any
	}{
		{"overview", "/", overview},
		{"overview", "/", overviewData{}},
		{"payments", "/payments", paymentsData{Payments: overview.Recent, Next: "/payments?after=x"}},
		{"paymentsdue", "/payments/due", paymentsData{Payments: overview.Due}},
		{"error", "/methods", errorData{Status: 403, Message: "error.forbidden"}},
		{"payment", "/payments/pay_2", paymentData{P: pay("pay_2", "Cuota", "pending"), Instructions: "sandbox-qr:<x>", QR: true,
			QRCode: qrFromModules(3, func(x, y int) bool { return x == y })}}, // the code's name is a fixed text in an attribute
		{"ended", "/", nil},
		{"nopublic", "/", nil},
	}
	for _, locale := range locales {
		plain, err := parseTemplateSet(locale, false)
		if err != nil {
			t.Fatal(err)
		}
		pre, err := parseTemplateSet(locale, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			p := &page{Locale: locale, cat: catalog[locale], Title: "title.overview", SignedIn: true, CSRF: "tok+en/=",
				Brand:        brandView{Name: "Shop & <Co>", LogoURL: "https://shop.example/logo.png", SupportEmail: "help@shop.example", Version: "v1"},
				CustomerName: "Ana", Flash: "Saved", Due: 3, ReturnURL: "https://shop.example/account", Path: c.path, Asset: assetVersion,
				Nav:   []navItem{{Href: "/", Label: "nav.overview", Current: c.path == "/"}, {Href: "/payments", Label: "nav.payments"}},
				Langs: langLinks[locale], // the static-* templates render these, and Asset, at parse time
				Data:  c.data}
			var a, b bytes.Buffer
			if err := plain[c.name].ExecuteTemplate(&a, "layout", p); err != nil {
				t.Fatalf("%s/%s plain: %v", locale, c.name, err)
			}
			if err := pre[c.name].ExecuteTemplate(&b, "layout", p); err != nil {
				t.Fatalf("%s/%s pretranslated: %v", locale, c.name, err)
			}
			if a.String() != b.String() {
				t.Errorf("%s/%s renders differently pretranslated:\nplain: %s\npre:   %s", locale, c.name, a.String(), b.String())
			}
		}
	}
}

// Every static-* call in the layouts is rendered at parse time in each language's set.
func TestStaticTemplatesPrerendered(t *testing.T) {
	files, _ := fs.Glob(templateFS, "templates/*.html")
	for _, l := range locales {
		var srcs []string
		calls := 0
		for _, f := range files {
			src, err := templateSource(f, l, true)
			if err != nil {
				t.Fatal(err)
			}
			calls += len(staticCall.FindAllString(src, -1))
			srcs = append(srcs, src)
		}
		if calls < 2 {
			t.Fatalf("%d static-* calls found in the layouts: is staticCall still matching them?", calls)
		}
		out, err := prerender(files, srcs, l)
		if err != nil {
			t.Fatal(err)
		}
		for i, src := range out {
			if staticCall.MatchString(src) {
				t.Errorf("%s (%s): a static-* call is left after prerender", files[i], l)
			}
		}
	}
}
