// Package receipts makes the receipt of a succeeded payment ("comprobante de pago"): who was
// paid (the merchant's legal name and CUIT), who paid (the customer's billing profile), how much,
// when, with what and Portero's payment id, in Spanish or English. The portal shows it as a
// print-friendly page and both the portal and the merchant API hand it out as a PDF; both
// renderings are made from the same Document, so they never say different things.
//
// A receipt is not a tax invoice (factura): invoices in Argentina are authorised by AFIP through
// the merchant's own invoicing system, and every receipt says so.
package receipts

import (
	"errors"
	"strings"
	"time"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// ErrNoReceipt is returned for a payment that has not succeeded: only money received has a
// receipt.
var ErrNoReceipt = errors.New("receipts: only a succeeded payment has a receipt")

// Merchant is who issues the receipt.
type Merchant struct {
	// LegalName is the merchant's legal name (razón social); the portal's display name when
	// branding.legalName is not set.
	LegalName string
	// TaxID is the merchant's CUIT as 11 digits, "" when branding.taxID is not set (or, on an
	// object that bypassed the API server's validation, is not a CUIT).
	TaxID string
}

// MerchantOf reads the issuer from a CustomerPortal's branding as it is now.
func MerchantOf(p *billingv1alpha1.CustomerPortal) Merchant {
	b := p.Spec.Branding
	m := Merchant{LegalName: strings.TrimSpace(b.LegalName)}
	if m.LegalName == "" {
		m.LegalName = p.Spec.DisplayName
	}
	if b.TaxID != "" {
		if d, err := payments.ParseCUIT(b.TaxID); err == nil {
			m.TaxID = d
		}
	}
	return m
}

// Receipt is what one succeeded payment's receipt holds, before it is put into words.
type Receipt struct {
	Merchant Merchant
	Customer ledger.Customer
	Payment  ledger.Payment
	// PaidAt is when the charge succeeded.
	PaidAt time.Time
}

// New is the receipt of p, paid by c; ErrNoReceipt unless p succeeded. p should carry its
// attempts (the ledger's Get methods fill them): the succeeded one says when it was paid.
func New(m Merchant, c ledger.Customer, p ledger.Payment) (Receipt, error) {
	if p.Status != ledger.PaymentSucceeded {
		return Receipt{}, ErrNoReceipt
	}
	if c.ID != p.CustomerID {
		return Receipt{}, errors.New("receipts: the customer is not the payment's")
	}
	r := Receipt{Merchant: m, Customer: c, Payment: p, PaidAt: p.UpdatedAt}
	for _, a := range p.Attempts {
		if a.Outcome == ledger.PaymentSucceeded && !a.FinishedAt.IsZero() {
			r.PaidAt = a.FinishedAt
		}
	}
	return r, nil
}

// Document is a receipt in one language: every text either rendering shows, ready-made.
type Document struct {
	Locale string
	// Title is "Comprobante de pago" / "Payment receipt"; Notice says it is not an invoice.
	Title, Notice string
	Merchant      Party
	Customer      Party
	// AmountLabel and Amount are the figure the receipt is for ("$ 1.500,00").
	AmountLabel, Amount string
	// Facts are the payment's details: date, method, concept, period, payment id.
	Facts []Fact
	// Footer says who issued it, through what.
	Footer string
}

// Party is one side of the payment: a heading and its lines (name, CUIT, address…).
type Party struct {
	Heading string
	Lines   []string
}

// Fact is one labelled detail.
type Fact struct{ Label, Value string }

// Document puts the receipt into words in locale ("es" or "en"; anything else reads Spanish,
// the portal's first language).
func (r Receipt) Document(locale string) Document {
	t := textsFor(locale)
	d := Document{Locale: t.locale, Title: t.title, Notice: t.notice, AmountLabel: t.amount,
		Amount: formatMoney(t.locale, r.Payment.Amount, r.Payment.Currency)}

	d.Merchant = Party{Heading: t.issuer, Lines: []string{r.Merchant.LegalName}}
	if r.Merchant.TaxID != "" {
		d.Merchant.Lines = append(d.Merchant.Lines, "CUIT "+payments.FormatCUIT(r.Merchant.TaxID))
	}

	c, b := r.Customer, r.Customer.Billing
	d.Customer = Party{Heading: t.customer}
	name := strings.TrimSpace(b.LegalName)
	if name == "" {
		name = strings.TrimSpace(c.Name)
	}
	if name != "" {
		d.Customer.Lines = append(d.Customer.Lines, name)
	}
	if b.TaxID != "" {
		d.Customer.Lines = append(d.Customer.Lines, "CUIT/CUIL "+payments.FormatCUIT(b.TaxID))
	}
	if tc := t.taxCondition[b.TaxCondition]; tc != "" {
		d.Customer.Lines = append(d.Customer.Lines, tc)
	}
	d.Customer.Lines = append(d.Customer.Lines, addressLines(b.Address)...)
	if c.Email != "" {
		d.Customer.Lines = append(d.Customer.Lines, c.Email)
	}

	p := r.Payment
	d.Facts = append(d.Facts, Fact{t.paidAt, formatDateTime(t.locale, r.PaidAt)})
	if m := methodSummary(t, p.MethodType, p.MethodSummary); m != "" {
		d.Facts = append(d.Facts, Fact{t.method, m})
	}
	if desc := strings.TrimSpace(p.Description); desc != "" {
		d.Facts = append(d.Facts, Fact{t.concept, desc})
	}
	if !p.PeriodStart.IsZero() && !p.PeriodEnd.IsZero() {
		d.Facts = append(d.Facts, Fact{t.period, formatDate(t.locale, p.PeriodStart) + " – " + formatDate(t.locale, p.PeriodEnd)})
	}
	d.Facts = append(d.Facts, Fact{t.paymentID, p.ID})
	d.Footer = t.footer
	return d
}

// addressLines are a postal address as printed: street, then city, province and postal code,
// then the country when it is not Argentina.
func addressLines(a ledger.Address) []string {
	var out []string
	street := strings.TrimSpace(strings.Join(nonEmpty(a.Line1, a.Line2), ", "))
	if street != "" {
		out = append(out, street)
	}
	place := strings.Join(nonEmpty(a.City, a.Province), ", ")
	if pc := strings.TrimSpace(a.PostalCode); pc != "" {
		place = strings.TrimSpace(pc + " " + place)
	}
	if place != "" {
		out = append(out, place)
	}
	if c := strings.ToUpper(strings.TrimSpace(a.Country)); c != "" && c != "AR" {
		out = append(out, c)
	}
	return out
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Filename is the PDF's file name in locale: comprobante-pay_….pdf / receipt-pay_….pdf. Payment
// ids are the ledger's (letters, digits, underscores); anything else is dropped, so the name is
// safe in a Content-Disposition header.
func Filename(locale, paymentID string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return -1
	}, paymentID)
	return textsFor(locale).file + "-" + safe + ".pdf"
}
