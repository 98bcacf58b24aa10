package mercadopago

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preference"

	"github.com/portero-dev/portero/portal/payments"
)

// Payment statuses and status details of Mercado Pago that Portero reads.
const (
	statusApproved   = "approved"
	statusAuthorized = "authorized"
	statusPending    = "pending"
	statusInProcess  = "in_process"
	statusRejected   = "rejected"
	statusCancelled  = "cancelled"
	statusRefunded   = "refunded"
	statusCharged    = "charged_back"

	detailChallenge = "pending_challenge"
)

// exponent is the number of decimals Mercado Pago's amounts have in a currency.
func exponent(currency string) int {
	switch strings.ToUpper(currency) {
	case "CLP", "COP", "PYG":
		return 0
	}
	return 2
}

// amountOf converts minor units (centavos) to Mercado Pago's decimal amounts.
func amountOf(minor int64, currency string) float64 {
	switch exponent(currency) {
	case 0:
		return float64(minor)
	}
	return float64(minor) / 100
}

// decimalOf writes minor units as the Orders API's decimal strings ("1500.00").
func decimalOf(minor int64, currency string) string {
	if exponent(currency) == 0 {
		return strconv.FormatInt(minor, 10)
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}

// paymentIDOf is Portero's payment id in an attempt key ("<payment id>/<attempt>"), the
// external_reference of everything created for the attempt.
func paymentIDOf(key string) string {
	if i := strings.LastIndex(key, "/"); i > 0 {
		return key[:i]
	}
	return key
}

// Reference kinds: Mercado Pago payment ids are numbers, QR order ids start with ORD,
// Checkout Pro preference ids are "<collector>-<uuid>".
type refKind int

const (
	refNone refKind = iota
	refPayment
	refOrder
	refPreference
)

func kindOf(ref string) refKind {
	switch {
	case ref == "":
		return refNone
	case validCardID(ref):
		return refPayment
	case strings.HasPrefix(ref, "ORD"):
		return refOrder
	}
	return refPreference
}

// Charge implements payments.Adapter.
//
//   - card: a card token from the saved card (X-Idempotency-Key <key>/token), then a payment
//     with that token and payer {type: customer} (X-Idempotency-Key <key>), charged without
//     the customer present. Mercado Pago answers a repeated key with the first payment.
//   - wallet: a Checkout Pro preference for the attempt; the payment waits for the customer
//     (ChargeRequiresAction) to pay on Mercado Pago's page.
//   - qr: a dynamic QR order; the payment is pending with the QR's data as instructions.
func (a *Adapter) Charge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	switch {
	case req.Amount <= 0:
		return failed(payments.CodeInvalidAmount), nil
	case req.IdempotencyKey == "":
		return payments.ChargeResult{}, errors.New("mercadopago: charge without an idempotency key refused")
	}
	switch req.Method.Type {
	case payments.MethodCard:
		return a.chargeCard(ctx, req)
	case payments.MethodWallet:
		return a.chargeWallet(ctx, req)
	case payments.MethodQR:
		return a.chargeQR(ctx, req)
	}
	return failed(payments.CodeUnsupportedMethod), nil
}

