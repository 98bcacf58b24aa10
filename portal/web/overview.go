package web

import (
	"net/http"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

type overviewData struct {
	Name string
	// Hello is the heading: a greeting by name, or the page's title.
	Hello         string
	ShowMethods   bool
	Preferred     *methodRow
	MethodCount   int
	Subscriptions []subscriptionRow
	ShowBilling   bool
	LegalName     string
	TaxID         string
	TaxCondition  string
	ShowHistory   bool
	Recent        []paymentRow
	Due           []paymentRow
	// Texts in the page's language.
	MethodCountText, TaxConditionText string
}

// texts fills in the page's texts in the language from the data.
func (d *overviewData) texts(locale string) {
	d.Hello = tr(locale, "title.overview")
	if d.Name != "" {
		d.Hello = tr(locale, "overview.hello", d.Name)
	}
	d.MethodCountText = tr(locale, "overview.methods_count", d.MethodCount)
	if d.TaxCondition != "" {
		d.TaxConditionText = tr(locale, "tax."+d.TaxCondition)
	}
}

// overview is the signed-in home: what needs attention first, then each section the portal
// allows, in brief.
//
// The page is kept per session and served again while nothing it shows has changed (see
// pageCache): the customer's version, read with the customer, says whether their data did.
func (h *Handler) overview(w http.ResponseWriter, v *visit) {
	stamp, cacheable := h.cache.stamp(v)
	if cacheable {
		if p, ok := h.cache.get(v.sess.ID, stamp); ok {
			h.metrics.pageCacheHits.Inc()
			writePage(w, http.StatusOK, p.csp, p.body)
			return
		}
		h.metrics.pageCacheMisses.Inc()
	}
	perms := v.portal.Spec.Permissions
	d := overviewData{Name: v.customer.Name, ShowMethods: perms.CanUpdatePaymentMethod(),
		ShowBilling: perms.CanUpdateBillingInfo(), ShowHistory: perms.CanViewPaymentHistory()}
	by, ms, err := h.methodsByID(v)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	if d.ShowMethods {
		d.MethodCount = len(ms)
		if len(ms) > 0 {
			r := h.methodRows(v, ms[:1])[0]
			d.Preferred = &r
		}
	}
	subs, err := h.ledger.ListSubscriptionSummaries(v.ctx, v.customer.ID)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	for _, s := range subs {
		if s.Status != ledger.SubscriptionCanceled {
			d.Subscriptions = append(d.Subscriptions, subscriptionView(v.locale, s, by))
		}
	}
	if d.ShowBilling {
		b := v.customer.Billing
		d.LegalName, d.TaxCondition = b.LegalName, string(b.TaxCondition)
		if b.TaxID != "" {
			d.TaxID = payments.FormatCUIT(b.TaxID)
		}
	}
	due, err := h.duePayments(v, 10)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	for _, p := range due {
		d.Due = append(d.Due, paymentView(v.locale, p))
	}
	if d.ShowHistory {
		page, err := h.ledger.ListPaymentSummaries(v.ctx, ledger.ListPaymentsParams{CustomerID: v.customer.ID, Limit: 5})
		if err != nil {
			h.internal(w, v, err)
			return
		}
		for _, p := range page.Items {
			d.Recent = append(d.Recent, paymentView(v.locale, p))
		}
	}
	d.texts(v.locale)
	buf, csp, ok := h.execute(w, v, http.StatusOK, "overview", "title.overview", d, nil)
	if !ok {
		return
	}
	defer putPageBuffer(buf)
	if cacheable {
		h.cache.put(v.sess.ID, stamp, csp, buf.Bytes())
	}
	writePage(w, http.StatusOK, csp, buf.Bytes())
}
