package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/rules"
)

// Names shared with the operator (controllers/options.go and controllers/portalsession_*.go).
// They are repeated rather than imported so the portal binary does not link the controllers.
const (
	// labelCreatedBy/createdByPortal mark sessions the portal created; the operator then lets the
	// portal's Role get their link Secrets, and no others.
	labelCreatedBy  = "billing.portero.dev/created-by"
	createdByPortal = "portal"
	labelPortal     = "billing.portero.dev/portal"
	// annotationCustomerEmail is where the operator e-mails the link when spec.customer has an id.
	annotationCustomerEmail = "billing.portero.dev/customer-email"
	linkSecretKeyURL        = "url"
	conditionStalled        = "Stalled"
	conditionReady          = "Ready"
	conditionDelivered      = "Delivered"
	// Reasons of the Delivered condition that end the delivery without a known outcome.
	deliveryReasonInterrupted  = "DeliveryInterrupted"
	deliveryReasonSessionEnded = "SessionEnded"
	// defaultMaxTTL is the CRD's default access.sessions.maxTTL, for portals that bypassed defaulting.
	defaultMaxTTL = 24 * time.Hour
	// sessionRetention is how long the operator keeps an ended API session before deleting it:
	// long enough to look into "my link did not work", short enough that a busy merchant's
	// sessions do not pile up in etcd. API sessions are not in anyone's Git, so GitOps tools do
	// not miss them.
	sessionRetention = 24 * 60 * 60 // seconds
)

// Flow types as the API and the PortalSession spell them.
var flowTypes = map[string]billingv1alpha1.FlowType{
	string(billingv1alpha1.FlowUpdatePaymentMethod): billingv1alpha1.FlowUpdatePaymentMethod,
	string(billingv1alpha1.FlowCompletePayment):     billingv1alpha1.FlowCompletePayment,
	string(billingv1alpha1.FlowCancelSubscription):  billingv1alpha1.FlowCancelSubscription,
	string(billingv1alpha1.FlowUpdateBillingInfo):   billingv1alpha1.FlowUpdateBillingInfo,
	string(billingv1alpha1.FlowUpdateSubscription):  billingv1alpha1.FlowUpdateSubscription,
}

// createSession creates a PortalSession for this portal, waits for the operator to mint its link,
// and returns the link, as Stripe's and Debi's portal session endpoints do. Whatever fails after
// the PortalSession was created deletes it again, so a failed request leaves no live link behind.
func (a *API) createSession(w http.ResponseWriter, r *http.Request) *apiError {
	var req createSessionRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	p := a.rules.Portal(r.Context())
	if p == nil {
		return errPortalUnavailable()
	}
	ttl, e := sessionTTL(req.TTL, p)
	if e != nil {
		return e
	}
	cust, e := a.resolveSessionCustomer(r, req)
	if e != nil {
		return e
	}
	flow, e := a.checkFlow(r, req.Flow, cust)
	if e != nil {
		return e
	}
	restrictions, e := sessionRestrictions(req.Restrictions, p)
	if e != nil {
		return e
	}
	after, e := afterExpiration(req.AfterExpiration)
	if e != nil {
		return e
	}
	s := buildSession(p, req, ttl, cust, flow)
	s.Spec.Restrictions, s.Spec.AfterExpiration = restrictions, after
	info(r).sessionID = s.Name
	if err := a.rules.Client.Create(r.Context(), s); err != nil {
		return a.kubernetesError(r, "create PortalSession", err)
	}
	link, e := a.awaitLink(r.Context(), s)
	if e != nil {
		a.withdrawSession(r.Context(), s)
		return e
	}
	writeJSON(w, http.StatusCreated, sessionJSON{
		ID: s.Name, URL: link.url, ExpiresAt: link.expiresAt.UTC(), CustomerID: s.Spec.Customer.ID,
		CustomerEmail: s.Spec.Customer.Email, Flow: req.Flow, DeliverByEmail: req.DeliverByEmail,
		Restrictions: toRestrictionsJSON(s.Spec.Restrictions), AfterExpiration: toAfterExpirationJSON(s.Spec.AfterExpiration),
	})
	return nil
}

