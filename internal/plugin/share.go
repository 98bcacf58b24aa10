package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation"
	"rsc.io/qr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// Reasons of the Delivered condition that the operator does not retry (controllers/portalsession_delivery.go).
var deliveryGivenUp = map[string]bool{
	"CustomerEmailUnknown": true,
	"EmailNotConfigured":   true,
	"DeliveryInterrupted":  true,
	"SessionEnded":         true,
}

type shareOptions struct {
	*Options
	portal         string
	ttl            time.Duration
	email          bool
	emailTo        string
	flow           string
	paymentID      string
	subscriptionID string
	returnURL      string
	qr             bool
	wait           time.Duration
	// onlyMethods, deny and noRecovery narrow the session (spec.restrictions, afterExpiration).
	onlyMethods []string
	deny        []string
	noRecovery  bool
}

func newShareCommand(o *Options) *cobra.Command {
	so := &shareOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "share CUSTOMER --portal PORTAL",
		Short: "Create a portal link for a customer and print it",
		Long: `share creates a PortalSession for CUSTOMER on PORTAL, waits for the operator to mint its link and
prints the link: a temporary, pre-authenticated URL that opens the portal as that customer, as
"compartir portal de cliente" does from a dashboard.

CUSTOMER is a customer id (cus_…) or an e-mail address (anything with an @). The link is a
credential: hand it to that customer only. ` + "`kubectl portero revoke NAME`" + ` ends it at once.

--only-methods and --deny narrow this one link inside its portal (a custom portal for one
customer): it offers and accepts only the listed payment method types the portal accepts, and
loses the denied permissions, on every request. Once it expires or is revoked the link offers
its customer a sign-in code, then its flow; --no-recovery makes it say only that it ended.`,
		Example: `  kubectl portero share cus_123 --portal acme
  kubectl portero share jane@example.com --portal acme --ttl 2h --email
  kubectl portero share cus_123 --portal acme --flow complete_payment --payment pay_9 --qr
  kubectl portero share cus_123 --portal acme --flow cancel_subscription --subscription sub_4
  kubectl portero share cus_123 --portal acme --only-methods bank_transfer --deny cancel_subscriptions`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("share needs exactly one CUSTOMER: a customer id (cus_…) or an e-mail address")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return so.run(cmd.Context(), args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&so.portal, "portal", "", "CustomerPortal the link opens (required)")
	f.DurationVar(&so.ttl, "ttl", 0, "how long the link works, e.g. 30m or 2h (default: the portal's access.sessions.defaultTTL)")
	f.BoolVar(&so.email, "email", false, "also e-mail the link to the customer, through the portal's SMTP settings")
	f.StringVar(&so.emailTo, "email-to", "", "address to e-mail the link to when CUSTOMER is an id (implies --email)")
	f.StringVar(&so.flow, "flow", "", "open one task at once: update_payment_method, complete_payment, cancel_subscription, update_subscription or update_billing_info")
	f.StringVar(&so.paymentID, "payment", "", "payment to complete (with --flow complete_payment)")
	f.StringVar(&so.subscriptionID, "subscription", "", "subscription to act on (with --flow cancel_subscription, update_subscription or update_payment_method)")
	f.StringVar(&so.returnURL, "return-url", "", "\"back to the merchant\" link for this session (default: the portal's returnURL)")
	f.BoolVar(&so.qr, "qr", false, "also print the link as a QR code, for a phone to scan")
	f.DurationVar(&so.wait, "wait", 30*time.Second, "how long to wait for the operator to make the link")
	f.StringSliceVar(&so.onlyMethods, "only-methods", nil, "the only payment method types this link offers and accepts, e.g. bank_transfer,direct_debit (within the portal's)")
	f.StringSliceVar(&so.deny, "deny", nil, "permissions this link does not have: "+strings.Join(denyable, ", "))
	f.BoolVar(&so.noRecovery, "no-recovery", false, "once the link ends it only says so, instead of offering its customer a sign-in code")
	_ = cmd.MarkFlagRequired("portal")
	return cmd
}

