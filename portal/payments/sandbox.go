package payments

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Sandbox is the built-in processor: it validates like a real one and moves no money. Its
// outcomes are chosen by the test numbers below (the same conventions as Stripe's test mode,
// plus Argentine networks and accounts). Any other valid card succeeds.
//
// Cards (any future expiry; CVC: 3 digits, 4 for American Express):
//
//	4242 4242 4242 4242   Visa              succeeds
//	4000 0566 5566 5556   Visa (debit)      succeeds
//	5555 5555 5555 4444   Mastercard        succeeds
//	2223 0031 2200 3222   Mastercard        succeeds (2-series BIN)
//	3782 822463 10005     American Express  succeeds
//	6042 0100 0000 0006   Cabal             succeeds
//	5895 6200 0000 0002   Naranja           succeeds
//	4000 0000 0000 0002   Visa              charge declined: card_declined
//	4000 0000 0000 9995   Visa              charge declined: insufficient_funds
//	4000 0000 0000 0069   Visa              charge declined: expired_card
//	4000 0000 0000 0119   Visa              charge declined: processing_error
//	4000 0000 0000 0127   Visa              refused when saved: incorrect_cvc
//
// Bank accounts (direct_debit takes a CBU, cvu a CVU):
//
//	CBU 0110599552000000123456   debit succeeds (any other valid CBU too)
//	CBU 0110599552000000999952   debit declined: insufficient_funds
//	CVU 0000003110000000123456   debit succeeds (any other valid CVU too)
//	CVU 0000003110000000999952   debit declined: insufficient_funds
//
// bank_transfer and qr charges are pending until Confirm; wallet charges succeed.
//
// Tokens and references are stateless: they carry the test scenario and card expiry sealed
// with an HMAC under the sandbox secret, so several portal replicas sharing the secret accept
// each other's tokens and a restart loses nothing. The card number itself is never in them.
type Sandbox struct {
	tokenKey       []byte
	fingerprintKey []byte
	now            func() time.Time
}

// SandboxCard is one documented sandbox test card.
type SandboxCard struct {
	Number string
	Brand  Brand
	// Outcome is "succeeded", or the failure code the sandbox reports.
	Outcome string
	// AtTokenize is true when the sandbox refuses the card when it is saved rather than when
	// it is charged.
	AtTokenize bool
}

// SandboxCards returns the sandbox's documented test cards (a fresh copy each call).
func SandboxCards() []SandboxCard {
	return []SandboxCard{
		{Number: "4242424242424242", Brand: BrandVisa, Outcome: "succeeded"},
		{Number: "4000056655665556", Brand: BrandVisa, Outcome: "succeeded"},
		{Number: "5555555555554444", Brand: BrandMastercard, Outcome: "succeeded"},
		{Number: "2223003122003222", Brand: BrandMastercard, Outcome: "succeeded"},
		{Number: "378282246310005", Brand: BrandAmex, Outcome: "succeeded"},
		{Number: "6042010000000006", Brand: BrandCabal, Outcome: "succeeded"},
		{Number: "5895620000000002", Brand: BrandNaranja, Outcome: "succeeded"},
		{Number: "4000000000000002", Brand: BrandVisa, Outcome: CodeCardDeclined},
		{Number: "4000000000009995", Brand: BrandVisa, Outcome: CodeInsufficientFunds},
		{Number: "4000000000000069", Brand: BrandVisa, Outcome: CodeExpiredCard},
		{Number: "4000000000000119", Brand: BrandVisa, Outcome: CodeProcessingError},
		{Number: "4000000000000127", Brand: BrandVisa, Outcome: CodeIncorrectCVC, AtTokenize: true},
	}
}

// SandboxAccount is one documented sandbox CBU or CVU.
type SandboxAccount struct {
	Type    MethodType
	Number  string
	Outcome string
}

// SandboxAccounts returns the sandbox's documented test CBUs and CVUs.
func SandboxAccounts() []SandboxAccount {
	return []SandboxAccount{
		{Type: MethodDirectDebit, Number: "0110599552000000123456", Outcome: "succeeded"},
		{Type: MethodDirectDebit, Number: "0110599552000000999952", Outcome: CodeInsufficientFunds},
		{Type: MethodCVU, Number: "0000003110000000123456", Outcome: "succeeded"},
		{Type: MethodCVU, Number: "0000003110000000999952", Outcome: CodeInsufficientFunds},
	}
}

