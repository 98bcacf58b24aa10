package charging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/portero-dev/portero/portal/payments"
)

// MaxWebhookBody bounds a processor webhook's body; Stripe's events are well under it.
const MaxWebhookBody = 1 << 20

// WebhookOutcome is what became of one processor webhook request, for metrics and logs.
type WebhookOutcome string

// Webhook outcomes.
const (
	// WebhookHandled: a new event was acted on (answered 200).
	WebhookHandled WebhookOutcome = "handled"
	// WebhookDuplicate: the event was handled before; nothing changed (200).
	WebhookDuplicate WebhookOutcome = "duplicate"
	// WebhookIgnored: a verified event Portero does not act on (200).
	WebhookIgnored WebhookOutcome = "ignored"
	// WebhookBadSignature: the signature or its timestamp did not verify (400).
	WebhookBadSignature WebhookOutcome = "bad_signature"
	// WebhookMalformed: not a readable event (400).
	WebhookMalformed WebhookOutcome = "malformed"
	// WebhookFailed: it could not be handled now; the processor delivers it again (500).
	WebhookFailed WebhookOutcome = "failed"
)

// HandleWebhook verifies a processor webhook, skips it if its event was handled already, and
// acts on it. An error matching payments.ErrWebhookSignature means the request is not the
// processor's (answer 400); any other error means it could not be handled now and the processor
// should deliver it again (answer 500).
func (d *Driver) HandleWebhook(ctx context.Context, header http.Header, body []byte) (payments.Event, error) {
	ev, _, err := d.Webhook(ctx, header, body)
	return ev, err
}

// Webhook is HandleWebhook that also says what became of the request.
func (d *Driver) Webhook(ctx context.Context, header http.Header, body []byte) (payments.Event, WebhookOutcome, error) {
	ev, err := d.adapter.ParseWebhook(header, body)
	switch {
	case errors.Is(err, payments.ErrWebhookSignature):
		return payments.Event{}, WebhookBadSignature, err
	case err != nil:
		return payments.Event{}, WebhookMalformed, err
	case ev.Type == payments.EventIgnored:
		return ev, WebhookIgnored, nil
	}
	// Whatever the event does, it is done to the end once started.
	ctx = context.WithoutCancel(ctx)
	seen, err := d.rec.EventSeen(ctx, d.adapter.Type(), ev.ID)
	if err != nil {
		return ev, WebhookFailed, fmt.Errorf("look up event %s: %w", ev.ID, err)
	}
	if seen {
		d.log.Debug("processor event delivered again; skipped", "event", ev.ID, "type", ev.ProcessorEventType)
		return ev, WebhookDuplicate, nil
	}
	if err := d.apply(ctx, ev); err != nil {
		return ev, WebhookFailed, fmt.Errorf("handle event %s (%s): %w", ev.ID, ev.ProcessorEventType, err)
	}
	if err := d.rec.MarkEvent(ctx, d.adapter.Type(), ev.ID, ev.ProcessorEventType); err != nil {
		return ev, WebhookFailed, fmt.Errorf("mark event %s handled: %w", ev.ID, err)
	}
	d.log.Info("processor event handled", "event", ev.ID, "type", ev.ProcessorEventType)
	return ev, WebhookHandled, nil
}

func (d *Driver) apply(ctx context.Context, ev payments.Event) error {
	switch ev.Type {
	case payments.EventSetupSucceeded:
		return d.applySetup(ctx, ev)
	case payments.EventChargeSucceeded, payments.EventChargeFailed, payments.EventChargeRequiresAction:
		return d.applyCharge(ctx, ev)
	case payments.EventMethodDetached:
		customer, removed, err := d.rec.RemoveProcessorMethod(ctx, d.adapter.Type(), ev.MethodID)
		if err != nil {
			return fmt.Errorf("remove detached method: %w", err)
		}
		if removed {
			d.log.Info("payment method removed at the processor", "customer", customer)
		}
	}
	return nil
}

