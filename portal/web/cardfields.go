package web

import (
	"net/http"
	"strings"

	"github.com/portero-dev/portero/portal/payments"
)

// The add-card page of a processor whose card fields the portal embeds (payments.FieldsHost:
// Mercado Pago's Secure Fields). It is the one page of the portal that loads a third party's
// script: the processor's SDK puts the card number, expiry and security code in its own
// iframes and turns them into a token in the browser, and the page posts only that token back
// to the set-up's return URL. Its Content-Security-Policy adds exactly the processor's script,
// frame, connect and image origins; every other page keeps the portal's own (see
// contentSecurityPolicy).

// cardFieldsData is the fields page's data.
type cardFieldsData struct {
	Processor string
	PublicKey string
	ScriptURL string
	// SDKLocale is the SDK's language ("es-AR", "en-US").
	SDKLocale string
	// Action is where the token is posted: the set-up's return URL.
	Action string
	// Cancel is where the customer goes back to without a card.
	Cancel string
}

// cardFieldsPage shows the processor's card fields when the request is a set-up's return URL
// in fields mode (the processor's CardFields.Param present, no card token yet), and reports
// whether it answered. Any other request, and a processor without embedded fields, is left to
// the caller.
func (h *Handler) cardFieldsPage(w http.ResponseWriter, v *visit, cancel string) bool {
	if v.r.Method != http.MethodGet {
		return false
	}
	d, err := h.driver(v)
	if err != nil {
		return false // the caller answers with the processor's failure
	}
	fh, ok := d.Adapter().(payments.FieldsHost)
	if !ok {
		return false
	}
	cf := fh.CardFields()
	q := v.r.URL.Query()
	if cf.Param == "" || q.Get(cf.Param) == "" {
		return false
	}
	q.Del(cf.Param)
	q.Del(payments.SetupReferenceParam)
	action := v.r.URL.Path
	if len(q) > 0 {
		action += "?" + q.Encode()
	}
	data := cardFieldsData{Processor: string(cf.Processor), PublicKey: cf.PublicKey, ScriptURL: cf.ScriptURL,
		SDKLocale: map[string]string{"es": "es-AR", "en": "en-US"}[v.locale], Action: action, Cancel: cancel}
	buf, _, ok := h.execute(w, v, http.StatusOK, "cardfields", "title.card_fields", data, nil)
	if !ok {
		return true
	}
	defer putPageBuffer(buf)
	writePage(w, http.StatusOK, cardFieldsCSP(originOf(v.portal.Spec.Branding.LogoURL), cf), buf.Bytes())
	return true
}

// cardFieldsCSP is the portal's policy plus the processor's origins: its SDK as a script, its
// fields as frames, its API for the SDK's calls and its images (card brands).
func cardFieldsCSP(logoOrigin string, cf payments.CardFields) string {
	img := []string{"'self'"}
	if logoOrigin != "" {
		img = append(img, logoOrigin)
	}
	img = append(img, cf.ImageOrigins...)
	return "default-src 'self'; script-src " + strings.Join(append([]string{"'self'"}, cf.ScriptOrigins...), " ") +
		"; style-src 'self'; img-src " + strings.Join(img, " ") +
		"; frame-src " + strings.Join(cf.FrameOrigins, " ") +
		"; connect-src " + strings.Join(append([]string{"'self'"}, cf.ConnectOrigins...), " ") +
		"; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
}

// setupReference is the set-up reference a customer came back with. For embedded fields it is
// the card token, a bearer credential for the card: it is read from the posted form only, so
// that it never sits in a URL (a history, a log, a Referer); one in the query is ignored.
func setupReference(v *visit, fields bool) string {
	if !fields {
		return v.r.URL.Query().Get(payments.SetupReferenceParam)
	}
	if v.r.Method != http.MethodPost {
		return ""
	}
	return v.r.PostForm.Get(payments.SetupReferenceParam)
}