// customer turns the CUSTOMER argument into the session's customer reference.
func customer(arg string) (billingv1alpha1.CustomerReference, error) {
	arg = strings.TrimSpace(arg)
	switch {
	case arg == "":
		return billingv1alpha1.CustomerReference{}, errors.New("CUSTOMER is empty: give a customer id (cus_…) or an e-mail address")
	case strings.Contains(arg, "@"):
		// Lower case, as the merchant API stores and matches addresses.
		return billingv1alpha1.CustomerReference{Email: strings.ToLower(arg)}, nil
	case strings.ContainsAny(arg, " \t\n/"):
		return billingv1alpha1.CustomerReference{}, fmt.Errorf("CUSTOMER %q is neither a customer id (cus_…, no spaces) nor an e-mail address", arg)
	}
	return billingv1alpha1.CustomerReference{ID: arg}, nil
}

// buildFlow checks the deep-link flags against each other, before anything is created.
func (so *shareOptions) buildFlow() (*billingv1alpha1.Flow, error) {
	if so.flow == "" {
		if so.paymentID != "" || so.subscriptionID != "" {
			return nil, errors.New("--payment and --subscription go with --flow: add --flow complete_payment (for --payment) or --flow cancel_subscription (for --subscription)")
		}
		return nil, nil
	}
	t := billingv1alpha1.FlowType(so.flow)
	switch t {
	case billingv1alpha1.FlowUpdatePaymentMethod, billingv1alpha1.FlowCompletePayment,
		billingv1alpha1.FlowCancelSubscription, billingv1alpha1.FlowUpdateBillingInfo, billingv1alpha1.FlowUpdateSubscription:
	default:
		return nil, fmt.Errorf("--flow %q is not a flow: use update_payment_method, complete_payment, cancel_subscription, update_subscription or update_billing_info", so.flow)
	}
	switch {
	case t == billingv1alpha1.FlowCompletePayment && so.paymentID == "":
		return nil, errors.New("--flow complete_payment needs --payment ID: the payment to complete")
	case t == billingv1alpha1.FlowCancelSubscription && so.subscriptionID == "":
		return nil, errors.New("--flow cancel_subscription needs --subscription ID: the subscription to cancel")
	case t == billingv1alpha1.FlowUpdateSubscription && so.subscriptionID == "":
		return nil, errors.New("--flow update_subscription needs --subscription ID: the subscription to change")
	case t != billingv1alpha1.FlowCompletePayment && so.paymentID != "":
		return nil, fmt.Errorf("--payment is only used with --flow complete_payment, not %s", t)
	case so.subscriptionID != "" && t != billingv1alpha1.FlowCancelSubscription && t != billingv1alpha1.FlowUpdatePaymentMethod &&
		t != billingv1alpha1.FlowUpdateSubscription:
		return nil, fmt.Errorf("--subscription is only used with --flow cancel_subscription, update_subscription or update_payment_method, not %s", t)
	}
	return &billingv1alpha1.Flow{Type: t, PaymentID: so.paymentID, SubscriptionID: so.subscriptionID}, nil
}

// build is the PortalSession the flags ask for, checked as far as the flags alone allow.
func (so *shareOptions) build(arg string) (*billingv1alpha1.PortalSession, error) {
	cust, err := customer(arg)
	if err != nil {
		return nil, err
	}
	if so.portal == "" {
		return nil, errors.New("--portal is empty: name the CustomerPortal the link opens")
	}
	if so.ttl < 0 {
		return nil, fmt.Errorf("--ttl %s is negative: give how long the link works, e.g. 30m", so.ttl)
	}
	if so.wait <= 0 {
		return nil, fmt.Errorf("--wait %s: give how long to wait for the link, e.g. 30s", so.wait)
	}
	flow, err := so.buildFlow()
	if err != nil {
		return nil, err
	}
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{
			// The API server appends five random characters, so links for the same portal never
			// collide and the name says which portal a session opens.
			GenerateName: so.portal + "-",
			Labels:       map[string]string{labelCreatedBy: createdByPlugin},
		},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: so.portal},
			Customer:  cust,
			ReturnURL: so.returnURL,
			Flow:      flow,
		},
	}
	if len(validation.IsValidLabelValue(so.portal)) == 0 {
		s.Labels[labelPortal] = so.portal
	}
	if so.ttl > 0 {
		s.Spec.TTL = &metav1.Duration{Duration: so.ttl}
	}
	if s.Spec.Restrictions, err = so.restrictions(); err != nil {
		return nil, err
	}
	if so.noRecovery {
		s.Spec.AfterExpiration.Recovery = billingv1alpha1.RecoveryNone
	}
	if so.emailTo != "" {
		so.email = true
		if cust.Email != "" {
			return nil, errors.New("--email-to is for a CUSTOMER given by id: this one is an e-mail address, and the link goes there; use --email")
		}
		addr, err := mail.ParseAddress(so.emailTo)
		if err != nil || addr.Name != "" {
			return nil, fmt.Errorf("--email-to %q is not an e-mail address like jane@example.com", so.emailTo)
		}
		s.Annotations = map[string]string{annotationCustomerEmail: addr.Address}
	}
	if so.email {
		if cust.ID != "" && so.emailTo == "" {
			return nil, fmt.Errorf("--email needs an address: %s is a customer id, so add --email-to ADDRESS, or give the customer's e-mail address as CUSTOMER", cust.ID)
		}
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
	}
	return s, nil
}

