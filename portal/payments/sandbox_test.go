package payments

import (
	"context"
	"strings"
	"testing"
	"time"
)

func newTestSandbox(t *testing.T, now func() time.Time) *Sandbox {
	t.Helper()
	s, err := NewSandbox([]byte("0123456789abcdef0123456789abcdef"), now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fixedClock(tm time.Time) func() time.Time { return func() time.Time { return tm } }

var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

// testExpYear is a card expiry year some years after testNow, derived from it so no test card
// carries a year of its own.
var testExpYear = testNow.Year() + 4

func TestNewSandboxRequiresSecret(t *testing.T) {
	if _, err := NewSandbox([]byte("short"), nil); err == nil {
		t.Fatal("NewSandbox accepted a short secret")
	}
}

func TestSandboxCardOutcomes(t *testing.T) {
	ctx := context.Background()
	sb := newTestSandbox(t, fixedClock(testNow))
	for _, c := range SandboxCards() {
		t.Run(c.Number, func(t *testing.T) {
			cvc := "123"
			if c.Brand == BrandAmex {
				cvc = "1234"
			}
			tok, err := sb.TokenizeCard(ctx, CardDetails{Number: c.Number, ExpMonth: 12, ExpYear: testExpYear, CVC: cvc})
			if c.AtTokenize {
				if CodeOf(err) != c.Outcome {
					t.Fatalf("TokenizeCard: %v, want %s", err, c.Outcome)
				}
				return
			}
			if err != nil {
				t.Fatalf("TokenizeCard: %v", err)
			}
			if tok.Brand != c.Brand || tok.Last4 != c.Number[len(c.Number)-4:] || tok.ExpMonth != 12 || tok.ExpYear != testExpYear {
				t.Fatalf("tokenized card = %+v", tok)
			}
			if strings.Contains(tok.Token, c.Number) || strings.Contains(tok.Fingerprint, c.Number) {
				t.Fatal("token or fingerprint contains the card number")
			}
			res, err := sb.Charge(ctx, ChargeRequest{Amount: 150000, Currency: "ARS", Method: MethodRef{Type: MethodCard, Token: tok.Token}})
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if c.Outcome == "succeeded" {
				if res.Status != ChargeSucceeded || res.Reference == "" {
					t.Fatalf("Charge = %+v, want succeeded", res)
				}
				return
			}
			if res.Status != ChargeFailed || res.Failure == nil || res.Failure.Code != c.Outcome {
				t.Fatalf("Charge = %+v, want failed %s", res, c.Outcome)
			}
		})
	}
}

func TestSandboxTokenizeRejects(t *testing.T) {
	ctx := context.Background()
	sb := newTestSandbox(t, fixedClock(testNow))
	tests := []struct {
		name string
		card CardDetails
		code string
	}{
		{"luhn", CardDetails{Number: "4242424242424241", ExpMonth: 12, ExpYear: testExpYear, CVC: "123"}, CodeInvalidCardNumber},
		{"expired", CardDetails{Number: "4242424242424242", ExpMonth: 2, ExpYear: testNow.Year(), CVC: "123"}, CodeExpiredCard},
		{"bad month", CardDetails{Number: "4242424242424242", ExpMonth: 13, ExpYear: testExpYear, CVC: "123"}, CodeInvalidExpiryMonth},
		{"cvc too short", CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: testExpYear, CVC: "12"}, CodeInvalidCVC},
		{"amex needs 4", CardDetails{Number: "378282246310005", ExpMonth: 12, ExpYear: testExpYear, CVC: "123"}, CodeInvalidCVC},
		{"visa with 4", CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: testExpYear, CVC: "1234"}, CodeInvalidCVC},
		{"letters", CardDetails{Number: "4242-4242-4242-42x2", ExpMonth: 12, ExpYear: testExpYear, CVC: "123"}, CodeInvalidCardNumberCharacters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sb.TokenizeCard(ctx, tt.card)
			if CodeOf(err) != tt.code {
				t.Fatalf("TokenizeCard = %v, want %s", err, tt.code)
			}
			if strings.Contains(err.Error(), "424242424242") || strings.Contains(err.Error(), tt.card.CVC) {
				t.Fatalf("error leaks input: %v", err)
			}
		})
	}
}

func TestSandboxFingerprintAndTokens(t *testing.T) {
	ctx := context.Background()
	sb := newTestSandbox(t, fixedClock(testNow))
	card := CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: testExpYear, CVC: "123"}
	a, err := sb.TokenizeCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	card.Number = "4242 4242 4242 4242"
	card.ExpYear = (testExpYear + 1) % 100
	b, err := sb.TokenizeCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint {
		t.Fatal("same card number must have the same fingerprint")
	}
	if a.Token == b.Token {
		t.Fatal("tokens must be random")
	}
	if b.ExpYear != testExpYear+1 {
		t.Fatalf("two-digit year not normalised: %d", b.ExpYear)
	}
	other, _ := sb.TokenizeCard(ctx, CardDetails{Number: "5555555555554444", ExpMonth: 12, ExpYear: testExpYear, CVC: "123"})
	if other.Fingerprint == a.Fingerprint {
		t.Fatal("different cards share a fingerprint")
	}
	// Another sandbox with another secret neither recognises the card nor accepts the token.
	sb2, _ := NewSandbox([]byte("another secret, also 32 bytes ok"), fixedClock(testNow))
	c, _ := sb2.TokenizeCard(ctx, card)
	if c.Fingerprint == a.Fingerprint {
		t.Fatal("fingerprint does not depend on the secret")
	}
	res, err := sb2.Charge(ctx, ChargeRequest{Amount: 100, Currency: "ARS", Method: MethodRef{Type: MethodCard, Token: a.Token}})
	if err != nil || res.Status != ChargeFailed || res.Failure.Code != CodeInvalidToken {
		t.Fatalf("foreign token charged: %+v %v", res, err)
	}
	// A replica with the same secret accepts it (tokens are stateless).
	sb3 := newTestSandbox(t, fixedClock(testNow))
	res, err = sb3.Charge(ctx, ChargeRequest{Amount: 100, Currency: "ARS", Method: MethodRef{Type: MethodCard, Token: a.Token}})
	if err != nil || res.Status != ChargeSucceeded {
		t.Fatalf("replica refused token: %+v %v", res, err)
	}
	// A tampered token is refused.
	tampered := a.Token[:len(a.Token)-2] + "AA"
	if tampered == a.Token {
		tampered = a.Token[:len(a.Token)-2] + "BB"
	}
	res, _ = sb.Charge(ctx, ChargeRequest{Amount: 100, Currency: "ARS", Method: MethodRef{Type: MethodCard, Token: tampered}})
	if res.Status != ChargeFailed || res.Failure.Code != CodeInvalidToken {
		t.Fatalf("tampered token: %+v", res)
	}
}