// sessionTTL parses the requested lifetime and holds it to the portal's maxTTL as it is now. The
// operator refuses such a session too, but only after it exists; refusing here is immediate and
// says what to ask for instead.
func sessionTTL(s string, p *billingv1alpha1.CustomerPortal) (*metav1.Duration, *apiError) {
	if s == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return nil, errInvalidField("ttl", "The ttl must be a positive duration such as \"30m\" or \"2h\".",
			"El ttl debe ser una duración positiva como \"30m\" o \"2h\".")
	}
	maxTTL := defaultMaxTTL
	if m := p.Spec.Access.Sessions.MaxTTL; m != nil {
		maxTTL = m.Duration
	}
	if d > maxTTL {
		return nil, newError(http.StatusBadRequest, CodeTTLExceedsPortalMaximum, "ttl",
			fmt.Sprintf("The ttl %s is longer than this portal allows (access.sessions.maxTTL %s); ask for at most %s.", d, maxTTL, maxTTL),
			fmt.Sprintf("El ttl %s es más largo de lo que este portal permite (access.sessions.maxTTL %s); pedí como máximo %s.", d, maxTTL, maxTTL))
	}
	return &metav1.Duration{Duration: d}, nil
}

// sessionCustomer is who a session signs in as.
type sessionCustomer struct {
	ref billingv1alpha1.CustomerReference
	// email is where the link goes when delivery is asked for.
	email string
}

// owns reports whether a ledger customer is the session's customer (by id, or by address for
// sessions that name the customer by e-mail).
func (c sessionCustomer) owns(cust ledger.Customer) bool {
	if c.ref.ID != "" {
		return cust.ID == c.ref.ID
	}
	return strings.EqualFold(cust.Email, c.ref.Email)
}

// resolveSessionCustomer checks the customer exists, so no link is made for nobody.
func (a *API) resolveSessionCustomer(r *http.Request, req createSessionRequest) (sessionCustomer, *apiError) {
	switch {
	case (req.CustomerID == "") == (req.CustomerEmail == ""):
		return sessionCustomer{}, errInvalidField("customer_id",
			"Give exactly one of customer_id or customer_email.",
			"Indicá exactamente uno de customer_id o customer_email.")
	case req.CustomerID != "":
		info(r).customerID = req.CustomerID
		c, err := a.store.GetCustomer(r.Context(), req.CustomerID)
		if err != nil {
			e := a.storeError(r, err)
			e.field = "customer_id"
			return sessionCustomer{}, e
		}
		return sessionCustomer{ref: billingv1alpha1.CustomerReference{ID: c.ID}, email: c.Email}, nil
	}
	email := strings.ToLower(strings.TrimSpace(req.CustomerEmail))
	page, err := a.store.ListCustomers(r.Context(), ledger.ListCustomersParams{Email: email, Limit: 1})
	if err != nil {
		return sessionCustomer{}, a.storeError(r, err)
	}
	if len(page.Items) == 0 {
		return sessionCustomer{}, newError(http.StatusNotFound, ledger.CodeNotFound, "customer_email",
			"There is no customer with this e-mail address.", "No hay ningún cliente con esta dirección de e-mail.")
	}
	return sessionCustomer{ref: billingv1alpha1.CustomerReference{Email: email}, email: email}, nil
}

