package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

func TestCreatePaymentOutcomes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		tests := []struct {
			name       string
			method     methodIn
			wantStatus PaymentStatus
			wantCode   string
		}{
			{"visa", card("4242424242424242"), PaymentSucceeded, ""},
			{"cabal", card("6042010000000006"), PaymentSucceeded, ""},
			{"declined", card("4000000000000002"), PaymentFailed, payments.CodeCardDeclined},
			{"insufficient funds", card("4000000000009995"), PaymentFailed, payments.CodeInsufficientFunds},
			{"expired at processor", card("4000000000000069"), PaymentFailed, payments.CodeExpiredCard},
			{"direct debit", methodIn{Type: payments.MethodDirectDebit, Account: "0110599552000000123456"}, PaymentSucceeded, ""},
			{"direct debit no funds", methodIn{Type: payments.MethodDirectDebit, Account: "0110599552000000999952"}, PaymentFailed, payments.CodeInsufficientFunds},
			{"cvu", methodIn{Type: payments.MethodCVU, Account: "0000003110000000123456"}, PaymentSucceeded, ""},
			{"wallet", methodIn{Type: payments.MethodWallet, Wallet: "mercadopago"}, PaymentSucceeded, ""},
			{"bank transfer", methodIn{Type: payments.MethodBankTransfer}, PaymentPending, ""},
			{"qr", methodIn{Type: payments.MethodQR}, PaymentPending, ""},
		}
		for _, tt := range tests {
			c := e.customer(t, "c@example.com")
			m := e.addMethod(t, c.ID, tt.method)
			p := e.pay(t, c.ID, 123456)
			if p.Status != tt.wantStatus || p.FailureCode != tt.wantCode {
				t.Errorf("%s: status %s code %q, want %s %q", tt.name, p.Status, p.FailureCode, tt.wantStatus, tt.wantCode)
				continue
			}
			if p.PaymentMethodID != m.ID || p.MethodType != m.Type || p.MethodSummary != m.Summary() || p.Processor != "sandbox" {
				t.Errorf("%s: method recorded as %s %s %q", tt.name, p.PaymentMethodID, p.MethodType, p.MethodSummary)
			}
			if len(p.Attempts) != 1 || p.Attempts[0].Outcome != tt.wantStatus || p.Attempts[0].FailureCode != tt.wantCode ||
				p.Attempts[0].PaymentMethodID != m.ID || p.Attempts[0].FinishedAt.IsZero() {
				t.Errorf("%s: attempts %+v", tt.name, p.Attempts)
			}
			if tt.wantCode != "" && p.FailureMessage == "" {
				t.Errorf("%s: failure without a message", tt.name)
			}
			if tt.wantStatus == PaymentPending && (p.Instructions == "" || p.ProcessorReference == "") {
				t.Errorf("%s: pending payment without instructions/reference: %+v", tt.name, p)
			}
			if n := e.proc.chargesFor(p.ID); n != 1 {
				t.Errorf("%s: charged %d times", tt.name, n)
			}
		}
	})
}

func TestConfirmPendingPayment(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodBankTransfer})
		p := e.pay(t, c.ID, 5000)
		if p.Status != PaymentPending {
			t.Fatalf("status = %s", p.Status)
		}
		done, err := e.store.ConfirmPayment(e.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done.Status != PaymentSucceeded || done.ProcessorReference != p.ProcessorReference ||
			len(done.Attempts) != 1 || done.Attempts[0].Outcome != PaymentSucceeded {
			t.Fatalf("confirmed = %+v", done)
		}
		// Confirming again is harmless and does not reach the processor.
		before := e.proc.confirms
		again, err := e.store.ConfirmPayment(e.ctx, p.ID)
		if err != nil || again.Status != PaymentSucceeded || e.proc.confirms != before {
			t.Fatalf("second confirm = %+v, %v (processor confirms %d → %d)", again, err, before, e.proc.confirms)
		}
		// A payment that is not pending cannot be confirmed.
		e.addMethod(t, c.ID, card("4000000000000002"))
		if _, err := e.store.MakePreferred(e.ctx, c.ID, mustMethods(t, e, c.ID)[1].ID); err != nil {
			t.Fatal(err)
		}
		failed := e.pay(t, c.ID, 5000)
		if failed.Status != PaymentFailed {
			t.Fatalf("status = %s", failed.Status)
		}
		if _, err := e.store.ConfirmPayment(e.ctx, failed.ID); !errors.Is(err, ErrPaymentState) {
			t.Fatalf("confirm failed payment: %v", err)
		}
		if _, err := e.store.ConfirmPayment(e.ctx, "pay_missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("confirm missing payment: %v", err)
		}
	})
}

