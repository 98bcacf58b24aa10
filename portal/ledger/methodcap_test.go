package ledger

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portero-dev/portero/portal/payments"
)

// tokenizeCounter counts the cards that reach the processor.
type tokenizeCounter struct {
	*countingProcessor
	n atomic.Int64
}

func (c *tokenizeCounter) TokenizeCard(ctx context.Context, d payments.CardDetails) (payments.TokenizedCard, error) {
	c.n.Add(1)
	return c.countingProcessor.TokenizeCard(ctx, d)
}

// A customer cannot keep more methods than the limit; at the limit a card does not even reach
// the processor (or the add form would still serve to test cards), and a removal frees a place.
func TestPaymentMethodLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		proc := &tokenizeCounter{countingProcessor: e.proc}
		st, err := Open(e.ctx, e.dsn, Options{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s := newFlow(st, proc, nil)
		c := e.customer(t, "cap@example.com")
		capped := func(in methodIn) methodIn { in.Limit = 3; return in }
		var added []PaymentMethod
		for _, in := range []methodIn{card("4242424242424242"), {Type: payments.MethodBankTransfer}, card("5555555555554444")} {
			m, err := s.AddPaymentMethod(e.ctx, c.ID, capped(in))
			if err != nil {
				t.Fatalf("add within the limit: %v", err)
			}
			added = append(added, m)
		}
		before := proc.n.Load()
		_, err = s.AddPaymentMethod(e.ctx, c.ID, capped(card("4000056655665556")))
		var le *Error
		if !errors.Is(err, ErrPaymentMethodLimit) || !errors.As(err, &le) || le.Kind != KindConflict || le.Limit != 3 {
			t.Fatalf("fourth method: err = %v, want %s with limit 3", err, CodePaymentMethodLimit)
		}
		if got := le.Message("es"); got != "Ya hay 3 medios de pago guardados, el máximo que permite este portal; quitá uno para agregar otro." {
			t.Errorf("Spanish message = %q", got)
		}
		if got := le.Message("en"); got != "There are already 3 saved payment methods, the most this portal allows; remove one to add another." {
			t.Errorf("English message = %q", got)
		}
		if n := proc.n.Load() - before; n != 0 {
			t.Fatalf("a card over the limit reached the processor %d times", n)
		}
		if ms := mustMethods(t, e, c.ID); len(ms) != 3 {
			t.Fatalf("%d methods after a refused add, want 3", len(ms))
		}
		// Without a limit (the merchant's own tools, benchmarks) nothing is capped.
		if _, err := s.AddPaymentMethod(e.ctx, c.ID, methodIn{Type: payments.MethodQR}); err != nil {
			t.Fatalf("add without a limit: %v", err)
		}
		// A limit lowered below what the customer has keeps the methods and refuses new ones.
		if _, err := s.AddPaymentMethod(e.ctx, c.ID, capped(methodIn{Type: payments.MethodQR})); !errors.Is(err, ErrPaymentMethodLimit) {
			t.Fatalf("add above a lowered limit: err = %v", err)
		}
		if ms := mustMethods(t, e, c.ID); len(ms) != 4 {
			t.Fatalf("%d methods, want the 4 saved", len(ms))
		}
		// Removing two frees one place under the limit of 3.
		for _, m := range added[:2] {
			if err := s.RemovePaymentMethod(e.ctx, c.ID, m.ID); err != nil {
				t.Fatal(err)
			}
		}
		m, err := s.AddPaymentMethod(e.ctx, c.ID, capped(card("4000056655665556")))
		if err != nil {
			t.Fatalf("add after a removal: %v", err)
		}
		ms := mustMethods(t, e, c.ID)
		if len(ms) != 3 || ms[2].ID != m.ID {
			t.Fatalf("after the removal and add: %d methods, last %s", len(ms), ms[len(ms)-1].ID)
		}
		assertPositions(t, ms)
	})
}

// barrierProcessor holds every card at the processor until n have arrived, so every add in a
// race has passed the early count before any of them writes.
type barrierProcessor struct {
	*countingProcessor
	arrive sync.WaitGroup
}

func (b *barrierProcessor) TokenizeCard(ctx context.Context, d payments.CardDetails) (payments.TokenizedCard, error) {
	b.arrive.Done()
	b.arrive.Wait()
	return b.countingProcessor.TokenizeCard(ctx, d)
}

// Adds racing at the limit, on two replicas of the same database: the count that decides is
// taken under the customer's lock, so exactly as many succeed as there are places left.
func TestConcurrentAddsStopAtTheLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		const limit, have, workers = 5, 3, 20
		proc := &barrierProcessor{countingProcessor: e.proc}
		proc.arrive.Add(workers)
		var replicas []*flow
		for range 2 {
			s, err := Open(e.ctx, e.dsn, Options{Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			replicas = append(replicas, newFlow(s, proc, nil))
		}
		c := e.customer(t, "race-cap@example.com")
		for i := 0; i < have; i++ {
			e.addMethod(t, c.ID, methodIn{Type: payments.MethodBankTransfer})
		}
		var wg sync.WaitGroup
		var ok, refused atomic.Int64
		start := make(chan struct{})
		errs := make(chan error, workers)
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := replicas[i%2]
				in := card("4242424242424242")
				in.Limit = limit
				<-start
				_, err := s.AddPaymentMethod(e.ctx, c.ID, in)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrPaymentMethodLimit):
					refused.Add(1)
				default:
					errs <- err
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("AddPaymentMethod: %v", err)
		}
		if ok.Load() != limit-have || refused.Load() != workers-(limit-have) {
			t.Fatalf("%d adds succeeded and %d were refused; want %d and %d", ok.Load(), refused.Load(), limit-have, workers-(limit-have))
		}
		ms := mustMethods(t, e, c.ID)
		if len(ms) != limit {
			t.Fatalf("%d methods stored, limit %d", len(ms), limit)
		}
		assertPositions(t, ms)
	})
}
