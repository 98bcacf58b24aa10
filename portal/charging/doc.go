// Package charging is the one place that drives payment processors. The portal's customer
// pages, the merchant API and the billing loops call a Driver; the Driver calls the portal's
// processor through payments.Adapter and records every outcome through a Recorder (the ledger,
// which only records and never calls out).
//
// What it drives:
//
//   - methods: hosted set-up (StartSetup, then CompleteSetup when the customer returns or the
//     processor's webhook says so), a card typed in the portal's own form on processors
//     without hosted entry (AddCard), a method the merchant created at the processor
//     (AttachProcessorMethod), and removal (RemoveMethod); each addition lets the customer's
//     incomplete payments proceed;
//   - charges: a claimed attempt (Charge), the customer's incomplete payments (SettleIncomplete),
//     attempts whose outcome was lost (Redrive), the customer's authentication of a charge the
//     bank wants confirmed (Authenticate, FinishAuthentication), merchant confirmation of a
//     pending transfer (ConfirmPending);
//   - processor webhooks (HandleWebhook, WebhookHandler): verified, de-duplicated by event id,
//     acted on.
//
// # Exactly once
//
// A payment is collected at most once, and a collected payment is recorded as succeeded once:
//
//  1. Claim before calling. An attempt exists only after the Recorder's conditional update
//     created it (a new attempt on an incomplete or failed payment, or the take-over of a
//     stale one by compare-and-set). Only the holder of the claim calls the processor, and a
//     payment never gets a new attempt while its current one is unfinished.
//  2. One key per attempt. Every processor call about an attempt — the charge, a retry of it,
//     a re-drive, the lookup — carries Attempt.IdempotencyKey (payment id + attempt number).
//     A processor that honours keys (Stripe stores the first response for 24 hours; the
//     sandbox keeps a book) answers a repeated key with the first charge, never a second.
//  3. Unknown stays open. A charge whose answer was lost (timeout, connection reset, 5xx) is
//     not marked failed — that would invite a second attempt with a new key. It stays
//     processing; Redrive first asks the processor what became of the key (LookupCharge) and
//     charges again, with the same key, only when the processor has no record of it.
//  4. First answer wins. RecordResult changes a payment only while the answered attempt is its
//     current one and unfinished, so the synchronous answer, a re-drive, the customer's return
//     from authentication and any number of webhook deliveries, in any order, record one
//     outcome. Webhooks about charges are hints: the driver asks the processor for the charge's
//     state (LookupCharge) rather than trusting the order events arrive in.
//  5. Authentication reuses the charge. A charge the bank wants authenticated stays one charge
//     at the processor (one PaymentIntent at Stripe): the customer confirms that same charge,
//     which can succeed only once, and step 4 records it once.
//  6. Webhooks are de-duplicated by event id, but that is an economy, not the guarantee: every
//     effect of an event is idempotent (AddMethod by processor method id, RemoveProcessorMethod,
//     RecordResult by step 4), so a crash between the effect and MarkEvent only repeats a no-op.
//
// Nothing here logs or returns a credential, a card number or a processor's free-text message:
// refusals are payments.Error codes with Spanish and English messages.
package charging
