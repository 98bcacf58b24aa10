package web

import (
	"net/http"
	"net/url"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

type billingData struct {
	TaxConditions []string
}

func billingValues(b ledger.BillingProfile) url.Values {
	vals := url.Values{}
	vals.Set("legal_name", b.LegalName)
	if b.TaxID != "" {
		vals.Set("tax_id", payments.FormatCUIT(b.TaxID))
	}
	vals.Set("tax_condition", string(b.TaxCondition))
	vals.Set("line1", b.Address.Line1)
	vals.Set("line2", b.Address.Line2)
	vals.Set("city", b.Address.City)
	vals.Set("province", b.Address.Province)
	vals.Set("postal_code", b.Address.PostalCode)
	country := b.Address.Country
	if country == "" {
		country = "AR"
	}
	vals.Set("country", country)
	return vals
}

func newBillingData() billingData {
	d := billingData{}
	for _, c := range taxConditions {
		d.TaxConditions = append(d.TaxConditions, string(c))
	}
	return d
}

func (h *Handler) billingPage(w http.ResponseWriter, v *visit) {
	h.renderForm(w, v, http.StatusOK, "billing", "title.billing", newBillingData(), newForm(billingValues(v.customer.Billing)))
}

// billingSubmit replaces the billing profile; every field with a problem is marked at once.
func (h *Handler) billingSubmit(w http.ResponseWriter, v *visit) {
	f := newForm(url.Values{})
	for _, bf := range billingFields {
		f.Values.Set(bf.form, v.r.PostForm.Get(bf.form))
	}
	b, errs := decodeBilling(v.r.PostForm)
	if len(errs) > 0 {
		h.fieldErrors(v, f, errs)
		h.renderForm(w, v, http.StatusUnprocessableEntity, "billing", "title.billing", newBillingData(), f)
		return
	}
	if _, err := h.ledger.UpdateCustomer(v.ctx, v.customer.ID, ledger.CustomerUpdate{Billing: &b}); err != nil {
		if h.ledgerFormError(v, f, err) {
			h.renderForm(w, v, http.StatusUnprocessableEntity, "billing", "title.billing", newBillingData(), f)
			return
		}
		h.internal(w, v, err)
		return
	}
	h.log.Info("billing profile updated in the portal", "customer", v.customer.ID)
	h.flashAndRedirect(w, v, "flash.billing_saved", "/billing")
}
