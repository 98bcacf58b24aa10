package stripe_test

import (
	"net/http"
	"testing"
	"time"

	stripelib "github.com/stripe/stripe-go/v84"

	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/processortest"
	"github.com/portero-dev/portero/portal/payments/stripe"
)

const (
	testSecretKey     = "sk_test_PorteroContract0123456789"
	testWebhookSecret = "whsec_PorteroContract0123456789"
)

// newAdapter returns an adapter against base. The library's own retries are off: they repeat
// the same key and would answer a lost charge themselves, hiding the re-drive the contract
// shows (TestLibraryRetryReplayedKey shows them).
func newAdapter(t testing.TB, base string) *stripe.Adapter {
	t.Helper()
	a, err := stripe.New(stripe.Options{SecretKey: testSecretKey, WebhookSecret: testWebhookSecret, APIBase: base,
		MaxNetworkRetries: stripelib.Int64(0), HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// processor plays Stripe's side for the contract suite, on the replaying fake.
type processor struct {
	f *fakeStripe
	a *stripe.Adapter
}

func (p processor) Adapter() payments.Adapter { return p.a }

func (p processor) TestCard() payments.CardDetails {
	panic("Stripe takes cards on its own pages only")
}

func (p processor) CompleteHostedSetup(_ *testing.T, s payments.SetupSession) string {
	return p.f.completeSession(s.Reference)
}

func (p processor) NextCharge(t *testing.T, f processortest.Fault) {
	switch f {
	case processortest.Decline:
		p.f.inject(faultDecline)
	case processortest.RequiresAction:
		p.f.inject(faultRequiresAction)
	case processortest.TimeoutAfterCollect:
		p.f.inject(faultTimeoutAfterCollect)
	case processortest.ServerError:
		p.f.inject(faultServerError)
	default:
		t.Fatalf("unknown fault %d", f)
	}
}

func (p processor) CustomerAuthenticates(t *testing.T, redirectURL string) {
	p.f.authenticate(t, redirectURL)
}

func (p processor) Collected(*testing.T) int { return p.f.Collected() }

func (p processor) RemoveAtProcessor(_ *testing.T, m payments.Method) (http.Header, []byte) {
	return p.f.event("payment_method.detached", p.f.detach(m.ProcessorID), time.Now())
}

func (p processor) ChargeEvent(t *testing.T, typ payments.EventType, key string) (http.Header, []byte) {
	pi := p.f.paymentIntentByKey(key)
	if pi == nil {
		t.Fatalf("no PaymentIntent for %s", key)
	}
	name := map[payments.EventType]string{
		payments.EventChargeSucceeded:      "payment_intent.succeeded",
		payments.EventChargeFailed:         "payment_intent.payment_failed",
		payments.EventChargeRequiresAction: "payment_intent.requires_action",
	}[typ]
	return p.f.event(name, pi, time.Now())
}

// TestContractReplayed runs the processor contract against Stripe's API as the fake replays it
// (every request checked by stripe-mock against Stripe's spec first).
func TestContractReplayed(t *testing.T) {
	processortest.Run(t, func(t *testing.T) processortest.Processor {
		f := newFake(t, false)
		return processor{f: f, a: newAdapter(t, f.URL())}
	})
}
