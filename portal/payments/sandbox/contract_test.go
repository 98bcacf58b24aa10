package sandbox_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/processortest"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

func newAdapter(t *testing.T) *sandbox.Adapter {
	t.Helper()
	a, err := sandbox.New([]byte("portero-sandbox-contract-secret-0123456789"), func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// processor plays the sandbox's side for the contract suite.
type processor struct{ a *sandbox.Adapter }

func (p processor) Adapter() payments.Adapter { return p.a }

func (p processor) TestCard() payments.CardDetails {
	return payments.CardDetails{Number: "4242 4242 4242 4242", ExpMonth: 12, ExpYear: testNow.Year() + 4, CVC: "123"}
}

func (p processor) CompleteHostedSetup(t *testing.T, _ payments.SetupSession) string {
	t.Fatal("the sandbox has no hosted set-up")
	return ""
}

func (p processor) NextCharge(t *testing.T, f processortest.Fault) {
	switch f {
	case processortest.Decline:
		p.a.InjectFault(sandbox.FaultDecline)
	case processortest.RequiresAction:
		p.a.InjectFault(sandbox.FaultRequiresAction)
	case processortest.TimeoutAfterCollect:
		p.a.InjectFault(sandbox.FaultTimeoutAfterCollect)
	case processortest.ServerError:
		p.a.InjectFault(sandbox.FaultServerError)
	default:
		t.Fatalf("unknown fault %d", f)
	}
}

// CustomerAuthenticates has nothing to do: the sandbox's bank approved when the redirect was
// made, and the redirect leads straight back to the portal.
func (p processor) CustomerAuthenticates(t *testing.T, redirectURL string) {
	if redirectURL == "" {
		t.Fatal("no redirect")
	}
}

func (p processor) Collected(*testing.T) int { return p.a.Collected() }

func (p processor) RemoveAtProcessor(_ *testing.T, m payments.Method) (http.Header, []byte) {
	return p.a.DetachAtProcessor(m.ProcessorID)
}

func (p processor) ChargeEvent(t *testing.T, typ payments.EventType, key string) (http.Header, []byte) {
	res, err := p.a.LookupCharge(context.Background(), payments.ChargeRequest{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("no sandbox charge for %s: %v", key, err)
	}
	return p.a.SignEvent(payments.Event{Type: typ, Reference: res.Reference, IdempotencyKey: key})
}

func TestContract(t *testing.T) {
	processortest.Run(t, func(t *testing.T) processortest.Processor { return processor{newAdapter(t)} })
}