// checkFlow validates a deep link: a known type, the id it needs, and an object that belongs to
// the session's customer (a link must not show one customer another's payment).
func (a *API) checkFlow(r *http.Request, f *flowJSON, cust sessionCustomer) (*billingv1alpha1.Flow, *apiError) {
	if f == nil {
		return nil, nil
	}
	t, ok := flowTypes[f.Type]
	if !ok {
		return nil, errInvalidField("flow.type",
			"The flow type must be update_payment_method, complete_payment, cancel_subscription, update_billing_info or update_subscription.",
			"El tipo de flujo debe ser update_payment_method, complete_payment, cancel_subscription, update_billing_info o update_subscription.")
	}
	switch {
	case t == billingv1alpha1.FlowCompletePayment && f.PaymentID == "":
		return nil, errRequired("flow.payment_id")
	case (t == billingv1alpha1.FlowCancelSubscription || t == billingv1alpha1.FlowUpdateSubscription) && f.SubscriptionID == "":
		return nil, errRequired("flow.subscription_id")
	case t != billingv1alpha1.FlowCompletePayment && f.PaymentID != "":
		return nil, errInvalidField("flow.payment_id", "The flow payment_id is only used with type complete_payment.",
			"El payment_id del flujo solo se usa con el tipo complete_payment.")
	}
	if f.PaymentID != "" {
		p, err := a.store.GetPayment(r.Context(), f.PaymentID)
		if err != nil {
			e := a.storeError(r, err)
			e.field = "flow.payment_id"
			return nil, e
		}
		info(r).paymentID = p.ID
		if e := a.checkOwner(r, cust, p.CustomerID, "flow.payment_id"); e != nil {
			return nil, e
		}
	}
	if f.SubscriptionID != "" {
		sub, err := a.store.GetSubscription(r.Context(), f.SubscriptionID)
		if err != nil {
			e := a.storeError(r, err)
			e.field = "flow.subscription_id"
			return nil, e
		}
		info(r).subscriptionID = sub.ID
		if e := a.checkOwner(r, cust, sub.CustomerID, "flow.subscription_id"); e != nil {
			return nil, e
		}
	}
	return &billingv1alpha1.Flow{Type: t, PaymentID: f.PaymentID, SubscriptionID: f.SubscriptionID}, nil
}

// checkOwner refuses a flow object of another customer as not found, like a missing one, so a
// link cannot be used to probe ids.
func (a *API) checkOwner(r *http.Request, cust sessionCustomer, customerID, field string) *apiError {
	c, err := a.store.GetCustomer(r.Context(), customerID)
	if err != nil {
		return a.storeError(r, err)
	}
	if !cust.owns(c) {
		return newError(http.StatusNotFound, ledger.CodeNotFound, field,
			"The flow's object does not exist for this customer.", "El objeto del flujo no existe para este cliente.")
	}
	return nil
}

// buildSession is the PortalSession for a request. The labels let the operator grant this portal
// read access to the session's link Secret.
func buildSession(p *billingv1alpha1.CustomerPortal, req createSessionRequest, ttl *metav1.Duration,
	cust sessionCustomer, flow *billingv1alpha1.Flow) *billingv1alpha1.PortalSession {
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace,
			Name:      "api-" + randomSuffix(),
			Labels:    map[string]string{labelCreatedBy: createdByPortal, labelPortal: p.Name},
		},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: p.Name},
			Customer:  cust.ref,
			TTL:       ttl,
			ReturnURL: req.ReturnURL,
			Flow:      flow,
			// Set at creation because it is immutable afterwards.
			TTLSecondsAfterExpired: ptr.To[int64](sessionRetention),
		},
	}
	if req.DeliverByEmail {
		s.Spec.Delivery = &billingv1alpha1.Delivery{Email: true}
		if cust.ref.ID != "" {
			s.Annotations = map[string]string{annotationCustomerEmail: cust.email}
		}
	}
	return s
}

// randomSuffix is 80 random bits in hex: session names must not collide, and need not be secret.
func randomSuffix() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail on supported platforms
	return hex.EncodeToString(b[:])
}

// sessionLink is what the merchant gets back.
type sessionLink struct {
	url       string
	expiresAt time.Time
}

