package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FlowType is a deep link into one task of the portal.
// +kubebuilder:validation:Enum=update_payment_method;complete_payment;cancel_subscription;update_billing_info;update_subscription
type FlowType string

// The flows a session can deep-link to.
const (
	FlowUpdatePaymentMethod FlowType = "update_payment_method"
	FlowCompletePayment     FlowType = "complete_payment"
	FlowCancelSubscription  FlowType = "cancel_subscription"
	FlowUpdateBillingInfo   FlowType = "update_billing_info"
	FlowUpdateSubscription  FlowType = "update_subscription"
)

// SessionPhase is where a PortalSession is in its life.
// +kubebuilder:validation:Enum=Active;Expired;Revoked
type SessionPhase string

// The phases of a PortalSession.
const (
	SessionActive  SessionPhase = "Active"
	SessionExpired SessionPhase = "Expired"
	SessionRevoked SessionPhase = "Revoked"
)

// PortalSessionSpec asks for a temporary, pre-authenticated link for one customer on one portal.
// Everything but revoked (with its reason) and afterExpiration is immutable: a session is a
// credential, create a new one to change it.
// +kubebuilder:validation:XValidation:rule="self.portalRef == oldSelf.portalRef",message="portalRef is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="self.customer == oldSelf.customer",message="customer is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="has(self.ttl) == has(oldSelf.ttl) && (!has(self.ttl) || self.ttl == oldSelf.ttl)",message="ttl is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="has(self.returnURL) == has(oldSelf.returnURL) && (!has(self.returnURL) || self.returnURL == oldSelf.returnURL)",message="returnURL is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="has(self.flow) == has(oldSelf.flow) && (!has(self.flow) || self.flow == oldSelf.flow)",message="flow is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="has(self.delivery) == has(oldSelf.delivery) && (!has(self.delivery) || self.delivery == oldSelf.delivery)",message="delivery is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="has(self.restrictions) == has(oldSelf.restrictions) && (!has(self.restrictions) || self.restrictions == oldSelf.restrictions)",message="restrictions are immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="has(self.ttlSecondsAfterExpired) == has(oldSelf.ttlSecondsAfterExpired) && (!has(self.ttlSecondsAfterExpired) || self.ttlSecondsAfterExpired == oldSelf.ttlSecondsAfterExpired)",message="ttlSecondsAfterExpired is immutable: create a new PortalSession instead"
// +kubebuilder:validation:XValidation:rule="!(has(oldSelf.revoked) && oldSelf.revoked) || (has(self.revoked) && self.revoked)",message="revoked can only change from false to true: a revoked session cannot be restored, create a new PortalSession"
// +kubebuilder:validation:XValidation:rule="!has(self.revocationReason) || (has(self.revoked) && self.revoked)",message="revocationReason goes with revoked: true"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revocationReason) || (has(self.revocationReason) && self.revocationReason == oldSelf.revocationReason)",message="revocationReason is immutable once set"
type PortalSessionSpec struct {
	// PortalRef names the CustomerPortal (in the same namespace) the session opens.
	PortalRef PortalReference `json:"portalRef"`

	// Customer is who the link signs in as.
	Customer CustomerReference `json:"customer"`

	// TTL is how long the link works (30s to 168h); defaults to the portal's access.sessions.defaultTTL
	// and may not exceed its access.sessions.maxTTL.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="self >= duration('30s') && self <= duration('168h')",message="ttl must be between 30s and 168h"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// ReturnURL overrides the portal's "back to the merchant" link for this session.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1']))",message="returnURL must be an absolute https:// URL (plain http:// is allowed only for localhost or 127.0.0.1)"
	// +optional
	ReturnURL string `json:"returnURL,omitempty"`

	// Flow deep-links the session into one task.
	// +optional
	Flow *Flow `json:"flow,omitempty"`

	// Delivery also sends the link to the customer.
	// +optional
	Delivery *Delivery `json:"delivery,omitempty"`

	// Restrictions narrow what this one session may do inside its portal (a custom portal for one
	// customer, without a portal of its own): the portal enforces the intersection with its own
	// live rules on every request. They can only narrow.
	// +optional
	Restrictions *SessionRestrictions `json:"restrictions,omitempty"`

	// AfterExpiration says what an expired or revoked link offers instead of the portal.
	// +kubebuilder:default={}
	// +optional
	AfterExpiration AfterExpiration `json:"afterExpiration,omitempty"`

	// Revoked ends the session at once. It can only go from false to true.
	// +optional
	Revoked bool `json:"revoked,omitempty"`

	// RevocationReason says why the session was revoked, for the merchant to read (set with
	// revoked: true). The portal sets "customer signed out" when the customer signs out of a
	// browser session the link opened.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RevocationReason string `json:"revocationReason,omitempty"`

	// TTLSecondsAfterExpired deletes the PortalSession object this long after it expired or was
	// revoked. Without it, ended sessions stay (GitOps tools must not see objects vanish).
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterExpired *int64 `json:"ttlSecondsAfterExpired,omitempty"`
}

// PortalReference names a CustomerPortal in the same namespace.
type PortalReference struct {
	// Name of the CustomerPortal.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// CustomerReference identifies one customer of the portal's ledger: by id or by e-mail, not both.
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.email)",message="customer needs exactly one of id or email"
type CustomerReference struct {
	// ID is the customer's id in the ledger, e.g. cus_123.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	ID string `json:"id,omitempty"`
	// Email is the customer's e-mail address: dot-separated words on both sides of the @, as the
	// portal accepts them.
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@\\\\s<>(),:;\"\\\\[\\\\].]+(\\\\.[^@\\\\s<>(),:;\"\\\\[\\\\].]+)*@[^@\\\\s<>(),:;\"\\\\[\\\\].]+(\\\\.[^@\\\\s<>(),:;\"\\\\[\\\\].]+)+$')",message="customer.email must be an e-mail address like jane@example.com (no spaces, no two dots in a row, no dot at either end of a part)"
	// +optional
	Email string `json:"email,omitempty"`
}

