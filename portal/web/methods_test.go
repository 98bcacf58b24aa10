package web

import (
	"bytes"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// cardExpYear is an expiry year a few years ahead of the fixture's clock, which starts at the
// real time: a year written out would make the cards expire, and the tests fail, once it passed.
func cardExpYear() int { return time.Now().Year() + 4 }

func cardForm(number, cvc string) url.Values {
	return url.Values{"type": {"card"}, "number": {number}, "exp_month": {"12"}, "exp_year": {strconv.Itoa(cardExpYear())}, "cvc": {cvc}, "holder": {"Jane Doe"}}
}

// The refusals a test tells apart by their text: a form without the session's token, and a
// section the portal switched off (checked before the token).
const (
	csrfRefused    = "El formulario venció o no vino de este portal."
	sectionRefused = "Esta sección no está habilitada en este portal."
)

// wantRefused fails unless r is a 403 that says why.
func wantRefused(t *testing.T, r *response, why string) {
	t.Helper()
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, why)
}

// okPage is r after checking it is a page that rendered (200): an error page or a redirect lacks
// whatever a negative check looks for, and would pass it.
func okPage(t *testing.T, r *response) *response {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	return r
}

// The CVC the card tests type where the leak search looks for it. A three-digit string occurs by
// chance inside tokens, ids and binary data, so it is searched as a standalone number.
const leakCVC = "989"

var leakCVCPattern = regexp.MustCompile(`(^|[^0-9A-Za-z_.\-])` + leakCVC + `($|[^0-9A-Za-z_.\-])`)

