package ledger

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

func methodIDs(ms []PaymentMethod) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func assertPositions(t *testing.T, ms []PaymentMethod) {
	t.Helper()
	for i, m := range ms {
		if m.Position != i {
			t.Fatalf("method %d (%s) has position %d", i, m.ID, m.Position)
		}
	}
}

func TestAddPaymentMethodTypes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "jane@example.com")
		visa := e.addMethod(t, c.ID, card("4242 4242 4242 4242"))
		if visa.Position != 0 || visa.Type != payments.MethodCard || visa.Card == nil ||
			visa.Card.Brand != payments.BrandVisa || visa.Card.Last4 != "4242" ||
			visa.Card.ExpMonth != 12 || visa.Card.ExpYear != cardExpYear || visa.Card.Fingerprint == "" || visa.Card.Token == "" {
			t.Fatalf("card method: %+v %+v", visa, visa.Card)
		}
		if visa.Summary() != "Visa •••• 4242" {
			t.Fatalf("summary = %q", visa.Summary())
		}
		amex := e.addMethod(t, c.ID, card("378282246310005"))
		cbu := e.addMethod(t, c.ID, methodIn{Type: payments.MethodDirectDebit, Account: "28505909-40090418135201"})
		if cbu.Account != "2850590940090418135201" || cbu.MaskedAccount() != "•••• 5201" || cbu.Summary() != "CBU •••• 5201" {
			t.Fatalf("CBU method: %+v", cbu)
		}
		cvu := e.addMethod(t, c.ID, methodIn{Type: payments.MethodCVU, Account: "0000003110000000123456"})
		transfer := e.addMethod(t, c.ID, methodIn{Type: payments.MethodBankTransfer})
		qr := e.addMethod(t, c.ID, methodIn{Type: payments.MethodQR})
		wallet := e.addMethod(t, c.ID, methodIn{Type: payments.MethodWallet, Wallet: "MercadoPago"})

		ms, err := e.store.ListPaymentMethods(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{visa.ID, amex.ID, cbu.ID, cvu.ID, transfer.ID, qr.ID, wallet.ID}
		if !reflect.DeepEqual(methodIDs(ms), want) {
			t.Fatalf("order = %v, want %v", methodIDs(ms), want)
		}
		assertPositions(t, ms)
		if ms[6].Wallet != "mercadopago" || ms[1].Card.Brand != payments.BrandAmex {
			t.Fatalf("stored methods: %+v", ms)
		}
		// Same card again: a new token, the same fingerprint.
		again := e.addMethod(t, c.ID, card("4242424242424242"))
		if again.Card.Fingerprint != visa.Card.Fingerprint || again.Card.Token == visa.Card.Token {
			t.Fatal("fingerprint must identify the card, tokens must differ")
		}
		got, err := e.store.GetPaymentMethod(e.ctx, c.ID, visa.ID)
		if err != nil || !reflect.DeepEqual(got, visa) {
			t.Fatalf("GetPaymentMethod = %+v, %v; want %+v", got, err, visa)
		}
	})
}

func TestAddPaymentMethodRejects(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "jane@example.com")
		expired := card("4242424242424242")
		expired.Card.ExpYear = testStart.Year() - 1
		shortCVC := card("4242424242424242")
		shortCVC.Card.CVC = "12"
		amex3 := card("378282246310005")
		amex3.Card.CVC = "123"
		tests := []struct {
			name      string
			in        methodIn
			code      string
			wantField string
		}{
			{"luhn", card("4242424242424241"), payments.CodeInvalidCardNumber, "card.number"},
			{"expired", expired, payments.CodeExpiredCard, "card.exp_year"},
			{"cvc", shortCVC, payments.CodeInvalidCVC, "card.cvc"},
			{"amex cvc", amex3, payments.CodeInvalidCVC, "card.cvc"},
			{"incorrect cvc", card("4000000000000127"), payments.CodeIncorrectCVC, "card.cvc"},
			{"no card", methodIn{Type: payments.MethodCard}, CodeRequired, "card"},
			{"cbu check", methodIn{Type: payments.MethodDirectDebit, Account: "2850590940090418135202"}, payments.CodeInvalidCBUCheckDigit, "account"},
			{"cvu as cbu", methodIn{Type: payments.MethodDirectDebit, Account: "0000003110000000123456"}, payments.CodeCBUIsCVU, "account"},
			{"cbu as cvu", methodIn{Type: payments.MethodCVU, Account: "2850590940090418135201"}, payments.CodeInvalidCVUPrefix, "account"},
			{"cvu length", methodIn{Type: payments.MethodCVU, Account: "000000311000000012345"}, payments.CodeInvalidCVULength, "account"},
			{"unknown type", methodIn{Type: "cash"}, payments.CodeUnsupportedMethod, "type"},
		}
		for _, tt := range tests {
			_, err := e.store.AddPaymentMethod(e.ctx, c.ID, tt.in)
			var le *Error
			if !errors.As(err, &le) || le.Code != tt.code || le.Field != tt.wantField || le.Kind != KindInvalid {
				t.Errorf("%s: error = %v, want %s on %s", tt.name, err, tt.code, tt.wantField)
			}
		}
		// The ledger itself takes no card but a processor's token (AddMethod).
		if _, err := e.store.Store.AddPaymentMethod(e.ctx, c.ID, NewPaymentMethod{Type: payments.MethodCard}); CodeOf(err) != payments.CodeUnsupportedMethod {
			t.Errorf("a card added to the ledger directly: error = %v, want %s", err, payments.CodeUnsupportedMethod)
		}
		if ms := mustMethods(t, e, c.ID); len(ms) != 0 {
			t.Fatalf("rejected methods were stored: %+v", ms)
		}
		if _, err := e.store.AddPaymentMethod(e.ctx, "cus_missing", card("4242424242424242")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AddPaymentMethod for a missing customer: %v", err)
		}
		if _, err := e.store.ListPaymentMethods(e.ctx, "cus_missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ListPaymentMethods for a missing customer: %v", err)
		}
	})
}

