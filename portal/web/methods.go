package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// allows reports whether the portal accepts methods of type t right now: its selection, as far
// as its processor takes the type.
func allows(p *billingv1alpha1.CustomerPortal, t payments.MethodType) bool {
	return p.Spec.AcceptsPaymentMethod(billingv1alpha1.PaymentMethodType(t))
}

// typeOption is one method type the customer may add.
type typeOption struct {
	Type string
	Href string
}

// addableTypes lists the types the portal offers, in the platform's order, linking to the form
// at base (e.g. "/methods/new").
func addableTypes(p *billingv1alpha1.CustomerPortal, base string) []typeOption {
	var out []typeOption
	for _, t := range p.Spec.EffectivePaymentMethods() {
		out = append(out, typeOption{Type: string(t), Href: base + "?type=" + url.QueryEscape(string(t))})
	}
	return out
}

type methodRow struct {
	ID        string
	Label     string
	Type      string
	Preferred bool
	First     bool
	Last      bool
	// Allowed is false for a method of a type this portal does not accept (added elsewhere):
	// it is listed, may be removed, but is not offered as preferred or for a subscription.
	Allowed bool
	Expired bool
	Expiry  string
}

type methodsData struct {
	Methods  []methodRow
	AddTypes []typeOption
}

func (h *Handler) methodRows(v *visit, ms []ledger.PaymentMethod) []methodRow {
	rows := make([]methodRow, len(ms))
	for i, m := range ms {
		r := methodRow{ID: m.ID, Label: methodLabel(v.locale, m), Type: string(m.Type), Preferred: i == 0,
			First: i == 0, Last: i == len(ms)-1, Allowed: allows(v.portal, m.Type)}
		if m.Card != nil {
			r.Expiry = formatExpiry(m.Card.ExpMonth, m.Card.ExpYear)
			r.Expired = payments.CheckExpiry(m.Card.ExpMonth, m.Card.ExpYear, v.now) != nil
		}
		rows[i] = r
	}
	return rows
}

func formatExpiry(month, year int) string {
	return twoDigits(month) + "/" + twoDigits(year%100)
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + string(rune('0'+n))
	}
	return string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

func (h *Handler) methodsPage(w http.ResponseWriter, v *visit) {
	ms, err := h.ledger.ListPaymentMethods(v.ctx, v.customer.ID)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.render(w, v, http.StatusOK, "methods", "title.methods",
		methodsData{Methods: h.methodRows(v, ms), AddTypes: addableTypes(v.portal, "/methods/new")})
}

// methodFormData drives the add-method form, on its own page or while completing a payment.
type methodFormData struct {
	// Action is where the form posts.
	Action string
	// Type is the chosen type; "" shows the choice of types.
	Type    string
	Types   []typeOption
	Wallets []struct{ ID, Name string }
	Payment *ledger.Payment
	// Years offered for the card's expiry.
	Years []int
}

func (h *Handler) methodForm(v *visit, action, chooserBase, typ string) methodFormData {
	d := methodFormData{Action: action, Type: typ, Types: addableTypes(v.portal, chooserBase), Wallets: wallets}
	y := v.now.UTC().Year()
	for i := 0; i <= 15; i++ {
		d.Years = append(d.Years, y+i)
	}
	return d
}

// chosenType reads ?type= on a GET form page: "" (choose), or a type the portal accepts.
// false means it answered: 403 for a type the portal does not accept, 404 for nonsense.
func (h *Handler) chosenType(w http.ResponseWriter, v *visit, raw string) (string, bool) {
	if raw == "" {
		return "", true
	}
	t, ok := parseMethodType(raw)
	if !ok {
		h.fail(w, v, http.StatusNotFound, "error.not_found")
		return "", false
	}
	if !allows(v.portal, t) {
		h.fail(w, v, http.StatusForbidden, "error.method_not_allowed")
		return "", false
	}
	return string(t), true
}

// methodNewData is the add-method page's data.
type methodNewData struct{ Form methodFormData }