func (f *fixture) methods(c ledger.Customer) []ledger.PaymentMethod {
	f.t.Helper()
	ms, err := f.ledger.ListPaymentMethods(f.ctx, c.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return ms
}

func TestAddPaymentMethods(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)

	r := b.get("/methods")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "No tenés medios de pago", `href="/methods/new?type=card"`, `href="/methods/new?type=direct_debit"`, `href="/methods/new?type=qr"`)

	t.Run("card", func(t *testing.T) {
		b.get("/methods/new?type=card")
		wantRedirect(t, b.submit("/methods", cardForm("4242 4242 4242 4242", leakCVC)), "/methods")
		r := b.get("/methods")
		wantBody(t, r, "Visa •••• 4242", "Preferido", "Agregamos el medio de pago")
		// The flash is shown once.
		wantNoBody(t, okPage(t, b.get("/methods")), "Agregamos el medio de pago")
	})

	t.Run("card with errors", func(t *testing.T) {
		b.get("/methods/new?type=card")
		form := cardForm("4242 4242 4242 4241", "12")
		form.Set("exp_month", "13")
		r := b.submit("/methods", form)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantFieldError(t, r, "number")
		wantFieldError(t, r, "exp_month")
		wantFieldError(t, r, "cvc")
		wantBody(t, r, "El número de tarjeta no es válido", `value="Jane Doe"`)
		// What was typed for the number and the security code never comes back.
		wantNoBody(t, r, "4242 4242 4242 4241", `value="12"`)
		// A card the processor refuses when saving: its error lands on its field.
		b.get("/methods/new?type=card")
		r = b.submit("/methods", cardForm("4000000000000127", leakCVC))
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantBody(t, r, "El código de seguridad es incorrecto")
		if n := len(f.methods(c)); n != 1 {
			t.Fatalf("%d methods after refused cards", n)
		}
	})

	t.Run("CBU, CVU, transfer, QR and wallet", func(t *testing.T) {
		b.get("/methods/new?type=direct_debit")
		r := b.submit("/methods", url.Values{"type": {"direct_debit"}, "account": {"0110599552000000123457"}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantFieldError(t, r, "account")
		wantBody(t, r, "dígitos verificadores del CBU")
		r = b.submit("/methods", url.Values{"type": {"direct_debit"}, "account": {goodCVU}})
		wantFieldError(t, r, "account")
		wantBody(t, r, "es un CVU")
		wantRedirect(t, b.submit("/methods", url.Values{"type": {"direct_debit"}, "account": {"0110 5995 5200 0000 1234 56"}}), "/methods")
		b.get("/methods/new?type=cvu")
		wantRedirect(t, b.submit("/methods", url.Values{"type": {"cvu"}, "account": {goodCVU}}), "/methods")
		for _, typ := range []string{"bank_transfer", "qr"} {
			r := b.get("/methods/new?type=" + typ)
			wantBody(t, r, "queda pendiente")
			wantRedirect(t, b.submit("/methods", url.Values{"type": {typ}}), "/methods")
		}
		b.get("/methods/new?type=wallet")
		r = b.submit("/methods", url.Values{"type": {"wallet"}, "wallet": {"bitcoin"}})
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantBody(t, r, "Elegí tu billetera")
		wantRedirect(t, b.submit("/methods", url.Values{"type": {"wallet"}, "wallet": {"mercadopago"}}), "/methods")
		r = b.get("/methods")
		wantBody(t, r, "CBU •••• 3456", "CVU •••• 3456", "Transferencia bancaria", "Pago con QR", "Mercado Pago")
		if n := len(f.methods(c)); n != 6 {
			t.Fatalf("%d methods, want 6", n)
		}
	})

	t.Run("missing CSRF token", func(t *testing.T) {
		b.get("/methods/new?type=card") // a page with a valid token, which the forged forms do not carry
		wantRefused(t, b.forge("/methods", cardForm("5555555555554444", leakCVC)), csrfRefused)
		wrong := cardForm("5555555555554444", leakCVC)
		wrong.Set("csrf", "x")
		wantRefused(t, b.do(http.MethodPost, "/methods", wrong, nil), csrfRefused)
		if n := len(f.methods(c)); n != 6 {
			t.Fatalf("a forged form added a method: %d", n)
		}
	})

	// No card number (as typed, with spaces, or all but its last four digits) is in the logs or
	// in the database files, its WAL included: the processor tokenized the cards.
	var needles []string
	for _, n := range []string{"4242424242424242", "4242424242424241", "4000000000000127", "5555555555554444"} {
		needles = append(needles, n, n[:12], n[:4]+" "+n[4:8]+" "+n[8:12]+" "+n[12:])
	}
	haystacks := map[string][]byte{"logs": []byte(f.logs.String())}
	files, err := os.ReadDir(f.dbDir)
	if err != nil {
		t.Fatalf("read the database directory: %v", err)
	}
	var db []byte
	for _, fi := range files {
		b, err := os.ReadFile(filepath.Join(f.dbDir, fi.Name()))
		if err != nil {
			t.Fatal(err)
		}
		haystacks[fi.Name()] = b
		db = append(db, b...)
	}
	rows := dumpSQLite(t, filepath.Join(f.dbDir, "ledger.db"))
	// The search proves something only if it reads what the portal wrote.
	for what, hay := range map[string][]byte{"the database files": db, "the rows": []byte(rows)} {
		if !bytes.Contains(hay, []byte(c.Email)) || !bytes.Contains(hay, []byte("0110599552000000123456")) {
			t.Fatalf("%s lack the customer's data; the search would prove nothing", what)
		}
	}
	if !strings.Contains(f.logs.String(), "payment method added") {
		t.Fatal("the captured logs lack the portal's own lines; the search would prove nothing")
	}
	for name, hay := range haystacks {
		for _, n := range needles {
			if i := bytes.Index(hay, []byte(n)); i >= 0 {
				t.Errorf("%s holds the card number %q: …%q…", name, n, hay[max(0, i-40):min(len(hay), i+40)])
			}
		}
	}
	// Nor the CVC, searched in the logs and in every row rather than in the files' bytes, where
	// record framing around a hex token starting or ending in its digits would look like it.
	if !leakCVCPattern.MatchString("cvc="+leakCVC+"\n") || leakCVCPattern.MatchString("fp="+leakCVC+"ab tok_a"+leakCVC+" d=1."+leakCVC+"ms") {
		t.Fatal("leakCVCPattern is wrong")
	}
	for name, hay := range map[string]string{"logs": f.logs.String(), "rows": rows} {
		if loc := leakCVCPattern.FindStringIndex(hay); loc != nil {
			t.Errorf("the %s hold the CVC: …%s…", name, hay[max(0, loc[0]-60):min(len(hay), loc[1]+60)])
		}
	}
}

// dumpSQLite renders every row of every table of the SQLite database at path as
// "table.column=value" lines, read through SQLite (so the WAL's pages count).
func dumpSQLite(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var buf strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(&buf, "%s.%s=%v\n", table, cols[i], v)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return buf.String()
}

func TestMethodTypesThePortalDoesNotAllow(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.PaymentMethods = &billingv1alpha1.PaymentMethods{Allowed: []billingv1alpha1.PaymentMethodType{"bank_transfer", "direct_debit"}}
	}))
	c := f.customer("jane@example.com", "Jane")
	card := f.addMethod(c, cardInput("4242424242424242")) // added elsewhere, e.g. another portal
	transfer := f.addMethod(c, flowtest.Method{Type: payments.MethodBankTransfer})
	b := f.browser()
	b.signIn(c)

	r := b.get("/methods")
	wantBody(t, r, `href="/methods/new?type=bank_transfer"`, `href="/methods/new?type=direct_debit"`, "no acepta este tipo")
	wantNoBody(t, r, `href="/methods/new?type=card"`, `href="/methods/new?type=qr"`)
	wantStatus(t, b.get("/methods/new?type=card"), http.StatusForbidden)
	wantStatus(t, b.get("/methods/new?type=bitcoin"), http.StatusNotFound)
	b.get("/methods")
	r = b.submit("/methods", cardForm("5555555555554444", "123"))
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, "no acepta ese medio de pago")
	if n := len(f.methods(c)); n != 2 {
		t.Fatalf("a disallowed type was added: %d methods", n)
	}
	// The card is preferred (first); moving the transfer up is fine, moving the card back to the
	// top is not: the preferred method is what gets charged.
	b.get("/methods")
	wantRedirect(t, b.submit("/methods/"+transfer.ID+"/move", url.Values{"to": {"top"}}), "/methods")
	b.get("/methods")
	wantStatus(t, b.submit("/methods/"+card.ID+"/move", url.Values{"to": {"up"}}), http.StatusUnprocessableEntity)
	if ms := f.methods(c); ms[0].ID != transfer.ID {
		t.Fatalf("order = %s, %s", ms[0].ID, ms[1].ID)
	}

	// Removing the preferred method does not leave the card first either: the first method this
	// portal accepts moves up, and the confirmation page says which one.
	debit := f.addMethod(c, flowtest.Method{Type: payments.MethodDirectDebit, Account: goodCBU})
	r = b.get("/methods/" + transfer.ID + "/remove")
	wantBody(t, r, "si lo quitás, CBU •••• 3456 pasa a ser el preferido")
	wantRedirect(t, b.submit("/methods/"+transfer.ID+"/remove", nil), "/methods")
	if ms := f.methods(c); len(ms) != 2 || ms[0].ID != debit.ID || ms[1].ID != card.ID {
		t.Fatalf("after removing the preferred: %+v", ms)
	}
	// With no accepted method left, the order stays as it is.
	r = b.get("/methods/" + debit.ID + "/remove")
	wantBody(t, r, "si lo quitás, Visa •••• 4242 pasa a ser el preferido")
	wantRedirect(t, b.submit("/methods/"+debit.ID+"/remove", nil), "/methods")
	if ms := f.methods(c); len(ms) != 1 || ms[0].ID != card.ID {
		t.Fatalf("after removing the last accepted method: %+v", ms)
	}
}

