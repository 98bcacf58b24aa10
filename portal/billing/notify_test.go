package billing

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// TestIncompletePaymentGetsExactlyOneCompletionLink: a payment left incomplete produces one
// PortalSession deep-linked to it and one e-mail, however often and by however many replicas the
// notifier runs.
func TestIncompletePaymentGetsExactlyOneCompletionLink(t *testing.T) {
	f := newFixture(t)
	f.run(f.loops, f.store)
	addr := "incomplete@" + f.ns + ".example" // the fake mailer outlives the test under -count=N
	c := f.customer(addr)
	p, err := f.store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 9900, Currency: ledger.ARS, Description: "Order 7"})
	if err != nil || p.Status != ledger.PaymentIncomplete {
		t.Fatalf("payment: %v %+v", err, p)
	}
	eventually(t, "completion link e-mailed", func() error {
		if n := mailer.to(addr); n != 1 {
			return fmt.Errorf("%d e-mails", n)
		}
		return nil
	})

	// Run the notifier again in every way it can run: directly, twice; through the hook queue;
	// through a sweep; and as a second replica starting up.
	w := &worker{Loops: f.loops, store: f.store.Store, rules: f.rules, processors: f.store.Processors()}
	w.notify(f.ctx, p)
	w.notify(f.ctx, p)
	f.loops.enqueue(p)
	sweeps := testutil.ToFloat64(f.loops.metrics.sweeps)
	f.clock.Step(10 * time.Minute)
	eventually(t, "a sweep ran", func() error {
		if testutil.ToFloat64(f.loops.metrics.sweeps) <= sweeps {
			return errors.New("not yet")
		}
		return nil
	})
	replica := f.newLoops()
	f.run(replica, f.openStore(replica.Hooks()))
	eventually(t, "queue drained", func() error {
		if len(f.loops.queue) > 0 {
			return errors.New("not yet")
		}
		return nil
	})

	sessions := f.sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(sessions))
	}
	s := sessions[0]
	if s.Name != SessionName(p.ID) || s.Spec.Flow == nil || s.Spec.Flow.Type != billingv1alpha1.FlowCompletePayment ||
		s.Spec.Flow.PaymentID != p.ID || s.Spec.Customer.ID != c.ID || s.Spec.Delivery == nil || !s.Spec.Delivery.Email {
		t.Fatalf("session %s: %+v", s.Name, s.Spec)
	}
	if s.Labels[labelCreatedBy] != createdByPortal || s.Labels[labelPortal] != portalName ||
		s.Annotations[annotationCustomerEmail] != addr {
		t.Errorf("labels %v, annotations %v", s.Labels, s.Annotations)
	}
	if s.Spec.TTL == nil || s.Spec.TTL.Duration != 72*time.Hour {
		t.Errorf("ttl %v, want the portal's maxTTL", s.Spec.TTL)
	}
	if s.Status.Phase != billingv1alpha1.SessionActive {
		t.Errorf("phase %q", s.Status.Phase)
	}
	if n := mailer.to(addr); n != 1 {
		t.Fatalf("%d e-mails, want 1", n)
	}
	if n := testutil.ToFloat64(f.loops.metrics.linksCreated) + testutil.ToFloat64(replica.metrics.linksCreated); n != 1 {
		t.Errorf("links created = %v", n)
	}
}

// TestRenewalLeftIncompleteGetsALink: a renewal with no usable method leaves its payment
// incomplete and the customer gets a link.
func TestRenewalLeftIncompleteGetsALink(t *testing.T) {
	f := newFixture(t)
	c := f.customer("renewal-incomplete@example.com")
	sub, first, err := f.store.CreateSubscription(f.ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "Basic",
		Amount: 1000, Currency: ledger.ARS, Interval: ledger.Week, NoInitialPayment: true})
	if err != nil || first.ID != "" {
		t.Fatalf("subscription: %v %+v", err, first)
	}
	f.run(f.loops, f.store)
	f.tick(f.loops, start.Add(7*24*time.Hour+time.Minute))
	ps := f.payments(c.ID)
	if len(ps) != 1 || ps[0].Status != ledger.PaymentIncomplete || ps[0].SubscriptionID != sub.ID {
		t.Fatalf("renewal payments: %+v", ps)
	}
	eventually(t, "completion link created", func() error {
		if s := f.rules.Session(f.ctx, SessionName(ps[0].ID)); s == nil {
			return errors.New("no session")
		}
		return nil
	})
}