func (h *Handler) methodNewPage(w http.ResponseWriter, v *visit) {
	t, ok := h.chosenType(w, v, v.r.URL.Query().Get("type"))
	if !ok {
		return
	}
	if t == string(payments.MethodCard) && h.hostedCards(v) {
		// The card is typed on the processor's page; the customer comes back to
		// methodSetupReturn. ?preferred=1 makes it the preferred method on return.
		d, err := h.driver(v)
		if err != nil {
			h.processorFailure(w, v, err)
			return
		}
		back := "/methods/return"
		if v.r.URL.Query().Get("preferred") == "1" {
			back += "?preferred=1"
		}
		h.startHostedSetup(w, v, d, back, "/methods")
		return
	}
	d := h.methodForm(v, "/methods", "/methods/new", t)
	h.render(w, v, http.StatusOK, "methodnew", "title.method_new", methodNewData{Form: d})
}

// addMethod validates and adds a method of an allowed type from the posted form; on a field
// error it re-renders the form (page name, with data(type) as its data) and returns false.
func (h *Handler) addMethod(w http.ResponseWriter, v *visit, name, title string, data func(t string) any) (ledger.PaymentMethod, bool) {
	t, ok := parseMethodType(v.r.PostForm.Get("type"))
	if !ok {
		h.fail(w, v, http.StatusBadRequest, "error.bad_request")
		return ledger.PaymentMethod{}, false
	}
	if !allows(v.portal, t) {
		h.log.Info("refused a payment method type the portal does not accept", "type", t, "customer", v.customer.ID)
		h.fail(w, v, http.StatusForbidden, "error.method_not_allowed")
		return ledger.PaymentMethod{}, false
	}
	if t == payments.MethodCard && h.hostedCards(v) {
		// Card details are entered on the processor's page only: fields posted here (by hand,
		// or a stale page) are refused unread, and never logged.
		h.log.Warn("card fields posted to a portal whose processor hosts card entry; refused", "customer", v.customer.ID)
		h.fail(w, v, http.StatusBadRequest, "error.card_fields_refused")
		return ledger.PaymentMethod{}, false
	}
	d := data(string(t))
	// Card number and CVC are never echoed back.
	echo := url.Values{}
	for _, k := range []string{fieldExpMonth, fieldExpYear, fieldHolder, fieldAccount, fieldWallet} {
		echo.Set(k, v.r.PostForm.Get(k))
	}
	f := newForm(echo)
	in, errs := decodeNewMethod(v.r.PostForm, t, v.now)
	if len(errs) > 0 {
		h.fieldErrors(v, f, errs)
		h.renderForm(w, v, http.StatusUnprocessableEntity, name, title, d, f)
		return ledger.PaymentMethod{}, false
	}
	// Only attempts that get past the form's own checks count: those are the ones that reach
	// the processor, and a person fixing a typo is not a card tester.
	ok, retry, err := h.auth.AllowAll(v.ctx,
		[]string{"method-adds:session:" + v.sess.ID, "method-adds:ip:" + v.clientIP()},
		[]auth.Limit{h.limits.MethodAddsPerSession, h.limits.MethodAddsPerIP})
	if err != nil {
		h.internal(w, v, err)
		return ledger.PaymentMethod{}, false
	}
	if !ok {
		h.metrics.rateLimited("method-adds")
		h.log.Warn("payment method adds rate limited", "customer", v.customer.ID)
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		f.Summary = "error.rate_limited"
		h.renderForm(w, v, http.StatusTooManyRequests, name, title, d, f)
		return ledger.PaymentMethod{}, false
	}
	in.Limit = v.portal.Spec.PaymentMethods.Max()
	m, err := h.recordMethod(v, in)
	var le *ledger.Error
	var pe *payments.Error
	if errors.As(err, &le) && le.Code == ledger.CodePaymentMethodLimit {
		h.log.Info("payment method refused at the portal's cap", "customer", v.customer.ID, "limit", le.Limit)
		f.Summary = le.Message(v.locale)
		if field := primaryField(t); field != "" {
			f.fail(field, f.Summary)
		}
		h.renderForm(w, v, http.StatusUnprocessableEntity, name, title, d, f)
		return ledger.PaymentMethod{}, false
	}
	if errors.As(err, &pe) && !errors.As(err, &le) {
		// The processor refused the card: its reason lands on its field.
		if field := formField("card." + pe.Field); field != "" && pe.Field != "" {
			f.fail(field, pe.Message(v.locale))
		} else {
			f.Summary = pe.Message(v.locale)
		}
		h.renderForm(w, v, http.StatusUnprocessableEntity, name, title, d, f)
		return ledger.PaymentMethod{}, false
	}
	if payments.IsUnavailable(err) {
		h.processorFailure(w, v, err)
		return ledger.PaymentMethod{}, false
	}
	if err != nil {
		if h.ledgerFormError(v, f, err) {
			h.renderForm(w, v, http.StatusUnprocessableEntity, name, title, d, f)
		} else {
			h.internal(w, v, err)
		}
		return ledger.PaymentMethod{}, false
	}
	h.log.Info("payment method added in the portal", "customer", v.customer.ID, "payment_method", m.ID, "type", m.Type)
	return m, true
}