func TestReorderAndRemoveMethods(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	visa := f.addMethod(c, cardInput("4242424242424242"))
	master := f.addMethod(c, cardInput("5555555555554444"))
	cbu := f.addMethod(c, flowtest.Method{Type: payments.MethodDirectDebit, Account: goodCBU})
	stranger := f.customer("mallory@example.com", "Mallory")
	theirs := f.addMethod(stranger, cardInput("2223003122003222"))
	b := f.browser()
	b.signIn(c)
	order := func() string {
		var ids []string
		for _, m := range f.methods(c) {
			ids = append(ids, m.ID)
		}
		return strings.Join(ids, ",")
	}

	b.get("/methods")
	wantRedirect(t, b.submit("/methods/"+cbu.ID+"/move", url.Values{"to": {"top"}}), "/methods")
	if got, want := order(), cbu.ID+","+visa.ID+","+master.ID; got != want {
		t.Fatalf("after make preferred: %s", got)
	}
	r := b.get("/methods")
	wantBody(t, r, "Cambiamos tu medio de pago preferido")
	if strings.Index(r.Body, "CBU •••• 3456") > strings.Index(r.Body, "Visa •••• 4242") {
		t.Fatal("the preferred method is not listed first")
	}
	wantRedirect(t, b.submit("/methods/"+master.ID+"/move", url.Values{"to": {"up"}}), "/methods")
	wantRedirect(t, b.submit("/methods/"+cbu.ID+"/move", url.Values{"to": {"down"}}), "/methods")
	if got, want := order(), master.ID+","+cbu.ID+","+visa.ID; got != want {
		t.Fatalf("after up/down: %s, want %s", got, want)
	}
	wantStatus(t, b.submit("/methods/"+visa.ID+"/move", url.Values{"to": {"sideways"}}), http.StatusBadRequest)
	wantRefused(t, b.forge("/methods/"+visa.ID+"/move", url.Values{"to": {"top"}}), csrfRefused)
	if got, want := order(), master.ID+","+cbu.ID+","+visa.ID; got != want {
		t.Fatalf("a forged move reordered: %s", got)
	}

	t.Run("another customer's method is not found", func(t *testing.T) {
		wantStatus(t, b.get("/methods/"+theirs.ID+"/remove"), http.StatusNotFound)
		b.get("/methods")
		wantStatus(t, b.submit("/methods/"+theirs.ID+"/remove", nil), http.StatusNotFound)
		wantStatus(t, b.submit("/methods/"+theirs.ID+"/move", url.Values{"to": {"top"}}), http.StatusNotFound)
		if len(f.methods(stranger)) != 1 {
			t.Fatal("the stranger's method was touched")
		}
	})

	t.Run("remove", func(t *testing.T) {
		r := b.get("/methods/" + master.ID + "/remove")
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, "¿Quitar Mastercard •••• 4444?", "si lo quitás, CBU •••• 3456 pasa a ser el preferido")
		wantRefused(t, b.forge("/methods/"+master.ID+"/remove", nil), csrfRefused)
		if got, want := order(), master.ID+","+cbu.ID+","+visa.ID; got != want {
			t.Fatalf("a forged remove changed the methods: %s", got)
		}
		wantRedirect(t, b.submit("/methods/"+master.ID+"/remove", nil), "/methods")
		if got, want := order(), cbu.ID+","+visa.ID; got != want {
			t.Fatalf("after remove: %s", got)
		}
	})

	t.Run("the last method of a customer with an active subscription stays", func(t *testing.T) {
		if _, _, err := f.ledger.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 100000,
			Currency: ledger.ARS, Interval: ledger.Month}); err != nil {
			t.Fatal(err)
		}
		b.get("/methods")
		wantRedirect(t, b.submit("/methods/"+visa.ID+"/remove", nil), "/methods")
		b.get("/methods/" + cbu.ID + "/remove")
		r := b.submit("/methods/"+cbu.ID+"/remove", nil)
		wantStatus(t, r, http.StatusConflict)
		wantBody(t, r, "único medio de pago")
	})
}