// TestNoLinkForAPaymentAlreadyCompleted: the queued copy of a payment is stale if the customer
// added a method meanwhile; no link is sent for a payment that no longer waits.
func TestNoLinkForAPaymentAlreadyCompleted(t *testing.T) {
	f := newFixture(t)
	c := f.customer("quick@example.com")
	p, err := f.store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 100, Currency: ledger.ARS})
	if err != nil {
		t.Fatal(err)
	}
	f.addCard(c.ID) // settles it
	w := &worker{Loops: f.loops, store: f.store.Store, rules: f.rules, processors: f.store.Processors()}
	if created, err := w.ensureCompletionLink(f.ctx, p); err != nil || created {
		t.Fatalf("created %v, err %v", created, err)
	}
	if n := len(f.sessions()); n != 0 {
		t.Fatalf("%d sessions", n)
	}
}

// TestSweepSendsLinksLostToACrash: payments that went incomplete while no hook was listening (the
// process died before sending) get their link from the start-up sweep, within NotifyWindow only.
func TestSweepSendsLinksLostToACrash(t *testing.T) {
	f := newFixture(t)
	unhooked := f.openStore(ledger.Hooks{})
	c := f.customer("lost@example.com")
	old, err := unhooked.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 100, Currency: ledger.ARS})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Step(DefaultNotifyWindow + time.Hour)
	recent, err := unhooked.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 200, Currency: ledger.ARS})
	if err != nil {
		t.Fatal(err)
	}
	f.run(f.loops, f.store)
	if f.rules.Session(f.ctx, SessionName(recent.ID)) == nil {
		eventually(t, "link for the recent payment", func() error {
			for _, s := range f.sessions() {
				if s.Name == SessionName(recent.ID) {
					return nil
				}
			}
			return errors.New("missing")
		})
	}
	for _, s := range f.sessions() {
		if s.Name == SessionName(old.ID) {
			t.Fatalf("a link was sent for a payment incomplete for longer than NotifyWindow")
		}
	}
}

// TestRecoverProcessingOnStart: a charge whose outcome was unknown (the processor was unreachable)
// stays processing; the loops re-drive it when they start, once it is stale, and it settles once.
func TestRecoverProcessingOnStart(t *testing.T) {
	f := newFixture(t)
	c := f.customer("stuck@example.com")
	f.addCard(c.ID)
	f.proc.down.Store(true)
	p, err := f.store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 100, Currency: ledger.ARS})
	if err != nil || p.Status != ledger.PaymentProcessing {
		t.Fatalf("payment: %v %+v", err, p)
	}
	f.proc.down.Store(false)
	f.clock.Step(DefaultStaleAfter + time.Minute)
	f.run(f.loops, f.store)
	got, err := f.store.GetPayment(f.ctx, p.ID)
	if err != nil || got.Status != ledger.PaymentSucceeded || len(got.Attempts) != 1 {
		t.Fatalf("after start: %v %+v", err, got)
	}
	if n := f.proc.chargesFor(p.ID); n != 2 {
		t.Fatalf("charged %d times, want 2 (the lost call and its re-drive with the same key)", n)
	}
}

func TestSessionName(t *testing.T) {
	for id, want := range map[string]string{
		"pay_abcdefghijklmnopqrstuvwx":   "complete-pay-abcdefghijklmnopqrstuvwx",
		"PAY_1":                          "complete-",
		"pay_" + strings.Repeat("a", 80): "complete-",
	} {
		got := SessionName(id)
		if !strings.HasPrefix(got, want) || len(got) > 63 || !isDNSLabel(got) {
			t.Errorf("SessionName(%q) = %q", id, got)
		}
		if got != SessionName(id) {
			t.Errorf("SessionName(%q) is not deterministic", id)
		}
	}
	if SessionName("PAY_1") == SessionName("PAY_2") {
		t.Error("hashed names collide")
	}
}

// TestPaymentToAuthenticateGetsACompletionLink: a charge the bank wants the customer to
// authenticate waits for them like an incomplete payment: one link deep into the payment, so
// they can confirm it from the portal.
func TestPaymentToAuthenticateGetsACompletionLink(t *testing.T) {
	f := newFixture(t)
	f.run(f.loops, f.store)
	addr := "sca@" + f.ns + ".example"
	c := f.customer(addr)
	f.addCard(c.ID)
	f.proc.InjectFault(sandbox.FaultRequiresAction)
	p, err := f.store.CreatePayment(f.ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 9900, Currency: ledger.ARS, Description: "Order 8"})
	if err != nil || p.Status != ledger.PaymentRequiresAction {
		t.Fatalf("payment: %v %+v", err, p)
	}
	eventually(t, "completion link e-mailed", func() error {
		if n := mailer.to(addr); n != 1 {
			return fmt.Errorf("%d e-mails", n)
		}
		return nil
	})
	sessions := f.sessions()
	if len(sessions) != 1 || sessions[0].Spec.Flow == nil || sessions[0].Spec.Flow.Type != billingv1alpha1.FlowCompletePayment ||
		sessions[0].Spec.Flow.PaymentID != p.ID {
		t.Fatalf("sessions = %+v, want one completing the payment", sessions)
	}
}
