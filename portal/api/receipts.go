package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/receipts"
)

// getReceiptPDF answers the receipt of a succeeded payment as a PDF (portal/receipts), the same
// document the customer downloads from the portal, issued in the name of this portal's
// branding.legalName and taxID. Its language is ?lang=es|en, else the one Accept-Language
// prefers of the two, else the portal's branding.locale. A payment that has not succeeded has no
// receipt: 409 payment_state, so a merchant can tell "not yet" from "no such payment" (404).
func (a *API) getReceiptPDF(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).paymentID = id
	q, e := query(r, "lang")
	if e != nil {
		return e
	}
	lang := q.Get("lang")
	if lang != "" && lang != "es" && lang != "en" {
		return errInvalidField("lang", "The lang parameter must be es or en.", "El parámetro lang debe ser es o en.")
	}
	p, err := a.store.GetPayment(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = p.CustomerID
	portal := a.rules.Portal(r.Context())
	if portal == nil {
		return errPortalUnavailable()
	}
	c, err := a.store.GetCustomer(r.Context(), p.CustomerID)
	if err != nil {
		return a.storeError(r, err)
	}
	rec, err := receipts.New(receipts.MerchantOf(portal), c, p)
	if errors.Is(err, receipts.ErrNoReceipt) {
		return newError(http.StatusConflict, ledger.CodePaymentState, "",
			"This payment has not succeeded ("+string(p.Status)+"): only a succeeded payment has a receipt.",
			"Este pago no se acreditó ("+string(p.Status)+"): solo un pago acreditado tiene comprobante.")
	}
	if err != nil {
		info(r).err = err
		return errInternal()
	}
	if lang == "" {
		lang = receiptLocale(r, portal.Spec.Branding.Locale)
	}
	pdf, err := rec.PDF(lang)
	if err != nil {
		info(r).err = err
		return errInternal()
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/pdf")
	hd.Set("Content-Disposition", `attachment; filename="`+receipts.Filename(lang, p.ID)+`"`)
	hd.Set("Content-Length", strconv.Itoa(len(pdf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pdf)
	return nil
}

// receiptLocale is the language Accept-Language asks for, when it names Spanish or English;
// otherwise the portal's own (branding.locale, Spanish by default), which its customers read.
func receiptLocale(r *http.Request, portalLocale string) string {
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		lang, _, _ := strings.Cut(strings.ToLower(strings.ReplaceAll(tag, "_", "-")), "-")
		if lang == "es" || lang == "en" {
			return locale(r)
		}
	}
	if isSpanish(portalLocale) || portalLocale == "" {
		return "es"
	}
	return "en"
}
