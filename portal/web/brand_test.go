package web

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
)

// The contrast maths is checked against published values (WebAIM's contrast checker, WCAG's
// examples), so the palette tests below cannot pass on a formula that is wrong in the same way
// in the code and in the test.
func TestContrastMatchesPublishedValues(t *testing.T) {
	for _, c := range []struct {
		fg, bg string
		want   float64
	}{
		{"#000000", "#ffffff", 21},
		{"#ffffff", "#ffffff", 1},
		{"#767676", "#ffffff", 4.54}, // the lightest grey that passes AA on white
		{"#777777", "#ffffff", 4.48}, // one step lighter: fails
		{"#949494", "#ffffff", 3.03},
		{"#808080", "#ffffff", 3.95},
		{"#0000ff", "#ffffff", 8.59},
		{"#ff0000", "#ffffff", 4.00},
		{"#ffff00", "#ffffff", 1.07},
		{"#595959", "#ffffff", 7.00},
	} {
		got := contrast(parseHex(c.fg), parseHex(c.bg))
		if math.Abs(got-c.want) > 0.006 {
			t.Errorf("contrast(%s, %s) = %.3f, want %.2f", c.fg, c.bg, got, c.want)
		}
		if back := contrast(parseHex(c.bg), parseHex(c.fg)); back != got {
			t.Errorf("contrast(%s, %s) = %.3f but %.3f the other way round", c.fg, c.bg, got, back)
		}
	}
	if l := luminance(parseHex("#ff0000")); math.Abs(l-0.2126) > 1e-9 {
		t.Errorf("luminance(red) = %v, want 0.2126", l)
	}
}

var brandVarRE = regexp.MustCompile(`--([a-z-]+):(#[0-9a-f]{6})`)

// servedPalette is the palette as /brand.css serves it for colour c: what the browser draws.
func servedPalette(t *testing.T, c string) map[string]rgb {
	t.Helper()
	vars := map[string]rgb{}
	for _, m := range brandVarRE.FindAllStringSubmatch(sheetFor(c).css, -1) {
		vars[m[1]] = parseHex(m[2])
	}
	for _, name := range []string{"brand", "brand-button", "brand-ink", "brand-strong", "brand-edge", "brand-edge-strong",
		"brand-text", "brand-text-strong", "brand-accent", "brand-soft"} {
		if _, ok := vars[name]; !ok {
			t.Fatalf("%s: /brand.css has no --%s: %s", c, name, sheetFor(c).css)
		}
	}
	return vars
}

// readableProblems lists every WCAG 2.1 AA requirement the served palette of c misses, as
// portal.css uses it: text on the card, the page and the brand tint; labels on buttons, hovered
// or not; control marks and button outlines on the card and the page.
func readableProblems(t *testing.T, c string) []string {
	t.Helper()
	v := servedPalette(t, c)
	var out []string
	need := func(what string, fg, bg rgb, min float64) {
		if got := contrast(fg, bg); got < min {
			out = append(out, fmt.Sprintf("%s: %s on %s is %.2f:1, want %.1f:1", what, toHex(fg), toHex(bg), got, min))
		}
	}
	surfaces := map[string]rgb{"card": white, "page": pageBG, "brand tint": v["brand-soft"]}
	for name, bg := range surfaces {
		need("link on the "+name, v["brand-text"], bg, 4.5)
		need("hovered link on the "+name, v["brand-text-strong"], bg, 4.5)
	}
	need("button label", v["brand-ink"], v["brand-button"], 4.5)
	need("hovered button label", v["brand-ink"], v["brand-strong"], 4.5)
	for _, name := range []string{"card", "page"} {
		need("control mark on the "+name, v["brand-accent"], surfaces[name], 3)
		need("button outline on the "+name, v["brand-edge"], surfaces[name], 3)
		need("hovered button outline on the "+name, v["brand-edge-strong"], surfaces[name], 3)
		need("focus ring on the "+name, v["brand-text"], surfaces[name], 3)
	}
	return out
}

