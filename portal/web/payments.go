package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

type paymentRow struct {
	ID          string
	Description string
	Amount      int64
	Currency    ledger.Currency
	Status      string
	Method      string
	Created     time.Time
	PeriodStart time.Time
	PeriodEnd   time.Time
	Href        string
	// Due is true when the payment waits for the customer (complete it, pay it, or retry).
	Due bool
	// The row's texts in the page's language, ready for the lists: the description (or
	// "untitled"), the creation day, the amount and the status.
	Title, CreatedText, AmountText, StatusText string
}

// paymentView is a payment's row. The lists read payments with ListPaymentSummaries, so their
// rows have no period (which the lists do not show); the payment's own page passes it whole.
func paymentView(locale string, p ledger.Payment) paymentRow {
	r := paymentRow{ID: p.ID, Description: p.Description, Amount: p.Amount, Currency: p.Currency,
		Status: string(p.Status), Method: paymentMethodLabel(locale, p.MethodType, p.MethodSummary),
		Created: p.CreatedAt, PeriodStart: p.PeriodStart, PeriodEnd: p.PeriodEnd,
		Href: "/payments/" + url.PathEscape(p.ID), Due: p.Due(),
		Title: p.Description, CreatedText: formatDate(locale, p.CreatedAt), AmountText: formatMoney(locale, p.Amount, p.Currency),
		StatusText: tr(locale, "payment.status."+string(p.Status))}
	if p.Closed() {
		// Not a refusal to act on: the subscription was canceled before it was paid.
		r.Status, r.StatusText = "closed", tr(locale, "payment.status.closed")
	}
	if r.Title == "" {
		r.Title = tr(locale, "payment.untitled")
	}
	return r
}

// canPay reports the payments a customer can settle with a new method: incomplete ones, and
// failed ones that are not closed (a canceled subscription's are never collected).
func canPay(p ledger.Payment) bool {
	return p.Status == ledger.PaymentIncomplete || (p.Status == ledger.PaymentFailed && !p.Closed())
}

// mayPay reports whether this portal lets the customer pay p with a new method now. An
// incomplete payment can always be completed: the customer has no usable method, adding the
// first one changes no choice they made, and completing it is what the e-mailed link is for.
// Paying a failed payment again makes the new method the preferred one (and the subscription's),
// which is updating the payment method: only where the portal allows that.
func mayPay(portal *billingv1alpha1.CustomerPortal, p ledger.Payment) bool {
	return canPay(p) && (p.Status == ledger.PaymentIncomplete || portal.Spec.Permissions.CanUpdatePaymentMethod())
}

// duePayments lists the customer's payments that wait for them, newest first, at most limit.
// A page asks for them more than once (its list, the banner's count), so the request reads
// them once, in one query, and keeps them.
func (h *Handler) duePayments(v *visit, limit int) ([]ledger.Payment, error) {
	if v.due == nil || (limit > v.due.limit && len(v.due.items) >= v.due.limit) {
		n := max(limit, dueCountCap)
		page, err := h.ledger.ListPaymentSummaries(v.ctx, ledger.ListPaymentsParams{CustomerID: v.customer.ID, Due: true, Limit: n})
		if err != nil {
			return nil, err
		}
		v.due = &dueList{items: page.Items, limit: n}
	}
	if len(v.due.items) > limit {
		return v.due.items[:limit], nil
	}
	return v.due.items, nil
}

// dueList is a request's read of the payments due: the first limit of them, newest first.
type dueList struct {
	items []ledger.Payment
	limit int
}

type paymentsData struct {
	Payments []paymentRow
	Next     string
}

func (h *Handler) paymentsPage(w http.ResponseWriter, v *visit) {
	cursor := v.r.URL.Query().Get("after")
	page, err := h.ledger.ListPaymentSummaries(v.ctx, ledger.ListPaymentsParams{CustomerID: v.customer.ID, Limit: 25, Cursor: cursor})
	var le *ledger.Error
	if errors.As(err, &le) && le.Kind == ledger.KindInvalid {
		redirect(w, v, "/payments") // a mangled cursor: start over
		return
	}
	if err != nil {
		h.internal(w, v, err)
		return
	}
	d := paymentsData{}
	for _, p := range page.Items {
		d.Payments = append(d.Payments, paymentView(v.locale, p))
	}
	if page.NextCursor != "" {
		d.Next = "/payments?after=" + url.QueryEscape(page.NextCursor)
	}
	h.render(w, v, http.StatusOK, "payments", "title.payments", d)
}