// recordMethod adds a decoded method: a card through the processor, which tokenizes it (the
// number never reaches the ledger), anything else straight to the ledger. Either way the
// customer's incomplete payments then proceed, each exactly once.
func (h *Handler) recordMethod(v *visit, in newMethod) (ledger.PaymentMethod, error) {
	if in.Card == nil {
		m, err := h.ledger.AddPaymentMethod(v.ctx, v.customer.ID, in.NewPaymentMethod)
		if err == nil {
			h.settle(v)
		}
		return m, err
	}
	d, err := h.driver(v)
	if err != nil {
		return ledger.PaymentMethod{}, err
	}
	// A customer at the cap must not reach the processor, or the form would still test cards.
	if err := h.ledger.CheckMethodLimit(v.ctx, v.customer.ID, in.Limit); err != nil {
		return ledger.PaymentMethod{}, err
	}
	added, err := d.AddCard(ledger.WithMethodLimit(v.ctx, in.Limit), v.customer.ID, *in.Card)
	if err != nil {
		return ledger.PaymentMethod{}, err
	}
	return h.ledger.GetPaymentMethod(context.WithoutCancel(v.ctx), v.customer.ID, added.MethodID)
}

// primaryField is the form field that holds the method of type t, where an error about the
// method as a whole is marked; "" for types without one.
func primaryField(t payments.MethodType) string {
	switch t {
	case payments.MethodCard:
		return fieldNumber
	case payments.MethodDirectDebit, payments.MethodCVU:
		return fieldAccount
	case payments.MethodWallet:
		return fieldWallet
	}
	return ""
}

func (h *Handler) methodAdd(w http.ResponseWriter, v *visit) {
	data := func(t string) any { return methodNewData{Form: h.methodForm(v, "/methods", "/methods/new", t)} }
	if _, ok := h.addMethod(w, v, "methodnew", "title.method_new", data); !ok {
		return
	}
	h.flashAndRedirect(w, v, "flash.method_added", "/methods")
}

// fieldErrors puts decoded field errors on the form in the page's language.
func (h *Handler) fieldErrors(v *visit, f *form, errs fieldErrors) {
	for field, err := range errs {
		f.fail(field, h.errorText(v, err))
	}
}

// errorText is what a customer reads for a validation error.
func (h *Handler) errorText(v *visit, err error) string {
	var pe *payments.Error
	var le *ledger.Error
	var key msgKey
	switch {
	case errors.As(err, &key):
		return string(key)
	case errors.As(err, &le) && (le.Code == ledger.CodeInvalidField || le.Code == ledger.CodeRequired):
		// The ledger's generic texts name its internal field; the form shows the error next to
		// the field, so a plain sentence reads better.
		if le.Code == ledger.CodeRequired {
			return "form.required"
		}
		return "form.text_invalid"
	case errors.As(err, &le):
		return le.Message(v.locale)
	case errors.As(err, &pe):
		return pe.Message(v.locale)
	}
	return "error.internal"
}

