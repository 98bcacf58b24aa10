package mpfake

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

type payment struct {
	id                         int64
	status, detail             string
	amount                     float64
	currency, description      string
	externalRef, methodID      string
	paymentType, notifyURL     string
	payerType, payerID         string
	metadata                   map[string]any
	card                       *card
	created, updated, approved time.Time
	key                        string
}

func (f *Fake) paymentJSON(p *payment) map[string]any {
	out := map[string]any{
		"id": p.id, "status": p.status, "status_detail": p.detail, "transaction_amount": p.amount,
		"currency_id": p.currency, "description": p.description, "external_reference": p.externalRef,
		"payment_method_id": p.methodID, "payment_type_id": p.paymentType, "operation_type": "regular_payment",
		"installments": 1, "captured": p.status == "approved", "binary_mode": false, "live_mode": false,
		"collector_id": f.opts.UserID, "metadata": p.metadata, "notification_url": p.notifyURL,
		"date_created": stamp(p.created), "date_last_updated": stamp(p.updated), "date_approved": nil,
		"payer":               map[string]any{"type": p.payerType, "id": p.payerID},
		"transaction_details": map[string]any{"total_paid_amount": p.amount, "net_received_amount": p.amount, "installment_amount": p.amount},
		"fee_details":         []any{}, "refunds": []any{},
	}
	if p.metadata == nil {
		out["metadata"] = map[string]any{}
	}
	if !p.approved.IsZero() {
		out["date_approved"] = stamp(p.approved)
	}
	if c := p.card; c != nil {
		out["card"] = map[string]any{"id": nilIfEmpty(c.id), "first_six_digits": c.number[:6], "last_four_digits": c.number[len(c.number)-4:],
			"expiration_month": c.expMonth, "expiration_year": c.expYear, "cardholder": map[string]any{"name": c.holder}}
	}
	if p.detail == "pending_challenge" {
		out["three_ds_info"] = map[string]any{"external_resource_url": f.URL() + "/3ds/challenge/" + strconv.FormatInt(p.id, 10), "creq": randomHex(24)}
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// outcome is what the issuer does with a card, by its cardholder name.
func outcome(holder string) (status, detail string) {
	switch strings.ToUpper(holder) {
	case Declined:
		return "rejected", "cc_rejected_other_reason"
	case Pending:
		return "in_process", "pending_contingency"
	case CallForAuthorize:
		return "rejected", "cc_rejected_call_for_authorize"
	case InsufficientFunds:
		return "rejected", "cc_rejected_insufficient_amount"
	case BadSecurityCode:
		return "rejected", "cc_rejected_bad_filled_security_code"
	case BadExpiry:
		return "rejected", "cc_rejected_bad_filled_date"
	case FormError:
		return "rejected", "cc_rejected_bad_filled_other"
	}
	return "approved", "accredited"
}

// createPayment is POST /v1/payments with a card token.
func (f *Fake) createPayment(w http.ResponseWriter, r *http.Request, b map[string]any) {
	if r.Header.Get("X-Idempotency-Key") == "" {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "header X-Idempotency-Key is required")
		return
	}
	if f.replay(w, r) {
		return
	}
	var fault Fault
	if len(f.faults) > 0 {
		fault, f.faults = f.faults[0], f.faults[1:]
	}
	if fault == ServerError {
		writeJSON(w, http.StatusInternalServerError, errorBody(http.StatusInternalServerError, "internal_server_error", "internal error"))
		return
	}
	amount, ok := num(b, "transaction_amount")
	if !ok || amount <= 0 {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "transaction_amount must be a positive number", "4037")
		return
	}
	if inst, ok := num(b, "installments"); !ok || inst < 1 || inst != math.Trunc(inst) {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "installments must be a positive integer", "3011")
		return
	}
	tokID, _ := str(b, "token")
	t, ok := f.tokens[tokID]
	if !ok || t.expired(f.now()) {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid card token", "2006")
		return
	}
	if t.used {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "card token already used", "3003")
		return
	}
	method, _ := str(b, "payment_method_id")
	if method != t.card.method {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "payment_method_id does not match the card", "4050")
		return
	}
	payer := obj(b, "payer")
	payerType, _ := str(payer, "type")
	payerID, _ := str(payer, "id")
	if t.card.id != "" {
		// A saved card pays for its own customer only.
		if payerType != "customer" || payerID != t.card.customer {
			f.refuse(w, r, http.StatusBadRequest, "bad_request", "payer.id must be the card's customer, with payer.type customer", "2032")
			return
		}
		if !t.cvv && f.opts.NoAutomaticPayments {
			f.refuse(w, r, http.StatusBadRequest, "bad_request", "security_code_id can't be null", "3031")
			return
		}
	} else if email, _ := str(payer, "email"); email == "" && payerType != "customer" {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "payer.email is required", "4020")
		return
	}
	if m, ok := b["metadata"]; ok {
		if _, isObj := m.(map[string]any); !isObj {
			f.refuse(w, r, http.StatusBadRequest, "bad_request", "metadata must be an object")
			return
		}
	}
	if mode, ok := str(b, "three_d_secure_mode"); ok && !slices.Contains([]string{"not_supported", "optional", "mandatory"}, mode) {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid three_d_secure_mode")
		return
	}
	status, detail := outcome(t.card.holder)
	switch fault {
	case Decline:
		status, detail = "rejected", "cc_rejected_other_reason"
	case Challenge:
		if mode, _ := str(b, "three_d_secure_mode"); mode == "optional" || mode == "mandatory" {
			status, detail = "pending", "pending_challenge"
		} else {
			status, detail = "rejected", "cc_rejected_3ds_mandatory"
		}
	case TimeoutAfterCollect:
		status, detail = "approved", "accredited"
	}
	t.used = true
	p := f.newPayment(b, status, detail)
	p.methodID, p.paymentType, p.card, p.payerType, p.payerID = method, "credit_card", t.card, payerType, payerID
	p.key = r.Header.Get("X-Idempotency-Key")
	body := writeJSONTo(f.paymentJSON(p))
	f.save(r, http.StatusCreated, body)
	if fault == TimeoutAfterCollect {
		f.cut[r.URL.Path+"\x00"+p.key] = true
		hangUp(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

// newPayment records a payment from a creation body (or a preference's).
func (f *Fake) newPayment(b map[string]any, status, detail string) *payment {
	now := f.now()
	p := &payment{id: 20000000000 + f.next(), status: status, detail: detail, created: now, updated: now, currency: "ARS"}
	p.amount, _ = num(b, "transaction_amount")
	p.description, _ = str(b, "description")
	p.externalRef, _ = str(b, "external_reference")
	p.notifyURL, _ = str(b, "notification_url")
	if m, ok := b["metadata"].(map[string]any); ok {
		p.metadata = m
	}
	if status == "approved" {
		p.approved = now
	}
	f.payments = append(f.payments, p)
	return p
}

func (f *Fake) paymentByNumber(id string) *payment {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil
	}
	for _, p := range f.payments {
		if p.id == n {
			return p
		}
	}
	return nil
}

// paymentByID is GET /v1/payments/{id}, and PUT with {status: cancelled}, which cancels a
// payment that has not collected.
func (f *Fake) paymentByID(w http.ResponseWriter, r *http.Request, id string, b map[string]any) {
	p := f.paymentByNumber(id)
	if p == nil {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "not_found", "Payment not found", "2000"))
		return
	}
	if r.Method == http.MethodPut {
		st, _ := str(b, "status")
		if st != "cancelled" {
			f.refuse(w, r, http.StatusBadRequest, "bad_request", "only status cancelled is supported here")
			return
		}
		if p.status != "pending" && p.status != "in_process" {
			writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "bad_request", "Invalid payment status", "2008"))
			return
		}
		p.status, p.detail, p.updated = "cancelled", "by_collector", f.now()
	}
	writeJSON(w, http.StatusOK, f.paymentJSON(p))
}