// darkenedFrom reports whether shade is brand scaled towards black (its hue kept), up to the
// 8-bit rounding of each channel.
func darkenedFrom(brand, shade rgb) bool {
	k := 0
	for i := range brand {
		if brand[i] > brand[k] {
			k = i
		}
	}
	if brand[k] == 0 {
		return shade == brand
	}
	f := shade[k] / brand[k]
	for i := range brand {
		if shade[i] > brand[i]+1e-9 || math.Abs(shade[i]-brand[i]*f) > 1.01/255 {
			return false
		}
	}
	return true
}

func TestBrandPalettesAreReadable(t *testing.T) {
	dark, light := "#111111", "#ffffff"
	for _, c := range []struct {
		color string
		ink   string // the button label's colour
		raw   bool   // the button keeps the brand colour as it is
	}{
		{"#2354d6", light, true}, // the default: passes raw everywhere
		{"#0a7cff", light, false},
		{"#ffd400", dark, true}, // light: keeps its yellow, takes dark text and an outline
		{"#1a1a1a", light, true},
		{"#000000", light, true},
		{"#ffffff", dark, true},
		{"#ffff00", dark, true},
		{"#00ff00", dark, true},
		{"#00ffff", dark, true},
		{"#ff00ff", light, false},
		{"#ff6600", light, false},
		{"#ff0000", light, false},
		{"#0000ff", light, true},
		{"#777777", light, false},
		{"#767676", light, true},
		{"#1f3a5f", light, true},
		{"#e91e63", light, false},
		{"#8bc34a", dark, true},
		{"#f4f6f8", dark, true}, // almost the page's own grey
	} {
		if p := readableProblems(t, c.color); len(p) > 0 {
			t.Errorf("%s:\n  %s", c.color, strings.Join(p, "\n  "))
		}
		v := servedPalette(t, c.color)
		if got := toHex(v["brand-ink"]); got != c.ink {
			t.Errorf("%s: button label %s, want %s", c.color, got, c.ink)
		}
		if raw := v["brand-button"] == parseHex(c.color); raw != c.raw {
			t.Errorf("%s: button %s, want the brand colour as it is: %v", c.color, toHex(v["brand-button"]), c.raw)
		}
		if got := toHex(v["brand"]); got != c.color {
			t.Errorf("%s: --brand is %s", c.color, got)
		}
	}
	// Light brands draw their buttons' outline in a darker shade, or a yellow button would
	// vanish on white; dark ones need none.
	if v := servedPalette(t, "#ffd400"); v["brand-edge"] == v["brand-button"] || contrast(v["brand-edge"], white) < 3 {
		t.Errorf("#ffd400: button outline %s", toHex(v["brand-edge"]))
	}
	if v := servedPalette(t, "#1a1a1a"); v["brand-edge"] != v["brand-button"] || v["brand-text"] != parseHex("#1a1a1a") {
		t.Errorf("#1a1a1a: outline %s, text %s: a dark brand needs no other shade", toHex(v["brand-edge"]), toHex(v["brand-text"]))
	}
}