// ledgerFormError puts a ledger refusal (invalid input, or a state conflict) on the form and
// reports whether it was one; other errors are infrastructure failures.
func (h *Handler) ledgerFormError(v *visit, f *form, err error) bool {
	var le *ledger.Error
	if !errors.As(err, &le) || le.Kind == ledger.KindNotFound {
		return false
	}
	if field := formField(le.Field); field != "" && le.Kind == ledger.KindInvalid {
		f.fail(field, h.errorText(v, err))
	} else {
		f.Summary = h.errorText(v, err)
	}
	return true
}

// flashAndRedirect finishes a successful POST: a notice for the next page, then 303.
func (h *Handler) flashAndRedirect(w http.ResponseWriter, v *visit, flash, to string) {
	if err := h.auth.SetFlash(v.ctx, v.sess.ID, flash); err != nil {
		h.log.Warn("set flash", "err", err)
	}
	redirect(w, v, to)
}

// notFound answers for an id that is not the customer's: missing and foreign look the same.
func (h *Handler) notFound(w http.ResponseWriter, v *visit) {
	h.fail(w, v, http.StatusNotFound, "error.not_found")
}

// ledgerFailure answers a ledger error from an action: 404 for ids that are not the
// customer's, the error page with the ledger's own words for refusals, 500 otherwise.
func (h *Handler) ledgerFailure(w http.ResponseWriter, v *visit, err error) {
	var le *ledger.Error
	switch {
	case errors.As(err, &le) && le.Kind == ledger.KindNotFound:
		h.notFound(w, v)
	case errors.As(err, &le) && le.Kind == ledger.KindConflict:
		h.render(w, v, http.StatusConflict, "error", "title.error", errorData{Status: http.StatusConflict, Message: le.Message(v.locale)})
	case errors.As(err, &le):
		h.render(w, v, http.StatusUnprocessableEntity, "error", "title.error", errorData{Status: http.StatusUnprocessableEntity, Message: le.Message(v.locale)})
	default:
		h.internal(w, v, err)
	}
}

type methodRemoveData struct {
	Method methodRow
	// Successor names the method that becomes preferred when Method (the preferred) goes.
	Successor string
	Error     string
}

func (h *Handler) methodRemovePage(w http.ResponseWriter, v *visit) {
	m, err := h.ledger.GetPaymentMethod(v.ctx, v.customer.ID, v.r.PathValue("id"))
	if err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	d := methodRemoveData{Method: h.methodRows(v, []ledger.PaymentMethod{m})[0]}
	if d.Method.Preferred {
		ms, err := h.ledger.ListPaymentMethods(v.ctx, v.customer.ID)
		if err != nil {
			h.internal(w, v, err)
			return
		}
		rest := slices.DeleteFunc(ms, func(x ledger.PaymentMethod) bool { return x.ID == m.ID })
		if next := preferredAmong(v.portal, rest); next != nil {
			d.Successor = h.methodRows(v, []ledger.PaymentMethod{*next})[0].Label
		}
	}
	h.render(w, v, http.StatusOK, "methodremove", "title.method_remove", d)
}

func (h *Handler) methodRemove(w http.ResponseWriter, v *visit) {
	id := v.r.PathValue("id")
	m, err := h.ledger.GetPaymentMethod(v.ctx, v.customer.ID, id)
	if err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	if err := h.removeMethod(v, m); err != nil {
		if payments.IsUnavailable(err) {
			h.processorFailure(w, v, err)
			return
		}
		var le *ledger.Error
		if errors.As(err, &le) && le.Kind == ledger.KindConflict {
			h.render(w, v, http.StatusConflict, "methodremove", "title.method_remove",
				methodRemoveData{Method: h.methodRows(v, []ledger.PaymentMethod{m})[0], Error: le.Message(v.locale)})
			return
		}
		h.ledgerFailure(w, v, err)
		return
	}
	h.log.Info("payment method removed in the portal", "customer", v.customer.ID, "payment_method", id)
	h.keepPreferredAccepted(v)
	h.flashAndRedirect(w, v, "flash.method_removed", "/methods")
}