func TestSandboxCardExpiresAfterSaving(t *testing.T) {
	ctx := context.Background()
	now := testNow
	sb := newTestSandbox(t, func() time.Time { return now })
	tok, err := sb.TokenizeCard(ctx, CardDetails{Number: "4242424242424242", ExpMonth: 4, ExpYear: testNow.Year(), CVC: "123"})
	if err != nil {
		t.Fatal(err)
	}
	now = time.Date(testNow.Year(), time.May, 1, 0, 0, 0, 0, time.UTC)
	res, err := sb.Charge(ctx, ChargeRequest{Amount: 100, Currency: "ARS", Method: MethodRef{Type: MethodCard, Token: tok.Token}})
	if err != nil || res.Status != ChargeFailed || res.Failure.Code != CodeExpiredCard {
		t.Fatalf("charge on expired saved card = %+v %v", res, err)
	}
}

func TestSandboxAccountsAndPending(t *testing.T) {
	ctx := context.Background()
	sb := newTestSandbox(t, fixedClock(testNow))
	charge := func(m MethodRef, currency string, amount int64) ChargeResult {
		t.Helper()
		res, err := sb.Charge(ctx, ChargeRequest{Amount: amount, Currency: currency, Method: m})
		if err != nil {
			t.Fatalf("Charge(%+v): %v", m, err)
		}
		return res
	}
	for _, a := range SandboxAccounts() {
		res := charge(MethodRef{Type: a.Type, Account: a.Number}, "ARS", 5000)
		if a.Outcome == "succeeded" && res.Status != ChargeSucceeded {
			t.Errorf("%s %s: %+v", a.Type, a.Number, res)
		}
		if a.Outcome != "succeeded" && (res.Status != ChargeFailed || res.Failure.Code != a.Outcome) {
			t.Errorf("%s %s: %+v, want %s", a.Type, a.Number, res, a.Outcome)
		}
	}
	if res := charge(MethodRef{Type: MethodDirectDebit, Account: "2850590940090418135201"}, "ARS", 5000); res.Status != ChargeSucceeded {
		t.Errorf("any valid CBU should succeed: %+v", res)
	}
	if res := charge(MethodRef{Type: MethodDirectDebit, Account: "0000003110000000123456"}, "ARS", 5000); res.Status != ChargeFailed || res.Failure.Code != CodeInvalidPaymentMethod {
		t.Errorf("CVU as direct debit: %+v", res)
	}
	if res := charge(MethodRef{Type: MethodWallet, Wallet: "mercadopago"}, "USD", 5000); res.Status != ChargeSucceeded {
		t.Errorf("wallet: %+v", res)
	}
	if res := charge(MethodRef{Type: MethodWallet}, "EUR", 5000); res.Status != ChargeFailed || res.Failure.Code != CodeUnsupportedCurrency {
		t.Errorf("EUR: %+v", res)
	}
	if res := charge(MethodRef{Type: MethodWallet}, "ARS", 0); res.Status != ChargeFailed || res.Failure.Code != CodeInvalidAmount {
		t.Errorf("zero amount: %+v", res)
	}
	if res := charge(MethodRef{Type: "cash"}, "ARS", 10); res.Status != ChargeFailed || res.Failure.Code != CodeUnsupportedMethod {
		t.Errorf("unknown method: %+v", res)
	}
	for _, typ := range []MethodType{MethodBankTransfer, MethodQR} {
		res := charge(MethodRef{Type: typ}, "ARS", 5000)
		if res.Status != ChargePending || res.Reference == "" || res.Instructions == "" {
			t.Fatalf("%s: %+v, want pending with reference and instructions", typ, res)
		}
		conf, err := sb.Confirm(ctx, res.Reference)
		if err != nil || conf.Status != ChargeSucceeded {
			t.Fatalf("Confirm(%s) = %+v %v", typ, conf, err)
		}
	}
	conf, err := sb.Confirm(ctx, "ch_forged")
	if err != nil || conf.Status != ChargeFailed || conf.Failure.Code != CodeInvalidReference {
		t.Fatalf("Confirm(forged) = %+v %v", conf, err)
	}
}

func TestMethodTypes(t *testing.T) {
	for _, m := range MethodTypes() {
		if !m.Valid() {
			t.Errorf("%s not valid", m)
		}
	}
	if MethodType("cash").Valid() {
		t.Error("cash is not a method type")
	}
	if !MethodBankTransfer.SettlesLater() || !MethodQR.SettlesLater() || MethodCard.SettlesLater() {
		t.Error("SettlesLater wrong")
	}
}