func mustMethods(t *testing.T, e *env, customerID string) []PaymentMethod {
	t.Helper()
	ms, err := e.store.ListPaymentMethods(e.ctx, customerID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// mustPayments is one page of ListPayments. A check that expects few or none must not pass
// because the list failed.
func mustPayments(t *testing.T, e *env, params ListPaymentsParams) []Payment {
	t.Helper()
	page, err := e.store.ListPayments(e.ctx, params)
	if err != nil {
		t.Fatalf("ListPayments(%+v): %v", params, err)
	}
	return page.Items
}

func mustPayment(t *testing.T, e *env, id string) Payment {
	t.Helper()
	p, err := e.store.GetPayment(e.ctx, id)
	if err != nil {
		t.Fatalf("GetPayment(%s): %v", id, err)
	}
	return p
}

func TestCreatePaymentValidation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		other := e.customer(t, "o@example.com")
		e.addMethod(t, other.ID, methodIn{Type: payments.MethodQR})
		otherSub, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: other.ID, Plan: "Basic",
			Amount: 1000, Currency: ARS, Interval: Month})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			in   NewPayment
			code string
		}{
			{"negative", NewPayment{CustomerID: c.ID, Amount: -100, Currency: ARS}, CodeInvalidAmount},
			{"zero", NewPayment{CustomerID: c.ID, Amount: 0, Currency: ARS}, CodeInvalidAmount},
			{"euro", NewPayment{CustomerID: c.ID, Amount: 100, Currency: "EUR"}, CodeUnsupportedCurrency},
			{"no currency", NewPayment{CustomerID: c.ID, Amount: 100}, CodeUnsupportedCurrency},
			{"key with space", NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS, IdempotencyKey: "a b"}, CodeInvalidField},
			{"reserved key", NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS, IdempotencyKey: "portero:sub:x"}, CodeInvalidField},
			{"missing customer", NewPayment{CustomerID: "cus_missing", Amount: 100, Currency: ARS}, CodeNotFound},
			{"foreign subscription", NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS, SubscriptionID: otherSub.ID}, CodeNotFound},
		}
		for _, tt := range tests {
			if _, err := e.store.CreatePayment(e.ctx, tt.in); CodeOf(err) != tt.code {
				t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
			}
		}
		if _, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: "EUR"}); !errors.Is(err, ErrUnsupportedCurrency) {
			t.Errorf("EUR not ErrUnsupportedCurrency: %v", err)
		}
		// Lower-case codes are accepted.
		if p, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: "usd"}); err != nil || p.Currency != USD {
			t.Errorf("usd: %+v %v", p, err)
		}
		if ps := mustPayments(t, e, ListPaymentsParams{CustomerID: c.ID}); len(ps) != 1 {
			t.Errorf("refused payments were stored: %d", len(ps))
		}
	})
}

func TestIdempotency(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		in := NewPayment{CustomerID: c.ID, Amount: 9900, Currency: ARS, Description: "Order 1", IdempotencyKey: "order-1"}
		first, err := e.store.CreatePayment(e.ctx, in)
		if err != nil || first.Status != PaymentSucceeded {
			t.Fatalf("first: %+v %v", first, err)
		}
		second, err := e.store.CreatePayment(e.ctx, in)
		if err != nil || second.ID != first.ID || second.Status != PaymentSucceeded {
			t.Fatalf("retry: %+v %v", second, err)
		}
		if n := e.proc.chargesFor(first.ID); n != 1 {
			t.Fatalf("charged %d times", n)
		}
		changed := in
		changed.Amount = 9901
		if _, err := e.store.CreatePayment(e.ctx, changed); !errors.Is(err, ErrIdempotencyConflict) {
			t.Fatalf("same key, other amount: %v", err)
		}
		changed = in
		changed.Description = "Order 2"
		if _, err := e.store.CreatePayment(e.ctx, changed); !errors.Is(err, ErrIdempotencyConflict) {
			t.Fatalf("same key, other description: %v", err)
		}
		// Keys are scoped per customer.
		other := e.customer(t, "o@example.com")
		e.addMethod(t, other.ID, card("4242424242424242"))
		in.CustomerID = other.ID
		theirs, err := e.store.CreatePayment(e.ctx, in)
		if err != nil || theirs.ID == first.ID {
			t.Fatalf("other customer's payment: %+v %v", theirs, err)
		}
	})
}

