package mpfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Mercado Pago's test cards for Argentina (any future expiry; security code 123, 1234 for
// American Express). The cardholder name decides what a payment with them does.
const (
	Mastercard = "5031755734530604"
	Visa       = "4509953566233704"
	Amex       = "371180303257522"
)

// Cardholder names of the test cards' outcomes.
const (
	Approved          = "APRO"
	Declined          = "OTHE"
	Pending           = "CONT"
	CallForAuthorize  = "CALL"
	InsufficientFunds = "FUND"
	BadSecurityCode   = "SECU"
	BadExpiry         = "EXPI"
	FormError         = "FORM"
)

// TestCard is what a customer types in Mercado Pago's card fields.
type TestCard struct {
	Number       string
	SecurityCode string
	ExpMonth     int
	ExpYear      int
	// Holder is the cardholder name: one of the outcome names above.
	Holder string
	// DocType and DocNumber identify the cardholder (DNI in Argentina).
	DocType, DocNumber string
}

type customer struct {
	id, email, first, last, description string
	created                             time.Time
}

type card struct {
	id, customer, fingerprint, number string
	method                            string // payment_method_id
	expMonth, expYear                 int
	holder                            string
	created                           time.Time
}

type cardToken struct {
	id      string
	card    *card // the card data (a saved card, or the typed one)
	cvv     bool  // made with the security code
	used    bool  // paid once already
	created time.Time
}

func (t *cardToken) expired(now time.Time) bool { return now.After(t.created.Add(7 * 24 * time.Hour)) }

// methodOf is Mercado Pago's payment_method_id of a card number.
func methodOf(number string) string {
	switch {
	case strings.HasPrefix(number, "4"):
		return "visa"
	case strings.HasPrefix(number, "5"), strings.HasPrefix(number, "2"):
		return "master"
	case strings.HasPrefix(number, "34"), strings.HasPrefix(number, "37"):
		return "amex"
	}
	return ""
}

func luhn(n string) bool {
	sum, double := 0, false
	for i := len(n) - 1; i >= 0; i-- {
		d := int(n[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return len(n) >= 13 && sum%10 == 0
}

func (f *Fake) customerJSON(c *customer) map[string]any {
	cards := []any{}
	for _, id := range sortedKeys(f.cards) {
		if cd := f.cards[id]; cd.customer == c.id {
			cards = append(cards, f.cardJSON(cd))
		}
	}
	return map[string]any{
		"id": c.id, "email": c.email, "first_name": c.first, "last_name": c.last, "description": c.description,
		"date_created": stamp(c.created), "date_last_updated": stamp(c.created), "date_registered": nil,
		"default_card": nil, "default_address": nil, "status": "active", "live_mode": false,
		"user_id": f.opts.UserID, "merchant_id": nil, "client_id": nil,
		"phone": map[string]any{"area_code": nil, "number": nil}, "identification": map[string]any{"type": nil, "number": nil},
		"address": map[string]any{"id": nil, "zip_code": nil, "street_name": nil, "street_number": nil},
		"cards":   cards, "addresses": []any{}, "metadata": map[string]any{},
	}
}

func (f *Fake) createCustomer(w http.ResponseWriter, r *http.Request, b map[string]any) {
	email, _ := str(b, "email")
	if _, err := mail.ParseAddress(email); email == "" || err != nil {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid email", "214")
		return
	}
	for _, c := range f.customers {
		if strings.EqualFold(c.email, email) {
			// Documented refusal: one customer per email.
			writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "bad_request", "the customer already exist", "101"))
			return
		}
	}
	c := &customer{id: fmt.Sprintf("%d-%s", f.opts.UserID, randomHex(7)), email: email, created: f.now()}
	c.first, _ = str(b, "first_name")
	c.last, _ = str(b, "last_name")
	c.description, _ = str(b, "description")
	f.customers[c.id] = c
	f.answer(w, r, http.StatusCreated, f.customerJSON(c))
}

func (f *Fake) searchCustomers(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("email")
	results := []any{}
	for _, id := range sortedKeys(f.customers) {
		if c := f.customers[id]; email == "" || strings.EqualFold(c.email, email) {
			results = append(results, f.customerJSON(c))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"paging": map[string]any{"total": len(results), "limit": 10, "offset": 0}, "results": results})
}

func (f *Fake) getCustomer(w http.ResponseWriter, r *http.Request, id string) {
	c, ok := f.customers[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "not_found", "customer not found"))
		return
	}
	writeJSON(w, http.StatusOK, f.customerJSON(c))
}