// searchPayments is GET /v1/payments/search, by external_reference (newest first with
// sort=date_created&criteria=desc).
func (f *Fake) searchPayments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var res []*payment
	for _, p := range f.payments {
		if ref := q.Get("external_reference"); ref == "" || p.externalRef == ref {
			res = append(res, p)
		}
	}
	if q.Get("criteria") == "desc" {
		slices.Reverse(res)
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	offset, _ := strconv.Atoi(q.Get("offset"))
	if limit <= 0 || limit > 1000 {
		limit = 30
	}
	total := len(res)
	res = res[min(offset, len(res)):]
	res = res[:min(limit, len(res))]
	out := []any{}
	for _, p := range res {
		out = append(out, f.paymentJSON(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"paging": map[string]any{"total": total, "limit": limit, "offset": offset}, "results": out})
}

// PaymentsFor lists the ids of the payments whose metadata names the attempt key, oldest
// first.
func (f *Fake) PaymentsFor(metaKey, value string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.payments {
		if v, _ := p.metadata[metaKey].(string); v == value {
			out = append(out, strconv.FormatInt(p.id, 10))
		}
	}
	return out
}

// PaymentStatus is a payment's status and status_detail.
func (f *Fake) PaymentStatus(id string) (status, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.paymentByNumber(id); p != nil {
		return p.status, p.detail
	}
	return "", ""
}

type pref struct {
	id, externalRef, purpose, notifyURL string
	title, currency                     string
	unitPrice                           float64
	metadata                            map[string]any
	backURLs                            map[string]any
	autoReturn                          string
	created                             time.Time
}

func (f *Fake) prefJSON(p *pref) map[string]any {
	init := f.URL() + "/checkout/v1/redirect?pref_id=" + url.QueryEscape(p.id)
	back := p.backURLs
	if back == nil {
		back = map[string]any{"success": "", "pending": "", "failure": ""}
	}
	return map[string]any{
		"id": p.id, "collector_id": f.opts.UserID, "client_id": "8123456789012345", "site_id": "MLA",
		"items":              []any{map[string]any{"id": p.externalRef, "title": p.title, "quantity": 1, "unit_price": p.unitPrice, "currency_id": p.currency, "description": ""}},
		"external_reference": p.externalRef, "metadata": p.metadata, "purpose": p.purpose, "back_urls": back,
		"auto_return": p.autoReturn, "notification_url": p.notifyURL, "operation_type": "regular_payment",
		"init_point": init, "sandbox_init_point": init + "&sandbox=1", "date_created": stamp(p.created),
		"payment_methods": map[string]any{"excluded_payment_methods": []any{}, "excluded_payment_types": []any{}, "installments": nil},
	}
}

// validBackURLs checks back_urls and auto_return as Checkout Pro documents them: absolute
// URLs, and a success URL whenever auto_return is set.
func (f *Fake) validBackURLs(w http.ResponseWriter, r *http.Request, b map[string]any) bool {
	back := obj(b, "back_urls")
	for _, k := range []string{"success", "pending", "failure"} {
		if v, ok := str(back, k); ok {
			if u, err := url.Parse(v); err != nil || !u.IsAbs() {
				f.refuse(w, r, http.StatusBadRequest, "invalid_back_urls", "back_urls."+k+" must be an absolute URL")
				return false
			}
		}
	}
	if ar, _ := str(b, "auto_return"); ar != "" {
		if s, _ := str(back, "success"); s == "" || (ar != "approved" && ar != "all") {
			f.refuse(w, r, http.StatusBadRequest, "invalid_auto_return", "auto_return invalid. back_url.success must be defined")
			return false
		}
	}
	return true
}

// createPreference is POST /checkout/preferences (Checkout Pro).
func (f *Fake) createPreference(w http.ResponseWriter, r *http.Request, b map[string]any) {
	if f.replay(w, r) {
		return
	}
	items, _ := b["items"].([]any)
	if len(items) == 0 {
		f.refuse(w, r, http.StatusBadRequest, "invalid_items", "items needed")
		return
	}
	it, _ := items[0].(map[string]any)
	title, _ := str(it, "title")
	qty, _ := num(it, "quantity")
	price, _ := num(it, "unit_price")
	cur, _ := str(it, "currency_id")
	if title == "" || qty < 1 || price <= 0 || cur == "" {
		f.refuse(w, r, http.StatusBadRequest, "invalid_items", "items need title, quantity, unit_price and currency_id")
		return
	}
	if purpose, ok := str(b, "purpose"); ok && purpose != "wallet_purchase" && purpose != "onboarding_credits" {
		f.refuse(w, r, http.StatusBadRequest, "invalid_purpose", "invalid purpose")
		return
	}
	if !f.validBackURLs(w, r, b) {
		return
	}
	p := &pref{id: fmt.Sprintf("%d-%s-%s-%s-%s-%s", f.opts.UserID, randomHex(4), randomHex(2), randomHex(2), randomHex(2), randomHex(6)),
		title: title, unitPrice: price, currency: cur, created: f.now()}
	p.externalRef, _ = str(b, "external_reference")
	p.purpose, _ = str(b, "purpose")
	p.notifyURL, _ = str(b, "notification_url")
	p.autoReturn, _ = str(b, "auto_return")
	p.metadata, _ = b["metadata"].(map[string]any)
	if p.metadata == nil {
		p.metadata = map[string]any{}
	}
	p.backURLs = obj(b, "back_urls")
	f.prefs[p.id] = p
	f.answer(w, r, http.StatusCreated, f.prefJSON(p))
}

// preferenceByID is GET and PUT /checkout/preferences/{id}; PUT changes the fields it sends.
func (f *Fake) preferenceByID(w http.ResponseWriter, r *http.Request, id string, b map[string]any) {
	p, ok := f.prefs[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "not_found", "preference not found"))
		return
	}
	if r.Method == http.MethodPut {
		if !f.validBackURLs(w, r, b) {
			return
		}
		if back := obj(b, "back_urls"); back != nil {
			p.backURLs = back
		}
		if ar, ok := str(b, "auto_return"); ok {
			p.autoReturn = ar
		}
	}
	writeJSON(w, http.StatusOK, f.prefJSON(p))
}

