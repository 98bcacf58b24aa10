package ledger

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// paymentEvents lists the payment's events, in the log's order (oldest first), as type/source.
func paymentEvents(t *testing.T, e *env, paymentID string) []string {
	t.Helper()
	page, err := e.store.ListEvents(e.ctx, ListEventsParams{Limit: MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range page.Items {
		if ev.ObjectID == paymentID {
			out = append(out, ev.Type+"/"+string(ev.Source))
		}
	}
	return out
}

// A charge the bank wants authenticated waits for the customer (requires_action, its event and
// hook), is left alone by the sweep of lost answers, and is recorded succeeded exactly once
// whether the customer's return or a webhook says so first; a late answer about a finished
// attempt changes nothing.
func TestRecorderAuthenticationIsRecordedOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		c := e.customer(t, "sca@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		e.proc.InjectFault(sandbox.FaultRequiresAction)
		before := e.proc.Collected()
		p := e.pay(t, c.ID, 5000)
		if p.Status != PaymentRequiresAction || !p.Due() || len(p.Attempts) != 1 || p.Attempts[0].Outcome != PaymentRequiresAction {
			t.Fatalf("payment = %+v, want requires_action and due", p)
		}
		e.clock.Advance(time.Hour)
		if n, err := e.store.drv.Redrive(ctx, 5*time.Minute); err != nil || n != 0 {
			t.Fatalf("Redrive = %d, %v: a payment waiting for the customer is not re-driven", n, err)
		}
		to, _, err := e.store.drv.Authenticate(ctx, c.ID, p.ID, "https://portal.example/payments/"+p.ID+"/authenticated")
		if err != nil || to == "" {
			t.Fatalf("Authenticate = %q, %v", to, err)
		}
		for i := 0; i < 2; i++ { // the return, then a reload
			if _, err := e.store.drv.FinishAuthentication(ctx, c.ID, p.ID); err != nil {
				t.Fatal(err)
			}
		}
		a, err := e.store.FindAttempt(ctx, charging.AttemptRef{PaymentID: p.ID})
		if err != nil {
			t.Fatal(err)
		}
		h, b := e.proc.SignEvent(payments.Event{Type: payments.EventChargeSucceeded, Reference: a.Reference, IdempotencyKey: a.IdempotencyKey()})
		for i := 0; i < 2; i++ {
			if _, err := e.store.drv.HandleWebhook(WithSource(ctx, SourceProcessor), h, b); err != nil {
				t.Fatalf("webhook: %v", err)
			}
		}
		// An answer about the finished attempt, arriving late, is not recorded.
		if changed, err := e.store.RecordResult(ctx, a, payments.ChargeResult{Status: payments.ChargeFailed,
			Failure: &payments.Error{Code: payments.CodeCardDeclined}}); err != nil || changed {
			t.Fatalf("a late failure = %v, %v: want nothing changed", changed, err)
		}
		got := mustPayment(t, e, p.ID)
		if got.Status != PaymentSucceeded || len(got.Attempts) != 1 || got.Attempts[0].Outcome != PaymentSucceeded {
			t.Fatalf("payment after authenticating = %+v", got)
		}
		if n := e.proc.Collected() - before; n != 1 {
			t.Fatalf("money moved %d times, want once", n)
		}
		want := []string{"payment.created/merchant_api", "payment.requires_action/merchant_api", "payment.succeeded/merchant_api"}
		if evs := paymentEvents(t, e, p.ID); !slices.Equal(evs, want) {
			t.Fatalf("events = %v, want %v", evs, want)
		}
		e.hookMu.Lock()
		var updates []PaymentStatus
		for _, u := range e.updated {
			if u.ID == p.ID {
				updates = append(updates, u.Status)
			}
		}
		e.hookMu.Unlock()
		if !slices.Equal(updates, []PaymentStatus{PaymentRequiresAction, PaymentSucceeded}) {
			t.Fatalf("PaymentUpdated hooks = %v", updates)
		}
	})
}

