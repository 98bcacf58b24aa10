package web

import (
	"fmt"
	"strconv"
	"strings"

	"rsc.io/qr"
)

// qrQuietZone is the white margin around a QR code, in modules: the four the standard asks for,
// so a reader finds the code against any background around it.
const qrQuietZone = 4

// qrCode is a QR code as the payment page draws it: an inline SVG whose user units are modules.
// It holds numbers and path commands only, never the payload, so nothing a processor sends can
// reach the markup through it; the template writes it into attributes with html/template's
// ordinary escaping, which leaves these characters alone.
type qrCode struct {
	// Side is the code's width and height in modules, quiet zone included (the viewBox).
	Side int
	// Path draws the dark modules: one rectangle per horizontal run, in absolute commands.
	Path string
}

// newQRCode encodes payload at error-correction level M (the usual one for payment codes: it
// survives a scratched or glare-struck screen without growing the code much).
func newQRCode(payload string) (*qrCode, error) {
	c, err := qr.Encode(payload, qr.M)
	if err != nil {
		return nil, fmt.Errorf("encode %d-byte payload as QR: %w", len(payload), err)
	}
	return qrFromModules(c.Size, c.Black), nil
}

// qrFromModules draws a size×size matrix whose dark modules dark reports.
func qrFromModules(size int, dark func(x, y int) bool) *qrCode {
	var b strings.Builder
	b.Grow(size * size / 2)
	num := func(n int) { b.WriteString(strconv.Itoa(n)) }
	for y := 0; y < size; y++ {
		for x := 0; x < size; {
			if !dark(x, y) {
				x++
				continue
			}
			start := x
			for x < size && dark(x, y) {
				x++
			}
			w := x - start
			b.WriteByte('M')
			num(start + qrQuietZone)
			b.WriteByte(' ')
			num(y + qrQuietZone)
			b.WriteByte('h')
			num(w)
			b.WriteString("v1h-")
			num(w)
			b.WriteByte('z')
		}
	}
	return &qrCode{Side: size + 2*qrQuietZone, Path: b.String()}
}