func (f *Fake) tokenJSON(t *cardToken) map[string]any {
	c := t.card
	out := map[string]any{
		"id": t.id, "public_key": f.opts.PublicKey, "first_six_digits": c.number[:6], "last_four_digits": c.number[len(c.number)-4:],
		"expiration_month": c.expMonth, "expiration_year": c.expYear, "card_number_length": len(c.number),
		"security_code_length": map[bool]int{true: 4, false: 3}[c.method == "amex"],
		"cardholder":           map[string]any{"name": c.holder, "identification": map[string]any{"type": "DNI", "number": "12345678"}},
		"status":               "active", "luhn_validation": true, "live_mode": false, "require_esc": false,
		"date_created": stamp(t.created), "date_last_updated": stamp(t.created), "date_due": stamp(t.created.Add(7 * 24 * time.Hour)),
	}
	if c.id != "" {
		out["card_id"] = c.id
	}
	return out
}

// browserToken is what Mercado Pago's JS SDK does in the customer's browser: card data in,
// token out, authenticated with the public key.
func (f *Fake) browserToken(w http.ResponseWriter, r *http.Request, b map[string]any) {
	number, _ := str(b, "card_number")
	cvv, _ := str(b, "security_code")
	month, _ := num(b, "expiration_month")
	year, _ := num(b, "expiration_year")
	holder, _ := str(obj(b, "cardholder"), "name")
	method := methodOf(number)
	switch {
	case !luhn(number) || method == "":
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid parameter card_number", "E301")
		return
	case len(cvv) != map[bool]int{true: 4, false: 3}[method == "amex"]:
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid parameter security_code", "E302")
		return
	case month < 1 || month > 12:
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid parameter expiration_month", "325")
		return
	case int(year) < f.now().Year() || (int(year) == f.now().Year() && int(month) < int(f.now().Month())):
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid parameter expiration_year", "326")
		return
	case holder == "":
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid parameter cardholder.name", "221")
		return
	}
	sum := sha256.Sum256([]byte(number))
	c := &card{number: number, method: method, expMonth: int(month), expYear: int(year), holder: strings.ToUpper(holder),
		fingerprint: hex.EncodeToString(sum[:])}
	t := &cardToken{id: randomHex(16), card: c, cvv: true, created: f.now()}
	f.tokens[t.id] = t
	writeJSON(w, http.StatusCreated, f.tokenJSON(t))
}

// savedCardToken is a token for a saved card, made by the merchant's server with the access
// token: {card_id} and, optionally, the security code the customer typed again.
func (f *Fake) savedCardToken(w http.ResponseWriter, r *http.Request, b map[string]any) {
	if f.replay(w, r) {
		return
	}
	id, _ := str(b, "card_id")
	c, ok := f.cards[id]
	if !ok {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid parameter card_id", "E216")
		return
	}
	cvv, _ := str(b, "security_code")
	t := &cardToken{id: randomHex(16), card: c, cvv: cvv != "", created: f.now()}
	f.tokens[t.id] = t
	f.answer(w, r, http.StatusCreated, f.tokenJSON(t))
}

func (f *Fake) cardJSON(c *card) map[string]any {
	name := map[string]string{"visa": "Visa", "master": "Mastercard", "amex": "American Express"}[c.method]
	return map[string]any{
		"id": c.id, "customer_id": c.customer, "user_id": strconv.FormatInt(f.opts.UserID, 10),
		"expiration_month": c.expMonth, "expiration_year": c.expYear,
		"first_six_digits": c.number[:6], "last_four_digits": c.number[len(c.number)-4:],
		"payment_method": map[string]any{"id": c.method, "name": name, "payment_type_id": "credit_card",
			"thumbnail":        "http://img.mlstatic.com/org-img/MP3/API/logos/" + c.method + ".gif",
			"secure_thumbnail": "https://www.mercadopago.com/org-img/MP3/API/logos/" + c.method + ".gif"},
		"security_code": map[string]any{"length": map[bool]int{true: 4, false: 3}[c.method == "amex"], "card_location": "back"},
		"issuer":        map[string]any{"id": 3, "name": name},
		"cardholder":    map[string]any{"name": c.holder, "identification": map[string]any{"number": "12345678", "type": "DNI"}},
		"date_created":  stamp(c.created), "date_last_updated": stamp(c.created), "live_mode": false,
		"additional_info": map[string]any{"request_public": "false", "api_client_application": "", "api_client_scope": ""},
	}
}

