package api

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
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
	if !p.Spec.PaymentMethods.Allows(billingv1alpha1.PaymentMethodType(in.Type)) {
		return methodTypeNotAllowed(p.Spec.PaymentMethods.Effective())
	}
	// The merchant's adds count against the same cap as the customer's: the cap bounds what a
	// customer keeps, whoever added it.
	in.Limit = p.Spec.PaymentMethods.Max()
	m, err := a.store.AddPaymentMethod(r.Context(), id, in)
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

// toLedger checks the request has the details its type needs and nothing another type needs,
// so a card sent as {"type": "cvu", "card": {...}} is refused instead of silently dropped.
func (req addPaymentMethodRequest) toLedger() (ledger.NewPaymentMethod, *apiError) {
	t := payments.MethodType(req.Type)
	if req.Type == "" {
		return ledger.NewPaymentMethod{}, errRequired("type")
	}
	if !t.Valid() {
		return ledger.NewPaymentMethod{}, newError(http.StatusBadRequest, payments.CodeUnsupportedMethod, "type",
			"The type must be one of card, direct_debit, cvu, bank_transfer, qr or wallet.",
			"El tipo debe ser card, direct_debit, cvu, bank_transfer, qr o wallet.")
	}
	need := map[payments.MethodType]string{
		payments.MethodCard: "card", payments.MethodDirectDebit: "account", payments.MethodCVU: "account",
		payments.MethodWallet: "wallet",
	}[t]
	present := map[string]bool{"card": req.Card != nil, "account": req.Account != "", "wallet": req.Wallet != ""}
	for _, f := range []string{"card", "account", "wallet"} {
		switch {
		case f == need && !present[f]:
			return ledger.NewPaymentMethod{}, errRequired(f)
		case f != need && present[f]:
			return ledger.NewPaymentMethod{}, errInvalidField(f,
				"The field "+f+" does not apply to payment methods of type "+req.Type+".",
				"El campo "+f+" no corresponde a medios de pago de tipo "+req.Type+".")
		}
	}
	in := ledger.NewPaymentMethod{Type: t, Account: req.Account, Wallet: req.Wallet}
	if req.Card != nil {
		in.Card = &payments.CardDetails{Number: req.Card.Number, ExpMonth: req.Card.ExpMonth,
			ExpYear: req.Card.ExpYear, CVC: req.Card.CVC, HolderName: req.Card.HolderName}
	}
	return in, nil
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
