package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portero-dev/portero/portal/ledger"
)

//go:embed templates/*.html templates/pages/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// templates holds one parsed set per language and page: the layout and partials plus the
// page's "content".
type templates struct {
	pages map[string]map[string]*template.Template // locale → page → set
	nav   sync.Map                                 // see navHTML
}

// page returns the set for a page in a language.
func (t *templates) page(locale, name string) (*template.Template, bool) {
	set, ok := t.pages[locale]
	if !ok {
		set = t.pages[defaultLocale]
	}
	p, ok := set[name]
	return p, ok
}

// navHTML renders the navigation's items (the "navitems" template of set t) once per language
// and set of sections, current one included, and keeps them: they depend on nothing else, and
// the five links cost twenty escaper calls per page. The output is html/template's own, in the
// same context (HTML text) as where the layout prints it. At most a few dozen entries exist
// (languages × permission combinations × current section).
func (t *templates) navHTML(set *template.Template, locale string, items []navItem) (template.HTML, error) {
	var k strings.Builder
	k.WriteString(locale)
	for _, it := range items {
		k.WriteByte(' ')
		if it.Current {
			k.WriteByte('*')
		}
		k.WriteString(it.Href)
	}
	key := k.String()
	if v, ok := t.nav.Load(key); ok {
		return v.(template.HTML), nil
	}
	var buf bytes.Buffer
	if err := set.ExecuteTemplate(&buf, "navitems", items); err != nil {
		return "", err
	}
	out := template.HTML(buf.String())
	t.nav.Store(key, out)
	return out, nil
}

func parseTemplates() (*templates, error) {
	t := &templates{pages: map[string]map[string]*template.Template{}}
	for _, l := range locales {
		set, err := parseTemplateSet(l, true)
		if err != nil {
			return nil, err
		}
		t.pages[l] = set
	}
	return t, nil
}

// parseTemplateSet parses every page for one language, with its fixed texts translated in
// (see pretranslate) when pre is set.
func parseTemplateSet(locale string, pre bool) (map[string]*template.Template, error) {
	base := template.New("base").Funcs(template.FuncMap{"field": newFieldView})
	layouts, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	srcs := make([]string, len(layouts))
	for i, f := range layouts {
		if srcs[i], err = templateSource(f, locale, pre); err != nil {
			return nil, fmt.Errorf("parse layout: %w", err)
		}
	}
	if pre {
		if srcs, err = prerender(layouts, srcs, locale); err != nil {
			return nil, err
		}
	}
	for i, f := range layouts {
		if _, err := base.New(path.Base(f)).Parse(srcs[i]); err != nil {
			return nil, fmt.Errorf("parse layout %s: %w", f, err)
		}
	}
	files, err := fs.Glob(templateFS, "templates/pages/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		clone, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if err := parseInto(clone, f, locale, pre); err != nil {
			return nil, err
		}
		pages[strings.TrimSuffix(path.Base(f), ".html")] = clone
	}
	return pages, nil
}

func parseInto(t *template.Template, file, locale string, pre bool) error {
	src, err := templateSource(file, locale, pre)
	if err != nil {
		return err
	}
	if _, err := t.New(path.Base(file)).Parse(src); err != nil {
		return fmt.Errorf("parse %s: %w", file, err)
	}
	return nil
}

// templateSource reads a template file, pretranslated if pre is set.
func templateSource(file, locale string, pre bool) (string, error) {
	b, err := templateFS.ReadFile(file)
	if err != nil {
		return "", err
	}
	if pre {
		return pretranslate(string(b), locale), nil
	}
	return string(b), nil
}

// staticCall matches a call of a static-* template, {{template "static-x" .}}, with or without
// a left trim marker.
var staticCall = regexp.MustCompile(`\{\{(-? ?)template "(static-[a-z]+)" \.\}\}`)

// prerender replaces each call of a static-* template in the layouts' sources by what the
// template renders for locale: they depend only on the language and on constants (the
// language switcher, the stylesheet's versioned link), so each page need not render them
// again. html/template renders them, each in its own call, starting in HTML text: the calls
// stand in HTML text, so the output is what the call would have written
// (TestPretranslatedPagesRenderTheSame renders both ways).
func prerender(files, srcs []string, locale string) ([]string, error) {
	scratch := template.New("scratch").Funcs(template.FuncMap{"field": newFieldView})
	for i, src := range srcs {
		if _, err := scratch.New(path.Base(files[i])).Parse(src); err != nil {
			return nil, fmt.Errorf("parse layout %s: %w", files[i], err)
		}
	}
	p := &page{Locale: locale, cat: catalog[locale], Langs: langLinks[locale], Asset: assetVersion}
	out := make([]string, len(srcs))
	for i, src := range srcs {
		var b strings.Builder
		last := 0
		for _, m := range staticCall.FindAllStringSubmatchIndex(src, -1) {
			var buf bytes.Buffer
			if err := scratch.ExecuteTemplate(&buf, src[m[4]:m[5]], p); err != nil {
				return nil, fmt.Errorf("prerender %s: %w", src[m[4]:m[5]], err)
			}
			text := buf.String()
			if strings.Contains(text, "{{") || strings.Contains(text, "}}") {
				continue // would read as an action: leave the call
			}
			before := src[last:m[0]]
			if strings.HasPrefix(src[m[2]:m[3]], "-") {
				before = strings.TrimRight(before, " \t\r\n")
			}
			b.WriteString(before)
			b.WriteString(text)
			last = m[1]
		}
		b.WriteString(src[last:])
		out[i] = b.String()
	}
	return out, nil
}