func TestIdempotencyUnderConcurrency(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		in := NewPayment{CustomerID: c.ID, Amount: 500, Currency: ARS, IdempotencyKey: "double-click"}
		var wg sync.WaitGroup
		ids := make([]string, 10)
		errs := make([]error, 10)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := e.store.CreatePayment(e.ctx, in)
				ids[i], errs[i] = p.ID, err
			}()
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("request %d: %s %v (first %s)", i, ids[i], errs[i], ids[0])
			}
		}
		if n := e.proc.chargesFor(ids[0]); n != 1 {
			t.Fatalf("charged %d times", n)
		}
		if ps := mustPayments(t, e, ListPaymentsParams{CustomerID: c.ID}); len(ps) != 1 {
			t.Fatalf("%d payments stored", len(ps))
		}
	})
}

func TestIncompletePaymentCompletesWhenMethodAdded(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		p := e.pay(t, c.ID, 2500)
		if p.Status != PaymentIncomplete || p.PaymentMethodID != "" || len(p.Attempts) != 0 {
			t.Fatalf("payment without method = %+v", p)
		}
		if hooks := e.incompleteHooks(); len(hooks) != 1 || hooks[0].ID != p.ID {
			t.Fatalf("PaymentIncomplete hook calls: %+v", hooks)
		}
		if e.proc.chargesFor(p.ID) != 0 {
			t.Fatal("incomplete payment was charged")
		}
		m := e.addMethod(t, c.ID, card("5555555555554444"))
		got, err := e.store.GetPaymentForCustomer(e.ctx, c.ID, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != PaymentSucceeded || got.PaymentMethodID != m.ID || len(got.Attempts) != 1 {
			t.Fatalf("after adding a method: %+v", got)
		}
		if e.proc.chargesFor(p.ID) != 1 {
			t.Fatalf("charged %d times", e.proc.chargesFor(p.ID))
		}
		// Further method changes do not touch it again.
		e.addMethod(t, c.ID, card("4242424242424242"))
		if _, err := e.store.MakePreferred(e.ctx, c.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		if e.proc.chargesFor(p.ID) != 1 {
			t.Fatalf("charged %d times", e.proc.chargesFor(p.ID))
		}
	})
}

// TestStrandedIncompletePaymentsSettle: the settlement after a method change runs once the
// change has committed; if the process stops in between, the payment stays incomplete beside a
// usable method. SettleStranded (the billing loop runs it) charges it, once; payments whose only
// methods predate them are left alone (those methods could not pay them).
func TestStrandedIncompletePaymentsSettle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		old := e.customer(t, "old@example.com")
		e.addMethod(t, old.ID, card("4242424242424242")) // expires in December of cardExpYear

		c := e.customer(t, "c@example.com")
		p := e.pay(t, c.ID, 2500)
		q := e.pay(t, c.ID, 3500)
		if p.Status != PaymentIncomplete || q.Status != PaymentIncomplete {
			t.Fatalf("payments %s, %s", p.Status, q.Status)
		}
		e.clock.Advance(time.Minute)
		// What AddPaymentMethod commits, without the settlement that follows it.
		if _, err := e.store.read().exec(e.ctx, `INSERT INTO payment_methods (id, customer_id, ordinal, method_type,
			processor, account_number, created_at) VALUES (?, ?, 0, 'direct_debit', ?, ?, ?)`,
			"pm_stranded", c.ID, e.proc.Name(), "2850590940090418135201", e.clock.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}

		n, err := e.store.SettleStranded(e.ctx)
		if err != nil || n != 2 {
			t.Fatalf("SettleStranded = %d, %v; want 2 charged", n, err)
		}
		for _, id := range []string{p.ID, q.ID} {
			got, err := e.store.GetPayment(e.ctx, id)
			if err != nil || got.Status != PaymentSucceeded || got.PaymentMethodID != "pm_stranded" || e.proc.chargesFor(id) != 1 {
				t.Fatalf("payment %s = %+v, %v, charged %d times", id, got, err, e.proc.chargesFor(id))
			}
		}
		// Again, and from a second replica at once: nothing more is charged.
		replica := e.open(t)
		var wg sync.WaitGroup
		for _, st := range []*flow{e.store, replica} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if n, err := st.SettleStranded(e.ctx); err != nil || n != 0 {
					t.Errorf("second pass = %d, %v", n, err)
				}
			}()
		}
		wg.Wait()
		if e.proc.chargesFor(p.ID) != 1 || e.proc.chargesFor(q.ID) != 1 {
			t.Fatal("charged twice")
		}

		// Once the old customer's card has expired, their next payment is incomplete; that card
		// predates it, so the sweep leaves it for a method added later.
		e.clock.Set(time.Date(cardExpYear+1, time.February, 1, 12, 0, 0, 0, time.UTC))
		waiting := e.pay(t, old.ID, 1000)
		if waiting.Status != PaymentIncomplete {
			t.Fatalf("payment with only an expired card = %s", waiting.Status)
		}
		if n, err := e.store.SettleStranded(e.ctx); err != nil || n != 0 {
			t.Fatalf("SettleStranded with nothing new = %d, %v", n, err)
		}
	})
}