func (a *Adapter) chargeCard(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	if !validCardID(req.Method.Token) || req.Customer == "" {
		return failed(payments.CodeInvalidPaymentMethod), nil
	}
	card, err := a.cards.Get(ctx, req.Customer, req.Method.Token)
	if isMissing(err) {
		return failed(payments.CodeInvalidToken), nil // removed at Mercado Pago since
	}
	if err != nil {
		return payments.ChargeResult{}, a.fail("get card", err)
	}
	tok, err := a.cardToken(withKey(ctx, req.IdempotencyKey+"/token"), req.Method.Token)
	if err != nil {
		if isRefusal(err) {
			return a.refusedCharge("create card token", err), nil
		}
		return payments.ChargeResult{}, a.fail("create card token", err)
	}
	p := payment.Request{
		TransactionAmount: amountOf(req.Amount, req.Currency),
		Token:             tok,
		Installments:      1,
		PaymentMethodID:   card.PaymentMethod.ID,
		Payer:             &payment.PayerRequest{Type: "customer", ID: req.Customer},
		ExternalReference: paymentIDOf(req.IdempotencyKey),
		Description:       req.Description,
		Metadata:          map[string]any{metaAttempt: req.IdempotencyKey},
		// The issuer may ask for a challenge; the customer then pays this attempt on
		// Checkout Pro (Authenticate) instead of the charge being declined.
		ThreeDSecureMode: "optional",
		NotificationURL:  a.notificationURL,
	}
	if card.Issuer.ID != 0 {
		p.IssuerID = strconv.Itoa(card.Issuer.ID)
	}
	res, err := a.payments.Create(withKey(ctx, req.IdempotencyKey), p)
	if err != nil {
		if isRefusal(err) {
			return a.refusedCharge("create payment", err), nil
		}
		return payments.ChargeResult{}, a.fail("create payment", err)
	}
	return resultOfPayment(res), nil
}

// cardToken creates a single-use card token from a saved card, without its security code:
// what Mercado Pago's Automatic Payments do for a charge with no customer present.
func (a *Adapter) cardToken(ctx context.Context, cardID string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := a.tr.call(ctx, http.MethodPost, "/v1/card_tokens", map[string]string{"card_id": cardID}, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("Mercado Pago answered a card token without an id")
	}
	return out.ID, nil
}

func (a *Adapter) chargeWallet(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	pref, err := a.preferences.Create(withKey(ctx, req.IdempotencyKey),
		a.preferenceFor(req.IdempotencyKey, req.Description, amountOf(req.Amount, req.Currency), req.Currency, "", true))
	if err != nil {
		if isRefusal(err) {
			a.log.Warn("Mercado Pago refused a checkout preference", "err", a.fail("create preference", err))
			return failed(payments.CodeInvalidPaymentMethod), nil
		}
		return payments.ChargeResult{}, a.fail("create preference", err)
	}
	return payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: pref.ID}, nil
}

// preferenceFor is the Checkout Pro preference that lets the customer pay the attempt on
// Mercado Pago's page. wallet restricts it to customers logged in to Mercado Pago, who pay
// with the money in their account (or what they keep there).
func (a *Adapter) preferenceFor(key, title string, amount float64, currency, returnURL string, wallet bool) preference.Request {
	if title == "" {
		title = paymentIDOf(key)
	}
	p := preference.Request{
		Items: []preference.ItemRequest{{
			ID:         paymentIDOf(key),
			Title:      title,
			Quantity:   1,
			CurrencyID: strings.ToUpper(currency),
			UnitPrice:  amount,
		}},
		ExternalReference: paymentIDOf(key),
		Metadata:          map[string]any{metaAttempt: key},
		NotificationURL:   a.notificationURL,
	}
	if wallet {
		p.Purpose = "wallet_purchase"
	}
	if returnURL != "" {
		p.BackURLs, p.AutoReturn = backTo(returnURL), "approved"
	}
	return p
}

// backTo sends the customer back to the portal whatever the outcome; the portal asks Mercado
// Pago what it was.
func backTo(returnURL string) *preference.BackURLsRequest {
	return &preference.BackURLsRequest{Success: returnURL, Pending: returnURL, Failure: returnURL}
}

// qrOrder is the Orders API's request for a dynamic QR, which the library's order.Request
// cannot express (no config.qr).
type qrOrder struct {
	Type              string `json:"type"`
	TotalAmount       string `json:"total_amount"`
	Description       string `json:"description,omitempty"`
	ExternalReference string `json:"external_reference"`
	Config            struct {
		QR struct {
			ExternalPOSID string `json:"external_pos_id"`
			Mode          string `json:"mode"`
		} `json:"qr"`
	} `json:"config"`
	Transactions struct {
		Payments []struct {
			Amount string `json:"amount"`
		} `json:"payments"`
	} `json:"transactions"`
	NotificationURL string `json:"notification_url,omitempty"`
}