// fixedText matches a translation of a fixed key, {{.T "key"}} or {{$.T "key"}}, written
// without trim markers or arguments.
var fixedText = regexp.MustCompile(`\{\{\$?\.T "([a-z0-9_.]+)"\}\}`)

// pretranslate writes the translations of fixed keys into a template's source, escaped as
// html/template would escape them where they stand, so the page renders byte for byte as if
// each were looked up: a page has dozens of them, and each lookup, through reflection, cost more
// than the rest of its line. Every one stands in HTML text or a double-quoted attribute
// (TestPretranslateContexts), where html/template escapes with the same table.
func pretranslate(src, locale string) string {
	p := &page{Locale: locale, cat: catalog[locale]}
	return fixedText.ReplaceAllStringFunc(src, func(m string) string {
		text := p.T(fixedText.FindStringSubmatch(m)[1])
		if strings.Contains(text, "{{") || strings.Contains(text, "}}") {
			return m
		}
		return htmlTextEscaper.Replace(text)
	})
}

// htmlTextEscaper escapes like html/template in HTML text and quoted attribute values.
var htmlTextEscaper = strings.NewReplacer("\x00", "\uFFFD", `"`, "&#34;", "&", "&amp;", "'", "&#39;", "+", "&#43;", "<", "&lt;", ">", "&gt;")

// staticHandler serves the embedded stylesheet. URLs carry a version, so it may be cached.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

// assetVersion changes whenever the stylesheet does, so browsers never keep a stale copy.
var assetVersion = func() string {
	b, _ := staticFS.ReadFile("static/portal.css")
	var sum uint32 = 2166136261
	for _, c := range b {
		sum = (sum ^ uint32(c)) * 16777619
	}
	return strconv.FormatUint(uint64(sum), 36)
}()

// fieldView is one text field of a form, for the "textfield" partial.
type fieldView struct {
	P                         *page
	Name, Label, Autocomplete string
	Max                       int
}

func newFieldView(p *page, name, label, autocomplete string, max int) fieldView {
	return fieldView{P: p, Name: name, Label: label, Autocomplete: autocomplete, Max: max}
}

// page is what every template receives. Page-specific data is in Data; forms in Form.
type page struct {
	Locale string
	Title  string
	// TitleText is Title translated.
	TitleText    string
	Brand        brandView
	Nav          []navItem
	SignedIn     bool
	Public       bool
	CustomerName string
	CSRF         string
	Flash        string
	Due          int
	// DueBanner is the banner's text when this page shows it ("" otherwise: no payments due,
	// or the overview and the payment pages, which list them).
	DueBanner string
	ReturnURL string
	// ReturnText labels the link to ReturnURL.
	ReturnText string
	Path       string
	Langs      []langLink
	// NavHTML is Nav's list items, rendered (see navHTML).
	NavHTML template.HTML
	Asset   string
	Form    *form
	Data    any
	cat     map[string]string
}

type brandView struct {
	Name         string
	LogoURL      string
	SupportEmail string
	Version      string // changes with the colour, so /brand.css is refetched
}

type navItem struct {
	Href, Label string
	// Text is Label translated.
	Text    string
	Current bool
}

type langLink struct {
	Code, Label, Href string
	Current           bool
}

// langLinks are the language switcher's links on a page in each language.
var langLinks = func() map[string][]langLink {
	m := map[string][]langLink{}
	for _, cur := range locales {
		for _, l := range locales {
			m[cur] = append(m[cur], langLink{Code: l, Label: catalog[l]["lang.name"], Href: "?lang=" + l, Current: l == cur})
		}
	}
	return m
}()

// form carries submitted values back into a form with field-level errors (message keys or
// already-translated messages).
type form struct {
	Values url.Values
	Errors map[string]string
	// Summary is shown above the form when the error is not about one field.
	Summary string
}

func newForm(values url.Values) *form {
	if values == nil {
		values = url.Values{}
	}
	return &form{Values: values, Errors: map[string]string{}}
}

func (f *form) fail(field, message string) { f.Errors[field] = message }

