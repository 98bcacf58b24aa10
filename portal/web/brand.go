package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// defaultBrandColor is used when the portal sets none (or an invalid one).
const defaultBrandColor = "#2354d6"

// A merchant picks one colour and the portal draws buttons, links, badges, borders and focus
// rings with it. Used raw, most colours fail somewhere: white on a yellow button, a mid blue
// link on the grey page, a pale tab marker nobody sees. So the server derives a palette from
// the colour with WCAG 2.1's relative luminance and contrast ratio, each member checked
// against every surface it is drawn on (portal.css: the white card, the grey page, the
// brand's own tint):
//
//   - text (links, quiet buttons, the preferred badge): at least 4.5:1 on each surface;
//   - a button's label: at least 4.5:1 on the button, hovered or not;
//   - accent and button edge (current tab, preferred method, radios, a button's outline):
//     at least 3:1 on each surface, WCAG's minimum for the parts of a control.
//
// Shades are the brand colour scaled towards black (or mixed with white), which keeps its hue,
// by the least amount that passes: a colour that passes raw is used raw.
const (
	minText    = 4.5
	minControl = 3.0
	// lightBrand is the luminance above which a button keeps the brand colour and takes dark
	// text. Below it white text needs a luminance of at most 0.183, which from above 0.4 would
	// take more than half the colour's light away (a yellow turns olive): such a colour
	// reads as itself only with dark text.
	lightBrand = 0.4
)

// rgb is an sRGB colour, each channel in [0, 1].
type rgb [3]float64

var (
	white   = rgb{1, 1, 1}
	pageBG  = parseHex("#f5f6f8") // portal.css --bg: the page behind cards, darker than a card
	darkInk = parseHex("#111111") // text on light buttons
)

// palette is what the portal draws with, derived from one brand colour.
type palette struct {
	brand       rgb // as the portal gave it; drawn with nowhere
	button      rgb // primary buttons' background
	ink         rgb // primary buttons' text
	buttonHover rgb // primary buttons' background under the pointer
	buttonEdge  rgb // primary buttons' outline, visible on the page whatever the fill
	hoverEdge   rgb // the outline under the pointer
	text        rgb // links, quiet buttons, badge text
	textHover   rgb // links under the pointer
	accent      rgb // non-text marks: current tab, preferred method, checked radios
	soft        rgb // a light tint behind brand text (badge, quiet button hover, focus halo)
}

// derivePalette computes the readable palette of a brand colour.
func derivePalette(brand rgb) palette {
	p := palette{brand: brand}
	p.soft = quantize(mix(brand, white, 0.9))
	surfaces := []rgb{white, pageBG, p.soft}
	p.text = darkenTo(brand, minText, surfaces...)
	p.textHover = hoverShade(p.text, func(h rgb) bool { return passes(h, minText, surfaces...) })
	p.accent = darkenTo(brand, minControl, white, pageBG)

	switch {
	case contrast(brand, white) >= minText:
		p.button, p.ink = brand, white
	case luminance(brand) >= lightBrand && contrast(brand, darkInk) >= minText:
		p.button, p.ink = brand, darkInk
	default:
		p.button, p.ink = darkenTo(brand, minText, white), white
	}
	p.buttonHover = hoverShade(p.button, func(h rgb) bool { return contrast(h, p.ink) >= minText })
	// A button that stands out from the page by its fill has an outline of the same colour
	// (under the pointer too); one that does not is outlined in the accent.
	p.buttonEdge, p.hoverEdge = p.button, p.buttonHover
	if !passes(p.button, minControl, white, pageBG) || !passes(p.buttonHover, minControl, white, pageBG) {
		p.buttonEdge, p.hoverEdge = p.accent, p.accent
	}
	return p
}

// hoverShade is the shade of c shown under the pointer: darker, or lighter where darker is too
// close to black to tell apart, whichever ok accepts first; c itself if neither.
func hoverShade(c rgb, ok func(rgb) bool) rgb {
	for _, h := range []rgb{quantize(scale(c, 0.85)), quantize(mix(c, white, 0.2))} {
		if contrast(h, c) >= 1.15 && ok(h) {
			return h
		}
	}
	return c
}

// css is the palette as the custom properties portal.css reads.
func (p palette) css() string {
	return fmt.Sprintf(":root{--brand:%s;--brand-button:%s;--brand-ink:%s;--brand-strong:%s;--brand-edge:%s;--brand-edge-strong:%s;"+
		"--brand-text:%s;--brand-text-strong:%s;--brand-accent:%s;--brand-soft:%s}\n",
		toHex(p.brand), toHex(p.button), toHex(p.ink), toHex(p.buttonHover), toHex(p.buttonEdge), toHex(p.hoverEdge),
		toHex(p.text), toHex(p.textHover), toHex(p.accent), toHex(p.soft))
}