func (h *Handler) paymentsDuePage(w http.ResponseWriter, v *visit) {
	due, err := h.duePayments(v, 50)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	d := paymentsData{}
	for _, p := range due {
		d.Payments = append(d.Payments, paymentView(v.locale, p))
	}
	h.render(w, v, http.StatusOK, "paymentsdue", "title.payments_due", d)
}

type attemptRow struct {
	Number  int
	Method  string
	Outcome string
	Failure string
	At      time.Time
}

type paymentData struct {
	P paymentRow
	// Authenticate is the link that sends the customer to their bank, for a payment waiting
	// for it.
	Authenticate string
	Attempts     []attemptRow
	Instructions string
	QR           bool
	// Wallet is true for a payment made with the customer's wallet account: waiting for the
	// customer, it is paid on the wallet's own checkout rather than authenticated at a bank.
	Wallet  bool
	Failure string
	CanPay  bool
	// Result is true right after the customer paid it here.
	Result bool
	Form   methodFormData
	// QRCode draws Instructions as a scannable code: set for a pending QR payment whose payload
	// fits one (nil otherwise: the page then shows the payload as text only).
	QRCode *qrCode
	// Receipt is the receipt's page, for a succeeded payment whose receipts the customer may see.
	Receipt string
}

// payment loads the customer's payment named in the path; false means it answered (404 for
// another customer's payment, exactly like a missing one).
func (h *Handler) payment(w http.ResponseWriter, v *visit) (ledger.Payment, bool) {
	p, err := h.ledger.GetPaymentForCustomer(v.ctx, v.customer.ID, v.r.PathValue("id"))
	if err != nil {
		h.ledgerFailure(w, v, err)
		return p, false
	}
	return p, true
}

func (h *Handler) paymentData(v *visit, p ledger.Payment) paymentData {
	d := paymentData{P: paymentView(v.locale, p), CanPay: mayPay(v.portal, p), Instructions: p.Instructions,
		Authenticate: authenticateURL(p),
		QR:           p.MethodType == payments.MethodQR, Wallet: p.MethodType == payments.MethodWallet,
		Result: v.flash == paidFlash(p.ID), Receipt: receiptURL(v, p)}
	if d.QR && p.Status == ledger.PaymentPending && p.Instructions != "" {
		// Only the pending page shows it, so only it pays for the encoding.
		qc, err := newQRCode(p.Instructions)
		if err != nil {
			h.log.Warn("QR payment's instructions shown as text only", "payment", p.ID, "err", err)
		}
		d.QRCode = qc
	}
	if p.FailureCode != "" {
		d.Failure = (&payments.Error{Code: p.FailureCode}).Message(v.locale)
	}
	for _, a := range p.Attempts {
		r := attemptRow{Number: a.Number, Method: paymentMethodLabel(v.locale, a.MethodType, a.MethodSummary),
			Outcome: string(a.Outcome), At: a.StartedAt}
		if a.FailureCode != "" {
			r.Failure = (&payments.Error{Code: a.FailureCode}).Message(v.locale)
		}
		d.Attempts = append(d.Attempts, r)
	}
	base := "/payments/" + url.PathEscape(p.ID) + "/pay"
	d.Form = h.methodForm(v, base, base, "")
	d.Form.Payment = &p
	return d
}

func paidFlash(id string) string { return "flash.payment_submitted:" + id }

// authenticateURL is the link to authenticate a payment that waits for it; "" otherwise.
func authenticateURL(p ledger.Payment) string {
	if p.Status != ledger.PaymentRequiresAction {
		return ""
	}
	return "/payments/" + url.PathEscape(p.ID) + "/authenticate"
}

// paymentPage shows one payment. Without the history permission only the payments that wait
// for the customer are shown, plus the one they just paid (its result).
func (h *Handler) paymentPage(w http.ResponseWriter, v *visit) {
	p, ok := h.payment(w, v)
	if !ok {
		return
	}
	if !v.portal.Spec.Permissions.CanViewPaymentHistory() && !p.Due() &&
		p.Status != ledger.PaymentProcessing && v.flash != paidFlash(p.ID) {
		h.fail(w, v, http.StatusForbidden, "error.forbidden")
		return
	}
	h.render(w, v, http.StatusOK, "payment", "title.payment", h.paymentData(v, p))
}