// qrAnswer is what Portero reads of a QR order.
type qrAnswer struct {
	ID                string `json:"id"`
	Status            string `json:"status"`
	StatusDetail      string `json:"status_detail"`
	ExternalReference string `json:"external_reference"`
	TypeResponse      struct {
		QRData string `json:"qr_data"`
	} `json:"type_response"`
}

func (a *Adapter) chargeQR(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	if a.qrPOS == "" {
		a.log.Warn("a QR payment was asked for but the processor Secret names no point of sale", "key", KeyQRPOS)
		return failed(payments.CodeUnsupportedMethod), nil
	}
	o := qrOrder{Type: "qr", TotalAmount: decimalOf(req.Amount, req.Currency), Description: req.Description,
		ExternalReference: paymentIDOf(req.IdempotencyKey), NotificationURL: a.notificationURL}
	o.Config.QR.ExternalPOSID, o.Config.QR.Mode = a.qrPOS, "dynamic"
	o.Transactions.Payments = append(o.Transactions.Payments, struct {
		Amount string `json:"amount"`
	}{Amount: o.TotalAmount})
	var out qrAnswer
	if err := a.tr.call(withKey(ctx, req.IdempotencyKey), http.MethodPost, "/v1/orders", o, &out); err != nil {
		if isRefusal(err) {
			a.log.Warn("Mercado Pago refused a QR order", "err", a.fail("create QR order", err))
			return failed(payments.CodeInvalidPaymentMethod), nil
		}
		return payments.ChargeResult{}, a.fail("create QR order", err)
	}
	res := resultOfOrder(out.ID, out.Status, out.StatusDetail)
	if res.Status == payments.ChargePending {
		if out.TypeResponse.QRData == "" {
			return payments.ChargeResult{}, errors.New("mercadopago: create QR order: the answer has no qr_data")
		}
		res.Instructions = out.TypeResponse.QRData
	}
	return res, nil
}

// resultOfPayment reads a payment's state.
func resultOfPayment(p *payment.Response) payments.ChargeResult {
	res := payments.ChargeResult{Reference: strconv.Itoa(p.ID)}
	switch p.Status {
	case statusApproved, statusRefunded, statusCharged:
		// Refunds and chargebacks come later and are the merchant's business: the charge
		// collected.
		res.Status = payments.ChargeSucceeded
	case statusPending, statusInProcess, statusAuthorized:
		res.Status = payments.ChargePending
		if p.StatusDetail == detailChallenge {
			res.Status = payments.ChargeRequiresAction
		}
	case statusRejected:
		res.Status, res.Failure = payments.ChargeFailed, &payments.Error{Code: FailureCode(p.StatusDetail)}
	default: // cancelled and anything unknown: nothing was collected
		res.Status, res.Failure = payments.ChargeFailed, &payments.Error{Code: payments.CodeProcessingError}
	}
	return res
}

// resultOfOrder reads a QR order's state.
func resultOfOrder(id, status, detail string) payments.ChargeResult {
	res := payments.ChargeResult{Reference: id}
	switch status {
	case "processed":
		res.Status = payments.ChargeSucceeded
	case "created", "at_terminal", "action_required", "processing":
		res.Status = payments.ChargePending
	case "expired":
		res.Status, res.Failure = payments.ChargeFailed, &payments.Error{Code: payments.CodeProcessingError}
	default: // canceled, failed, refunded before processing
		res.Status, res.Failure = payments.ChargeFailed, &payments.Error{Code: FailureCode(detail)}
		if detail == "" || detail == status {
			res.Failure.Code = payments.CodeProcessingError
		}
	}
	return res
}