// awaitLink waits, up to sessionWait, for the operator to activate the session just created and
// for this portal to be allowed to read its link Secret (the operator grants that a moment after
// activation, so Forbidden and NotFound are retried).
func (a *API) awaitLink(ctx context.Context, created *billingv1alpha1.PortalSession) (sessionLink, *apiError) {
	ctx, cancel := context.WithTimeout(ctx, a.sessionWait)
	defer cancel()
	name, emailed := created.Name, wantsEmail(created)
	s, e := a.awaitActive(ctx, name, emailed)
	if e != nil {
		return sessionLink{}, e
	}
	key := types.NamespacedName{Namespace: s.Namespace, Name: s.Status.LinkSecretName}
	backoff := 25 * time.Millisecond
	for {
		data, err := getSecretData(ctx, a.rules.Client, key)
		switch {
		case err == nil && len(data[linkSecretKeyURL]) > 0:
			return sessionLink{url: string(data[linkSecretKeyURL]), expiresAt: s.Status.ExpiresAt.Time}, nil
		case err != nil && !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) && ctx.Err() == nil:
			a.log.Error("read session link Secret", "session", name, "err", err)
			return sessionLink{}, errKubernetes()
		}
		if !waitFor(ctx, backoff) {
			a.log.Warn("session link Secret still unreadable", "session", name, "err", err)
			return sessionLink{}, errSessionNotReady(name, "the portal is not yet allowed to read the link", emailed)
		}
		backoff = min(2*backoff, 400*time.Millisecond)
	}
}

// awaitActive polls the informer cache (memory, no API calls) until the session is Active, or
// the operator stalled it (refused), or ctx ends.
func (a *API) awaitActive(ctx context.Context, name string, emailed bool) (*billingv1alpha1.PortalSession, *apiError) {
	lastReason := "the operator has not processed the session yet"
	for {
		if s := a.rules.Session(ctx, name); s != nil {
			if s.Status.Phase == billingv1alpha1.SessionActive && s.Status.LinkSecretName != "" && s.Status.ExpiresAt != nil {
				return s, nil
			}
			if c := meta.FindStatusCondition(s.Status.Conditions, conditionStalled); c != nil && c.Status == metav1.ConditionTrue {
				return nil, newError(http.StatusUnprocessableEntity, CodeSessionRefused, "",
					"The portal session was refused: "+c.Message,
					"La sesión del portal fue rechazada: "+c.Message)
			}
			if c := meta.FindStatusCondition(s.Status.Conditions, conditionReady); c != nil && c.Message != "" {
				lastReason = c.Message
			}
		}
		if !waitFor(ctx, 20*time.Millisecond) {
			return nil, errSessionNotReady(name, lastReason, emailed)
		}
	}
}

// waitFor waits d, or less if ctx ends first; it reports whether ctx is still live.
func waitFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errSessionNotReady answers a session that createSession withdraws (see withdrawSession). The
// withdrawal races the operator, which may have e-mailed the link already when delivery was
// asked for: the merchant is told, so nobody is surprised by a link in the customer's inbox
// (one that no longer opens the portal).
func errSessionNotReady(name, reason string, emailed bool) *apiError {
	if emailed {
		return newError(http.StatusServiceUnavailable, CodeSessionNotReady, "",
			"The portal link was not ready in time ("+reason+"); the session "+name+" was withdrawn. "+
				"Its link may already have been e-mailed to the customer (GET /api/v1/portal_sessions/"+name+" shows whether it was), "+
				"but it is revoked and no longer opens the portal: try again.",
			"El link del portal no estuvo listo a tiempo ("+reason+"); la sesión "+name+" se revocó. "+
				"Puede que su link ya se haya enviado por e-mail al cliente (GET /api/v1/portal_sessions/"+name+" muestra si se envió), "+
				"pero está revocado y ya no abre el portal: intentá de nuevo.")
	}
	return newError(http.StatusServiceUnavailable, CodeSessionNotReady, "",
		"The portal link was not ready in time ("+reason+"); the session "+name+" was withdrawn: try again.",
		"El link del portal no estuvo listo a tiempo ("+reason+"); la sesión "+name+" se revocó: intentá de nuevo.")
}

