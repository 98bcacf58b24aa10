package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PaymentMethodType is a kind of payment method the platform supports.
// +kubebuilder:validation:Enum=card;direct_debit;bank_transfer;cvu;qr;wallet
type PaymentMethodType string

// The payment method types the platform supports today. New types are added here and,
// through SupportedPaymentMethodTypes, become available to every portal with `all: true`.
const (
	PaymentMethodCard         PaymentMethodType = "card"
	PaymentMethodDirectDebit  PaymentMethodType = "direct_debit"
	PaymentMethodBankTransfer PaymentMethodType = "bank_transfer"
	PaymentMethodCVU          PaymentMethodType = "cvu"
	PaymentMethodQR           PaymentMethodType = "qr"
	PaymentMethodWallet       PaymentMethodType = "wallet"
)

// SupportedPaymentMethodTypes lists every payment method type the platform supports, in the
// order portals offer them.
func SupportedPaymentMethodTypes() []PaymentMethodType {
	return []PaymentMethodType{
		PaymentMethodCard, PaymentMethodDirectDebit, PaymentMethodBankTransfer,
		PaymentMethodCVU, PaymentMethodQR, PaymentMethodWallet,
	}
}

// ProcessorType names a payment processor a portal can charge through.
// +kubebuilder:validation:Enum=sandbox;stripe;mercadopago
type ProcessorType string

// Payment processors.
const (
	// ProcessorSandbox is the built-in processor that moves no money: for make run, demos and
	// tests. Cards are typed in the portal's own form.
	ProcessorSandbox ProcessorType = "sandbox"
	// ProcessorStripe charges through Stripe; cards are typed on Stripe's pages only.
	ProcessorStripe ProcessorType = "stripe"
	// ProcessorMercadoPago charges through Mercado Pago.
	ProcessorMercadoPago ProcessorType = "mercadopago"
)

// MethodTypes lists the payment method types the processor takes, in the platform's order. It
// agrees with each processor adapter's declared capabilities (a test in this package checks the
// registered ones) and with the CEL rule on CustomerPortalSpec, which repeats it.
func (t ProcessorType) MethodTypes() []PaymentMethodType {
	switch t {
	case ProcessorStripe:
		return []PaymentMethodType{PaymentMethodCard}
	case ProcessorMercadoPago:
		return []PaymentMethodType{PaymentMethodCard, PaymentMethodQR, PaymentMethodWallet}
	}
	return SupportedPaymentMethodTypes()
}

// SecretKeys lists the keys the processor's Secret (spec.processor.secretRef) must hold: the
// operator reports a portal whose Secret lacks one as Stalled. It agrees with what each
// registered adapter requires (a test in this package checks). nil means none is known yet.
func (t ProcessorType) SecretKeys() []string {
	switch t {
	case ProcessorSandbox:
		return []string{"secret"}
	case ProcessorStripe:
		return []string{"secret_key", "webhook_secret"}
	case ProcessorMercadoPago:
		return []string{"access_token", "public_key", "webhook_secret"}
	}
	return nil
}

// CancellationMode says when a cancelled subscription stops.
// +kubebuilder:validation:Enum=AtPeriodEnd;Immediately
type CancellationMode string

const (
	// CancelAtPeriodEnd keeps the subscription until the end of the period already paid.
	CancelAtPeriodEnd CancellationMode = "AtPeriodEnd"
	// CancelImmediately ends the subscription at once.
	CancelImmediately CancellationMode = "Immediately"
)