func (f *form) ok() bool { return len(f.Errors) == 0 && f.Summary == "" }

// T translates a catalogue key; extra arguments fill its %s/%d verbs.
func (p *page) T(key string, args ...any) string { return translate(p.cat, key, args...) }

// tr translates a catalogue key in a language, as a page in that language does with T. View
// rows use it to carry their texts ready-made, so templates print fields instead of calling
// functions per row (each call from a template goes through reflection).
func tr(locale, key string, args ...any) string { return translate(catalog[locale], key, args...) }

func translate(cat map[string]string, key string, args ...any) string {
	s, ok := cat[key]
	if !ok {
		s, ok = catalog[defaultLocale][key]
	}
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Err is the message for a form field, "" when it is fine. Messages are catalogue keys unless
// they came translated from the ledger.
func (p *page) Err(field string) string {
	if p.Form == nil {
		return ""
	}
	msg := p.Form.Errors[field]
	if _, ok := p.cat[msg]; ok {
		return p.T(msg)
	}
	return msg
}

// Val is a submitted value to put back in a form.
func (p *page) Val(field string) string {
	if p.Form == nil {
		return ""
	}
	return p.Form.Values.Get(field)
}

// Summary is the form-wide error, translated.
func (p *page) Summary() string {
	if p.Form == nil || p.Form.Summary == "" {
		return ""
	}
	if _, ok := p.cat[p.Form.Summary]; ok {
		return p.T(p.Form.Summary)
	}
	return p.Form.Summary
}

// HasErrors reports whether the form has any error, for the summary box.
func (p *page) HasErrors() bool { return p.Form != nil && !p.Form.ok() }

// Money formats minor units in the page's language: "$ 1.234,56" (es) or "ARS 1,234.56" (en).
func (p *page) Money(amount int64, cur ledger.Currency) string {
	return formatMoney(p.Locale, amount, cur)
}

// Date formats a day in the page's language, in UTC.
func (p *page) Date(t time.Time) string { return formatDate(p.Locale, t) }

// DateTime formats a moment in the page's language, in Argentina's time (UTC−3), as Date does.
func (p *page) DateTime(t time.Time) string { return formatDateTime(p.Locale, t) }

// Method is a payment method's label ("Visa •••• 4242", "CBU •••• 3456", "Transferencia bancaria").
func (p *page) Method(m ledger.PaymentMethod) string { return methodLabel(p.Locale, m) }

// render writes a whole page. status 200 pages clear the session's flash once shown.
func (h *Handler) render(w http.ResponseWriter, v *visit, status int, name, title string, data any) {
	h.renderForm(w, v, status, name, title, data, nil)
}

func (h *Handler) renderForm(w http.ResponseWriter, v *visit, status int, name, title string, data any, f *form) {
	buf, csp, ok := h.execute(w, v, status, name, title, data, f)
	if !ok {
		return
	}
	defer putPageBuffer(buf)
	writePage(w, status, csp, buf.Bytes())
}

// execute renders a whole page into a pooled buffer (the caller puts it back) and returns it
// with the page's Content-Security-Policy; false means an error page was sent instead.
func (h *Handler) execute(w http.ResponseWriter, v *visit, status int, name, title string, data any, f *form) (*bytes.Buffer, string, bool) {
	t, ok := h.pages.page(v.locale, name)
	if !ok {
		h.log.Error("no such template", "template", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, "", false
	}
	p := h.basePage(w, v)
	p.Title, p.TitleText, p.Data, p.Form = title, p.T(title), data, f
	if len(p.Nav) > 0 {
		var err error
		if p.NavHTML, err = h.pages.navHTML(t, v.locale, p.Nav); err != nil {
			h.log.Error("render navigation", "template", name, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return nil, "", false
		}
	}
	buf := pageBuffers.Get().(*bytes.Buffer)
	if err := t.ExecuteTemplate(buf, "layout", p); err != nil {
		putPageBuffer(buf)
		h.log.Error("render page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, "", false
	}
	if v.sess != nil && v.flash != "" && status < 300 {
		if err := h.auth.ClearFlash(v.ctx, v.sess.ID); err != nil {
			h.log.Warn("clear flash", "err", err)
		}
	}
	return buf, contentSecurityPolicy(originOf(p.Brand.LogoURL)), true
}

// writePage sends a rendered page.
func writePage(w http.ResponseWriter, status int, csp string, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// pageBuffers recycle the buffers pages are rendered into (a page is rendered whole before its
// status is sent, so an error can still become a 500).
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putPageBuffer(b *bytes.Buffer) {
	if b.Cap() > 256<<10 {
		return // an outsized page: let it go rather than keep it in the pool
	}
	b.Reset()
	pageBuffers.Put(b)
}

func (h *Handler) basePage(w http.ResponseWriter, v *visit) *page {
	p := &page{Locale: v.locale, cat: catalog[v.locale], Path: v.r.URL.Path, Asset: assetVersion}
	if v.portal != nil {
		b := v.portal.Spec.Branding
		p.Brand = brandView{Name: v.portal.Spec.DisplayName, LogoURL: safeURL(b.LogoURL),
			SupportEmail: b.SupportEmail, Version: brandVersion(b.PrimaryColor)}
	}
	p.Langs = langLinks[v.locale]
	if p.Langs == nil {
		p.Langs = langLinks[defaultLocale]
	}
	if v.portal == nil {
		return p
	}
	p.Public = v.portal.Spec.Access.Public.IsEnabled()
	p.ReturnURL = safeURL(v.portal.Spec.ReturnURL)
	if v.psess != nil && v.psess.Spec.ReturnURL != "" {
		p.ReturnURL = safeURL(v.psess.Spec.ReturnURL) // the session's override wins
	}
	if p.ReturnURL != "" {
		p.ReturnText = p.T("nav.return", p.Brand.Name)
	}
	p.CSRF = v.preCSRF
	if v.sess != nil {
		p.SignedIn = true
		p.CSRF = v.sess.CSRFToken
		p.Flash = flashMessage(p, v.flash)
	}
	if v.customer != nil {
		p.CustomerName = v.customer.Name
		if p.CustomerName == "" {
			p.CustomerName = v.customer.Email
		}
		p.Nav = h.nav(v)
		p.Due = h.dueCount(v)
		// The overview and the payment pages list what is due; every other page says so.
		if p.Due > 0 && p.Path != "/" && !strings.HasPrefix(p.Path, "/payments/") {
			if p.Due == 1 {
				p.DueBanner = p.T("banner.one")
			} else {
				p.DueBanner = p.T("banner.many", p.Due)
			}
		}
	}
	return p
}

// nav lists the sections the portal's rules allow right now.
func (h *Handler) nav(v *visit) []navItem {
	perms := v.portal.Spec.Permissions
	items := []navItem{{Href: "/", Label: "nav.overview"}}
	if perms.CanUpdatePaymentMethod() {
		items = append(items, navItem{Href: "/methods", Label: "nav.methods"})
	}
	items = append(items, navItem{Href: "/subscriptions", Label: "nav.subscriptions"})
	if perms.CanUpdateBillingInfo() {
		items = append(items, navItem{Href: "/billing", Label: "nav.billing"})
	}
	if perms.CanViewPaymentHistory() {
		items = append(items, navItem{Href: "/payments", Label: "nav.payments"})
	}
	cur := v.r.URL.Path
	for i := range items {
		it := &items[i]
		it.Current = cur == it.Href || (it.Href != "/" && strings.HasPrefix(cur, it.Href+"/"))
		it.Text = tr(v.locale, it.Label)
	}
	return items
}

// dueCountCap is the most payments due the banner counts.
const dueCountCap = 20

// dueCount is how many payments wait for the customer (up to dueCountCap), for the banner on
// every page.
func (h *Handler) dueCount(v *visit) int {
	due, err := h.duePayments(v, dueCountCap)
	if err != nil {
		h.log.Warn("count payments due", "err", err)
		return 0
	}
	return len(due)
}

// flashMessage turns a stored flash ("key" or "key:arg") into text.
func flashMessage(p *page, flash string) string {
	if flash == "" {
		return ""
	}
	key, _, _ := strings.Cut(flash, ":")
	if _, ok := p.cat[key]; !ok {
		return ""
	}
	return p.T(key)
}

// fail renders an error page with a message from the catalogue.
func (h *Handler) fail(w http.ResponseWriter, v *visit, status int, message string) {
	h.render(w, v, status, "error", "title.error", errorData{Status: status, Message: message})
}

type errorData struct {
	Status  int
	Message string
}

// internal logs an unexpected error and renders a 500 page without its details.
func (h *Handler) internal(w http.ResponseWriter, v *visit, err error) {
	if v.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // the browser went away; nobody to show a page to
	}
	h.log.Error("request failed", "route", v.r.Pattern, "err", err)
	h.fail(w, v, http.StatusInternalServerError, "error.internal")
}

// unavailable answers when the CustomerPortal is gone (deleted, or not yet in the cache).
func (h *Handler) unavailable(w http.ResponseWriter, v *visit) {
	w.Header().Set("Retry-After", "30")
	h.render(w, v, http.StatusServiceUnavailable, "error", "title.error",
		errorData{Status: http.StatusServiceUnavailable, Message: "error.unavailable"})
}

// safeURL keeps an absolute https URL, or http on loopback (as the CRD allows); anything else
// is dropped rather than rendered.
func safeURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return ""
	}
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopbackHost(u.Host)) {
		return u.String()
	}
	return ""
}

func originOf(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1))
}