// wantsEmail reports whether the session asks for its link to be e-mailed.
func wantsEmail(s *billingv1alpha1.PortalSession) bool {
	return s.Spec.Delivery != nil && s.Spec.Delivery.Email
}

func errKubernetes() *apiError {
	return newError(http.StatusServiceUnavailable, CodeKubernetesUnavailable, "",
		"The Kubernetes API is not available right now; try again shortly.",
		"La API de Kubernetes no está disponible en este momento; intentá de nuevo en unos instantes.")
}

// getSession answers a session of this portal as it is now. It is read from the API server, not
// the informer, so a revocation just made shows at once. It never carries the link: that is a
// credential, handed out once, by createSession. A session of another portal is not found, like
// a missing one, so one portal's API key cannot probe the names of another portal's sessions.
func (a *API) getSession(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).sessionID = id
	s, e := a.ownSession(r, id)
	if e != nil {
		return e
	}
	info(r).customerID = s.Spec.Customer.ID
	writeJSON(w, http.StatusOK, toSessionState(s, a.now()))
	return nil
}

// revokeSession revokes a session of this portal: spec.revoked: true with the reason given (or
// defaultRevocationReason), which the portal honours at once and the operator turns into phase
// Revoked, deleting the link Secret. Revoking a revoked session writes nothing and answers the
// same, its first reason included, so a retried revoke is harmless.
func (a *API) revokeSession(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	info(r).sessionID = id
	var req revokeSessionRequest
	if e := decodeOptionalJSON(w, r, &req); e != nil {
		return e
	}
	reason, e := revocationReason(req.Reason)
	if e != nil {
		return e
	}
	s, e := a.ownSession(r, id)
	if e != nil {
		return e
	}
	info(r).customerID = s.Spec.Customer.ID
	revoked, err := a.rules.RevokeSession(r.Context(), s, reason)
	if errors.Is(err, rules.ErrSessionGone) {
		return errSessionNotFound()
	}
	if err != nil {
		return a.kubernetesError(r, "revoke PortalSession", err)
	}
	writeJSON(w, http.StatusOK, toSessionState(revoked, a.now()))
	return nil
}

// revokeSessionRequest is the optional body of POST /portal_sessions/{id}/revoke.
type revokeSessionRequest struct {
	// Reason is for the merchant's own records: the PortalSession's spec.revocationReason.
	Reason *string `json:"reason"`
}

const (
	// defaultRevocationReason tells a revocation by the API from one made with kubectl or by a
	// customer signing out.
	defaultRevocationReason = "revoked by the merchant API"
	// maxRevocationReason is the CRD's maxLength of spec.revocationReason, in characters.
	maxRevocationReason = 256
)

// revocationReason checks a reason given to revoke: one line that fits spec.revocationReason,
// which kubectl shows as it is.
func revocationReason(given *string) (string, *apiError) {
	if given == nil {
		return defaultRevocationReason, nil
	}
	reason := strings.TrimSpace(*given)
	switch {
	case reason == "":
		return "", errInvalidField("reason", "The reason must not be empty: leave it out to use the default.",
			"El motivo no puede estar vacío: omitilo para usar el predeterminado.")
	case utf8.RuneCountInString(reason) > maxRevocationReason:
		return "", errInvalidField("reason", fmt.Sprintf("The reason must be at most %d characters long.", maxRevocationReason),
			fmt.Sprintf("El motivo debe tener como máximo %d caracteres.", maxRevocationReason))
	case strings.ContainsFunc(reason, unicode.IsControl):
		return "", errInvalidField("reason", "The reason must be a single line of text, without control characters.",
			"El motivo debe ser una sola línea de texto, sin caracteres de control.")
	}
	return reason, nil
}