// CustomerPortalSpec is the desired configuration ("perfil") of one customer portal.
//
// The first rules refuse a paymentMethods.allowed naming a type the processor cannot take, one
// rule per type so that the refusal names it (a single rule composing its message costs more
// than the API server's CEL budget allows); ProcessorType.MethodTypes says the same.
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'stripe' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('direct_debit' in self.paymentMethods.allowed)",message="paymentMethods.allowed names direct_debit, which processor stripe cannot take; it takes card"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'stripe' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('bank_transfer' in self.paymentMethods.allowed)",message="paymentMethods.allowed names bank_transfer, which processor stripe cannot take; it takes card"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'stripe' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('cvu' in self.paymentMethods.allowed)",message="paymentMethods.allowed names cvu, which processor stripe cannot take; it takes card"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'stripe' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('qr' in self.paymentMethods.allowed)",message="paymentMethods.allowed names qr, which processor stripe cannot take; it takes card"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'stripe' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('wallet' in self.paymentMethods.allowed)",message="paymentMethods.allowed names wallet, which processor stripe cannot take; it takes card"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'mercadopago' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('direct_debit' in self.paymentMethods.allowed)",message="paymentMethods.allowed names direct_debit, which processor mercadopago cannot take; it takes card, qr and wallet"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'mercadopago' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('bank_transfer' in self.paymentMethods.allowed)",message="paymentMethods.allowed names bank_transfer, which processor mercadopago cannot take; it takes card, qr and wallet"
// +kubebuilder:validation:XValidation:rule="!has(self.processor) || self.processor.type != 'mercadopago' || !has(self.paymentMethods) || !has(self.paymentMethods.allowed) || !('cvu' in self.paymentMethods.allowed)",message="paymentMethods.allowed names cvu, which processor mercadopago cannot take; it takes card, qr and wallet"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas <= 1 || has(self.storage.postgres)",message="replicas above 1 need storage.postgres: SQLite lives on a single pod's volume"
// +kubebuilder:validation:XValidation:rule="(has(self.access.public.enabled) && !self.access.public.enabled) || has(self.email)",message="email (smtpSecretRef and from) is required while access.public.enabled is true: the public login sends one-time codes by e-mail"
type CustomerPortalSpec struct {
	// DisplayName is the portal's name as customers see it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	DisplayName string `json:"displayName"`

	// Permissions are the four things a customer may do in this portal; each is enforced by the
	// portal server and applies live, without a restart.
	// +kubebuilder:default={}
	// +optional
	Permissions Permissions `json:"permissions,omitempty"`

	// SubscriptionUpdate says which plan and quantity changes customers may make, and how they
	// are billed. Applied live. Customers also need permissions.updateSubscriptions.
	// +kubebuilder:default={}
	// +optional
	SubscriptionUpdate SubscriptionUpdate `json:"subscriptionUpdate,omitempty"`

	// Cancellation says how subscriptions cancelled from the portal end.
	// +kubebuilder:default={}
	// +optional
	Cancellation Cancellation `json:"cancellation,omitempty"`

	// PaymentMethods are the payment method types customers may add in this portal. Only types
	// the portal's processor takes may be listed; `all: true` means every type it takes.
	// +kubebuilder:default={all: true}
	// +optional
	PaymentMethods *PaymentMethods `json:"paymentMethods,omitempty"`

	// Processor is the payment processor that charges this portal's payments and holds its
	// customers' cards: the built-in sandbox (the default, which moves no money) or a real one
	// with its credentials in a Secret. Applied live: a change applies to the next request,
	// with no rollout.
	// +kubebuilder:default={type: sandbox}
	// +optional
	Processor *Processor `json:"processor,omitempty"`

	// ReturnURL is an optional "back to the merchant" link shown in the portal.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1']))",message="returnURL must be an absolute https:// URL (plain http:// is allowed only for localhost or 127.0.0.1)"
	// +optional
	ReturnURL string `json:"returnURL,omitempty"`

	// Access says how customers get in: the public link with e-mail login, and session links.
	// +kubebuilder:default={}
	// +optional
	Access Access `json:"access,omitempty"`

	// OTP tunes the one-time codes of the public e-mail login.
	// +kubebuilder:default={}
	// +optional
	OTP OTP `json:"otp,omitempty"`

	// Branding is the portal's look: language, logo, colour and support address.
	// +kubebuilder:default={}
	// +optional
	Branding Branding `json:"branding,omitempty"`

	// Email configures the SMTP server the portal sends codes and links through.
	// Required while public access is enabled.
	// +optional
	Email *Email `json:"email,omitempty"`

	// Storage is where the portal keeps its ledger: embedded SQLite or a PostgreSQL database.
	// +kubebuilder:default={sqlite: {}}
	// +optional
	Storage *Storage `json:"storage,omitempty"`

	// MerchantAPI enables the merchant API with the key in the referenced Secret.
	// Without it the portal serves no merchant API.
	// +optional
	MerchantAPI *MerchantAPI `json:"merchantAPI,omitempty"`

	// Exposure says where customers reach the portal.
	// +optional
	Exposure *Exposure `json:"exposure,omitempty"`

	// Webhooks are the merchant's endpoints that receive the portal's events (customers, payment
	// methods, subscriptions, payments), signed per the Standard Webhooks specification. Applied
	// live: a change applies to the next event.
	// +kubebuilder:validation:MaxItems=10
	// +listType=map
	// +listMapKey=name
	// +optional
	Webhooks []WebhookEndpoint `json:"webhooks,omitempty"`

	// Replicas is the number of portal server pods. More than one requires storage.postgres.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	// +kubebuilder:default=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
}

