package controllers

import (
	"context"
	"fmt"
	netmail "net/mail"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/mail"
)

// E-mail delivery is at most once. The reconciler first writes Delivered=Unknown (reason Sending)
// with an optimistic lock, then sends, then records Sent or SendFailed. A stale cached copy cannot
// pass the lock, so two reconciles never both send; a crash between sending and recording leaves
// the Sending marker behind, and the next reconcile turns it into DeliveryInterrupted instead of
// sending again: a customer never receives the same link twice, and the merchant still has it in
// the link Secret. A failure the reconciler sees (SMTP refused, timed out) is retried with backoff.

// planDelivery decides, before status is written, whether this reconcile e-mails the link, and
// sets the Delivered condition accordingly.
func (r *PortalSessionReconciler) planDelivery(ctx context.Context, sc *sessionScope) error {
	s := sc.s
	if !sc.outcome.ready {
		return nil
	}
	if cond := meta.FindStatusCondition(s.Status.Conditions, ConditionDelivered); cond != nil && cond.Reason == DeliveryReasonSending && wantsEmail(s) {
		setDelivered(s, metav1.ConditionFalse, DeliveryReasonInterrupted,
			"an earlier attempt stopped between sending the e-mail and recording it, so it may or may not have arrived; it is not sent again, so the customer never gets the link twice: hand over the link from the link Secret if needed")
		return nil
	}
	if !deliveryPending(s) {
		return nil
	}
	if sc.linkURL == "" {
		// ensureLink reads the link whenever deliveryPending holds; this is a bug, not a state.
		return fmt.Errorf("link of session %s unknown when e-mailing it", s.Name)
	}
	to, problem := customerEmail(s)
	if problem != "" {
		setDelivered(s, metav1.ConditionFalse, DeliveryReasonCustomerEmailUnknown, problem)
		return nil
	}
	p := sc.portal
	if p.Spec.Email == nil {
		setDelivered(s, metav1.ConditionFalse, DeliveryReasonEmailNotConfigured, fmt.Sprintf(
			"CustomerPortal %q has no spec.email (smtpSecretRef and from); the link is sent once the portal has one", p.Name))
		return nil
	}
	sender := r.Mailer
	if sender == nil {
		cfg, err := r.smtpConfig(ctx, p)
		if err != nil {
			setDelivered(s, metav1.ConditionFalse, DeliveryReasonSMTPConfigInvalid, err.Error()+"; retrying with backoff")
			sc.retry = err
			return nil
		}
		sender = mail.NewSMTPSender(cfg)
	}
	msg, err := mail.SessionLink{
		Locale:       p.Spec.Branding.Locale,
		PortalName:   p.Spec.DisplayName,
		URL:          sc.linkURL,
		ExpiresAt:    s.Status.ExpiresAt.Time,
		SupportEmail: p.Spec.Branding.SupportEmail,
	}.Render(p.Spec.Email.From, to)
	if err != nil {
		return fmt.Errorf("render link e-mail: %w", err)
	}
	setDelivered(s, metav1.ConditionUnknown, DeliveryReasonSending, "sending the link to "+to)
	sc.mail, sc.sender = &msg, sender
	return nil
}

func wantsEmail(s *billingv1alpha1.PortalSession) bool {
	return s.Spec.Delivery != nil && s.Spec.Delivery.Email
}

// deliveryPending reports whether the link still has to be e-mailed (or the attempt retried): the
// only time a reconcile needs the link itself.
func deliveryPending(s *billingv1alpha1.PortalSession) bool {
	if !wantsEmail(s) {
		return false
	}
	cond := meta.FindStatusCondition(s.Status.Conditions, ConditionDelivered)
	return cond == nil || (cond.Reason != DeliveryReasonSent && cond.Reason != DeliveryReasonInterrupted && cond.Reason != DeliveryReasonSending)
}