// ownSession reads the named PortalSession from the API server and returns it if it belongs to
// this portal. The portal's Role may read every session in the namespace; this check is what
// keeps one portal's merchant API to its own.
func (a *API) ownSession(r *http.Request, name string) (*billingv1alpha1.PortalSession, *apiError) {
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, errSessionNotFound()
	}
	// Unstructured, because the rules client serves typed PortalSessions from its informer.
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(billingv1alpha1.GroupVersion.WithKind("PortalSession"))
	if err := a.rules.Client.Get(r.Context(), types.NamespacedName{Namespace: a.rules.Key.Namespace, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errSessionNotFound()
		}
		return nil, a.kubernetesError(r, "get PortalSession", err)
	}
	s := &billingv1alpha1.PortalSession{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		info(r).err = fmt.Errorf("decode PortalSession %s: %w", name, err)
		return nil, errInternal()
	}
	if s.Spec.PortalRef.Name != a.rules.Key.Name {
		return nil, errSessionNotFound()
	}
	return s, nil
}

func errSessionNotFound() *apiError {
	return newError(http.StatusNotFound, ledger.CodeNotFound, "",
		"This portal has no portal session with this id.", "Este portal no tiene ninguna sesión de portal con este id.")
}

// Session phases as the API spells them.
const (
	sessionPhasePending = "pending"
	sessionPhaseActive  = "active"
	sessionPhaseExpired = "expired"
	sessionPhaseRevoked = "revoked"
	sessionPhaseRefused = "refused"
)

// sessionPhase is what the session's link does at now. The portal refuses a revoked, deleted or
// expired session's link at once, before the operator records it in status.phase, so the
// answer says so at once too.
func sessionPhase(s *billingv1alpha1.PortalSession, now time.Time) string {
	switch {
	case s.Status.Phase == billingv1alpha1.SessionRevoked:
		return sessionPhaseRevoked
	case s.Status.Phase == billingv1alpha1.SessionExpired:
		return sessionPhaseExpired
	case s.Spec.Revoked || !s.DeletionTimestamp.IsZero():
		return sessionPhaseRevoked
	case s.Status.ExpiresAt != nil && !now.Before(s.Status.ExpiresAt.Time):
		return sessionPhaseExpired
	case s.Status.Phase == billingv1alpha1.SessionActive:
		return sessionPhaseActive
	case meta.IsStatusConditionTrue(s.Status.Conditions, conditionStalled):
		return sessionPhaseRefused
	}
	return sessionPhasePending
}

// Delivery states as the API spells them; see sessionDelivery.
const (
	deliveryPending = "pending"
	deliverySending = "sending"
	deliverySent    = "sent"
	deliveryFailing = "failing"
	deliveryNotSent = "not_sent"
	deliveryUnknown = "unknown"
)

// sessionDelivery reads the e-mail's fate from the operator's Delivered condition (see
// controllers/portalsession_delivery.go): sent at most once; an attempt cut short between sending
// and recording is "unknown" and never repeated; a session that ended first was "not_sent".
func sessionDelivery(s *billingv1alpha1.PortalSession) *sessionDeliveryJSON {
	c := meta.FindStatusCondition(s.Status.Conditions, conditionDelivered)
	if c == nil {
		return &sessionDeliveryJSON{State: deliveryPending}
	}
	out := &sessionDeliveryJSON{Reason: c.Reason, Message: c.Message}
	switch {
	case c.Status == metav1.ConditionTrue:
		out.State = deliverySent
	case c.Status == metav1.ConditionUnknown:
		out.State = deliverySending
	case c.Reason == deliveryReasonInterrupted:
		out.State = deliveryUnknown
	case c.Reason == deliveryReasonSessionEnded:
		out.State = deliveryNotSent
	default:
		out.State = deliveryFailing
	}
	return out
}

