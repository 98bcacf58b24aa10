package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// Names shared with the operator (controllers/options.go, controllers/portalsession_controller.go),
// repeated rather than imported so the portal binary does not link the controllers.
const (
	// labelCreatedBy/createdByPortal and labelPortal mark sessions the portal created.
	labelCreatedBy  = "billing.portero.dev/created-by"
	createdByPortal = "portal"
	labelPortal     = "billing.portero.dev/portal"
	// annotationCustomerEmail is where the operator e-mails the link of a session naming a customer id.
	annotationCustomerEmail = "billing.portero.dev/customer-email"
	// LabelPayment marks a completion-link session with the payment it is for.
	LabelPayment = "billing.portero.dev/payment"
)

// completionRetention keeps an ended completion-link session this long before the operator
// deletes it: it is the record that the link was sent, and must outlive NotifyWindow.
const completionRetention = 7 * 24 * 60 * 60 // seconds

// SessionName is the name of the completion-link PortalSession of a payment. Deriving it from the
// payment id is what makes the link at most once per payment: a second create, by this process
// or another replica or portal in the namespace, fails with AlreadyExists.
func SessionName(paymentID string) string {
	name := "complete-" + strings.ReplaceAll(paymentID, "_", "-")
	if len(name) > 63 || !isDNSLabel(name) {
		// Ids a name cannot hold (long, or unusual characters) are hashed: still unique, still a
		// valid name and label value.
		sum := sha256.Sum256([]byte(paymentID))
		name = "complete-" + hex.EncodeToString(sum[:])[:40]
	}
	return name
}

// isDNSLabel reports whether s is lower-case letters, digits and inner dashes.
func isDNSLabel(s string) bool {
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return s != ""
}

// notifyTimeout bounds one notification, so a hung API server cannot stall the renewals that
// share the loop.
const notifyTimeout = 30 * time.Second

// notify makes sure the customer of an incomplete payment has been sent a link to complete it.
// Failures are logged (and returned) and left to the next sweep.
func (w *worker) notify(ctx context.Context, p ledger.Payment) error {
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	created, err := w.ensureCompletionLink(ctx, p)
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		w.metrics.notifyErrors.Inc()
		w.log.Error("send completion link", "payment", p.ID, "customer", p.CustomerID, "err", err)
	case created:
		w.metrics.linksCreated.Inc()
		w.log.Info("completion link requested", "payment", p.ID, "customer", p.CustomerID, "session", SessionName(p.ID))
	}
	return err
}

// ensureCompletionLink creates the payment's completion-link PortalSession unless it exists or
// the payment no longer waits for a method. It reports whether it created one.
func (w *worker) ensureCompletionLink(ctx context.Context, p ledger.Payment) (bool, error) {
	name := SessionName(p.ID)
	if w.rules.Session(ctx, name) != nil {
		return false, nil
	}
	// The queued copy may be stale: the customer may have added a method since.
	cur, err := w.store.GetPayment(ctx, p.ID)
	if err != nil {
		return false, fmt.Errorf("get payment %s: %w", p.ID, err)
	}
	if cur.Status != ledger.PaymentIncomplete && cur.Status != ledger.PaymentRequiresAction {
		return false, nil
	}
	portal := w.rules.Portal(ctx)
	if portal == nil {
		return false, fmt.Errorf("CustomerPortal %s not found", w.rules.Key)
	}
	cust, err := w.store.GetCustomer(ctx, cur.CustomerID)
	if err != nil {
		return false, fmt.Errorf("get customer %s: %w", cur.CustomerID, err)
	}
	s := completionSession(portal, cur, cust, name)
	if err := w.rules.Client.Create(ctx, s); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		return false, fmt.Errorf("create PortalSession %s: %w", name, err)
	}
	return true, nil
}

// completionSession is the PortalSession that e-mails the customer a link deep into completing
// the payment. It lives as long as the portal allows (maxTTL): a link in an inbox is often opened
// hours later.
func completionSession(p *billingv1alpha1.CustomerPortal, pay ledger.Payment, c ledger.Customer, name string) *billingv1alpha1.PortalSession {
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace,
			Name:      name,
			Labels: map[string]string{
				labelCreatedBy: createdByPortal,
				labelPortal:    p.Name,
				LabelPayment:   strings.TrimPrefix(name, "complete-"),
			},
			Annotations: map[string]string{annotationCustomerEmail: c.Email},
		},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef:              billingv1alpha1.PortalReference{Name: p.Name},
			Customer:               billingv1alpha1.CustomerReference{ID: pay.CustomerID},
			Flow:                   &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCompletePayment, PaymentID: pay.ID},
			Delivery:               &billingv1alpha1.Delivery{Email: true},
			TTLSecondsAfterExpired: ptr.To[int64](completionRetention),
		},
	}
	if m := p.Spec.Access.Sessions.MaxTTL; m != nil {
		s.Spec.TTL = &metav1.Duration{Duration: m.Duration}
	}
	return s
}

// sweepIncomplete finds payments that began waiting for the customer (incomplete, or a charge to
// authenticate) within NotifyWindow and makes sure each has its completion link: the safety net
// for notifications lost to a crash or a full queue.
func (w *worker) sweepIncomplete(ctx context.Context) {
	defer w.metrics.sweeps.Inc()
	since := w.clock.Now().Add(-w.opts.NotifyWindow)
	params := ledger.ListPaymentsParams{Statuses: []ledger.PaymentStatus{ledger.PaymentIncomplete, ledger.PaymentRequiresAction}, Limit: ledger.MaxPageSize}
	for {
		page, err := w.store.ListPayments(ctx, params)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("sweep incomplete payments", "err", err)
			}
			return
		}
		for _, p := range page.Items {
			// updated_at is when it became incomplete: nothing else touches an incomplete payment.
			if p.UpdatedAt.Before(since) {
				continue
			}
			if err := w.notify(ctx, p); errors.Is(err, context.DeadlineExceeded) {
				// The API server (or the database) does not answer: every other payment would
				// wait its full timeout too. The next sweep tries again.
				w.log.Warn("sweep stopped early: a completion link timed out", "payment", p.ID)
				return
			}
		}
		if page.NextCursor == "" || ctx.Err() != nil {
			return
		}
		params.Cursor = page.NextCursor
	}
}
