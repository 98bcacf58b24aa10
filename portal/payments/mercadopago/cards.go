package mercadopago

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"

	"github.com/mercadopago/sdk-go/pkg/customercard"

	"github.com/portero-dev/portero/portal/payments"
)

// StartSetup implements payments.Adapter. Mercado Pago has no page of its own that saves a
// card for a merchant: its card fields are embedded in the merchant's page. So the set-up page
// is the portal's return page in fields mode — req.ReturnURL with FieldsParam — which shows
// Mercado Pago's fields (Card Payment Brick) and posts the card token they produce back to the
// same URL as the set-up reference. Nothing is created at Mercado Pago until CompleteSetup.
func (a *Adapter) StartSetup(_ context.Context, req payments.SetupRequest) (payments.SetupSession, error) {
	if req.MethodType != "" && req.MethodType != payments.MethodCard {
		return payments.SetupSession{}, &payments.Error{Code: payments.CodeUnsupportedMethod, Field: "type"}
	}
	if req.Customer == "" {
		return payments.SetupSession{}, errors.New("mercadopago: start set-up: no Mercado Pago customer")
	}
	u, err := url.Parse(req.ReturnURL)
	if err != nil || !u.IsAbs() {
		return payments.SetupSession{}, errors.New("mercadopago: start set-up: the return URL must be absolute")
	}
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return payments.SetupSession{}, errors.New("mercadopago: start set-up: no randomness")
	}
	ref := "fields_" + hex.EncodeToString(nonce[:])
	q := u.Query()
	q.Set(FieldsParam, ref)
	u.RawQuery = q.Encode()
	return payments.SetupSession{RedirectURL: u.String(), Reference: ref}, nil
}

// validCardToken accepts what Mercado Pago's card tokens look like: 32 hexadecimal characters.
// Anything else is not sent anywhere.
func validCardToken(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// validCardID accepts Mercado Pago's card ids: digits.
func validCardID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CompleteSetup implements payments.Adapter: the reference is the card token Mercado Pago's
// fields produced, and the card is saved on req.Customer (POST /v1/customers/{id}/cards).
// Mercado Pago answers a card the customer has already with that card, so a reload of the
// return page, or the same token twice, gives the same card. A token that is not one, has
// expired or was refused is CodeSetupIncomplete, without saying which.
func (a *Adapter) CompleteSetup(ctx context.Context, req payments.SetupCompletion) (payments.Method, error) {
	incomplete := &payments.Error{Code: payments.CodeSetupIncomplete}
	if !validCardToken(req.Reference) || req.Customer == "" {
		return payments.Method{}, incomplete
	}
	card, err := a.cards.Create(ctx, req.Customer, customercard.Request{Token: req.Reference})
	if err != nil {
		if isRefusal(err) || isMissing(err) {
			a.log.Info("Mercado Pago did not save a card", "err", a.fail("save card", err))
			return payments.Method{}, incomplete
		}
		return payments.Method{}, a.fail("save card", err)
	}
	if card.CustomerID != "" && card.CustomerID != req.Customer {
		return payments.Method{}, incomplete
	}
	return methodOf(card), nil
}

// methodOf keeps what Portero stores of a card: brand, last 4, expiry — and the card id.
func methodOf(c *customercard.Response) payments.Method {
	return payments.Method{
		Type:        payments.MethodCard,
		ProcessorID: c.ID,
		Brand:       brandOf(c.PaymentMethod.ID),
		Last4:       c.LastFourDigits,
		ExpMonth:    c.ExpirationMonth,
		ExpYear:     c.ExpirationYear,
	}
}

// brandOf maps Mercado Pago's payment_method_id to a card network (debit variants included).
func brandOf(id string) payments.Brand {
	switch strings.ToLower(id) {
	case "visa", "debvisa":
		return payments.BrandVisa
	case "master", "debmaster", "maestro":
		return payments.BrandMastercard
	case "amex":
		return payments.BrandAmex
	case "cabal", "debcabal":
		return payments.BrandCabal
	case "naranja":
		return payments.BrandNaranja
	case "diners":
		return payments.BrandDiners
	}
	return payments.BrandUnknown
}

// AttachMethod implements payments.Adapter for a card the merchant saved on the customer at
// Mercado Pago (its numeric card id). Cards live under their customer there, so another
// customer's card is not found and is refused as invalid.
func (a *Adapter) AttachMethod(ctx context.Context, req payments.AttachRequest) (payments.Method, error) {
	invalid := &payments.Error{Code: payments.CodeInvalidPaymentMethod, Field: "processor_payment_method"}
	if !validCardID(req.MethodID) || req.Customer == "" {
		return payments.Method{}, invalid
	}
	card, err := a.cards.Get(ctx, req.Customer, req.MethodID)
	if isMissing(err) || (err == nil && card.CustomerID != "" && card.CustomerID != req.Customer) {
		return payments.Method{}, invalid
	}
	if err != nil {
		return payments.Method{}, a.fail("get card", err)
	}
	return methodOf(card), nil
}

// Detach implements payments.Adapter: the card is deleted from the customer. One already gone
// is done.
func (a *Adapter) Detach(ctx context.Context, req payments.DetachRequest) error {
	if req.Customer == "" || !validCardID(req.MethodID) {
		return nil // never saved at Mercado Pago
	}
	if _, err := a.cards.Delete(ctx, req.Customer, req.MethodID); err != nil && !isMissing(err) {
		return a.fail("delete card", err)
	}
	return nil
}