func toSessionState(s *billingv1alpha1.PortalSession, now time.Time) sessionStateJSON {
	out := sessionStateJSON{
		ID: s.Name, Phase: sessionPhase(s, now), Revoked: s.Spec.Revoked, RevocationReason: s.Spec.RevocationReason,
		CustomerID: s.Spec.Customer.ID, CustomerEmail: s.Spec.Customer.Email,
		DeliverByEmail: wantsEmail(s), CreatedAt: s.CreationTimestamp.UTC(),
		Restrictions: toRestrictionsJSON(s.Spec.Restrictions), AfterExpiration: toAfterExpirationJSON(s.Spec.AfterExpiration),
	}
	if s.Status.ExpiresAt != nil {
		out.ExpiresAt = optionalTime(s.Status.ExpiresAt.UTC())
	}
	if f := s.Spec.Flow; f != nil {
		out.Flow = &flowJSON{Type: string(f.Type), PaymentID: f.PaymentID, SubscriptionID: f.SubscriptionID}
	}
	if out.DeliverByEmail {
		out.Delivery = sessionDelivery(s)
	}
	return out
}

// withdrawSession revokes a session whose link could not be returned, so it neither opens the
// portal nor e-mails a link the merchant was told failed. Revoking rather than deleting: the
// portal's Role may create and patch sessions, not delete them. Best effort: the request is
// answered either way.
func (a *API) withdrawSession(ctx context.Context, s *billingv1alpha1.PortalSession) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.rules.RevokeSession(ctx, s, withdrawnReason); err != nil && !errors.Is(err, rules.ErrSessionGone) {
		a.log.Warn("withdraw portal session", "session", s.Name, "err", err)
	}
}

// withdrawnReason is the revocationReason of a session withdrawSession revoked.
const withdrawnReason = "link not ready in time: the merchant API withdrew it"

// kubernetesError maps an API server refusal: an invalid spec (the CRD's schema and CEL rules)
// is the caller's to fix and says why; anything else is ours.
func (a *API) kubernetesError(r *http.Request, what string, err error) *apiError {
	var status apierrors.APIStatus
	if apierrors.IsInvalid(err) && errors.As(err, &status) {
		field, msg := invalidDetails(status.Status())
		return newError(http.StatusBadRequest, ledger.CodeInvalidField, field, msg, msg)
	}
	info(r).err = fmt.Errorf("%s: %w", what, err)
	return errKubernetes()
}

// invalidDetails turns the API server's causes into an API field name and a message.
func invalidDetails(st metav1.Status) (field, message string) {
	if st.Details == nil || len(st.Details.Causes) == 0 {
		return "", st.Message
	}
	var msgs []string
	for _, c := range st.Details.Causes {
		if field == "" {
			field = apiFieldOf(c.Field)
		}
		msg := c.Message
		// "Invalid value: \"string\": ttl must be …" → "ttl must be …"
		if rest, ok := strings.CutPrefix(msg, "Invalid value: "); ok {
			if i := strings.Index(rest, ": "); i >= 0 {
				msg = rest[i+2:]
			}
		}
		msgs = append(msgs, msg)
	}
	return field, strings.Join(msgs, "; ")
}

// apiFieldOf names a PortalSession spec path as the API request spells it.
func apiFieldOf(specPath string) string {
	switch {
	case strings.HasPrefix(specPath, "spec.ttl"):
		return "ttl"
	case strings.HasPrefix(specPath, "spec.returnURL"):
		return "return_url"
	case strings.HasPrefix(specPath, "spec.customer.email"):
		return "customer_email"
	case strings.HasPrefix(specPath, "spec.customer"):
		return "customer_id"
	case strings.HasPrefix(specPath, "spec.flow.paymentID"):
		return "flow.payment_id"
	case strings.HasPrefix(specPath, "spec.flow.subscriptionID"):
		return "flow.subscription_id"
	case strings.HasPrefix(specPath, "spec.flow"):
		return "flow"
	case strings.HasPrefix(specPath, "spec.restrictions"):
		return "restrictions"
	case strings.HasPrefix(specPath, "spec.afterExpiration"):
		return "after_expiration"
	}
	return ""
}
