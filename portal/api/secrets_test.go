package api

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// CVCs used by this test. Three digits occur by chance in ids, tokens and durations, so they are
// searched as standalone numbers; card numbers are long enough to be plain substrings.
const (
	leakCVC     = "989"
	leakAmexCVC = "8989"
)

var cvcPattern = regexp.MustCompile(`(^|[^0-9A-Za-z_.\-])(` + leakCVC + `|` + leakAmexCVC + `)($|[^0-9A-Za-z_.\-])`)

var leakCards = []string{"4242424242424242", "5555555555554444", "378282246310005", "4000000000000002", "6042010000000006"}

// cardNeedles are each full number, as typed with spaces, and all but its last four digits.
func cardNeedles() []string {
	var out []string
	for _, n := range leakCards {
		var spaced []string
		for i := 0; i < len(n); i += 4 {
			spaced = append(spaced, n[i:min(i+4, len(n))])
		}
		out = append(out, n, n[:len(n)-4], strings.Join(spaced, " "))
	}
	return out
}

// TestCardDataNeverLoggedStoredOrReturned adds cards through the API — accepted, declined when
// charged, refused when saved, malformed — and then searches the captured logs (the API's and the
// ledger's), every response body, and the SQLite files byte for byte.
func TestCardDataNeverLoggedStoredOrReturned(t *testing.T) {
	if !cvcPattern.MatchString(`"cvc":"989"`) || cvcPattern.MatchString("duration=1.989ms pm_a989b") {
		t.Fatal("cvcPattern is wrong")
	}
	f := newFixture(t, nil)
	c := f.customer("leak@example.com")
	add := func(card map[string]any) response {
		return f.do(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods",
			body: map[string]any{"type": "card", "card": card}})
	}
	exp := cardExpYear()
	for _, n := range leakCards {
		cvc := leakCVC
		if strings.HasPrefix(n, "37") {
			cvc = leakAmexCVC
		}
		if res := add(map[string]any{"number": n, "exp_month": 11, "exp_year": exp, "cvc": cvc}); res.status != 201 {
			t.Fatalf("add %s…: %d %s", n[:4], res.status, res.body)
		}
		f.pay(c.ID, 1000) // charged to the preferred (first) card
		for _, bad := range []map[string]any{
			{"number": n, "exp_month": 11, "exp_year": exp, "cvc": cvc + "9"},               // CVC too long
			{"number": n, "exp_month": 1, "exp_year": time.Now().Year() - 1, "cvc": cvc},    // expired
			{"number": n[:len(n)-1] + "x", "exp_month": 11, "exp_year": exp, "cvc": cvc},    // not digits
			{"number": n, "exp_month": "11", "exp_year": exp, "cvc": cvc},                   // wrong type
			{"number": n, "exp_month": 11, "exp_year": exp, "cvc": cvc, "pin": cvc},         // unknown field
			{"number": n + "0", "exp_month": 11, "exp_year": exp, "cvc": cvc, "cvv": "1"},   // unknown field, bad number
			{"number": strings.Repeat(n, 10), "exp_month": 11, "exp_year": exp, "cvc": cvc}, // too long
		} {
			if res := add(bad); res.status < 400 {
				t.Fatalf("bad card accepted: %d", res.status)
			}
		}
		// Malformed JSON around a card number.
		f.do(req{method: "POST", path: "/api/v1/customers/" + c.ID + "/payment_methods",
			body: `{"type":"card","card":{"number":"` + n + `","cvc":"` + cvc + `",}}`})
	}
	// A charge declined by the processor.
	d := f.customer("leak-declined@example.com")
	f.addCard(d.ID, "4000 0000 0000 0002", leakCVC)
	if p := f.pay(d.ID, 1000); p.FailureCode != "card_declined" {
		t.Fatalf("declining card charged: %+v", p)
	}
	var methods listResponse[paymentMethodJSON]
	f.expect(req{method: "GET", path: "/api/v1/customers/" + c.ID + "/payment_methods"}, 200, "").json(t, &methods)
	if len(methods.Data) != len(leakCards) {
		t.Fatalf("%d cards stored, want %d", len(methods.Data), len(leakCards))
	}

	haystacks := map[string]string{"logs": f.logs.String(), "responses": f.bodies.String()}
	matches, err := filepath.Glob(f.dbPath + "*") // ledger.db, -wal, -shm
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range matches {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		haystacks[filepath.Base(path)] = string(b)
	}
	// The search must have something to find: the logs name the methods, the database holds
	// the customer and the last four digits.
	if !strings.Contains(haystacks["logs"], "payment method added") || !strings.Contains(haystacks["responses"], `"last4":"4242"`) {
		t.Fatal("captured logs or responses lack expected content; the search would prove nothing")
	}
	db := haystacks["ledger.db"] + haystacks["ledger.db-wal"]
	if !strings.Contains(db, "leak@example.com") {
		t.Fatal("the database files do not hold the customer; the search would prove nothing")
	}
	for name, hay := range haystacks {
		for _, needle := range cardNeedles() {
			if i := strings.Index(hay, needle); i >= 0 {
				t.Errorf("%s contains %q: …%s…", name, needle, hay[max(0, i-60):min(len(hay), i+60)])
			}
		}
		if loc := cvcPattern.FindStringIndex(hay); loc != nil {
			t.Errorf("%s contains a CVC: …%s…", name, hay[max(0, loc[0]-60):min(len(hay), loc[1]+60)])
		}
		if strings.Contains(hay, testKey) {
			t.Errorf("%s contains the API key", name)
		}
	}
}