func TestMethodsSectionOff(t *testing.T) {
	f := newFixture(t, withSpec(func(s *billingv1alpha1.CustomerPortalSpec) {
		s.Permissions.UpdatePaymentMethod = new(bool)
	}))
	c := f.customer("jane@example.com", "Jane")
	m := f.addMethod(c, cardInput("4242424242424242"))
	sub := f.subscribe(c, "Plan Pro")
	b := f.browser()
	b.signIn(c)
	r := okPage(t, b.get("/"))
	wantNoBody(t, r, `href="/methods"`, "Medio de pago preferido")
	// Changing a subscription's method belongs to the same permission.
	r = b.get("/subscriptions/" + sub.ID)
	wantStatus(t, r, http.StatusOK)
	wantNoBody(t, r, "Cambiar el medio de pago", "/method\"")
	wantRefused(t, b.submit("/subscriptions/"+sub.ID+"/method", url.Values{"method": {m.ID}}), sectionRefused)
	if f.sub(sub.ID).PaymentMethodID != "" {
		t.Fatal("the subscription's method changed with the section off")
	}
	for _, path := range []string{"/methods", "/methods/new", "/methods/new?type=card", "/methods/" + m.ID + "/remove"} {
		wantRefused(t, b.get(path), sectionRefused)
	}
	b.get("/")
	for path, form := range map[string]url.Values{
		"/methods":                     cardForm("5555555555554444", "123"),
		"/methods/" + m.ID + "/remove": nil,
		"/methods/" + m.ID + "/move":   {"to": {"top"}},
	} {
		wantRefused(t, b.submit(path, form), sectionRefused) // a valid token does not help
		// Without a token as well it is the switched-off section that answers: the permission
		// is checked first.
		wantRefused(t, b.forge(path, form), sectionRefused)
	}
	if len(f.methods(c)) != 1 {
		t.Fatal("the switched-off section changed methods")
	}
}
