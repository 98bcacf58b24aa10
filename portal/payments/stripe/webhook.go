package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v84/webhook"

	"github.com/portero-dev/portero/portal/payments"
)

// SignatureHeader is the header Stripe signs webhooks in.
const SignatureHeader = "Stripe-Signature"

// WebhookTolerance bounds how old (and, here, how far in the future) a webhook's signed
// timestamp may be.
const WebhookTolerance = 5 * time.Minute

// ParseWebhook implements payments.Adapter with the library's signature check
// (webhook.ConstructEventWithOptions: HMAC-SHA256 over the raw body, constant-time compare,
// 5-minute tolerance) plus a bound on future timestamps against the adapter's clock, which the
// library does not check.
//
// API versions: the library refuses events whose API version is of another release train
// than its own (clover) because it would decode their objects into its structs. The adapter
// accepts them (IgnoreAPIVersionMismatch) on purpose: it reads only fields that every version
// shares — the event's id and type, and the object's id, mode, customer and metadata — and
// never an event's snapshot of a charge, which the driver looks up at the adapter's pinned
// version. So a webhook endpoint left on the account's default version, or stripe-mock's and
// the CLI's test events (dahlia), work; refusing them would make Stripe retry for three days
// and then give up on events that were fine.
func (a *Adapter) ParseWebhook(header http.Header, body []byte) (payments.Event, error) {
	sig := header.Get(SignatureHeader)
	if err := a.checkTimestamp(sig); err != nil {
		return payments.Event{}, err
	}
	ev, err := webhook.ConstructEventWithOptions(body, sig, a.webhookSecret, webhook.ConstructEventOptions{
		Tolerance:                WebhookTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	switch {
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader),
		errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrTooOld):
		return payments.Event{}, fmt.Errorf("stripe webhook: %s: %w", err, payments.ErrWebhookSignature)
	case err != nil:
		return payments.Event{}, errors.New("stripe webhook: the signed body is not an event")
	case ev.ID == "" || ev.Data == nil:
		return payments.Event{}, errors.New("stripe webhook: the event has no id or data")
	}
	var obj struct {
		ID                string            `json:"id"`
		Object            string            `json:"object"`
		Mode              string            `json:"mode"`
		Customer          json.RawMessage   `json:"customer"`
		ClientReferenceID string            `json:"client_reference_id"`
		Metadata          map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(ev.Data.Raw, &obj); err != nil {
		return payments.Event{}, errors.New("stripe webhook: the event's object is not an object")
	}
	out := payments.Event{ID: ev.ID, Type: payments.EventIgnored, ProcessorEventType: string(ev.Type),
		Reference: obj.ID, Customer: rawID(obj.Customer), PorteroCustomer: obj.Metadata[metaCustomer]}
	switch ev.Type {
	case "checkout.session.completed":
		if obj.Mode == "setup" {
			out.Type = payments.EventSetupSucceeded
			if out.PorteroCustomer == "" {
				out.PorteroCustomer = obj.ClientReferenceID
			}
		}
	case "setup_intent.succeeded":
		if out.PorteroCustomer != "" { // only set-ups Portero started
			out.Type = payments.EventSetupSucceeded
		}
	case "payment_intent.succeeded":
		out.Type = payments.EventChargeSucceeded
	case "payment_intent.payment_failed":
		out.Type = payments.EventChargeFailed
	case "payment_intent.requires_action":
		out.Type = payments.EventChargeRequiresAction
	case "payment_method.detached":
		out.Type, out.MethodID = payments.EventMethodDetached, obj.ID
	}
	if strings.HasPrefix(string(ev.Type), "payment_intent.") {
		out.IdempotencyKey = obj.Metadata[metaAttempt]
	}
	return out, nil
}

// checkTimestamp refuses a signature timestamp more than the tolerance ahead of the adapter's
// clock; the library refuses those too far behind.
func (a *Adapter) checkTimestamp(sig string) error {
	for _, part := range strings.Split(sig, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			unix, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("stripe webhook: malformed timestamp: %w", payments.ErrWebhookSignature)
			}
			if d := time.Unix(unix, 0).Sub(a.now()); d > WebhookTolerance {
				return fmt.Errorf("stripe webhook: timestamp %s ahead: %w", d.Round(time.Second), payments.ErrWebhookSignature)
			}
			return nil
		}
	}
	return fmt.Errorf("stripe webhook: no signed timestamp: %w", payments.ErrWebhookSignature)
}

// rawID reads an expandable field: an id string, or an object with an id.
func rawID(raw json.RawMessage) string {
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var obj struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &obj)
	return obj.ID
}