// Every colour of a coarse sweep of the RGB cube (18 steps a channel, both ends included) gets a
// palette that meets AA, derived from it by darkening only as far as needed.
func TestBrandPaletteSweep(t *testing.T) {
	n, failed := 0, 0
	for r := 0; r <= 255; r += 15 {
		for g := 0; g <= 255; g += 15 {
			for b := 0; b <= 255; b += 15 {
				c := fmt.Sprintf("#%02x%02x%02x", r, g, b)
				n++
				if p := readableProblems(t, c); len(p) > 0 {
					if failed++; failed <= 20 {
						t.Errorf("%s:\n  %s", c, strings.Join(p, "\n  "))
					}
					continue
				}
				brand := parseHex(c)
				v := servedPalette(t, c)
				for _, role := range []struct {
					name string
					min  float64
					bgs  []rgb
				}{
					{"brand-text", 4.5, []rgb{white, pageBG, v["brand-soft"]}},
					{"brand-accent", 3, []rgb{white, pageBG}},
				} {
					shade := v[role.name]
					if !darkenedFrom(brand, shade) {
						t.Errorf("%s: --%s %s is not a darker shade of the brand", c, role.name, toHex(shade))
						continue
					}
					worst := math.Inf(1)
					for _, bg := range role.bgs {
						worst = math.Min(worst, contrast(shade, bg))
					}
					if shade == brand {
						continue
					}
					if passes(brand, role.min, role.bgs...) {
						t.Errorf("%s: --%s darkened to %s though the brand passes as it is", c, role.name, toHex(shade))
					}
					if worst > role.min*1.1 {
						t.Errorf("%s: --%s %s is darker than needed: %.2f:1 where %.1f:1 is enough", c, role.name, toHex(shade), worst, role.min)
					}
				}
				if v["brand-ink"] == white && !darkenedFrom(brand, v["brand-button"]) {
					t.Errorf("%s: button %s is not a darker shade of the brand", c, toHex(v["brand-button"]))
				}
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d colours miss AA", failed, n)
	}
}

// portal.css carries the default colour's palette for the moment before /brand.css arrives,
// and the page's grey that brand.go measures against.
func TestPortalCSSDefaultsMatchThePalette(t *testing.T) {
	root := portalCSSRoot(t)
	for name, want := range servedPalette(t, defaultBrandColor) {
		if got, ok := root[name]; !ok || got != want {
			t.Errorf("portal.css --%s = %s, /brand.css of the default colour says %s", name, toHex(got), toHex(want))
		}
	}
	if root["bg"] != pageBG || root["surface"] != white {
		t.Errorf("portal.css --bg %s, --surface %s; brand.go measures against %s and %s",
			toHex(root["bg"]), toHex(root["surface"]), toHex(pageBG), toHex(white))
	}
}

// The colours portal.css fixes itself (text, muted text, statuses, danger buttons, field
// outlines) read on what they are drawn on.
func TestPortalCSSFixedColoursAreReadable(t *testing.T) {
	v := portalCSSRoot(t)
	header := parseHex("#fafbfc") // .table th
	for _, p := range []struct {
		what   string
		fg, bg rgb
		min    float64
	}{
		{"text on the page", v["text"], v["bg"], 4.5},
		{"muted text on the card", v["muted"], v["surface"], 4.5},
		{"muted text on the page", v["muted"], v["bg"], 4.5},
		{"table header", v["muted"], header, 4.5},
		{"success notice", v["success"], v["success-bg"], 4.5},
		{"warning notice", v["warning"], v["warning-bg"], 4.5},
		{"error notice", v["error"], v["error-bg"], 4.5},
		{"field error on the card", v["error"], v["surface"], 4.5},
		{"danger button", white, v["error"], 4.5},
		{"hovered danger button", white, parseHex("#8f1e18"), 4.5},
		{"field outline on the card", v["control-border"], v["surface"], 3},
		{"field outline on the page", v["control-border"], v["bg"], 3},
	} {
		if got := contrast(p.fg, p.bg); got < p.min {
			t.Errorf("%s: %s on %s is %.2f:1, want %.1f:1", p.what, toHex(p.fg), toHex(p.bg), got, p.min)
		}
	}
}

// portalCSSRoot is the colours portal.css declares in :root.
func portalCSSRoot(t *testing.T) map[string]rgb {
	t.Helper()
	b, err := staticFS.ReadFile("static/portal.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	start := strings.Index(css, ":root {")
	end := strings.Index(css[start:], "}")
	if start < 0 || end < 0 {
		t.Fatal("portal.css has no :root block")
	}
	vars := map[string]rgb{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-f]{6})\s*;`).FindAllStringSubmatch(css[start:start+end], -1) {
		vars[m[1]] = parseHex(m[2])
	}
	return vars
}

func BenchmarkBrandVersion(b *testing.B) {
	colors := []string{"#0a7cff", "#ffd400"}
	for i := 0; b.Loop(); i++ {
		// Alternating colours: the worst case, every call derives a palette.
		_ = brandVersion(colors[i%2])
	}
}