// settleDelivery closes the Delivered condition of a session that ended before its e-mail went out.
func (r *PortalSessionReconciler) settleDelivery(sc *sessionScope) {
	s := sc.s
	if !sc.ended || s.Spec.Delivery == nil || !s.Spec.Delivery.Email {
		return
	}
	cond := meta.FindStatusCondition(s.Status.Conditions, ConditionDelivered)
	switch {
	case cond != nil && (cond.Status == metav1.ConditionTrue || cond.Reason == DeliveryReasonInterrupted || cond.Reason == DeliveryReasonSessionEnded):
	case cond != nil && cond.Reason == DeliveryReasonSending:
		setDelivered(s, metav1.ConditionFalse, DeliveryReasonInterrupted,
			"the session ended while its e-mail was being sent; it may or may not have arrived")
	default:
		setDelivered(s, metav1.ConditionFalse, DeliveryReasonSessionEnded, "the session ended before its link was e-mailed")
	}
}

// deliver sends the planned e-mail (the Sending marker is already written) and records the result.
func (r *PortalSessionReconciler) deliver(ctx context.Context, sc *sessionScope) error {
	s := sc.s
	sendCtx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	if err := sc.sender.Send(sendCtx, *sc.mail); err != nil {
		if rerr := r.recordDelivery(ctx, sc.key, metav1.ConditionFalse, DeliveryReasonSendFailed,
			fmt.Sprintf("e-mailing the link failed, retrying with backoff: %v", err)); rerr != nil {
			return rerr
		}
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, EventDeliveryFailed, "Deliver", "%s",
			eventNote(fmt.Sprintf("E-mailing the link failed, retrying with backoff: %v", err)))
		return fmt.Errorf("e-mail session link: %w", err)
	}
	if err := r.recordDelivery(ctx, sc.key, metav1.ConditionTrue, DeliveryReasonSent, "the link was e-mailed to "+sc.mail.To); err != nil {
		return err
	}
	r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, EventDelivered, "Deliver", "The link was e-mailed to the customer")
	return nil
}

// recordDelivery writes the Delivered condition on a fresh copy, retrying conflicts: once an e-mail
// went out, losing its record to a concurrent status write would turn into DeliveryInterrupted.
func (r *PortalSessionReconciler) recordDelivery(ctx context.Context, key types.NamespacedName, status metav1.ConditionStatus, reason, message string) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		s := &billingv1alpha1.PortalSession{}
		if err := r.APIReader.Get(ctx, key, s); err != nil {
			return err
		}
		base := s.DeepCopy()
		setDelivered(s, status, reason, message)
		return r.Client.Status().Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return fmt.Errorf("record delivery %s: %w", reason, err)
	}
	return nil
}

func setDelivered(s *billingv1alpha1.PortalSession, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
		Type: ConditionDelivered, Status: status, Reason: reason, Message: message, ObservedGeneration: s.Generation,
	})
}

// customerEmail is the address to e-mail the link to, or a sentence saying why there is none.
func customerEmail(s *billingv1alpha1.PortalSession) (string, string) {
	if s.Spec.Customer.Email != "" {
		return s.Spec.Customer.Email, ""
	}
	a, ok := s.Annotations[AnnotationCustomerEmail]
	if !ok || a == "" {
		return "", fmt.Sprintf("spec.customer has only an id (%s) and annotation %s is not set, so there is no address to e-mail the link to; set the annotation, or hand over the link from the link Secret",
			s.Spec.Customer.ID, AnnotationCustomerEmail)
	}
	addr, err := netmail.ParseAddress(a)
	if err != nil {
		return "", fmt.Sprintf("annotation %s is not an e-mail address (%v); fix the annotation to send the link", AnnotationCustomerEmail, err)
	}
	return addr.Address, ""
}

// smtpConfig reads the portal's SMTP Secret straight from the API server: user Secrets are not in
// the manager's cache.
func (r *PortalSessionReconciler) smtpConfig(ctx context.Context, p *billingv1alpha1.CustomerPortal) (mail.SMTPConfig, error) {
	ctx = withoutBodyDumps(ctx)
	name := p.Spec.Email.SMTPSecretRef.Name
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return mail.SMTPConfig{}, fmt.Errorf("SMTP Secret %s (CustomerPortal %s spec.email.smtpSecretRef) does not exist", name, p.Name)
		}
		return mail.SMTPConfig{}, fmt.Errorf("get SMTP Secret %s: %w", name, err)
	}
	cfg, err := mail.SMTPConfigFromSecret(sec.Data)
	if err != nil {
		return mail.SMTPConfig{}, fmt.Errorf("SMTP Secret %s: %w", name, err)
	}
	return cfg, nil
}