func (so *shareOptions) run(ctx context.Context, arg string) error {
	s, err := so.build(arg)
	if err != nil {
		return err
	}
	c, err := so.connect()
	if err != nil {
		return err
	}
	s.Namespace = c.namespace
	p, err := c.getPortal(ctx, so.portal)
	if err != nil {
		return err
	}
	// The operator refuses these too, but only after the session exists; refusing here is
	// immediate and leaves nothing behind.
	maxTTL := defaultMaxTTL
	if m := p.Spec.Access.Sessions.MaxTTL; m != nil {
		maxTTL = m.Duration
	}
	if s.Spec.TTL != nil && s.Spec.TTL.Duration > maxTTL {
		return fmt.Errorf("--ttl %s is longer than CustomerPortal %q allows (access.sessions.maxTTL %s): ask for at most %s", so.ttl, p.Name, maxTTL, maxTTL)
	}
	if so.email && p.Spec.Email == nil {
		return fmt.Errorf("--email: CustomerPortal %q has no spec.email (smtpSecretRef and from), so it cannot e-mail links; share the printed link instead", p.Name)
	}
	if err := so.checkMethods(p, s.Spec.Restrictions); err != nil {
		return err
	}

	if err := c.client.Create(ctx, s, client.FieldOwner(fieldManager)); err != nil {
		return apiError(fmt.Sprintf("create a PortalSession on portal %q", p.Name), err)
	}
	fmt.Fprintf(so.ErrOut, "portalsession/%s created in namespace %s; waiting for its link…\n", s.Name, s.Namespace)

	link, active, err := c.awaitLink(ctx, s.Name, so.wait)
	if err != nil {
		if errors.Is(err, errGone) || active != nil && (active.Spec.Revoked || ended(active)) {
			return err // nothing left to withdraw
		}
		return c.withdraw(s, err)
	}
	fmt.Fprintln(so.Out, link)
	if so.qr {
		if err := writeQR(so.Out, link); err != nil {
			fmt.Fprintf(so.ErrOut, "warning: %v\n", err)
		}
	}
	who := s.Spec.Customer.ID + s.Spec.Customer.Email
	exp := active.Status.ExpiresAt.Time
	fmt.Fprintf(so.ErrOut, "The link opens portal %q as %s until %s (%s from now). It is a credential: hand it to that customer only.\nEnd it with: kubectl portero revoke %s -n %s\n",
		p.Name, who, exp.UTC().Format(time.RFC3339), duration.HumanDuration(exp.Sub(so.Now())), s.Name, s.Namespace)
	if r := s.Spec.Restrictions; r != nil {
		fmt.Fprintf(so.ErrOut, "It is narrowed within the portal's rules:%s\n", describeRestrictions(r))
	}
	if so.email {
		return c.awaitDelivery(ctx, so.ErrOut, s.Name, so.wait)
	}
	return nil
}