func TestFailedPaymentRetry(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		bad := e.addMethod(t, c.ID, card("4000000000009995"))
		p := e.pay(t, c.ID, 2500)
		if p.Status != PaymentFailed || p.FailureCode != payments.CodeInsufficientFunds {
			t.Fatalf("payment = %+v", p)
		}
		good := e.addMethod(t, c.ID, card("4242424242424242"))
		// Adding a method does not retry failed payments by itself: a failure is a final answer
		// until someone decides to retry.
		if got := mustPayment(t, e, p.ID); got.Status != PaymentFailed {
			t.Fatalf("failed payment changed to %s", got.Status)
		}
		if _, err := e.store.MakePreferred(e.ctx, c.ID, good.ID); err != nil {
			t.Fatal(err)
		}
		retried, err := e.store.RetryPayment(e.ctx, c.ID, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if retried.Status != PaymentSucceeded || retried.FailureCode != "" || len(retried.Attempts) != 2 ||
			retried.Attempts[0].Outcome != PaymentFailed || retried.Attempts[0].PaymentMethodID != bad.ID ||
			retried.Attempts[1].Outcome != PaymentSucceeded || retried.Attempts[1].PaymentMethodID != good.ID {
			t.Fatalf("retried = %+v", retried)
		}
		if _, err := e.store.RetryPayment(e.ctx, c.ID, p.ID); !errors.Is(err, ErrPaymentState) {
			t.Fatalf("retrying a succeeded payment: %v", err)
		}
		other := e.customer(t, "o@example.com")
		if _, err := e.store.RetryPayment(e.ctx, other.ID, p.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("retry by another customer: %v", err)
		}
	})
}

func TestRetryWithoutUsableMethodBecomesIncomplete(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4000000000000002"))
		p := e.pay(t, c.ID, 2500)
		if p.Status != PaymentFailed {
			t.Fatalf("status %s", p.Status)
		}
		// The card expires; retrying leaves the payment waiting for a method.
		e.clock.Set(time.Date(cardExpYear+1, time.January, 1, 0, 0, 0, 0, time.UTC))
		got, err := e.store.RetryPayment(e.ctx, c.ID, p.ID)
		if err != nil || got.Status != PaymentIncomplete {
			t.Fatalf("retry = %+v %v", got, err)
		}
		if hooks := e.incompleteHooks(); len(hooks) != 1 || hooks[0].ID != p.ID {
			t.Fatalf("hook calls: %+v", hooks)
		}
		ok := card("4242424242424242")
		ok.Card.ExpYear = cardExpYear + 5
		e.addMethod(t, c.ID, ok)
		if got := mustPayment(t, e, p.ID); got.Status != PaymentSucceeded || len(got.Attempts) != 2 {
			t.Fatalf("after adding a method: %+v", got)
		}
	})
}