// Permissions are the seed's four toggles.
type Permissions struct {
	// UpdateBillingInfo lets customers edit their billing profile ("Actualizar la información de facturación").
	// +kubebuilder:default=true
	// +optional
	UpdateBillingInfo *bool `json:"updateBillingInfo,omitempty"`
	// ViewPaymentHistory lets customers see their payments ("Ver el historial de pagos").
	// +kubebuilder:default=true
	// +optional
	ViewPaymentHistory *bool `json:"viewPaymentHistory,omitempty"`
	// UpdatePaymentMethod lets customers add, remove and order payment methods ("Actualizar el método de pago").
	// +kubebuilder:default=true
	// +optional
	UpdatePaymentMethod *bool `json:"updatePaymentMethod,omitempty"`
	// CancelSubscriptions lets customers cancel their subscriptions ("Cancelar suscripciones").
	// +kubebuilder:default=false
	// +optional
	CancelSubscriptions *bool `json:"cancelSubscriptions,omitempty"`
	// UpdateSubscriptions lets customers change a subscription's plan or quantity, within
	// spec.subscriptionUpdate.
	// +kubebuilder:default=false
	// +optional
	UpdateSubscriptions *bool `json:"updateSubscriptions,omitempty"`
}

// CanUpdateBillingInfo reports the effective updateBillingInfo permission (default true).
func (p Permissions) CanUpdateBillingInfo() bool { return boolOr(p.UpdateBillingInfo, true) }

// CanViewPaymentHistory reports the effective viewPaymentHistory permission (default true).
func (p Permissions) CanViewPaymentHistory() bool { return boolOr(p.ViewPaymentHistory, true) }

// CanUpdatePaymentMethod reports the effective updatePaymentMethod permission (default true).
func (p Permissions) CanUpdatePaymentMethod() bool { return boolOr(p.UpdatePaymentMethod, true) }

// CanCancelSubscriptions reports the effective cancelSubscriptions permission (default false).
func (p Permissions) CanCancelSubscriptions() bool { return boolOr(p.CancelSubscriptions, false) }

// CanUpdateSubscriptions reports the effective updateSubscriptions permission (default false).
func (p Permissions) CanUpdateSubscriptions() bool { return boolOr(p.UpdateSubscriptions, false) }

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// ProrationBehavior says how a plan or quantity change in the middle of a period is billed.
// +kubebuilder:validation:Enum=CreateProrations;None;AlwaysCharge
type ProrationBehavior string

// Proration behaviours.
const (
	// ProrationCreate charges (or credits, for a downgrade) the difference for the rest of the
	// period, to the second, at the change; a credit is consumed by the next charges.
	ProrationCreate ProrationBehavior = "CreateProrations"
	// ProrationNone changes the plan without charging or crediting anything now: the next
	// period is billed at the new price.
	ProrationNone ProrationBehavior = "None"
	// ProrationAlwaysCharge charges the difference for an upgrade and credits nothing for a
	// downgrade.
	ProrationAlwaysCharge ProrationBehavior = "AlwaysCharge"
)

// UpdateEffective says when a plan or quantity change takes effect.
// +kubebuilder:validation:Enum=Immediately;AtPeriodEnd
type UpdateEffective string