// A charge whose answer was lost (the processor collected, then timed out) stays processing;
// once stale it is re-driven with the same key and recorded once, and a webhook that arrives
// after records nothing more. A webhook about a method removed at the processor removes it from
// its customer's list once, recorded as the processor's doing.
func TestRecorderLostAnswersAndProcessorWebhooks(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		c := e.customer(t, "lost@example.com")
		m := e.addMethod(t, c.ID, card("4242424242424242"))
		e.proc.InjectFault(sandbox.FaultTimeoutAfterCollect)
		before := e.proc.Collected()
		p := e.pay(t, c.ID, 7000)
		if p.Status != PaymentProcessing {
			t.Fatalf("payment %s, want processing", p.Status)
		}
		e.clock.Advance(10 * time.Minute)
		if n, err := e.store.drv.Redrive(ctx, 5*time.Minute); err != nil || n != 1 {
			t.Fatalf("Redrive = %d, %v", n, err)
		}
		a, err := e.store.FindAttempt(ctx, charging.AttemptRef{IdempotencyKey: p.ID + "/1"})
		if err != nil || a.Status != charging.AttemptSucceeded || a.Processor != e.proc.Type() {
			t.Fatalf("FindAttempt by key = %+v, %v", a, err)
		}
		if byRef, err := e.store.FindAttempt(ctx, charging.AttemptRef{Reference: a.Reference}); err != nil || byRef.PaymentID != p.ID {
			t.Fatalf("FindAttempt by reference = %+v, %v", byRef, err)
		}
		h, b := e.proc.SignEvent(payments.Event{Type: payments.EventChargeSucceeded, Reference: a.Reference, IdempotencyKey: a.IdempotencyKey()})
		if _, err := e.store.drv.HandleWebhook(ctx, h, b); err != nil {
			t.Fatal(err)
		}
		if got := mustPayment(t, e, p.ID); got.Status != PaymentSucceeded || len(got.Attempts) != 1 || e.proc.Collected()-before != 1 {
			t.Fatalf("payment %s with %d attempts, collected %d times", got.Status, len(got.Attempts), e.proc.Collected()-before)
		}

		h, b = e.proc.DetachAtProcessor(m.Card.Token)
		pctx := WithSource(ctx, SourceProcessor)
		for i := 0; i < 2; i++ {
			_, outcome, err := e.store.drv.Webhook(pctx, h, b)
			want := charging.WebhookHandled
			if i == 1 {
				want = charging.WebhookDuplicate
			}
			if err != nil || outcome != want {
				t.Fatalf("delivery %d: %s, %v; want %s", i, outcome, err, want)
			}
		}
		if ms := mustMethods(t, e, c.ID); len(ms) != 0 {
			t.Fatalf("methods after the processor removed the card: %+v", ms)
		}
		page, err := e.store.ListEvents(ctx, ListEventsParams{Type: EventPaymentMethodRemoved, Limit: MaxPageSize})
		if err != nil || len(page.Items) != 1 || page.Items[0].Source != SourceProcessor {
			t.Fatalf("removal events = %+v, %v: want one, the processor's", page.Items, err)
		}
	})
}