// MinSandboxSecretLen is the shortest secret NewSandbox accepts (256 bits).
const MinSandboxSecretLen = 32

// NewSandbox returns a sandbox processor. secret keys the card fingerprints and seals tokens;
// it must be the same on every replica and across restarts (saved tokens stop working if it
// changes). now is the clock used for expiry checks; nil means time.Now.
func NewSandbox(secret []byte, now func() time.Time) (*Sandbox, error) {
	if len(secret) < MinSandboxSecretLen {
		return nil, fmt.Errorf("sandbox processor: secret must be at least %d bytes, got %d", MinSandboxSecretLen, len(secret))
	}
	if now == nil {
		now = time.Now
	}
	// Separate keys per purpose so a token MAC can never be replayed as a fingerprint.
	return &Sandbox{
		tokenKey:       deriveKey(secret, "portero sandbox token"),
		fingerprintKey: deriveKey(secret, "portero sandbox fingerprint"),
		now:            now,
	}, nil
}

func deriveKey(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Name implements Processor.
func (s *Sandbox) Name() string { return "sandbox" }

// scenario is the outcome a sandbox token or reference carries.
type scenario byte

const (
	scenarioSucceed scenario = iota
	scenarioDecline
	scenarioInsufficientFunds
	scenarioExpired
	scenarioProcessingError
	scenarioIncorrectCVC
)

func scenarioForOutcome(outcome string) scenario {
	switch outcome {
	case CodeCardDeclined:
		return scenarioDecline
	case CodeInsufficientFunds:
		return scenarioInsufficientFunds
	case CodeExpiredCard:
		return scenarioExpired
	case CodeProcessingError:
		return scenarioProcessingError
	case CodeIncorrectCVC:
		return scenarioIncorrectCVC
	}
	return scenarioSucceed
}

func (sc scenario) failure() *Error {
	switch sc {
	case scenarioDecline:
		return newError(CodeCardDeclined, "")
	case scenarioInsufficientFunds:
		return newError(CodeInsufficientFunds, "")
	case scenarioExpired:
		return newError(CodeExpiredCard, "")
	case scenarioProcessingError:
		return newError(CodeProcessingError, "")
	case scenarioIncorrectCVC:
		return newError(CodeIncorrectCVC, "cvc")
	}
	return nil
}

// TokenizeCard implements Processor: number (Luhn, length), expiry and CVC format are checked
// like a real acquirer would, then the CVC is dropped.
func (s *Sandbox) TokenizeCard(ctx context.Context, card CardDetails) (TokenizedCard, error) {
	if err := ctx.Err(); err != nil {
		return TokenizedCard{}, err
	}
	pan, brand, err := ParseCardNumber(card.Number)
	if err != nil {
		return TokenizedCard{}, err
	}
	if err := CheckExpiry(card.ExpMonth, card.ExpYear, s.now()); err != nil {
		return TokenizedCard{}, err
	}
	if err := ValidateCVC(card.CVC, brand); err != nil {
		return TokenizedCard{}, err
	}
	sc := scenarioSucceed
	for _, tc := range SandboxCards() {
		if tc.Number == pan {
			sc = scenarioForOutcome(tc.Outcome)
			break
		}
	}
	if sc == scenarioIncorrectCVC {
		return TokenizedCard{}, sc.failure()
	}
	year := NormalizeExpiryYear(card.ExpYear)
	payload := make([]byte, 16, 16+1+1+2)
	if _, err := rand.Read(payload); err != nil {
		return TokenizedCard{}, fmt.Errorf("sandbox: generate token: %w", err)
	}
	payload = append(payload, byte(sc), byte(card.ExpMonth))
	payload = binary.BigEndian.AppendUint16(payload, uint16(year))
	fp := hmac.New(sha256.New, s.fingerprintKey)
	fp.Write([]byte(pan))
	return TokenizedCard{
		Token:       "tok_" + s.seal(payload),
		Brand:       brand,
		Last4:       pan[len(pan)-4:],
		ExpMonth:    card.ExpMonth,
		ExpYear:     year,
		Fingerprint: hex.EncodeToString(fp.Sum(nil)),
	}, nil
}

// seal appends a truncated MAC and encodes; 128 bits of MAC are plenty against forgery.
func (s *Sandbox) seal(payload []byte) string {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(m.Sum(payload)[:len(payload)+16])
}

func (s *Sandbox) open(sealed string, wantLen int) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) != wantLen+16 {
		return nil, false
	}
	payload, tag := raw[:wantLen], raw[wantLen:]
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil)[:16], tag) {
		return nil, false
	}
	return payload, true
}

