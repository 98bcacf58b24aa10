package web

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// defaultBrandColor is used when the portal sets none (or an invalid one).
const defaultBrandColor = "#2354d6"

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

func brandVersion(c string) string { return strings.TrimPrefix(brandColor(c), "#") }

// brandCSS serves the portal's colours as CSS custom properties. A stylesheet rather than an
// inline <style> keeps the CSP free of 'unsafe-inline' and of per-response hashes. Buttons and
// text-coloured uses get shades of the brand colour dark
// enough for WCAG AA (4.5:1) on white.
//
// The stylesheet's defaults cover a portal without a colour, so the page reads well even before
// this file arrives.
func (h *Handler) brandCSS(w http.ResponseWriter, r *http.Request) {
	c := defaultBrandColor
	if p := h.rules.Portal(r.Context()); p != nil {
		c = brandColor(p.Spec.Branding.PrimaryColor)
	}
	rgb := parseHex(c)
	white := [3]float64{1, 1, 1}
	// Buttons: the brand colour with white text when that reads well (4.5:1); a light brand
	// colour (yellow, say) keeps its hue with dark text; anything in between is darkened until
	// white text reads well, which keeps the brand's hue and the usual white-on-colour look.
	button, ink := rgb, "#ffffff"
	switch {
	case contrast(rgb, white) >= 4.5:
	case luminance(rgb) > 0.45:
		ink = "#111111"
	default:
		button = darkenUntil(rgb, white, 4.5)
	}
	text := darkenUntil(rgb, white, 4.5) // links and accents on white
	strong := scale(button, 0.85)
	if ink != "#ffffff" {
		strong = scale(button, 0.92)
	}
	soft := [3]float64{1 - (1-rgb[0])*0.1, 1 - (1-rgb[1])*0.1, 1 - (1-rgb[2])*0.1}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	if r.URL.Query().Get("v") == brandVersion(c) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	fmt.Fprintf(w, ":root{--brand:%s;--brand-button:%s;--brand-ink:%s;--brand-strong:%s;--brand-text:%s;--brand-soft:%s}\n",
		c, toHex(button), ink, toHex(strong), toHex(text), toHex(soft))
}

func scale(c [3]float64, f float64) [3]float64 { return [3]float64{c[0] * f, c[1] * f, c[2] * f} }

// darkenUntil darkens c in small steps until it contrasts at least min with bg.
func darkenUntil(c, bg [3]float64, min float64) [3]float64 {
	for i := 0; i < 60 && contrast(c, bg) < min; i++ {
		c = scale(c, 0.95)
	}
	return c
}

func parseHex(c string) [3]float64 {
	var out [3]float64
	for i := 0; i < 3; i++ {
		v, _ := strconv.ParseUint(c[1+2*i:3+2*i], 16, 8)
		out[i] = float64(v) / 255
	}
	return out
}

func toHex(c [3]float64) string {
	b := func(f float64) int { return int(math.Round(math.Max(0, math.Min(1, f)) * 255)) }
	return fmt.Sprintf("#%02x%02x%02x", b(c[0]), b(c[1]), b(c[2]))
}

// luminance is WCAG's relative luminance of an sRGB colour.
func luminance(c [3]float64) float64 {
	lin := func(v float64) float64 {
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c[0]) + 0.7152*lin(c[1]) + 0.0722*lin(c[2])
}

func contrast(a, b [3]float64) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