// When changes take effect.
const (
	UpdateImmediately UpdateEffective = "Immediately"
	UpdateAtPeriodEnd UpdateEffective = "AtPeriodEnd"
)

// SubscriptionUpdate configures plan and quantity changes from the portal.
// +kubebuilder:validation:XValidation:rule="!(has(self.enabled) && self.enabled) || (has(self.plans) && size(self.plans) > 0) || (has(self.quantity) && self.quantity)",message="subscriptionUpdate.enabled needs plans customers may switch between, or quantity: true"
type SubscriptionUpdate struct {
	// Enabled offers "change plan" on subscriptions.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// Plans are the ids of the plans (POST /api/v1/plans) customers may switch between; only
	// plans of the subscription's currency are offered.
	// +listType=set
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MaxLength=128
	// +optional
	Plans []string `json:"plans,omitempty"`
	// Quantity lets customers change how many units they subscribe to.
	// +optional
	Quantity bool `json:"quantity,omitempty"`
	// Proration is how a change in the middle of a period is billed.
	// +kubebuilder:default=CreateProrations
	// +optional
	Proration ProrationBehavior `json:"proration,omitempty"`
	// Effective is when a change takes effect.
	// +kubebuilder:default=Immediately
	// +optional
	Effective UpdateEffective `json:"effective,omitempty"`
}

// Cancellation configures subscription cancellation from the portal.
type Cancellation struct {
	// Mode is AtPeriodEnd (the default: the customer keeps what they paid for) or Immediately.
	// +kubebuilder:default=AtPeriodEnd
	// +optional
	Mode CancellationMode `json:"mode,omitempty"`
	// CollectReason asks the customer why they cancel.
	// +optional
	CollectReason bool `json:"collectReason,omitempty"`
}

// PaymentMethods selects the payment method types a portal offers: a fixed set, or all of them.
// +kubebuilder:validation:XValidation:rule="(has(self.allowed) && size(self.allowed) > 0) != (has(self.all) && self.all)",message="set exactly one of paymentMethods.allowed (a list of method types) or paymentMethods.all: true"
type PaymentMethods struct {
	// Allowed is the set of payment method types customers may use.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Allowed []PaymentMethodType `json:"allowed,omitempty"`
	// All offers every type the platform supports, including types added in later releases.
	// +optional
	All bool `json:"all,omitempty"`
	// MaxPerCustomer caps how many payment methods one customer may keep (1 to 500). It stops a
	// signed-in customer from adding methods in a loop, which on a real processor would turn the
	// portal into a card-testing tool. Methods already saved above a lowered cap stay.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=500
	// +kubebuilder:default=50
	// +optional
	MaxPerCustomer int32 `json:"maxPerCustomer,omitempty"`
}

// DefaultMaxPaymentMethodsPerCustomer is paymentMethods.maxPerCustomer when the schema's default
// did not apply (objects that bypassed the API server's defaulting).
const DefaultMaxPaymentMethodsPerCustomer = 50

// Max returns the effective cap on payment methods per customer.
func (m *PaymentMethods) Max() int {
	if m == nil || m.MaxPerCustomer <= 0 {
		return DefaultMaxPaymentMethodsPerCustomer
	}
	return int(m.MaxPerCustomer)
}