// Charge implements Processor.
func (s *Sandbox) Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	if err := ctx.Err(); err != nil {
		return ChargeResult{}, err
	}
	fail := func(code string) (ChargeResult, error) {
		return ChargeResult{Status: ChargeFailed, Failure: newError(code, "")}, nil
	}
	if req.Amount <= 0 {
		return fail(CodeInvalidAmount)
	}
	if req.Currency != "ARS" && req.Currency != "USD" {
		return fail(CodeUnsupportedCurrency)
	}
	switch req.Method.Type {
	case MethodCard:
		sealed, found := strings.CutPrefix(req.Method.Token, "tok_")
		payload, ok := s.open(sealed, 20)
		if !found || !ok {
			return fail(CodeInvalidToken)
		}
		sc := scenario(payload[16])
		month, year := int(payload[17]), int(binary.BigEndian.Uint16(payload[18:20]))
		// A saved card can expire after it was tokenized; a real acquirer refuses it then.
		if CheckExpiry(month, year, s.now()) != nil {
			return fail(CodeExpiredCard)
		}
		if f := sc.failure(); f != nil {
			return ChargeResult{Status: ChargeFailed, Failure: f}, nil
		}
	case MethodDirectDebit, MethodCVU:
		parse := ParseCBU
		if req.Method.Type == MethodCVU {
			parse = ParseCVU
		}
		acct, err := parse(req.Method.Account)
		if err != nil {
			return fail(CodeInvalidPaymentMethod)
		}
		for _, a := range SandboxAccounts() {
			if a.Number == acct && a.Outcome != "succeeded" {
				return fail(a.Outcome)
			}
		}
	case MethodWallet:
	case MethodBankTransfer, MethodQR:
		ref, err := s.reference(true)
		if err != nil {
			return ChargeResult{}, err
		}
		instr := "Transferí el importe al CVU 0000003110000000123456 (alias PORTERO.SANDBOX) indicando la referencia " + ref + "."
		if req.Method.Type == MethodQR {
			instr = "sandbox-qr:" + ref
		}
		return ChargeResult{Status: ChargePending, Reference: ref, Instructions: instr}, nil
	default:
		return fail(CodeUnsupportedMethod)
	}
	ref, err := s.reference(false)
	if err != nil {
		return ChargeResult{}, err
	}
	return ChargeResult{Status: ChargeSucceeded, Reference: ref}, nil
}

// reference mints a charge id that records whether the charge is pending.
func (s *Sandbox) reference(pending bool) (string, error) {
	payload := make([]byte, 16, 17)
	if _, err := rand.Read(payload); err != nil {
		return "", fmt.Errorf("sandbox: generate reference: %w", err)
	}
	flag := byte(0)
	if pending {
		flag = 1
	}
	return "ch_" + s.seal(append(payload, flag)), nil
}

// Confirm implements Processor: a pending sandbox charge always settles. Confirming a charge
// that already succeeded succeeds again, as confirmations are naturally retried.
func (s *Sandbox) Confirm(ctx context.Context, reference string) (ChargeResult, error) {
	if err := ctx.Err(); err != nil {
		return ChargeResult{}, err
	}
	sealed, found := strings.CutPrefix(reference, "ch_")
	if _, ok := s.open(sealed, 17); !found || !ok {
		return ChargeResult{Status: ChargeFailed, Failure: newError(CodeInvalidReference, "")}, nil
	}
	return ChargeResult{Status: ChargeSucceeded, Reference: reference}, nil
}