// checkoutPage is the Checkout Pro page behind init_point. The customer is played by the
// query parameter pay: "account_money" or "card" pays (approved) and redirects to the back
// URL as Mercado Pago does; "reject" is a declined card; without it, the page is shown.
func (f *Fake) checkoutPage(w http.ResponseWriter, r *http.Request) {
	p, ok := f.prefs[r.URL.Query().Get("pref_id")]
	if !ok {
		http.Error(w, "preference not found", http.StatusNotFound)
		return
	}
	how := r.URL.Query().Get("pay")
	if how == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Mercado Pago (fake)</title><h1>Pagá %s</h1>", p.title)
		return
	}
	if p.purpose == "wallet_purchase" && how != "account_money" {
		http.Error(w, "this checkout takes Mercado Pago account money only", http.StatusBadRequest)
		return
	}
	status, detail, ptype, method := "approved", "accredited", "credit_card", "master"
	switch how {
	case "account_money":
		ptype, method = "account_money", "account_money"
	case "reject":
		status, detail = "rejected", "cc_rejected_other_reason"
	}
	pay := f.newPayment(map[string]any{"transaction_amount": p.unitPrice, "description": p.title,
		"external_reference": p.externalRef, "notification_url": p.notifyURL, "metadata": p.metadata}, status, detail)
	pay.currency, pay.paymentType, pay.methodID, pay.payerType = p.currency, ptype, method, "guest"
	back, _ := str(p.backURLs, map[bool]string{true: "success", false: "failure"}[status == "approved"])
	if back == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Mercado Pago (fake)</title><p>Listo.</p>")
		return
	}
	u, _ := url.Parse(back)
	q := u.Query()
	id := strconv.FormatInt(pay.id, 10)
	for k, v := range map[string]string{"collection_id": id, "collection_status": status, "payment_id": id, "status": status,
		"external_reference": p.externalRef, "payment_type": ptype, "merchant_order_id": strconv.FormatInt(f.next(), 10),
		"preference_id": p.id, "site_id": "MLA", "processing_mode": "aggregator", "merchant_account_id": "null"} {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// Pay plays the customer on a Checkout Pro page (an init_point): how is "card",
// "account_money" or "reject". It returns where Mercado Pago sends the customer back to.
func (f *Fake) Pay(initPoint, how string) (string, error) {
	u, err := url.Parse(initPoint)
	if err != nil || !strings.HasPrefix(initPoint, f.URL()+"/checkout/v1/redirect") {
		return "", fmt.Errorf("mpfake: %q is not a checkout page of this fake", initPoint)
	}
	q := u.Query()
	q.Set("pay", how)
	u.RawQuery = q.Encode()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u.String())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return "", fmt.Errorf("mpfake: checkout answered HTTP %d", resp.StatusCode)
	}
	return resp.Header.Get("Location"), nil
}

