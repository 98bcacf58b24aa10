// Package processors is the registry of the payment processors Portero ships. Adding one is its
// adapter folder under portal/payments and one Register line here.
package processors

import (
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/mercadopago"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/payments/stripe"
)

// Registry returns a registry holding every shipped processor, keyed by spec.processor.type.
func Registry() *payments.Registry {
	r := payments.NewRegistry()
	r.Register(sandbox.Type, sandbox.Factory)
	r.Register(stripe.Type, stripe.Factory)
	r.Register(mercadopago.Type, mercadopago.Factory)
	return r
}