// Flow deep-links a session into one task of the portal.
// +kubebuilder:validation:XValidation:rule="self.type != 'complete_payment' || has(self.paymentID)",message="flow.type complete_payment needs flow.paymentID: the payment to complete"
// +kubebuilder:validation:XValidation:rule="self.type != 'cancel_subscription' || has(self.subscriptionID)",message="flow.type cancel_subscription needs flow.subscriptionID: the subscription to cancel"
// +kubebuilder:validation:XValidation:rule="self.type != 'update_subscription' || has(self.subscriptionID)",message="flow.type update_subscription needs flow.subscriptionID: the subscription to change"
// +kubebuilder:validation:XValidation:rule="!has(self.paymentID) || self.type == 'complete_payment'",message="flow.paymentID is only used with flow.type complete_payment"
type Flow struct {
	// Type of the task.
	Type FlowType `json:"type"`
	// PaymentID is the incomplete payment to complete (complete_payment).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	PaymentID string `json:"paymentID,omitempty"`
	// SubscriptionID is the subscription to act on (cancel_subscription, update_subscription;
	// optional for update_payment_method).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	SubscriptionID string `json:"subscriptionID,omitempty"`
}

// SessionRestrictions narrow one session's rules. A field left out narrows nothing.
type SessionRestrictions struct {
	// PaymentMethods are the only method types this session offers and accepts (intersected with
	// the portal's own).
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PaymentMethods []PaymentMethodType `json:"paymentMethods,omitempty"`
	// Permissions can only turn the portal's permissions off for this session: a permission set
	// to true here is refused (it would widen what the portal allows, and the portal would not
	// grant it anyway).
	// +optional
	Permissions *RestrictedPermissions `json:"permissions,omitempty"`
}

// RestrictedPermissions turns permissions off for one session.
// +kubebuilder:validation:XValidation:rule="(!has(self.updateBillingInfo) || !self.updateBillingInfo) && (!has(self.viewPaymentHistory) || !self.viewPaymentHistory) && (!has(self.updatePaymentMethod) || !self.updatePaymentMethod) && (!has(self.cancelSubscriptions) || !self.cancelSubscriptions) && (!has(self.updateSubscriptions) || !self.updateSubscriptions)",message="restrictions.permissions can only turn permissions off (false): a session cannot be allowed more than its portal"
type RestrictedPermissions struct {
	// +optional
	UpdateBillingInfo *bool `json:"updateBillingInfo,omitempty"`
	// +optional
	ViewPaymentHistory *bool `json:"viewPaymentHistory,omitempty"`
	// +optional
	UpdatePaymentMethod *bool `json:"updatePaymentMethod,omitempty"`
	// +optional
	CancelSubscriptions *bool `json:"cancelSubscriptions,omitempty"`
	// +optional
	UpdateSubscriptions *bool `json:"updateSubscriptions,omitempty"`
}

// RecoveryMode says what an expired or revoked link offers.
// +kubebuilder:validation:Enum=Login;None
type RecoveryMode string

// Recovery modes.
const (
	// RecoveryLogin offers the e-mail code sign-in (when the portal's public access is on),
	// pre-filled with the session's customer e-mail, and lands on the link's flow after it.
	RecoveryLogin RecoveryMode = "Login"
	// RecoveryNone shows only that the link ended.
	RecoveryNone RecoveryMode = "None"
)

// AfterExpiration configures what an ended link offers.
type AfterExpiration struct {
	// Recovery is Login (the default) or None. Login needs the portal's public access; without
	// it the link shows only that it ended.
	// +kubebuilder:default=Login
	// +optional
	Recovery RecoveryMode `json:"recovery,omitempty"`
}

// Delivery says how the link reaches the customer besides the link Secret.
type Delivery struct {
	// Email sends the link to the customer's e-mail address once, through the portal's SMTP settings.
	// +optional
	Email bool `json:"email,omitempty"`
}

// PortalSessionStatus is the observed state of a PortalSession. It never holds the token.
type PortalSessionStatus struct {
	// Phase is Active, Expired or Revoked.
	// +optional
	Phase SessionPhase `json:"phase,omitempty"`
	// ExpiresAt is when the link stops working.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// TokenHash is the hex SHA-256 of the link's token, for the portal to validate links.
	// +optional
	TokenHash string `json:"tokenHash,omitempty"`
	// LinkSecretName names the Secret holding the token and url (while the session is Active).
	// +optional
	LinkSecretName string `json:"linkSecretName,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, and Delivered when delivery.email is set.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PortalSession is a temporary, pre-authenticated link that opens one CustomerPortal as one customer.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=psession,categories=portero
// +kubebuilder:selectablefield:JSONPath=`.spec.portalRef.name`
// +kubebuilder:printcolumn:name="Portal",type=string,JSONPath=`.spec.portalRef.name`
// +kubebuilder:printcolumn:name="Customer",type=string,JSONPath=`.spec.customer.*`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`,description="When the link stops working (RFC 3339, UTC)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PortalSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PortalSessionSpec   `json:"spec"`
	Status PortalSessionStatus `json:"status,omitempty"`
}

// PortalSessionList is a list of PortalSessions.
// +kubebuilder:object:root=true
type PortalSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PortalSession `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PortalSession{}, &PortalSessionList{})
}