type order struct {
	id, paymentID, status, detail string
	amount, currency              string
	externalRef, pos, qrData      string
	notifyURL, description        string
	created, updated              time.Time
}

func (f *Fake) orderJSON(o *order) map[string]any {
	return map[string]any{
		"id": o.id, "type": "qr", "processing_mode": "automatic", "external_reference": o.externalRef,
		"description": o.description, "total_amount": o.amount, "country_code": "AR", "user_id": strconv.FormatInt(f.opts.UserID, 10),
		"status": o.status, "status_detail": o.detail, "created_date": stamp(o.created), "last_updated_date": stamp(o.updated),
		"config":        map[string]any{"qr": map[string]any{"external_pos_id": o.pos, "mode": "dynamic"}},
		"transactions":  map[string]any{"payments": []any{map[string]any{"id": o.paymentID, "amount": o.amount, "status": o.status, "status_detail": o.detail}}},
		"type_response": map[string]any{"qr_data": o.qrData},
	}
}

// decimal checks the Orders API's amounts: decimal strings with two decimals.
func decimal(s string) bool {
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 || whole == "" {
		return false
	}
	_, e1 := strconv.ParseUint(whole, 10, 64)
	_, e2 := strconv.ParseUint(frac, 10, 64)
	return e1 == nil && e2 == nil
}

