package mail

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
)

// SessionLink is the e-mail that hands a customer a pre-authenticated portal link.
type SessionLink struct {
	// Locale is the portal's language: "es" (the default) or "en".
	Locale string
	// PortalName is the portal's display name.
	PortalName string
	// URL is the link; it carries the session token, so the message is a credential.
	URL string
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time
	// SupportEmail is shown for help when set.
	SupportEmail string
}

type sessionLinkText struct {
	Subject, Greeting, Intro, Button, Expiry, Ignore, Support string
}

var sessionLinkTexts = map[string]sessionLinkText{
	"es": {
		Subject:  "Tu acceso a %s",
		Greeting: "Hola:",
		Intro:    "Usá este enlace para entrar a %s sin contraseña:",
		Button:   "Abrir el portal",
		Expiry:   "El enlace vence el %s. No lo compartas: quien lo tenga puede entrar como vos.",
		Ignore:   "Si no pediste este acceso, ignorá este mensaje.",
		Support:  "¿Necesitás ayuda? Escribinos a %s.",
	},
	"en": {
		Subject:  "Your access to %s",
		Greeting: "Hello,",
		Intro:    "Use this link to open %s without a password:",
		Button:   "Open the portal",
		Expiry:   "The link expires on %s. Do not share it: anyone who has it can sign in as you.",
		Ignore:   "If you did not ask for this access, ignore this message.",
		Support:  "Need help? Write to %s.",
	},
}

var spanishMonths = [...]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio",
	"agosto", "septiembre", "octubre", "noviembre", "diciembre"}

// argentina is the zone the portal shows times in (UTC−3 all year; the ledger's billing zone).
var argentina = time.FixedZone("ART", -3*60*60)

// formatExpiry renders t in Argentina's time in the locale's usual long form, saying which zone:
// the operator does not know the customer's own, and the portal's pages use the same one.
func formatExpiry(locale string, t time.Time) string {
	t = t.In(argentina)
	if locale == "en" {
		return t.Format("January 2, 2006 at 15:04") + " (UTC−3)"
	}
	return fmt.Sprintf("%d de %s de %d a las %s (UTC−3)", t.Day(), spanishMonths[t.Month()-1], t.Year(), t.Format("15:04"))
}

var sessionLinkTextTmpl = texttemplate.Must(texttemplate.New("text").Parse(`{{.Greeting}}

{{.Intro}}

{{.URL}}

{{.Expiry}}

{{.Ignore}}
{{- if .Support}}

{{.Support}}
{{- end}}
`))

var sessionLinkHTMLTmpl = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html lang="{{.Locale}}"><body style="font-family:sans-serif;line-height:1.5">
<p>{{.Greeting}}</p>
<p>{{.Intro}}</p>
<p><a href="{{.URL}}" style="display:inline-block;padding:10px 16px;background:#0a7cff;color:#fff;text-decoration:none;border-radius:4px">{{.Button}}</a></p>
<p style="font-size:small;word-break:break-all">{{.URL}}</p>
<p>{{.Expiry}}</p>
<p style="color:#666">{{.Ignore}}</p>
{{- if .Support}}
<p style="color:#666">{{.Support}}</p>
{{- end}}
</body></html>
`))

// Render returns the message from sender from to recipient to.
func (s SessionLink) Render(from, to string) (Message, error) {
	locale := strings.ToLower(s.Locale)
	t, ok := sessionLinkTexts[locale]
	if !ok {
		locale, t = "es", sessionLinkTexts["es"]
	}
	data := struct {
		Locale, URL, Greeting, Intro, Button, Expiry, Ignore, Support string
	}{
		Locale:   locale,
		URL:      s.URL,
		Greeting: t.Greeting,
		Intro:    fmt.Sprintf(t.Intro, s.PortalName),
		Button:   t.Button,
		Expiry:   fmt.Sprintf(t.Expiry, formatExpiry(locale, s.ExpiresAt)),
		Ignore:   t.Ignore,
	}
	if s.SupportEmail != "" {
		data.Support = fmt.Sprintf(t.Support, s.SupportEmail)
	}
	var text, html bytes.Buffer
	if err := sessionLinkTextTmpl.Execute(&text, data); err != nil {
		return Message{}, fmt.Errorf("render session link text: %w", err)
	}
	if err := sessionLinkHTMLTmpl.Execute(&html, data); err != nil {
		return Message{}, fmt.Errorf("render session link html: %w", err)
	}
	return Message{
		From:    from,
		To:      to,
		Subject: fmt.Sprintf(t.Subject, s.PortalName),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}