// brandSheet is a colour's stylesheet and its version: the colour and a digest of the sheet, so
// a browser holding the sheet of an older derivation (cached for a day) fetches the new one.
type brandSheet struct {
	color, css, version string
}

// lastSheet keeps the last sheet made: a portal has one colour at a time, and every page names
// its version.
var lastSheet atomic.Pointer[brandSheet]

func sheetFor(color string) *brandSheet {
	c := brandColor(color)
	if s := lastSheet.Load(); s != nil && s.color == c {
		return s
	}
	css := derivePalette(parseHex(c)).css()
	sum := sha256.Sum256([]byte(css))
	s := &brandSheet{color: c, css: css, version: strings.TrimPrefix(c, "#") + "-" + hex.EncodeToString(sum[:4])}
	lastSheet.Store(s)
	return s
}

// brandColor returns the portal's #rrggbb colour, lower-cased, or the default.
func brandColor(c string) string {
	if len(c) != 7 || c[0] != '#' {
		return defaultBrandColor
	}
	for i := 1; i < 7; i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(c[i])) {
			return defaultBrandColor
		}
	}
	return strings.ToLower(c)
}

func brandVersion(c string) string { return sheetFor(c).version }

// brandCSS serves the portal's palette as CSS custom properties. A stylesheet rather than an
// inline <style> keeps the CSP free of 'unsafe-inline' and of per-response hashes.
//
// portal.css declares the default colour's palette, so a page reads well even before this file
// arrives.
func (h *Handler) brandCSS(w http.ResponseWriter, r *http.Request) {
	c := defaultBrandColor
	if p := h.rules.Portal(r.Context()); p != nil {
		c = p.Spec.Branding.PrimaryColor
	}
	s := sheetFor(c)
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	if r.URL.Query().Get("v") == s.version {
		w.Header().Set("Cache-Control", "public, max-age=86400")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write([]byte(s.css))
}

func scale(c rgb, f float64) rgb { return rgb{c[0] * f, c[1] * f, c[2] * f} }

// mix is c moved towards to by t (0: c, 1: to).
func mix(c, to rgb, t float64) rgb {
	return rgb{c[0] + (to[0]-c[0])*t, c[1] + (to[1]-c[1])*t, c[2] + (to[2]-c[2])*t}
}

// quantize rounds c to the 8-bit channels it is served with, so contrast is checked on the
// colour the browser draws, not on one between two of its steps.
func quantize(c rgb) rgb {
	var q rgb
	for i, v := range c {
		q[i] = math.Round(math.Max(0, math.Min(1, v))*255) / 255
	}
	return q
}

// darkenTo returns the lightest shade of c (c scaled towards black) that contrasts at least min
// with every one of bgs, all of them light surfaces. Black always does: it reaches 4.5:1 on
// anything of luminance 0.175 or more, and the portal's surfaces are near white.
func darkenTo(c rgb, min float64, bgs ...rgb) rgb {
	if q := quantize(c); passes(q, min, bgs...) {
		return q
	}
	// Luminance grows with the factor, and contrast with a lighter background falls with it:
	// bisect for the largest factor that passes.
	lo, hi := 0.0, 1.0
	for range 30 {
		mid := (lo + hi) / 2
		if passes(quantize(scale(c, mid)), min, bgs...) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return quantize(scale(c, lo))
}

// passes reports whether c contrasts at least min with every one of bgs.
func passes(c rgb, min float64, bgs ...rgb) bool {
	for _, bg := range bgs {
		if contrast(c, bg) < min {
			return false
		}
	}
	return true
}

func parseHex(c string) rgb {
	var out rgb
	if len(c) != 7 || c[0] != '#' {
		panic("web: not a #rrggbb colour: " + c)
	}
	for i := range 3 {
		v, err := strconv.ParseUint(c[1+2*i:3+2*i], 16, 8)
		if err != nil {
			panic("web: not a #rrggbb colour: " + c)
		}
		out[i] = float64(v) / 255
	}
	return out
}

func toHex(c rgb) string {
	b := func(f float64) int { return int(math.Round(math.Max(0, math.Min(1, f)) * 255)) }
	return fmt.Sprintf("#%02x%02x%02x", b(c[0]), b(c[1]), b(c[2]))
}

// luminance is WCAG 2.1's relative luminance of an sRGB colour. (WCAG writes 0.03928 for the
// linear segment's end; sRGB's own 0.04045 differs from it only between two 8-bit steps.)
func luminance(c rgb) float64 {
	lin := func(v float64) float64 {
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c[0]) + 0.7152*lin(c[1]) + 0.0722*lin(c[2])
}

// contrast is WCAG 2.1's contrast ratio of two colours, from 1 to 21.
func contrast(a, b rgb) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