// LookupCharge implements payments.Adapter: a QR order by its id; otherwise the payments made
// for the attempt, found by Portero's payment id (external_reference) and the attempt key in
// their metadata — which also finds the payment of a customer who paid the attempt on
// Checkout Pro after an authentication request.
func (a *Adapter) LookupCharge(ctx context.Context, req payments.ChargeRequest) (payments.ChargeResult, error) {
	switch kindOf(req.Reference) {
	case refOrder:
		o, err := a.orders.Get(ctx, req.Reference)
		if isMissing(err) {
			return payments.ChargeResult{}, payments.ErrNoSuchCharge
		}
		if err != nil {
			return payments.ChargeResult{}, a.fail("get QR order", err)
		}
		return resultOfOrder(o.ID, o.Status, o.StatusDetail), nil
	case refNone:
		if req.Method.Type == payments.MethodQR {
			// No search for orders: creating it again with the same key gives the same one.
			return payments.ChargeResult{}, payments.ErrNoSuchCharge
		}
	}
	if req.IdempotencyKey == "" {
		return payments.ChargeResult{}, errors.New("mercadopago: look up charge: need the attempt key")
	}
	found, err := a.paymentsOf(ctx, req.IdempotencyKey)
	if err != nil {
		return payments.ChargeResult{}, err
	}
	if kindOf(req.Reference) == refPayment && !containsID(found, req.Reference) {
		// Search is eventually consistent; the payment itself is not.
		p, err := a.getPayment(ctx, req.Reference)
		if isMissing(err) {
			return payments.ChargeResult{}, payments.ErrNoSuchCharge
		}
		if err != nil {
			return payments.ChargeResult{}, a.fail("get payment", err)
		}
		found = append(found, *p)
	}
	res, ok := best(found)
	if ok {
		return res, nil
	}
	if kindOf(req.Reference) == refPreference {
		// The preference waits for the customer, who has not paid yet.
		return payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: req.Reference}, nil
	}
	return payments.ChargeResult{}, payments.ErrNoSuchCharge
}

func containsID(ps []payment.Response, id string) bool {
	for _, p := range ps {
		if strconv.Itoa(p.ID) == id {
			return true
		}
	}
	return false
}

func (a *Adapter) getPayment(ctx context.Context, id string) (*payment.Response, error) {
	n, err := strconv.Atoi(id)
	if err != nil {
		return nil, fmt.Errorf("mercadopago: %q is not a payment id", id)
	}
	return a.payments.Get(ctx, n)
}

// paymentsOf lists the payments made for an attempt, newest first.
func (a *Adapter) paymentsOf(ctx context.Context, key string) ([]payment.Response, error) {
	res, err := a.payments.Search(ctx, payment.SearchRequest{Limit: 50, Filters: map[string]string{
		"external_reference": paymentIDOf(key), "sort": "date_created", "criteria": "desc"}})
	if err != nil {
		return nil, a.fail("search payments", err)
	}
	var out []payment.Response
	for _, p := range res.Results {
		if v, _ := p.Metadata[metaAttempt].(string); v == key {
			out = append(out, p)
		}
	}
	return out, nil
}

// best is what an attempt's payments add up to: collected if one was; else waiting for money
// (pending); else waiting for the customer (a challenge, or a challenged payment Portero
// cancelled to send the customer to Checkout Pro); else the newest refusal. ok is false when
// there is no payment.
func best(ps []payment.Response) (payments.ChargeResult, bool) {
	var pending, action, cancelled, rejected *payment.Response
	for i := range ps {
		p := &ps[i]
		switch r := resultOfPayment(p); {
		case r.Status == payments.ChargeSucceeded:
			return r, true
		case r.Status == payments.ChargePending && pending == nil:
			pending = p
		case r.Status == payments.ChargeRequiresAction && action == nil:
			action = p
		case p.Status == statusCancelled && cancelled == nil:
			cancelled = p
		case p.Status == statusRejected && rejected == nil:
			rejected = p
		}
	}
	switch {
	case pending != nil:
		return resultOfPayment(pending), true
	case action != nil:
		return resultOfPayment(action), true
	case cancelled != nil:
		return payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: strconv.Itoa(cancelled.ID)}, true
	case rejected != nil:
		return resultOfPayment(rejected), true
	}
	return payments.ChargeResult{}, false
}