func TestReorderAndMakePreferred(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "jane@example.com")
		a := e.addMethod(t, c.ID, card("4242424242424242"))
		b := e.addMethod(t, c.ID, methodIn{Type: payments.MethodBankTransfer})
		d := e.addMethod(t, c.ID, methodIn{Type: payments.MethodQR})

		ms, err := e.store.ReorderPaymentMethods(e.ctx, c.ID, []string{d.ID, a.ID, b.ID})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(methodIDs(ms), []string{d.ID, a.ID, b.ID}) {
			t.Fatalf("reordered = %v", methodIDs(ms))
		}
		assertPositions(t, ms)

		ms, err = e.store.MakePreferred(e.ctx, c.ID, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The chosen method moves to the front, the others keep their relative order.
		if !reflect.DeepEqual(methodIDs(ms), []string{b.ID, d.ID, a.ID}) {
			t.Fatalf("after MakePreferred = %v", methodIDs(ms))
		}
		assertPositions(t, ms)

		other := e.customer(t, "other@example.com")
		foreign := e.addMethod(t, other.ID, methodIn{Type: payments.MethodQR})
		bad := [][]string{
			{a.ID, b.ID},             // missing one
			{a.ID, b.ID, b.ID},       // repeated
			{a.ID, b.ID, foreign.ID}, // another customer's
			{a.ID, b.ID, d.ID, "pm_x"},
		}
		for _, ids := range bad {
			if _, err := e.store.ReorderPaymentMethods(e.ctx, c.ID, ids); CodeOf(err) != CodeInvalidField {
				t.Errorf("Reorder(%v) = %v, want invalid", ids, err)
			}
		}
		if _, err := e.store.MakePreferred(e.ctx, c.ID, foreign.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("MakePreferred(foreign) = %v", err)
		}
		if _, err := e.store.GetPaymentMethod(e.ctx, c.ID, foreign.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetPaymentMethod(foreign) = %v", err)
		}
		ms = mustMethods(t, e, c.ID)
		if !reflect.DeepEqual(methodIDs(ms), []string{b.ID, d.ID, a.ID}) {
			t.Fatalf("refused reorders changed the order: %v", methodIDs(ms))
		}
	})
}

func TestRemovePaymentMethod(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "jane@example.com")
		a := e.addMethod(t, c.ID, card("4242424242424242"))
		b := e.addMethod(t, c.ID, card("5555555555554444"))
		sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro",
			Amount: 150000, Currency: ARS, Interval: Month, PaymentMethodID: b.ID})
		if err != nil {
			t.Fatal(err)
		}
		// Removing the pinned method unpins it; the subscription falls back to the preferred one.
		if err := e.store.RemovePaymentMethod(e.ctx, c.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		if sub, err = e.store.GetSubscription(e.ctx, sub.ID); err != nil {
			t.Fatal(err)
		}
		if sub.PaymentMethodID != "" {
			t.Fatalf("pin not cleared: %q", sub.PaymentMethodID)
		}
		if _, err := e.store.GetPaymentMethod(e.ctx, c.ID, b.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removed method still visible: %v", err)
		}
		if err := e.store.RemovePaymentMethod(e.ctx, c.ID, b.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removing twice: %v", err)
		}
		// The last method of a customer with an active subscription stays.
		err = e.store.RemovePaymentMethod(e.ctx, c.ID, a.ID)
		if !errors.Is(err, ErrLastMethodWithActiveSubscription) {
			t.Fatalf("removing the last method: %v", err)
		}
		var le *Error
		if !errors.As(err, &le) || le.Kind != KindConflict || le.Message("es") == le.Message("en") {
			t.Fatalf("error not explained: %+v", le)
		}
		if ms := mustMethods(t, e, c.ID); len(ms) != 1 || ms[0].ID != a.ID || ms[0].Position != 0 {
			t.Fatalf("methods after refused removal: %+v", ms)
		}
		if _, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelImmediately, ""); err != nil {
			t.Fatal(err)
		}
		if err := e.store.RemovePaymentMethod(e.ctx, c.ID, a.ID); err != nil {
			t.Fatalf("removing the last method after cancellation: %v", err)
		}
		// Past payments keep the description of the removed method.
		if ps := mustPayments(t, e, ListPaymentsParams{CustomerID: c.ID}); len(ps) != 1 || ps[0].MethodSummary != "Mastercard •••• 4444" {
			t.Fatalf("payment history: %+v", ps)
		}
		// Another customer cannot remove it.
		other := e.customer(t, "other@example.com")
		x := e.addMethod(t, other.ID, methodIn{Type: payments.MethodQR})
		if err := e.store.RemovePaymentMethod(e.ctx, c.ID, x.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cross-customer removal: %v", err)
		}
	})
}