// awaitLink waits until the operator has made the session's link and returns it. A session the
// operator refuses (Stalled), that ends, or that is deleted fails at once with the operator's
// reason; one still pending when wait runs out fails with the operator's latest word on it.
func (c *cluster) awaitLink(ctx context.Context, name string, wait time.Duration) (string, *billingv1alpha1.PortalSession, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	s, err := c.watchSession(wctx, name, func(s *billingv1alpha1.PortalSession) (bool, error) {
		switch {
		case s.Status.Phase == billingv1alpha1.SessionActive && s.Status.LinkSecretName != "" && s.Status.ExpiresAt != nil:
			return true, nil
		case ended(s) || s.Spec.Revoked:
			return false, fmt.Errorf("PortalSession %s ended before its link was handed out (%s)", name, readyMessage(s))
		}
		if st := stalled(s); st != nil {
			return false, fmt.Errorf("the operator refused PortalSession %s: %s", name, st.Message)
		}
		return false, nil
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return "", s, fmt.Errorf("PortalSession %s has no link after %s: %s", name, wait, readyMessage(s))
	case errors.Is(err, errGone):
		return "", nil, fmt.Errorf("PortalSession %s was %w before its link was handed out", name, errGone)
	case err != nil:
		return "", s, err
	}
	sec := &corev1.Secret{}
	if err := c.client.Get(ctx, types.NamespacedName{Namespace: c.namespace, Name: s.Status.LinkSecretName}, sec); err != nil {
		return "", s, apiError(fmt.Sprintf("read the link from Secret %s", s.Status.LinkSecretName), err)
	}
	url := string(sec.Data[linkSecretKeyURL])
	if url == "" {
		return "", s, fmt.Errorf("link Secret %s has no %q key; the operator should have written it: see `kubectl describe psession %s`", sec.Name, linkSecretKeyURL, name)
	}
	return url, s, nil
}

// withdraw revokes a session share gave up on, so that no live link is left that nobody was
// handed (the operator would still mint it once, say, the portal publishes its URL). It returns
// cause, with what became of the session.
func (c *cluster) withdraw(s *billingv1alpha1.PortalSession, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reason := "kubectl portero share gave up before handing out the link"
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"revoked":true,"revocationReason":%q}}`, s.UID, reason))
	cur := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}}
	if err := c.client.Patch(ctx, cur, patch, client.FieldOwner(fieldManager)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%w; withdrawing the session failed too (%v): revoke it with `kubectl portero revoke %s -n %s`", cause, err, s.Name, s.Namespace)
	}
	return fmt.Errorf("%w; the session was withdrawn (revoked), so no link is left behind", cause)
}

// awaitDelivery reports the e-mail of the link, which the operator sends after making it. A
// failure is an error (the customer did not get what was asked for), though the link printed
// above works.
func (c *cluster) awaitDelivery(ctx context.Context, w io.Writer, name string, wait time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var cond *metav1.Condition
	_, err := c.watchSession(wctx, name, func(s *billingv1alpha1.PortalSession) (bool, error) {
		cond = meta.FindStatusCondition(s.Status.Conditions, conditionDelivered)
		return cond != nil && (cond.Status == metav1.ConditionTrue || deliveryGivenUp[cond.Reason]), nil
	})
	switch {
	case err == nil && cond.Status == metav1.ConditionTrue:
		fmt.Fprintf(w, "The link was e-mailed to the customer: %s\n", cond.Message)
		return nil
	case err == nil:
		return fmt.Errorf("the link was not e-mailed (%s): %s; the link printed above works: hand it over another way", cond.Reason, cond.Message)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		last := "the operator has not started sending it"
		if cond != nil {
			last = cond.Reason + ": " + cond.Message
		}
		return fmt.Errorf("the link's e-mail is not confirmed after %s (%s); the operator keeps trying: `kubectl get psession %s -o yaml` shows the Delivered condition", wait, last, name)
	}
	return fmt.Errorf("follow the e-mail of PortalSession %s: %w", name, err)
}

// writeQR draws link as a QR code in text, two modules a character, light modules as full
// blocks: it scans on the dark background most terminals have.
func writeQR(w io.Writer, link string) error {
	// qrterminal ignores the encoder's error and would fail on nil; encoding first turns an
	// impossible code (a link too long for any QR version) into a message.
	if _, err := qr.Encode(link, qr.M); err != nil {
		return fmt.Errorf("the link does not fit in a QR code: %w", err)
	}
	qrterminal.GenerateWithConfig(link, qrterminal.Config{
		Level:      qr.M,
		Writer:     w,
		HalfBlocks: true,
		QuietZone:  2,
	})
	return nil
}