// Authenticate implements payments.Adapter. The customer pays the attempt on Checkout Pro, a
// page of Mercado Pago that runs whatever the issuer asks (3-D Secure) and sends them back to
// req.ReturnURL; the portal needs no JavaScript. For a card charge waiting on a challenge, the
// challenged payment is cancelled first, so that only the customer's payment can collect; if
// it was approved meanwhile, that is the final answer.
func (a *Adapter) Authenticate(ctx context.Context, req payments.ActionRequest) (payments.ActionResult, error) {
	if u, err := url.Parse(req.ReturnURL); err != nil || !u.IsAbs() {
		return payments.ActionResult{}, errors.New("mercadopago: authenticate: the return URL must be absolute")
	}
	if req.IdempotencyKey == "" {
		return payments.ActionResult{}, errors.New("mercadopago: authenticate: need the attempt key")
	}
	found, err := a.paymentsOf(ctx, req.IdempotencyKey)
	if err != nil {
		return payments.ActionResult{}, err
	}
	if kindOf(req.Reference) == refPayment && !containsID(found, req.Reference) {
		p, err := a.getPayment(ctx, req.Reference)
		if isMissing(err) {
			return payments.ActionResult{}, payments.ErrNoSuchCharge
		}
		if err != nil {
			return payments.ActionResult{}, a.fail("get payment", err)
		}
		found = append(found, *p)
	}
	for _, p := range found {
		if r := resultOfPayment(&p); r.Status == payments.ChargeSucceeded || r.Status == payments.ChargePending {
			return payments.ActionResult{ChargeResult: r}, nil // paid, or paying: nothing to do
		}
	}
	for _, p := range found {
		if p.Status != statusPending && p.Status != statusInProcess {
			continue
		}
		// A challenge waiting: cancel it; only the customer's Checkout Pro payment may collect.
		c, err := a.payments.Cancel(ctx, p.ID)
		if err != nil {
			again, gerr := a.payments.Get(ctx, p.ID)
			if gerr != nil {
				return payments.ActionResult{}, a.fail("cancel challenged payment", err)
			}
			c = again
		}
		if r := resultOfPayment(c); r.Status == payments.ChargeSucceeded {
			return payments.ActionResult{ChargeResult: r}, nil
		} else if c.Status != statusCancelled && c.Status != statusRejected {
			return payments.ActionResult{}, fmt.Errorf("mercadopago: authenticate: the challenged payment is %s and could not be cancelled", c.Status)
		}
	}
	var pref *preference.Response
	if kindOf(req.Reference) == refPreference {
		// The wallet charge's own preference: send the customer back to this return URL.
		pref, err = a.preferences.Update(ctx, req.Reference, preference.Request{BackURLs: backTo(req.ReturnURL), AutoReturn: "approved"})
	} else {
		if len(found) == 0 {
			return payments.ActionResult{}, payments.ErrNoSuchCharge
		}
		p := found[0] // the challenged payment: what the customer is asked to pay
		pref, err = a.preferences.Create(withKey(ctx, req.IdempotencyKey+"/checkout"),
			a.preferenceFor(req.IdempotencyKey, p.Description, p.TransactionAmount, p.CurrencyID, req.ReturnURL, false))
		if err == nil && pref.ID != "" {
			// Asked again (a reload, another return URL), the same preference comes back:
			// point it at this return URL.
			pref, err = a.preferences.Update(ctx, pref.ID, preference.Request{BackURLs: backTo(req.ReturnURL), AutoReturn: "approved"})
		}
	}
	if err != nil {
		return payments.ActionResult{}, a.fail("prepare checkout", err)
	}
	if pref.InitPoint == "" {
		return payments.ActionResult{}, errors.New("mercadopago: authenticate: the preference has no checkout URL")
	}
	return payments.ActionResult{ChargeResult: payments.ChargeResult{Status: payments.ChargeRequiresAction, Reference: req.Reference},
		RedirectURL: pref.InitPoint}, nil
}