// Effective returns the payment method types customers are offered right now. A nil selection
// (possible only for objects that bypassed the API server's defaulting) offers every type.
func (m *PaymentMethods) Effective() []PaymentMethodType {
	if m == nil || m.All {
		return SupportedPaymentMethodTypes()
	}
	out := make([]PaymentMethodType, 0, len(m.Allowed))
	for _, t := range SupportedPaymentMethodTypes() {
		for _, a := range m.Allowed {
			if a == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// Allows reports whether customers may use payment methods of type t.
func (m *PaymentMethods) Allows(t PaymentMethodType) bool {
	for _, e := range m.Effective() {
		if e == t {
			return true
		}
	}
	return false
}

// Processor names a portal's payment processor and the Secret with its credentials.
// +kubebuilder:validation:XValidation:rule="self.type == 'sandbox' || has(self.secretRef)",message="processor.secretRef (the Secret with the processor's credentials) is required unless processor.type is sandbox"
type Processor struct {
	// Type is the processor: sandbox, stripe or mercadopago.
	// +kubebuilder:default=sandbox
	// +optional
	Type ProcessorType `json:"type,omitempty"`
	// SecretRef names the Secret in the portal's namespace holding the processor's credentials.
	// Stripe: secret_key (sk_… or rk_…), webhook_secret (whsec_…) and optionally api_base
	// (another API endpoint, e.g. stripe-mock or an egress proxy: https, or http for loopback
	// and cluster-local hosts). Mercado Pago: access_token, public_key and webhook_secret (the
	// webhook notifications' secret signature), optionally api_base, qr_pos_id (the point of
	// sale of dynamic QR orders) and notification_url. The portal's Role may get this Secret
	// and no other.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// ProcessorType returns the portal's processor type (the sandbox when none is named).
func (s *CustomerPortalSpec) ProcessorType() ProcessorType {
	if s.Processor == nil || s.Processor.Type == "" {
		return ProcessorSandbox
	}
	return s.Processor.Type
}

// EffectivePaymentMethods returns the payment method types customers are offered right now:
// those paymentMethods selects that the portal's processor takes. This is what status shows
// and what the portal enforces.
func (s *CustomerPortalSpec) EffectivePaymentMethods() []PaymentMethodType {
	takes := s.ProcessorType().MethodTypes()
	var out []PaymentMethodType
	for _, t := range s.PaymentMethods.Effective() {
		for _, x := range takes {
			if t == x {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// AcceptsPaymentMethod reports whether customers may use payment methods of type t now.
func (s *CustomerPortalSpec) AcceptsPaymentMethod(t PaymentMethodType) bool {
	for _, e := range s.EffectivePaymentMethods() {
		if e == t {
			return true
		}
	}
	return false
}

// Access configures how customers get into the portal.
type Access struct {
	// Public is the portal's public link: e-mail address, then a one-time code.
	// +kubebuilder:default={}
	// +optional
	Public PublicAccess `json:"public,omitempty"`
	// Sessions bounds the lifetime of pre-authenticated PortalSession links.
	// +kubebuilder:default={}
	// +optional
	Sessions SessionAccess `json:"sessions,omitempty"`
}

// PublicAccess configures the public link.
type PublicAccess struct {
	// Enabled turns the public e-mail login on (the default) or off.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// IsEnabled reports whether the public e-mail login is on (default true).
func (p PublicAccess) IsEnabled() bool { return boolOr(p.Enabled, true) }

// SessionAccess bounds PortalSession lifetimes.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultTTL) || !has(self.maxTTL) || self.defaultTTL <= self.maxTTL",message="access.sessions.defaultTTL (1h when not set) must not be longer than access.sessions.maxTTL: with a maxTTL under 1h, set defaultTTL too"
type SessionAccess struct {
	// DefaultTTL is the lifetime of a session that does not set its own ttl (1m to 168h).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="self >= duration('1m') && self <= duration('168h')",message="access.sessions.defaultTTL must be between 1m and 168h"
	// +kubebuilder:default="1h"
	// +optional
	DefaultTTL *metav1.Duration `json:"defaultTTL,omitempty"`
	// MaxTTL is the longest lifetime a session may ask for (1m to 168h).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="self >= duration('1m') && self <= duration('168h')",message="access.sessions.maxTTL must be between 1m and 168h"
	// +kubebuilder:default="24h"
	// +optional
	MaxTTL *metav1.Duration `json:"maxTTL,omitempty"`
}

// OTP tunes one-time login codes.
type OTP struct {
	// Length is the number of digits in a code (6 to 10).
	// +kubebuilder:validation:Minimum=6
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=6
	// +optional
	Length int32 `json:"length,omitempty"`
	// TTL is how long a code stays valid (1m to 1h).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="self >= duration('1m') && self <= duration('1h')",message="otp.ttl must be between 1m and 1h"
	// +kubebuilder:default="10m"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
	// MaxAttempts is how many wrong codes end a login attempt (1 to 10).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=5
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`
	// ResendCooldown is the wait before the same sign-in attempt (one browser) may ask for its code
	// again (0s to 1h). Other browsers are not held back by it: see the README on sign-in limits.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="self >= duration('0s') && self <= duration('1h')",message="otp.resendCooldown must be between 0s and 1h"
	// +kubebuilder:default="30s"
	// +optional
	ResendCooldown *metav1.Duration `json:"resendCooldown,omitempty"`
}

// Branding is the portal's look.
type Branding struct {
	// Locale is the portal's default language: es (the default) or en. Customers can switch.
	// +kubebuilder:validation:Enum=es;en
	// +kubebuilder:default=es
	// +optional
	Locale string `json:"locale,omitempty"`
	// LogoURL is an https URL of the merchant's logo.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1']))",message="branding.logoURL must be an absolute https:// URL (plain http:// is allowed only for localhost or 127.0.0.1)"
	// +optional
	LogoURL string `json:"logoURL,omitempty"`
	// PrimaryColor is the accent colour, as #rrggbb.
	// +kubebuilder:validation:MaxLength=7
	// +kubebuilder:validation:XValidation:rule="self.matches('^#[0-9a-fA-F]{6}$')",message="branding.primaryColor must be a hex colour like #0a7cff"
	// +optional
	PrimaryColor string `json:"primaryColor,omitempty"`
	// LegalName is the merchant's legal name ("razón social"), printed on payment receipts.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +optional
	LegalName string `json:"legalName,omitempty"`
	// TaxID is the merchant's CUIT, printed on payment receipts: 11 digits, with or without
	// dashes (30-71234567-1), a valid type prefix and AFIP's check digit.
	// +kubebuilder:validation:MaxLength=13
	// +kubebuilder:validation:XValidation:rule="self.replace('-', '').matches('^(20|23|24|27|30|33|34)[0-9]{9}$') && (11 - (int(self.replace('-', '').substring(0, 1)) * 5 + int(self.replace('-', '').substring(1, 2)) * 4 + int(self.replace('-', '').substring(2, 3)) * 3 + int(self.replace('-', '').substring(3, 4)) * 2 + int(self.replace('-', '').substring(4, 5)) * 7 + int(self.replace('-', '').substring(5, 6)) * 6 + int(self.replace('-', '').substring(6, 7)) * 5 + int(self.replace('-', '').substring(7, 8)) * 4 + int(self.replace('-', '').substring(8, 9)) * 3 + int(self.replace('-', '').substring(9, 10)) * 2) % 11) != 10 && ((11 - (int(self.replace('-', '').substring(0, 1)) * 5 + int(self.replace('-', '').substring(1, 2)) * 4 + int(self.replace('-', '').substring(2, 3)) * 3 + int(self.replace('-', '').substring(3, 4)) * 2 + int(self.replace('-', '').substring(4, 5)) * 7 + int(self.replace('-', '').substring(5, 6)) * 6 + int(self.replace('-', '').substring(6, 7)) * 5 + int(self.replace('-', '').substring(7, 8)) * 4 + int(self.replace('-', '').substring(8, 9)) * 3 + int(self.replace('-', '').substring(9, 10)) * 2) % 11) == 11 ? 0 : (11 - (int(self.replace('-', '').substring(0, 1)) * 5 + int(self.replace('-', '').substring(1, 2)) * 4 + int(self.replace('-', '').substring(2, 3)) * 3 + int(self.replace('-', '').substring(3, 4)) * 2 + int(self.replace('-', '').substring(4, 5)) * 7 + int(self.replace('-', '').substring(5, 6)) * 6 + int(self.replace('-', '').substring(6, 7)) * 5 + int(self.replace('-', '').substring(7, 8)) * 4 + int(self.replace('-', '').substring(8, 9)) * 3 + int(self.replace('-', '').substring(9, 10)) * 2) % 11)) == int(self.replace('-', '').substring(10, 11))",message="branding.taxID must be a valid CUIT like 30-71234567-1: 11 digits, a prefix of 20, 23, 24, 27, 30, 33 or 34, and AFIP's check digit"
	// +optional
	TaxID string `json:"taxID,omitempty"`
	// SupportEmail is shown to customers who need help.
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@\\\\s<>]+@[^@\\\\s<>]+\\\\.[^@\\\\s<>]+$')",message="branding.supportEmail must be an e-mail address like soporte@example.com"
	// +optional
	SupportEmail string `json:"supportEmail,omitempty"`
}

// Email configures outgoing mail.
type Email struct {
	// SMTPSecretRef names a Secret in the portal's namespace with keys host, port and optionally
	// username, password and tls (starttls, tls or none).
	SMTPSecretRef LocalObjectReference `json:"smtpSecretRef"`
	// From is the sender, "Name <address>" or a bare address.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=320
	// +kubebuilder:validation:XValidation:rule="self.matches('^([^<>]*<[^@\\\\s<>]+@[^@\\\\s<>]+>|[^@\\\\s<>]+@[^@\\\\s<>]+)$')",message="email.from must be an address, optionally with a name: \"Acme <billing@acme.example>\""
	From string `json:"from"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a valid Kubernetes object name: lower-case letters, digits, '-' and '.'"
	Name string `json:"name"`
}

// DSNSecretReference names the Secret (and key, default dsn) holding a database connection string.
type DSNSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a valid Kubernetes object name: lower-case letters, digits, '-' and '.'"
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=dsn
	// +optional
	Key string `json:"key,omitempty"`
}

// APIKeySecretReference names the Secret (and key, default key) holding the merchant API key.
type APIKeySecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a valid Kubernetes object name: lower-case letters, digits, '-' and '.'"
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=key
	// +optional
	Key string `json:"key,omitempty"`
}

// Storage selects the ledger's database.
// +kubebuilder:validation:XValidation:rule="has(self.sqlite) != has(self.postgres)",message="storage needs exactly one of sqlite or postgres"
type Storage struct {
	// SQLite keeps the ledger in a file on a PersistentVolumeClaim (one replica only).
	// +optional
	SQLite *SQLiteStorage `json:"sqlite,omitempty"`
	// Postgres keeps the ledger in a PostgreSQL database whose DSN is in a Secret.
	// +optional
	Postgres *PostgresStorage `json:"postgres,omitempty"`
}

// SQLiteStorage configures the embedded SQLite ledger.
type SQLiteStorage struct {
	// Size of the PersistentVolumeClaim.
	// +kubebuilder:default="1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// StorageClassName of the PersistentVolumeClaim; the cluster default when empty.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// PostgresStorage configures a PostgreSQL ledger.
type PostgresStorage struct {
	// SecretRef names the Secret and key (default dsn) holding the connection string.
	SecretRef DSNSecretReference `json:"secretRef"`
}

// MerchantAPI configures the merchant-facing JSON API.
type MerchantAPI struct {
	// KeySecretRef names the Secret and key (default key) holding the API's bearer key.
	KeySecretRef APIKeySecretReference `json:"keySecretRef"`
}

// Exposure says where customers reach the portal: a URL served by something else (publicURL), or an
// Ingress the operator manages (host, ingressClassName, tlsSecretName).
// +kubebuilder:validation:XValidation:rule="!(has(self.publicURL) && has(self.host))",message="set exposure.publicURL or exposure.host, not both"
// +kubebuilder:validation:XValidation:rule="has(self.host) || (!has(self.ingressClassName) && !has(self.tlsSecretName))",message="exposure.ingressClassName and exposure.tlsSecretName need exposure.host"
type Exposure struct {
	// PublicURL is used verbatim as the portal's URL.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1']))",message="exposure.publicURL must be an absolute https:// URL (plain http:// is allowed only for localhost or 127.0.0.1)"
	// +optional
	PublicURL string `json:"publicURL,omitempty"`
	// Host is the DNS name of an operator-managed Ingress.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="exposure.host must be a DNS name like billing.example.com"
	// +optional
	Host string `json:"host,omitempty"`
	// IngressClassName selects the Ingress controller.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	IngressClassName *string `json:"ingressClassName,omitempty"`
	// TLSSecretName names the Secret with the Ingress's certificate; the portal is served over https when set.
	// Without it, links are http:// and carry their token in clear (the InsecureLinks condition says so).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
	// TrustedProxies lists the CIDRs of the proxies in front of the portal (the Ingress controller's
	// pods, a load balancer) whose X-Forwarded-For the portal believes. The client address used for
	// rate limits is the right-most X-Forwarded-For entry that is not a trusted proxy; with the list
	// empty (the default) the portal ignores X-Forwarded-For and uses the connection's peer address.
	// IPv6 clients are limited by their /64.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="exposure.trustedProxies entries must be CIDRs like 10.0.0.0/8 or fd00::/8"
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`
}

// WebhookEventType is the type of an event the portal sends to webhook endpoints.
// +kubebuilder:validation:Enum=customer.created;customer.updated;payment_method.added;payment_method.removed;payment_method.preferred_changed;subscription.created;subscription.payment_method_changed;subscription.canceled;payment.created;payment.incomplete;payment.requires_action;payment.pending;payment.succeeded;payment.failed
type WebhookEventType string

// WebhookEndpoint is one merchant endpoint.
type WebhookEndpoint struct {
	// Name identifies the endpoint in deliveries, metrics and redeliveries: a DNS label, unique
	// in the list.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="webhooks[].name must be a DNS label: lower-case letters, digits and '-'"
	Name string `json:"name"`
	// URL receives the events: https, or plain http only for loopback and cluster-local hosts
	// (*.svc, *.svc.cluster.local), where nothing crosses a network in clear.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && (url(self).getHostname() in ['localhost', '127.0.0.1', '::1'] || url(self).getHostname().endsWith('.svc') || url(self).getHostname().endsWith('.svc.cluster.local'))))",message="webhooks[].url must be an absolute https:// URL (plain http:// only for localhost, 127.0.0.1, ::1 and cluster-local *.svc hosts)"
	URL string `json:"url"`
	// SecretRef names the Secret (and key, default "secret") holding the endpoint's signing
	// secret: "whsec_" followed by the base64 of 24 to 64 random bytes. While the Secret also
	// holds the key "previous", every delivery is signed under both (rotation without downtime).
	SecretRef WebhookSecretReference `json:"secretRef"`
	// Events are the types the endpoint receives; empty: every type, including types added later.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Events []WebhookEventType `json:"events,omitempty"`
	// Disabled keeps the endpoint's deliveries waiting, unsent, until it is enabled again.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// WebhookSecretReference names the Secret (and key, default secret) holding a webhook signing secret.
type WebhookSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="name must be a valid Kubernetes object name: lower-case letters, digits, '-' and '.'"
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=secret
	// +optional
	Key string `json:"key,omitempty"`
}

// CustomerPortalStatus is the observed state of a CustomerPortal.
type CustomerPortalStatus struct {
	// URL is where customers reach the portal.
	// +optional
	URL string `json:"url,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas is the number of portal pods.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas is the number of portal pods ready to serve.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// PaymentMethods is the effective list of payment method types customers are offered now:
	// those spec.paymentMethods selects that the portal's processor takes.
	// +listType=atomic
	// +optional
	PaymentMethods []PaymentMethodType `json:"paymentMethods,omitempty"`
	// Conditions: Ready, Reconciling and Stalled, following kstatus.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CustomerPortal is one customer portal configuration ("perfil"): its rules, look, access and where it runs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cportal,categories=portero
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 56 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a CustomerPortal's name must be at most 56 characters of lowercase letters, digits and '-', starting with a letter and ending with a letter or digit: it names the portal's Service (<name>-portal) and labels its pods"
type CustomerPortal struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CustomerPortalSpec   `json:"spec"`
	Status CustomerPortalStatus `json:"status,omitempty"`
}

// CustomerPortalList is a list of CustomerPortals.
// +kubebuilder:object:root=true
type CustomerPortalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CustomerPortal `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CustomerPortal{}, &CustomerPortalList{})
}