// applySetup adds the method of a set-up the customer finished but never came back from (they
// closed the tab at the processor's page). The set-up is checked against the customer's
// processor id by the adapter, so an event about someone else's set-up adds nothing.
func (d *Driver) applySetup(ctx context.Context, ev payments.Event) error {
	if ev.PorteroCustomer == "" {
		return nil // a set-up Portero did not start
	}
	c, err := d.rec.Customer(ctx, d.adapter.Type(), ev.PorteroCustomer)
	if errors.Is(err, ErrNotFound) {
		d.log.Warn("set-up event for an unknown customer; ignored", "event", ev.ID)
		return nil
	}
	if err != nil {
		return err
	}
	if c.ProcessorCustomer == "" {
		d.log.Warn("set-up event for a customer without a processor customer; ignored", "event", ev.ID, "customer", c.ID)
		return nil
	}
	m, err := observe(d, "complete_setup", func() (payments.Method, error) {
		return d.adapter.CompleteSetup(ctx, payments.SetupCompletion{Reference: ev.Reference, Customer: c.ProcessorCustomer})
	})
	var pe *payments.Error
	if errors.As(err, &pe) {
		d.log.Warn("set-up event does not complete a set-up; ignored", "event", ev.ID, "customer", c.ID, "code", pe.Code)
		return nil
	}
	if err != nil {
		return err
	}
	_, err = d.addMethod(ctx, c.ID, m)
	return err
}

// applyCharge settles the attempt an event is about from the processor's current state of the
// charge, not from the event's snapshot, so events arriving late or out of order change nothing.
func (d *Driver) applyCharge(ctx context.Context, ev payments.Event) error {
	var a Attempt
	err := ErrNotFound
	if ev.Reference != "" {
		a, err = d.rec.FindAttempt(ctx, AttemptRef{Reference: ev.Reference})
	}
	if errors.Is(err, ErrNotFound) && ev.IdempotencyKey != "" {
		a, err = d.rec.FindAttempt(ctx, AttemptRef{IdempotencyKey: ev.IdempotencyKey})
	}
	if errors.Is(err, ErrNotFound) {
		d.log.Debug("charge event about no attempt of ours; ignored", "event", ev.ID)
		return nil
	}
	if err != nil {
		return err
	}
	if a.Reference == "" {
		// The answer to the charge was lost, so the event is the first word of its reference.
		a.Reference = ev.Reference
	}
	_, err = d.settle(ctx, a)
	return err
}

// WebhookHandler serves a processor's webhooks (mount it at /webhooks/<type>): 200 when the
// event was handled or needs nothing, 400 when the request is not the processor's, 500 when it
// should be delivered again. Neither the body nor the signature is ever logged.
func (d *Driver) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { d.ServeWebhook(w, r) })
}

// ServeWebhook answers one webhook request as WebhookHandler does and reports what became of it
// (the event is zero when the request was not a verified event).
func (d *Driver) ServeWebhook(w http.ResponseWriter, r *http.Request) (payments.Event, WebhookOutcome) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return payments.Event{}, WebhookMalformed
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusBadRequest)
		return payments.Event{}, WebhookMalformed
	}
	ev, outcome, err := d.Webhook(r.Context(), r.Header, body)
	switch outcome {
	case WebhookBadSignature:
		d.log.Warn("processor webhook refused: signature did not verify", "remote", r.RemoteAddr)
		http.Error(w, "signature did not verify", http.StatusBadRequest)
	case WebhookMalformed:
		d.log.Warn("processor webhook refused: not an event", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "not an event", http.StatusBadRequest)
	case WebhookFailed:
		d.log.Error("processor webhook not handled; the processor will deliver it again", "event", ev.ID, "err", err)
		http.Error(w, "not handled; deliver again", http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"received":true}` + "\n"))
	}
	return ev, outcome
}
