package mercadopago_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/mercadopago/mpfake"
	"github.com/portero-dev/portero/portal/payments/processortest"
)

// newFake starts a fake Mercado Pago account for one test.
func newFake(t testing.TB, o mpfake.Options) *mpfake.Fake {
	t.Helper()
	f := mpfake.New(o)
	t.Cleanup(f.Close)
	return f
}

// newAdapter returns an adapter against the fake, with the fake's credentials.
func newAdapter(t testing.TB, f *mpfake.Fake, mutate ...func(*mercadopago.Options)) *mercadopago.Adapter {
	t.Helper()
	o := f.Options()
	opts := mercadopago.Options{AccessToken: o.AccessToken, PublicKey: o.PublicKey, WebhookSecret: o.WebhookSecret,
		APIBase: f.URL(), QRPOS: mpfake.DefaultPOS, HTTPClient: &http.Client{Timeout: 10 * time.Second}}
	for _, m := range mutate {
		m(&opts)
	}
	a, err := mercadopago.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// noViolations fails the test if the adapter sent a request Mercado Pago's reference says it
// would refuse.
func noViolations(t testing.TB, f *mpfake.Fake) {
	t.Helper()
	t.Cleanup(func() {
		if v := f.Violations(); len(v) > 0 {
			t.Errorf("requests Mercado Pago would refuse: %q", v)
		}
	})
}

// processor plays Mercado Pago's side for the contract suite, on the fake.
type processor struct {
	f *mpfake.Fake
	a *mercadopago.Adapter
}

func (p processor) Adapter() payments.Adapter { return p.a }

func (p processor) TestCard() payments.CardDetails {
	panic("Mercado Pago cards are typed in Mercado Pago's fields only")
}

// CompleteHostedSetup plays the customer on the add-card page: the set-up URL is the return
// page in fields mode, where Mercado Pago's fields turn the card into a token (at Mercado
// Pago, with the public key) and the page sends the token back to the return URL.
func (p processor) CompleteHostedSetup(t *testing.T, s payments.SetupSession) string {
	u, err := url.Parse(s.RedirectURL)
	if err != nil || u.Query().Get(mercadopago.FieldsParam) != s.Reference {
		t.Fatalf("set-up URL %q: want the return page with %s=%s", s.RedirectURL, mercadopago.FieldsParam, s.Reference)
	}
	tok, err := p.f.CardToken(mpfake.TestCard{Number: mpfake.Mastercard, Holder: mpfake.Approved})
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del(mercadopago.FieldsParam)
	q.Set(payments.SetupReferenceParam, tok)
	u.RawQuery = q.Encode()
	return u.String()
}

func (p processor) NextCharge(t *testing.T, f processortest.Fault) {
	switch f {
	case processortest.Decline:
		p.f.FailNextPayment(mpfake.Decline)
	case processortest.RequiresAction:
		p.f.FailNextPayment(mpfake.Challenge)
	case processortest.TimeoutAfterCollect:
		p.f.FailNextPayment(mpfake.TimeoutAfterCollect)
	case processortest.ServerError:
		p.f.FailNextPayment(mpfake.ServerError)
	default:
		t.Fatalf("unknown fault %d", f)
	}
}

// CustomerAuthenticates plays the customer on Checkout Pro, where Mercado Pago runs the
// issuer's challenge, paying by card.
func (p processor) CustomerAuthenticates(t *testing.T, redirectURL string) {
	back, err := p.f.Pay(redirectURL, "card")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(back); err != nil || u.Query().Get("status") != "approved" {
		t.Fatalf("checkout sent the customer back to %q", back)
	}
}

func (p processor) Collected(*testing.T) int { return p.f.Collected() }

// RemoveAtProcessor is Mercado Pago's Card Updater replacing the card with a new card id.
// Mercado Pago signs a notification's data.id, request id and timestamp, not its body: the
// suite's tampered copy of this body (a card id with a letter appended) is refused because it
// is no notification Mercado Pago could send, and TestMercadoPagoWebhookNeverTrustsTheBody
// shows that a well-formed forgery changes nothing either.
func (p processor) RemoveAtProcessor(t *testing.T, m payments.Method) (http.Header, []byte) {
	_, n := p.f.CardUpdate(m.ProcessorID)
	if n.Body == nil {
		t.Fatalf("no card %s at the fake", m.ProcessorID)
	}
	return n.Header, n.Body
}

func (p processor) ChargeEvent(t *testing.T, _ payments.EventType, key string) (http.Header, []byte) {
	ids := p.f.PaymentsFor("portero_attempt", key)
	if len(ids) == 0 {
		t.Fatalf("no payment for %s", key)
	}
	n := p.f.PaymentNotification(ids[len(ids)-1], "payment.updated")
	return n.Header, n.Body
}

// TestMercadoPagoContract runs the processor contract against the Mercado Pago adapter, through
// the official library, on the contract fake; every request is checked against Mercado Pago's
// documented shapes.
func TestMercadoPagoContract(t *testing.T) {
	processortest.Run(t, func(t *testing.T) processortest.Processor {
		f := newFake(t, mpfake.Options{})
		noViolations(t, f)
		return processor{f: f, a: newAdapter(t, f)}
	})
}