// removeMethod removes one of the customer's methods. The ledger is asked first (the last method
// of a customer with a subscription stays), then a method a processor holds is detached there
// before it leaves the list: an unreachable processor leaves both as they were.
func (h *Handler) removeMethod(v *visit, m ledger.PaymentMethod) error {
	if err := h.ledger.CheckRemovePaymentMethod(v.ctx, v.customer.ID, m.ID); err != nil {
		return err
	}
	if m.Processor == "" {
		return h.ledger.RemovePaymentMethod(v.ctx, v.customer.ID, m.ID)
	}
	d, err := h.driver(v)
	if err != nil {
		return err
	}
	return d.RemoveMethod(v.ctx, v.customer.ID, m.ID)
}

// keepPreferredAccepted runs after a removal: if the method that moved up to first is of a type
// this portal does not accept (added elsewhere, e.g. through the merchant API), the first one it
// does accept becomes the preferred instead — the same rule methodMove enforces. With none
// accepted, the order stays as it is. The removal itself has happened either way.
func (h *Handler) keepPreferredAccepted(v *visit) {
	ms, err := h.ledger.ListPaymentMethods(v.ctx, v.customer.ID)
	if err != nil {
		return
	}
	if next := preferredAmong(v.portal, ms); next != nil && next.ID != ms[0].ID {
		if _, err := h.ledger.MakePreferred(v.ctx, v.customer.ID, next.ID); err != nil {
			h.log.Warn("could not keep an accepted method first after a removal", "customer", v.customer.ID, "err", err)
		}
	}
}

// preferredAmong is the method that should lead ms (in order): the first one, unless this portal
// does not accept its type and accepts another's. Nil for an empty list.
func preferredAmong(p *billingv1alpha1.CustomerPortal, ms []ledger.PaymentMethod) *ledger.PaymentMethod {
	for i := range ms {
		if allows(p, ms[i].Type) {
			return &ms[i]
		}
	}
	if len(ms) > 0 {
		return &ms[0]
	}
	return nil
}

// methodMove moves a method up, down or to the top (make preferred). The method that ends up
// first must be of a type this portal accepts: the preferred method is what gets charged.
func (h *Handler) methodMove(w http.ResponseWriter, v *visit) {
	to, ok := parseMove(v.r.PostForm.Get("to"))
	if !ok {
		h.fail(w, v, http.StatusBadRequest, "error.bad_request")
		return
	}
	ms, err := h.ledger.ListPaymentMethods(v.ctx, v.customer.ID)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	id := v.r.PathValue("id")
	idx := -1
	ids := make([]string, len(ms))
	byID := map[string]ledger.PaymentMethod{}
	for i, m := range ms {
		ids[i] = m.ID
		byID[m.ID] = m
		if m.ID == id {
			idx = i
		}
	}
	if idx < 0 {
		h.notFound(w, v)
		return
	}
	order, ok := moveOrder(ids, idx, to)
	if !ok {
		redirect(w, v, "/methods") // already at that end: nothing to do
		return
	}
	if first := byID[order[0]]; !allows(v.portal, first.Type) {
		h.fail(w, v, http.StatusUnprocessableEntity, "error.method_not_allowed_preferred")
		return
	}
	if to == "top" {
		_, err = h.ledger.MakePreferred(v.ctx, v.customer.ID, id)
	} else {
		_, err = h.ledger.ReorderPaymentMethods(v.ctx, v.customer.ID, order)
	}
	if err != nil {
		h.ledgerFailure(w, v, err)
		return
	}
	h.settle(v)
	flash := "flash.order_saved"
	if order[0] != ids[0] {
		flash = "flash.preferred_changed"
	}
	h.flashAndRedirect(w, v, flash, "/methods")
}