// Processor identities are kept per processor: a card the sandbox holds is never claimed for
// another processor (the portal switched), a method no processor holds is; customers' ids at
// each processor are separate, and the first stored wins.
func TestRecorderKeepsProcessorsApart(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		c := e.customer(t, "switch@example.com")
		e.addMethod(t, c.ID, card("4242424242424242"))
		p, _, err := e.store.Store.CreatePayment(ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS, Processor: payments.ProcessorStripe})
		if err != nil || p.Status != PaymentIncomplete {
			t.Fatalf("a payment for Stripe with only a sandbox card: %+v, %v; want incomplete", p, err)
		}
		if atts, err := e.store.ClaimIncomplete(ctx, payments.ProcessorStripe, c.ID); err != nil || len(atts) != 0 {
			t.Fatalf("Stripe claimed %v, %v", atts, err)
		}
		if _, err := e.store.Store.AddPaymentMethod(ctx, c.ID, NewPaymentMethod{Type: payments.MethodBankTransfer}); err != nil {
			t.Fatal(err)
		}
		atts, err := e.store.ClaimIncomplete(ctx, payments.ProcessorStripe, c.ID)
		if err != nil || len(atts) != 1 || atts[0].Processor != payments.ProcessorStripe || atts[0].Method.Type != payments.MethodBankTransfer {
			t.Fatalf("claims = %+v, %v: want the transfer, for Stripe", atts, err)
		}
		if again, err := e.store.ClaimIncomplete(ctx, payments.ProcessorStripe, c.ID); err != nil || len(again) != 0 {
			t.Fatalf("claimed twice: %+v, %v", again, err)
		}
		// The driver of another processor does not charge an attempt that is not its own.
		if _, err := e.store.drv.Charge(ctx, atts[0]); err != nil {
			t.Fatal(err)
		}
		if got := mustPayment(t, e, p.ID); got.Status != PaymentProcessing {
			t.Fatalf("the sandbox charged Stripe's attempt: %s", got.Status)
		}

		for _, tt := range []struct {
			proc      payments.ProcessorType
			set, want string
		}{
			{payments.ProcessorStripe, "cus_stripe_1", "cus_stripe_1"},
			{payments.ProcessorStripe, "cus_stripe_2", "cus_stripe_1"}, // the first writer wins
			{payments.ProcessorSandbox, "scus_1", "scus_1"},
		} {
			got, err := e.store.SetProcessorCustomer(ctx, tt.proc, c.ID, tt.set)
			if err != nil || got != tt.want {
				t.Fatalf("SetProcessorCustomer(%s, %s) = %q, %v; want %q", tt.proc, tt.set, got, err, tt.want)
			}
		}
		other := e.customer(t, "other@example.com")
		if _, err := e.store.SetProcessorCustomer(ctx, payments.ProcessorStripe, other.ID, "cus_stripe_1"); err == nil {
			t.Fatal("two customers share one Stripe customer")
		}
		// One processor handle is one method: adding it again returns it, another customer's is refused.
		mp := payments.Method{Type: payments.MethodCard, ProcessorID: "pm_shared", Brand: payments.BrandVisa, Last4: "4242", ExpMonth: 1, ExpYear: cardExpYear}
		id1, added, err := e.store.AddMethod(ctx, c.ID, payments.ProcessorStripe, mp)
		if err != nil || !added {
			t.Fatalf("AddMethod = %s, %v, %v", id1, added, err)
		}
		if id2, added, err := e.store.AddMethod(ctx, c.ID, payments.ProcessorStripe, mp); err != nil || added || id2 != id1 {
			t.Fatalf("AddMethod again = %s, %v, %v; want %s unchanged", id2, added, err, id1)
		}
		if _, _, err := e.store.AddMethod(ctx, other.ID, payments.ProcessorStripe, mp); CodeOf(err) != payments.CodePaymentMethodInUse {
			t.Fatalf("another customer's processor method: %v", err)
		}
		if seen, err := e.store.EventSeen(ctx, payments.ProcessorStripe, "evt_1"); err != nil || seen {
			t.Fatal("an event seen before it was marked")
		}
		for i := 0; i < 2; i++ {
			if err := e.store.MarkEvent(ctx, payments.ProcessorStripe, "evt_1", "payment_intent.succeeded"); err != nil {
				t.Fatal(err)
			}
		}
		if seen, _ := e.store.EventSeen(ctx, payments.ProcessorStripe, "evt_1"); !seen {
			t.Fatal("a marked event is not seen")
		}
		if seen, _ := e.store.EventSeen(ctx, payments.ProcessorSandbox, "evt_1"); seen {
			t.Fatal("events are kept per processor")
		}
	})
}
