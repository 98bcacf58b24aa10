package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portero-dev/portero/portal/payments"
)

// CVCs used by the test. Short digit strings occur by chance inside tokens, fingerprints and
// durations, so CVCs are searched as standalone numbers (see cvcPattern); card numbers are long
// enough to be searched as plain substrings.
const (
	leakCVC     = "989"
	leakAmexCVC = "8989"
)

// cvcPattern matches a CVC that is not part of a longer word, number, token or decimal.
var cvcPattern = regexp.MustCompile(`(^|[^0-9A-Za-z_.\-])(` + leakCVC + `|` + leakAmexCVC + `)($|[^0-9A-Za-z_.\-])`)

var leakCards = []string{"4242424242424242", "5555555555554444", "378282246310005", "4000000000009995", "6042010000000006"}

// needles are the card-number strings that must appear nowhere: each full number (also as
// typed, with spaces) and everything but its last four digits.
func needles() []string {
	var out []string
	for _, n := range leakCards {
		out = append(out, n, n[:len(n)-4], spaced4(n))
	}
	return out
}

func spaced4(n string) string {
	var parts []string
	for i := 0; i < len(n); i += 4 {
		parts = append(parts, n[i:min(i+4, len(n))])
	}
	return strings.Join(parts, " ")
}

// TestCardDataNeverStoredOrLogged drives every path that sees card data (adding cards, failed
// adds, charges, declines, renewals) and then searches the database — the SQLite files
// byte-for-byte, every table's rows on both engines — and the captured logs for the numbers
// and CVCs.
func TestCardDataNeverStoredOrLogged(t *testing.T) {
	// The detector itself: it must see a stored or logged CVC and ignore digits inside tokens.
	if !cvcPattern.MatchString("payments.cvc=989\n") || !cvcPattern.MatchString(`{"cvc":"8989"}`) ||
		cvcPattern.MatchString("duration=1.989ms tok_a989b fp=0989") {
		t.Fatal("cvcPattern is wrong")
	}
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		var errTexts []string
		for _, n := range leakCards {
			cvc := leakCVC
			if payments.DetectBrand(n) == payments.BrandAmex {
				cvc = leakAmexCVC
			}
			_, err := e.store.AddPaymentMethod(e.ctx, c.ID, methodIn{Type: payments.MethodCard,
				Card: &payments.CardDetails{Number: spaced4(n), ExpMonth: 11, ExpYear: cardExpYear, CVC: cvc}})
			if err != nil {
				t.Fatal(err)
			}
			p := e.pay(t, c.ID, 1000)
			errTexts = append(errTexts, p.FailureMessage)
			if _, err := e.store.MakePreferred(e.ctx, c.ID, mustMethods(t, e, c.ID)[len(mustMethods(t, e, c.ID))-1].ID); err != nil {
				t.Fatal(err)
			}
			// Failed adds: wrong CVC length, expired, and a mistyped number.
			for _, bad := range []payments.CardDetails{
				{Number: n, ExpMonth: 11, ExpYear: cardExpYear, CVC: cvc + "9"},
				{Number: n, ExpMonth: 1, ExpYear: testStart.Year() - 1, CVC: cvc},
				{Number: n[:len(n)-1] + string('0'+(n[len(n)-1]-'0'+1)%10), ExpMonth: 11, ExpYear: cardExpYear, CVC: cvc},
			} {
				_, err := e.store.AddPaymentMethod(e.ctx, c.ID, methodIn{Type: payments.MethodCard, Card: &bad})
				if err == nil {
					t.Fatalf("bad card accepted")
				}
				errTexts = append(errTexts, err.Error(), fmt.Sprintf("%v %+v", err, err))
				var le *Error
				if errors.As(err, &le) {
					errTexts = append(errTexts, le.Message("es"), le.Message("en"))
				}
			}
		}
		if _, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 1000, Currency: ARS, Interval: Week}); err != nil {
			t.Fatal(err)
		}

		haystacks := map[string]string{
			"logs":   e.logs.String(),
			"errors": strings.Join(errTexts, "\n"),
			"rows":   dumpTables(t, e.store.Store),
		}
		if e.engine == SQLite {
			// Checkpoint so the main file holds everything, then read the WAL too.
			if _, err := e.store.read().exec(e.ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
			path := strings.TrimPrefix(e.dsn, "sqlite://")
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				haystacks[filepath.Base(f)] = string(b)
			}
			if len(haystacks["ledger.db"]) == 0 {
				t.Fatal("database file is empty; the search would prove nothing")
			}
		}
		if !strings.Contains(haystacks["logs"], "payment method added") || !strings.Contains(haystacks["rows"], "4242") {
			t.Fatal("captured logs or rows are missing expected content; the search would prove nothing")
		}
		for name, hay := range haystacks {
			for _, needle := range needles() {
				if i := strings.Index(hay, needle); i >= 0 {
					t.Errorf("%s contains %q: …%s…", name, needle, hay[max(0, i-40):min(len(hay), i+40)])
				}
			}
			if loc := cvcPattern.FindStringIndex(hay); loc != nil {
				t.Errorf("%s contains a CVC: …%s…", name, hay[max(0, loc[0]-40):min(len(hay), loc[1]+40)])
			}
		}
	})
}

// dumpTables renders every row of every ledger table as text, through database/sql, the same
// on both engines.
func dumpTables(t *testing.T, s *Store) string {
	t.Helper()
	var buf bytes.Buffer
	for _, table := range []string{"customers", "payment_methods", "subscriptions", "payments", "payment_attempts"} {
		rows, err := s.read().query(t.Context(), "SELECT * FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
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