func TestRemoveRenumbers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "jane@example.com")
		a := e.addMethod(t, c.ID, methodIn{Type: payments.MethodQR})
		b := e.addMethod(t, c.ID, methodIn{Type: payments.MethodBankTransfer})
		d := e.addMethod(t, c.ID, methodIn{Type: payments.MethodWallet})
		if err := e.store.RemovePaymentMethod(e.ctx, c.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		ms := mustMethods(t, e, c.ID)
		if !reflect.DeepEqual(methodIDs(ms), []string{b.ID, d.ID}) {
			t.Fatalf("order = %v", methodIDs(ms))
		}
		assertPositions(t, ms)
		n := e.addMethod(t, c.ID, methodIn{Type: payments.MethodQR})
		if n.Position != 2 {
			t.Fatalf("new method position = %d, want 2", n.Position)
		}
	})
}

// Method and subscription summaries are the full lists with only the listed fields kept, in the
// same order; an unknown customer is not found either way.
func TestMethodAndSubscriptionSummaries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "sum@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		pinned := e.addMethod(t, c.ID, methodIn{Type: payments.MethodDirectDebit, Account: "0110599552000000123456"})
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodWallet, Wallet: "modo"})
		e.addMethod(t, c.ID, card("5555555555554444"))
		if _, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 150000, Currency: ARS, Interval: Month}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute)
		sub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Extra", Amount: 990, Currency: USD, Interval: Year, PaymentMethodID: pinned.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelAtPeriodEnd, "caro"); err != nil {
			t.Fatal(err)
		}

		full, err := e.store.ListPaymentMethods(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		brief, err := e.store.ListPaymentMethodSummaries(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want []PaymentMethod
		for _, m := range full {
			w := PaymentMethod{ID: m.ID, Type: m.Type, Account: m.Account, Wallet: m.Wallet}
			if m.Card != nil {
				w.Card = &CardInfo{Brand: m.Card.Brand, Last4: m.Card.Last4, ExpMonth: m.Card.ExpMonth, ExpYear: m.Card.ExpYear}
			}
			want = append(want, w)
		}
		if len(want) != 4 || !reflect.DeepEqual(brief, want) {
			t.Fatalf("method summaries\n%+v\nwant\n%+v", brief, want)
		}

		fullSubs, err := e.store.ListSubscriptions(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		briefSubs, err := e.store.ListSubscriptionSummaries(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wantSubs []Subscription
		for _, s := range fullSubs {
			wantSubs = append(wantSubs, Subscription{ID: s.ID, Plan: s.Plan, Amount: s.Amount, Currency: s.Currency, Interval: s.Interval,
				Status: s.Status, CurrentPeriodEnd: s.CurrentPeriodEnd, PaymentMethodID: s.PaymentMethodID,
				CancelAtPeriodEnd: s.CancelAtPeriodEnd, CanceledAt: s.CanceledAt,
				PlanID: s.PlanID, PlanEN: s.PlanEN, Quantity: s.Quantity, Pending: s.Pending})
		}
		if len(wantSubs) != 2 || !wantSubs[0].CancelAtPeriodEnd || wantSubs[0].PaymentMethodID == "" || !reflect.DeepEqual(briefSubs, wantSubs) {
			t.Fatalf("subscription summaries\n%+v\nwant\n%+v", briefSubs, wantSubs)
		}

		for _, f := range []func() error{
			func() error { _, err := e.store.ListPaymentMethodSummaries(e.ctx, "cus_missing"); return err },
			func() error { _, err := e.store.ListSubscriptionSummaries(e.ctx, "cus_missing"); return err },
		} {
			if err := f(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown customer: %v", err)
			}
		}
	})
}