// saveCard saves the card of a token on a customer. A card the customer has already is
// answered as it is (200).
func (f *Fake) saveCard(w http.ResponseWriter, r *http.Request, custID string, b map[string]any) {
	if _, ok := f.customers[custID]; !ok {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "not_found", "customer not found"))
		return
	}
	tokID, _ := str(b, "token")
	t, ok := f.tokens[tokID]
	if !ok || t.expired(f.now()) {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "invalid card token", "E205")
		return
	}
	if m, ok := str(b, "payment_method_id"); ok && m != t.card.method {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "payment_method_id does not match the card", "E106")
		return
	}
	for _, id := range sortedKeys(f.cards) {
		if c := f.cards[id]; c.customer == custID && c.fingerprint == t.card.fingerprint && t.card.fingerprint != "" {
			writeJSON(w, http.StatusOK, f.cardJSON(c))
			return
		}
	}
	if t.card.id != "" {
		f.refuse(w, r, http.StatusBadRequest, "bad_request", "the token belongs to a saved card", "E205")
		return
	}
	c := *t.card
	c.id, c.customer, c.created = strconv.FormatInt(9000000000+f.next(), 10), custID, f.now()
	f.cards[c.id] = &c
	writeJSON(w, http.StatusCreated, f.cardJSON(&c))
}

func (f *Fake) listCards(w http.ResponseWriter, custID string) {
	out := []any{}
	for _, id := range sortedKeys(f.cards) {
		if c := f.cards[id]; c.customer == custID {
			out = append(out, f.cardJSON(c))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) cardByID(w http.ResponseWriter, r *http.Request, custID, cardID string) {
	c, ok := f.cards[cardID]
	if !ok || c.customer != custID {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "not_found", "card not found"))
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, f.cardJSON(c))
	case http.MethodDelete:
		delete(f.cards, cardID)
		writeJSON(w, http.StatusOK, f.cardJSON(c))
	default:
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed"))
	}
}

// CardToken plays the customer typing a card into Mercado Pago's fields on the portal's
// add-card page: the JS SDK posts it to /v1/card_tokens with the public key, and the page
// gets the token. The card never reaches the portal.
func (f *Fake) CardToken(c TestCard) (string, error) {
	if c.SecurityCode == "" {
		c.SecurityCode = map[bool]string{true: "1234", false: "123"}[methodOf(c.Number) == "amex"]
	}
	if c.Holder == "" {
		c.Holder = Approved
	}
	if c.ExpMonth == 0 {
		c.ExpMonth, c.ExpYear = 11, f.now().Year()+4
	}
	body, _ := json.Marshal(map[string]any{
		"card_number": c.Number, "security_code": c.SecurityCode, "expiration_month": c.ExpMonth, "expiration_year": c.ExpYear,
		"cardholder": map[string]any{"name": c.Holder, "identification": map[string]any{"type": "DNI", "number": "12345678"}},
	})
	resp, err := http.Post(f.URL()+"/v1/card_tokens?public_key="+f.opts.PublicKey, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.ID == "" {
		return "", fmt.Errorf("mpfake: card token: HTTP %d", resp.StatusCode)
	}
	return out.ID, nil
}

// Cards lists the ids of a customer's saved cards.
func (f *Fake) Cards(customerID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range sortedKeys(f.cards) {
		if f.cards[id].customer == customerID {
			out = append(out, id)
		}
	}
	return out
}

// CardCustomer is the customer a saved card belongs to, "" if there is no such card.
func (f *Fake) CardCustomer(cardID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.cards[cardID]; ok {
		return c.customer
	}
	return ""
}