func (h *Handler) paymentPayPage(w http.ResponseWriter, v *visit) {
	p, ok := h.payment(w, v)
	if !ok {
		return
	}
	if !canPay(p) {
		redirect(w, v, "/payments/"+url.PathEscape(p.ID))
		return
	}
	if !mayPay(v.portal, p) {
		h.fail(w, v, http.StatusForbidden, "error.forbidden")
		return
	}
	t, ok := h.chosenType(w, v, v.r.URL.Query().Get("type"))
	if !ok {
		return
	}
	if t == string(payments.MethodCard) && h.hostedCards(v) {
		// "Pay with a new card": entered on the processor's page, back to paymentPayReturn.
		drv, err := h.driver(v)
		if err != nil {
			h.processorFailure(w, v, err)
			return
		}
		base := "/payments/" + url.PathEscape(p.ID) + "/pay"
		h.startHostedSetup(w, v, drv, base+"/return", base)
		return
	}
	d := h.paymentData(v, p)
	d.Form.Type = t
	h.render(w, v, http.StatusOK, "paymentpay", "title.payment_pay", d)
}

// paymentPayReturn completes a payment with the card the customer just entered on the
// processor's page: as paymentPay does with a card from the portal's own form.
func (h *Handler) paymentPayReturn(w http.ResponseWriter, v *visit) {
	p, ok := h.payment(w, v)
	if !ok {
		return
	}
	if !mayPay(v.portal, p) && canPay(p) {
		h.fail(w, v, http.StatusForbidden, "error.forbidden")
		return
	}
	if h.cardFieldsPage(w, v, "/payments/"+url.PathEscape(p.ID)) {
		return
	}
	// Paying again with a new card makes it the preferred one (retryWith); completing an
	// incomplete payment adds it as any first usable method, which the add already charged.
	m, ok := h.completeHostedSetup(w, v, false)
	if !ok {
		return
	}
	if p.Status == ledger.PaymentFailed && mayPay(v.portal, p) {
		if err := h.retryWith(v, p, m); err != nil {
			h.processorFailure(w, v, err)
			return
		}
	}
	h.log.Info("payment completed in the portal", "customer", v.customer.ID, "payment", p.ID, "hosted", true)
	h.flashAndRedirect(w, v, paidFlash(p.ID), "/payments/"+url.PathEscape(p.ID))
}

// paymentPay completes a payment with a new method of a type the portal accepts. For an
// incomplete payment, adding the method is enough: the ledger settles the customer's
// incomplete payments exactly once. A failed payment is retried with the new method, which
// becomes the preferred one (and the subscription's, if it had another pinned).
func (h *Handler) paymentPay(w http.ResponseWriter, v *visit) {
	p, ok := h.payment(w, v)
	if !ok {
		return
	}
	if !canPay(p) {
		h.fail(w, v, http.StatusConflict, "error.payment_not_payable")
		return
	}
	if !mayPay(v.portal, p) {
		h.fail(w, v, http.StatusForbidden, "error.forbidden")
		return
	}
	data := func(t string) any {
		d := h.paymentData(v, p)
		d.Form.Type = t
		return d
	}
	m, ok := h.addMethod(w, v, "paymentpay", "title.payment_pay", data)
	if !ok {
		return
	}
	if p.Status == ledger.PaymentFailed {
		if err := h.retryWith(v, p, m); err != nil {
			h.processorFailure(w, v, err)
			return
		}
	}
	after, err := h.ledger.GetPaymentForCustomer(v.ctx, v.customer.ID, p.ID)
	if err != nil {
		h.internal(w, v, err)
		return
	}
	h.log.Info("payment completed in the portal", "customer", v.customer.ID, "payment", p.ID, "status", after.Status)
	h.flashAndRedirect(w, v, paidFlash(p.ID), "/payments/"+url.PathEscape(p.ID))
}

func (h *Handler) retryWith(v *visit, p ledger.Payment, m ledger.PaymentMethod) error {
	if _, err := h.ledger.MakePreferred(v.ctx, v.customer.ID, m.ID); err != nil {
		return err
	}
	if p.SubscriptionID != "" {
		sub, err := h.ledger.GetSubscriptionForCustomer(v.ctx, v.customer.ID, p.SubscriptionID)
		if err == nil && sub.PaymentMethodID != "" && sub.PaymentMethodID != m.ID && sub.Status != ledger.SubscriptionCanceled {
			if _, err := h.ledger.SetSubscriptionPaymentMethod(v.ctx, v.customer.ID, sub.ID, m.ID); err != nil {
				return err
			}
		}
	}
	d, err := h.driver(v)
	if err != nil {
		return err
	}
	_, claim, err := h.ledger.RetryPayment(v.ctx, v.customer.ID, p.ID, d.Adapter().Type())
	if errors.Is(err, ledger.ErrPaymentState) {
		return nil // it moved on meanwhile (e.g. another tab); the page shows where it is
	}
	if err != nil || claim == nil {
		return err
	}
	// A lost answer is no error: the payment stays processing and is re-driven.
	_, err = d.Charge(v.ctx, *claim)
	return err
}