// createOrder is POST /v1/orders for a dynamic QR (type qr, config.qr.mode dynamic).
func (f *Fake) createOrder(w http.ResponseWriter, r *http.Request, b map[string]any) {
	ordersError := func(status int, code, msg string) {
		f.violations = append(f.violations, "POST /v1/orders: "+msg)
		writeJSON(w, status, map[string]any{"errors": []any{map[string]any{"code": code, "message": msg}}})
	}
	if r.Header.Get("X-Idempotency-Key") == "" {
		ordersError(http.StatusBadRequest, "empty_required_header", "The X-Idempotency-Key header is required")
		return
	}
	if f.replay(w, r) {
		return
	}
	typ, _ := str(b, "type")
	total, _ := str(b, "total_amount")
	ext, _ := str(b, "external_reference")
	qr := obj(obj(b, "config"), "qr")
	pos, _ := str(qr, "external_pos_id")
	mode, _ := str(qr, "mode")
	pays, _ := obj(b, "transactions")["payments"].([]any)
	var payAmount string
	if len(pays) == 1 {
		payAmount, _ = str(pays[0].(map[string]any), "amount")
	}
	switch {
	case typ != "qr":
		ordersError(http.StatusBadRequest, "property_value", "type must be qr")
	case !decimal(total):
		ordersError(http.StatusBadRequest, "property_type", "total_amount must be a decimal string")
	case ext == "":
		ordersError(http.StatusBadRequest, "property_value", "external_reference is required")
	case !slices.Contains(f.opts.POS, pos):
		ordersError(http.StatusBadRequest, "property_value", "config.qr.external_pos_id names no point of sale")
	case mode != "dynamic" && mode != "static" && mode != "hybrid":
		ordersError(http.StatusBadRequest, "property_value", "config.qr.mode must be static, dynamic or hybrid")
	case payAmount != total:
		ordersError(http.StatusBadRequest, "property_value", "transactions.payments needs one payment of total_amount")
	default:
		now := f.now()
		o := &order{id: "ORD01" + strings.ToUpper(randomHex(12)), paymentID: "PAY01" + strings.ToUpper(randomHex(12)),
			status: "created", detail: "created", amount: total, externalRef: ext, pos: pos, created: now, updated: now}
		o.description, _ = str(b, "description")
		o.notifyURL, _ = str(b, "notification_url")
		// An EMVCo payload as Mercado Pago's: merchant account info, amount, country, CRC.
		o.qrData = fmt.Sprintf("00020101021243650016COM.MERCADOLIBRE0201306366%s5204000053030325406%s5802AR5909PORTERO  6004CABA62070503***6304%04X",
			strings.ToLower(o.id[5:]), total, f.next()%0xFFFF)
		f.orders[o.id] = o
		f.answer(w, r, http.StatusCreated, f.orderJSON(o))
	}
}

func (f *Fake) getOrder(w http.ResponseWriter, r *http.Request, id string) {
	o, ok := f.orders[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []any{map[string]any{"code": "order_not_found", "message": "order not found"}}})
		return
	}
	writeJSON(w, http.StatusOK, f.orderJSON(o))
}

// OrderFor is the QR order whose qr_data is data ("" when none).
func (f *Fake) OrderFor(qrData string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, o := range f.orders {
		if o.qrData == qrData {
			return id
		}
	}
	return ""
}

// ScanAndPay plays the customer scanning a dynamic QR with their wallet and paying it: the
// order is processed and a payment recorded.
func (f *Fake) ScanAndPay(orderID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orders[orderID]
	if !ok || o.status != "created" {
		return fmt.Errorf("mpfake: order %s cannot be paid", orderID)
	}
	amount, _ := strconv.ParseFloat(o.amount, 64)
	o.status, o.detail, o.updated = "processed", "accredited", f.now()
	p := f.newPayment(map[string]any{"transaction_amount": amount, "external_reference": o.externalRef, "description": o.description}, "approved", "accredited")
	p.paymentType, p.methodID, p.payerType = "account_money", "account_money", "guest"
	return nil
}

// ExpireOrder lets a QR order's time run out unpaid.
func (f *Fake) ExpireOrder(orderID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := f.orders[orderID]; ok && o.status == "created" {
		o.status, o.detail, o.updated = "expired", "expired", f.now()
	}
}

func writeJSONTo(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
