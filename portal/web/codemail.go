package web

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	texttemplate "text/template"
	"time"

	"github.com/portero-dev/portero/portal/mail"
)

// loginCodeMail is the e-mail that carries a one-time login code. The code is not in the
// subject, which phones show on locked screens.
type loginCodeMail struct {
	Locale       string
	PortalName   string
	Code         string
	TTL          time.Duration
	SupportEmail string
}

var loginCodeText = texttemplate.Must(texttemplate.New("text").Parse(`{{.Intro}}

    {{.Code}}

{{.Expiry}}

{{.Ignore}}
{{- if .Support}}

{{.Support}}
{{- end}}
`))

var loginCodeHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html lang="{{.Locale}}"><body style="font-family:system-ui,sans-serif;line-height:1.5;color:#1b1f24">
<p>{{.Intro}}</p>
<p style="font-size:28px;font-weight:700;letter-spacing:6px;font-family:ui-monospace,monospace">{{.Code}}</p>
<p>{{.Expiry}}</p>
<p style="color:#555">{{.Ignore}}</p>
{{- if .Support}}
<p style="color:#555">{{.Support}}</p>
{{- end}}
</body></html>
`))

func (m loginCodeMail) render(from, to string) (mail.Message, error) {
	locale := normalizeLocale(m.Locale)
	cat := catalog[locale]
	minutes := int((m.TTL + time.Minute - 1) / time.Minute)
	data := struct{ Locale, Intro, Code, Expiry, Ignore, Support string }{
		Locale: locale,
		Intro:  fmt.Sprintf(cat["mail.code_intro"], m.PortalName),
		Code:   m.Code,
		Expiry: fmt.Sprintf(cat["mail.code_expiry"], minutes),
		Ignore: cat["mail.code_ignore"],
	}
	if m.SupportEmail != "" {
		data.Support = fmt.Sprintf(cat["mail.code_support"], m.SupportEmail)
	}
	var text, html bytes.Buffer
	if err := loginCodeText.Execute(&text, data); err != nil {
		return mail.Message{}, fmt.Errorf("render code e-mail: %w", err)
	}
	if err := loginCodeHTML.Execute(&html, data); err != nil {
		return mail.Message{}, fmt.Errorf("render code e-mail: %w", err)
	}
	return mail.Message{From: from, To: to, Subject: fmt.Sprintf(cat["mail.code_subject"], m.PortalName),
		Text: text.String(), HTML: html.String()}, nil
}
