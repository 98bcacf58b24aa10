package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

func (a *API) createCustomer(w http.ResponseWriter, r *http.Request) *apiError {
	var req createCustomerRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	c, err := a.store.CreateCustomer(r.Context(), ledger.NewCustomer{
		Email: req.Email, Name: req.Name, Billing: req.Billing.toLedger(),
	})
	if err != nil {
		return a.storeError(r, err)
	}
	info(r).customerID = c.ID
	writeJSON(w, http.StatusCreated, toCustomer(c))
	return nil
}

func (a *API) getCustomer(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).customerID = id
	c, err := a.store.GetCustomer(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, toCustomer(c))
	return nil
}

func (a *API) updateCustomer(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).customerID = id
	var req updateCustomerRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	u := ledger.CustomerUpdate{Email: req.Email, Name: req.Name}
	if req.Billing != nil {
		b := req.Billing.toLedger()
		u.Billing = &b
	}
	c, err := a.store.UpdateCustomer(r.Context(), id, u)
	if err != nil {
		return a.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, toCustomer(c))
	return nil
}

func (a *API) listCustomers(w http.ResponseWriter, r *http.Request) *apiError {
	q, e := query(r, "email", "limit", "cursor")
	if e != nil {
		return e
	}
	limit, e := pageLimit(q)
	if e != nil {
		return e
	}
	page, err := a.store.ListCustomers(r.Context(), ledger.ListCustomersParams{
		Email: q.Get("email"), Limit: limit, Cursor: q.Get("cursor"),
	})
	if err != nil {
		return a.storeError(r, err)
	}
	out := listResponse[customerJSON]{Data: []customerJSON{}, NextCursor: page.NextCursor}
	for _, c := range page.Items {
		out.Data = append(out.Data, toCustomer(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addPaymentMethod adds a method on the customer's behalf, of a type the portal allows. Adding a
// usable method lets the customer's incomplete payments proceed, each exactly once.
func (a *API) addPaymentMethod(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).customerID = id
	var req addPaymentMethodRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	in, e := req.toLedger()
	if e != nil {
		return e
	}
	p := a.rules.Portal(r.Context())
	if p == nil {
		return errPortalUnavailable()
	}
	if !p.Spec.AcceptsPaymentMethod(billingv1alpha1.PaymentMethodType(in.Type)) {
		return methodTypeNotAllowed(p.Spec.EffectivePaymentMethods())
	}
	d, e := a.driver(r)
	if e != nil {
		return e
	}
	if in.card != nil && d.Adapter().Capabilities().HostedSetup {
		// The card's details were never read: this processor takes them on its own pages.
		return newError(http.StatusBadRequest, CodeRawCardNotAccepted, "card",
			"This portal's payment processor takes card details on its own pages only: create the card there and send its id as processor_payment_method.",
			"El procesador de pagos de este portal recibe los datos de tarjeta solo en sus propias páginas: creá la tarjeta allí y enviá su id como processor_payment_method.")
	}
	// The merchant's adds count against the same cap as the customer's: the cap bounds what a
	// customer keeps, whoever added it.
	in.Limit = p.Spec.PaymentMethods.Max()
	m, err := a.recordMethod(r.Context(), d, id, in)
	var le *ledger.Error
	if errors.As(err, &le) && le.Code == ledger.CodePaymentMethodLimit {
		// 422, not the 409 of other state conflicts: it is a rule of this portal's, like a type
		// it does not accept, and retrying will not help until a method is removed.
		return &apiError{status: http.StatusUnprocessableEntity, code: le.Code, message: le.Message}
	}
	if err != nil {
		return a.storeError(r, err)
	}
	writeJSON(w, http.StatusCreated, toPaymentMethod(m))
	return nil
}

// newMethod is a checked add-method request: a card for the processor to tokenize, a method
// created at the processor to adopt, or a method the ledger records itself.
type newMethod struct {
	ledger.NewPaymentMethod
	card            *payments.CardDetails
	processorMethod string
}

// toLedger checks the request has the details its type needs and nothing another type needs,
// so a card sent as {"type": "cvu", "card": {...}} is refused instead of silently dropped. A
// card comes as card details or as processor_payment_method, not both.
func (req addPaymentMethodRequest) toLedger() (newMethod, *apiError) {
	t := payments.MethodType(req.Type)
	if req.Type == "" {
		return newMethod{}, errRequired("type")
	}
	if !t.Valid() {
		return newMethod{}, newError(http.StatusBadRequest, payments.CodeUnsupportedMethod, "type",
			"The type must be one of card, direct_debit, cvu, bank_transfer, qr or wallet.",
			"El tipo debe ser card, direct_debit, cvu, bank_transfer, qr o wallet.")
	}
	need := map[payments.MethodType]string{
		payments.MethodCard: "card", payments.MethodDirectDebit: "account", payments.MethodCVU: "account",
		payments.MethodWallet: "wallet",
	}[t]
	present := map[string]bool{"card": req.Card != nil, "processor_payment_method": req.ProcessorPaymentMethod != "",
		"account": req.Account != "", "wallet": req.Wallet != ""}
	if need == "card" && present["processor_payment_method"] {
		need = "processor_payment_method"
	}
	for _, f := range []string{"card", "processor_payment_method", "account", "wallet"} {
		switch {
		case f == need && !present[f]:
			return newMethod{}, errRequired(f)
		case f != need && present[f]:
			return newMethod{}, errInvalidField(f,
				"The field "+f+" does not apply to payment methods of type "+req.Type+" sent this way.",
				"El campo "+f+" no corresponde a medios de pago de tipo "+req.Type+" enviados así.")
		}
	}
	in := newMethod{NewPaymentMethod: ledger.NewPaymentMethod{Type: t, Account: req.Account, Wallet: req.Wallet},
		processorMethod: req.ProcessorPaymentMethod}
	if req.Card != nil {
		in.card = &payments.CardDetails{Number: req.Card.Number, ExpMonth: req.Card.ExpMonth,
			ExpYear: req.Card.ExpYear, CVC: req.Card.CVC, HolderName: req.Card.HolderName}
	}
	return in, nil
}

// recordMethod adds a checked method: a card through the processor (tokenized, or adopted from
// the processor), anything else straight to the ledger; then the customer's incomplete payments
// proceed, each exactly once.
func (a *API) recordMethod(ctx context.Context, d *charging.Driver, customerID string, in newMethod) (ledger.PaymentMethod, error) {
	if in.card == nil && in.processorMethod == "" {
		m, err := a.store.AddPaymentMethod(ctx, customerID, in.NewPaymentMethod)
		if err == nil {
			a.settle(ctx, d, customerID)
		}
		return m, err
	}
	if _, err := a.store.GetCustomer(ctx, customerID); err != nil {
		return ledger.PaymentMethod{}, err
	}
	// At the cap nothing reaches the processor, or the API would still test cards.
	if err := a.store.CheckMethodLimit(ctx, customerID, in.Limit); err != nil {
		return ledger.PaymentMethod{}, err
	}
	capped := ledger.WithMethodLimit(ctx, in.Limit)
	var added charging.MethodAdded
	var err error
	if in.card != nil {
		added, err = d.AddCard(capped, customerID, *in.card)
		var pe *payments.Error
		if errors.As(err, &pe) && pe.Field != "" {
			// The processor's field is the card's: say so as the request spells it.
			return ledger.PaymentMethod{}, &payments.Error{Code: pe.Code, Field: "card." + pe.Field}
		}
	} else {
		added, err = d.AttachProcessorMethod(capped, customerID, in.processorMethod)
	}
	if err != nil {
		return ledger.PaymentMethod{}, err
	}
	return a.store.GetPaymentMethod(context.WithoutCancel(ctx), customerID, added.MethodID)
}

func methodTypeNotAllowed(allowed []billingv1alpha1.PaymentMethodType) *apiError {
	names := make([]string, len(allowed))
	for i, t := range allowed {
		names[i] = string(t)
	}
	list := strings.Join(names, ", ")
	return newError(http.StatusUnprocessableEntity, CodeMethodTypeNotAllowed, "type",
		"This portal does not accept payment methods of this type; it accepts: "+list+".",
		"Este portal no acepta medios de pago de este tipo; acepta: "+list+".")
}

func (a *API) listPaymentMethods(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).customerID = id
	ms, err := a.store.ListPaymentMethods(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	out := listResponse[paymentMethodJSON]{Data: []paymentMethodJSON{}}
	for _, m := range ms {
		out.Data = append(out.Data, toPaymentMethod(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).customerID = id
	subs, err := a.store.ListSubscriptions(r.Context(), id)
	if err != nil {
		return a.storeError(r, err)
	}
	out := listResponse[subscriptionJSON]{Data: []subscriptionJSON{}}
	for _, s := range subs {
		out.Data = append(out.Data, toSubscription(s))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// query returns the URL query, refusing parameters the endpoint does not know and repeated
// ones, for the same reason bodies refuse unknown fields: a typo must not widen a list.
func query(r *http.Request, known ...string) (url.Values, *apiError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newError(http.StatusBadRequest, ledger.CodeInvalidField, "",
			"The query string is malformed.", "La consulta de la URL está mal formada.")
	}
	for name, vs := range q {
		if !slices.Contains(known, name) {
			return nil, newError(http.StatusBadRequest, CodeUnknownField, name,
				"The query parameter "+name+" is not known here; check its spelling against /api/v1/openapi.json.",
				"El parámetro "+name+" no existe aquí; revisá cómo se escribe en /api/v1/openapi.json.")
		}
		if len(vs) > 1 {
			return nil, errInvalidField(name, "The query parameter "+name+" may appear only once.",
				"El parámetro "+name+" puede aparecer una sola vez.")
		}
	}
	return q, nil
}

// pageLimit parses the limit parameter; the ledger checks its range.
func pageLimit(q url.Values) (int, *apiError) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > ledger.MaxPageSize {
		return 0, errInvalidField("limit",
			"The limit must be an integer from 1 to "+strconv.Itoa(ledger.MaxPageSize)+".",
			"El límite debe ser un entero entre 1 y "+strconv.Itoa(ledger.MaxPageSize)+".")
	}
	return n, nil
}