func TestExpiredCardIsSkipped(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		soon := card("4242424242424242")
		// Valid when added (the clock starts on 31 January), expired from March on.
		soon.Card.ExpMonth, soon.Card.ExpYear = 2, testStart.Year()
		e.addMethod(t, c.ID, soon)
		e.clock.Set(time.Date(testStart.Year(), time.March, 1, 0, 0, 0, 0, time.UTC))
		if p := e.pay(t, c.ID, 100); p.Status != PaymentIncomplete {
			t.Fatalf("only an expired card: %s", p.Status)
		}
		backup := e.addMethod(t, c.ID, methodIn{Type: payments.MethodCVU, Account: "0000003110000000123456"})
		p := e.pay(t, c.ID, 100)
		if p.Status != PaymentSucceeded || p.PaymentMethodID != backup.ID {
			t.Fatalf("with a usable second method: %+v", p)
		}
	})
}

func TestGetPaymentIsScopedByCustomer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		other := e.customer(t, "o@example.com")
		p := e.pay(t, c.ID, 100)
		if _, err := e.store.GetPaymentForCustomer(e.ctx, other.ID, p.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another customer's payment: %v", err)
		}
		if _, err := e.store.GetPaymentForCustomer(e.ctx, "", p.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("empty customer scope: %v", err)
		}
		if got, err := e.store.GetPaymentForCustomer(e.ctx, c.ID, p.ID); err != nil || got.ID != p.ID {
			t.Fatalf("own payment: %v", err)
		}
		if got, err := e.store.GetPayment(e.ctx, p.ID); err != nil || got.CustomerID != c.ID {
			t.Fatalf("merchant scope: %v", err)
		}
		if ps := mustPayments(t, e, ListPaymentsParams{CustomerID: other.ID}); len(ps) != 0 {
			t.Fatalf("other customer's list has %d payments", len(ps))
		}
	})
}

func TestListPaymentsPagination(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		other := e.customer(t, "o@example.com")
		var created []string
		for i := 0; i < 5; i++ {
			e.clock.Advance(time.Minute)
			created = append(created, e.pay(t, c.ID, int64(100+i)).ID)
			e.pay(t, other.ID, 1)
		}
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodQR}) // makes them pending
		var got []string
		cur := ""
		for {
			page, err := e.store.ListPayments(e.ctx, ListPaymentsParams{CustomerID: c.ID, Limit: 2, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.Items {
				if p.CustomerID != c.ID || p.Attempts != nil {
					t.Fatalf("listed %+v", p)
				}
				got = append(got, p.ID)
			}
			if cur = page.NextCursor; cur == "" {
				break
			}
		}
		// Newest first.
		want := []string{created[4], created[3], created[2], created[1], created[0]}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("order %v, want %v", got, want)
		}
		pending := mustPayments(t, e, ListPaymentsParams{Status: PaymentPending})
		incomplete := mustPayments(t, e, ListPaymentsParams{Status: PaymentIncomplete})
		if len(pending) != 5 || len(incomplete) != 5 {
			t.Fatalf("by status: %d pending, %d incomplete", len(pending), len(incomplete))
		}
	})
}

func TestChargeHoldsNoLock(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		entered := make(chan struct{})
		release := make(chan struct{})
		e.proc.setBeforeCharge(func(payments.ChargeRequest) error {
			close(entered)
			<-release
			return nil
		})
		done := make(chan Payment)
		go func() {
			p, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS})
			if err != nil {
				t.Error(err)
			}
			done <- p
		}()
		<-entered
		// While the processor is busy, the same customer's data can be written: the charge
		// runs outside every transaction and lock. If it did not, this would block until the
		// deadline.
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		name := "Busy"
		if _, err := e.store.UpdateCustomer(ctx, c.ID, CustomerUpdate{Name: &name}); err != nil {
			t.Fatalf("write during a charge: %v", err)
		}
		e.proc.setBeforeCharge(nil)
		close(release)
		if p := <-done; p.Status != PaymentSucceeded {
			t.Fatalf("payment = %+v", p)
		}
	})
}

