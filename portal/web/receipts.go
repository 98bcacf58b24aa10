package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/receipts"
)

// Receipts of succeeded payments: /payments/{id}/receipt, a page that prints as the receipt
// alone, and /payments/{id}/receipt.pdf, the same receipt as a PDF (portal/receipts makes both
// from one Document). They are part of the payment history, so they follow its permission. A
// payment that is not the customer's, or has not succeeded, has none: 404, like a missing one.

type receiptData struct {
	Doc receipts.Document
	// Back is the payment's page, PDF the receipt's download.
	Back, PDF string
	// CSS is receipt.css's version, for its URL (see assetVersion).
	CSS string
}

// receiptCSSVersion changes whenever the receipt's stylesheet does.
var receiptCSSVersion = func() string {
	b, _ := staticFS.ReadFile("static/receipt.css")
	var sum uint32 = 2166136261
	for _, c := range b {
		sum = (sum ^ uint32(c)) * 16777619
	}
	return strconv.FormatUint(uint64(sum), 36)
}()

// receiptOf builds the receipt of the customer's payment named in the path; false means it
// answered.
func (h *Handler) receiptOf(w http.ResponseWriter, v *visit) (receipts.Receipt, bool) {
	p, ok := h.payment(w, v)
	if !ok {
		return receipts.Receipt{}, false
	}
	r, err := receipts.New(receipts.MerchantOf(v.portal), *v.customer, p)
	if errors.Is(err, receipts.ErrNoReceipt) {
		h.notFound(w, v)
		return r, false
	}
	if err != nil {
		h.internal(w, v, err)
		return r, false
	}
	return r, true
}

// receiptURL is a payment's receipt page when the customer may see it here, "" otherwise.
func receiptURL(v *visit, p ledger.Payment) string {
	if p.Status != ledger.PaymentSucceeded || !canSeeHistory(v.portal) {
		return ""
	}
	return "/payments/" + url.PathEscape(p.ID) + "/receipt"
}

func (h *Handler) receiptPage(w http.ResponseWriter, v *visit) {
	r, ok := h.receiptOf(w, v)
	if !ok {
		return
	}
	base := "/payments/" + url.PathEscape(r.Payment.ID)
	h.render(w, v, http.StatusOK, "receipt", "title.receipt",
		receiptData{Doc: r.Document(v.locale), Back: base, PDF: base + "/receipt.pdf", CSS: receiptCSSVersion})
}

func (h *Handler) receiptPDF(w http.ResponseWriter, v *visit) {
	r, ok := h.receiptOf(w, v)
	if !ok {
		return
	}
	pdf, err := r.PDF(v.locale)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/pdf")
	hd.Set("Content-Disposition", `attachment; filename="`+receipts.Filename(v.locale, r.Payment.ID)+`"`)
	hd.Set("Content-Length", strconv.Itoa(len(pdf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pdf)
}