func TestUnknownOutcomeIsRecoveredWithSameKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		e.proc.setBeforeCharge(func(payments.ChargeRequest) error { return errors.New("connection reset by peer") })
		p := e.pay(t, c.ID, 100)
		if p.Status != PaymentProcessing {
			t.Fatalf("payment with unknown outcome = %s", p.Status)
		}
		e.proc.setBeforeCharge(nil)
		// Not stale yet: nothing to recover.
		if n, err := e.store.RecoverProcessing(e.ctx, 5*time.Minute); err != nil || n != 0 {
			t.Fatalf("early recover = %d, %v", n, err)
		}
		e.clock.Advance(10 * time.Minute)
		n, err := e.store.RecoverProcessing(e.ctx, 5*time.Minute)
		if err != nil || n != 1 {
			t.Fatalf("recover = %d, %v", n, err)
		}
		if got := mustPayment(t, e, p.ID); got.Status != PaymentSucceeded || len(got.Attempts) != 1 {
			t.Fatalf("recovered = %+v", got)
		}
		e.proc.mu.Lock()
		sameKey := e.proc.keys[p.ID+"/1"]
		e.proc.mu.Unlock()
		if sameKey != 2 {
			t.Fatalf("re-drive did not reuse the attempt's idempotency key (%d calls with it)", sameKey)
		}
		if n, err := e.store.RecoverProcessing(e.ctx, 0); err != nil || n != 0 {
			t.Fatalf("second recover = %d, %v", n, err)
		}
	})
}

func TestClaimedChargeSurvivesCanceledRequest(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "c@example.com")
		p := e.pay(t, c.ID, 100)
		ctx, cancel := context.WithCancel(e.ctx)
		// The customer closes the tab while the processor is being called.
		e.proc.setBeforeCharge(func(payments.ChargeRequest) error {
			cancel()
			return nil
		})
		if _, err := e.store.AddPaymentMethod(ctx, c.ID, card("4242424242424242")); err != nil {
			t.Fatal(err)
		}
		if got := mustPayment(t, e, p.ID); got.Status != PaymentSucceeded {
			t.Fatalf("payment after canceled request: %s", got.Status)
		}
		// The same for a merchant request canceled while its own payment is being charged.
		ctx, cancel = context.WithCancel(e.ctx)
		defer cancel()
		got, err := e.store.CreatePayment(ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS})
		if err != nil || got.Status != PaymentSucceeded {
			t.Fatalf("CreatePayment with canceled request: %+v %v", got, err)
		}
	})
}

// Summaries are the full listing with only the listed fields kept, page for page, whatever the
// filters, and their cursors work for either.
func TestListPaymentSummaries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "s@example.com")
		for i := 0; i < 4; i++ {
			e.clock.Advance(time.Minute)
			e.pay(t, c.ID, int64(100+i))
		}
		e.addMethod(t, c.ID, methodIn{Type: payments.MethodQR}) // makes them pending
		for i := 0; i < 3; i++ {
			e.clock.Advance(time.Minute)
			e.pay(t, c.ID, int64(200+i))
		}
		summary := func(p Payment) Payment {
			return Payment{ID: p.ID, CustomerID: p.CustomerID, Amount: p.Amount, Currency: p.Currency, Description: p.Description,
				MethodType: p.MethodType, MethodSummary: p.MethodSummary, Status: p.Status, CreatedAt: p.CreatedAt}
		}
		for _, params := range []ListPaymentsParams{
			{CustomerID: c.ID, Limit: 3},
			{CustomerID: c.ID, Statuses: []PaymentStatus{PaymentIncomplete, PaymentFailed, PaymentPending}, Limit: 2},
			{Status: PaymentPending, Limit: 10},
		} {
			cur := ""
			for n := 0; ; n++ {
				params.Cursor = cur
				full, err := e.store.ListPayments(e.ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				brief, err := e.store.ListPaymentSummaries(e.ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				if len(full.Items) == 0 && n == 0 {
					t.Fatalf("%+v lists nothing", params)
				}
				if len(brief.Items) != len(full.Items) || brief.NextCursor != full.NextCursor {
					t.Fatalf("%+v: %d items (next %q), want %d (next %q)", params, len(brief.Items), brief.NextCursor, len(full.Items), full.NextCursor)
				}
				for i := range full.Items {
					if want := summary(full.Items[i]); !reflect.DeepEqual(brief.Items[i], want) {
						t.Fatalf("summary\n%+v\nwant\n%+v", brief.Items[i], want)
					}
				}
				if cur = full.NextCursor; cur == "" {
					break
				}
			}
		}
	})
}
