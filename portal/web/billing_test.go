package web

import (
	"net/http"
	"net/url"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

func billingForm() url.Values {
	return url.Values{"legal_name": {"Jane Doe SRL"}, "tax_id": {"30-71234567-1"}, "tax_condition": {"responsable_inscripto"},
		"line1": {"Av. Corrientes 1234"}, "line2": {"Piso 5"}, "city": {"CABA"}, "province": {"Buenos Aires"},
		"postal_code": {"C1043"}, "country": {"ar"}}
}

// billing is the customer's billing profile as the ledger has it.
func (f *fixture) billing(c ledger.Customer) ledger.BillingProfile {
	f.t.Helper()
	got, err := f.ledger.GetCustomer(f.ctx, c.ID)
	if err != nil {
		f.t.Fatalf("get customer %s: %v", c.ID, err)
	}
	return got.Billing
}

func TestBillingInformation(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)

	r := b.get("/billing")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `<label for="tax_id">CUIT / CUIL</label>`, `value="AR"`, "<legend>Domicilio fiscal</legend>")

	t.Run("field errors, all at once", func(t *testing.T) {
		before := f.billing(c)
		form := billingForm()
		form.Set("tax_id", "30-71234567-2")
		form.Set("country", "ARG")
		form.Set("tax_condition", "evasor")
		r := b.submit("/billing", form)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantFieldError(t, r, "tax_id")
		wantFieldError(t, r, "country")
		wantFieldError(t, r, "tax_condition")
		wantBody(t, r, "El dígito verificador del CUIT/CUIL no coincide", "Revisá los campos marcados", `value="Av. Corrientes 1234"`)
		form = billingForm()
		form.Set("tax_id", "")
		r = b.submit("/billing", form)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		wantFieldError(t, r, "tax_id")
		wantBody(t, r, "el CUIT es obligatorio")
		if got := f.billing(c); got != before {
			t.Fatalf("refused forms saved billing data: %+v", got)
		}
	})

	t.Run("saved", func(t *testing.T) {
		wantRedirect(t, b.submit("/billing", billingForm()), "/billing")
		want := ledger.BillingProfile{LegalName: "Jane Doe SRL", TaxID: "30712345671", TaxCondition: ledger.ResponsableInscripto,
			Address: ledger.Address{Line1: "Av. Corrientes 1234", Line2: "Piso 5", City: "CABA", Province: "Buenos Aires", PostalCode: "C1043", Country: "AR"}}
		if got := f.billing(c); got != want {
			t.Fatalf("billing = %+v", got)
		}
		r := b.get("/billing")
		wantBody(t, r, "Guardamos tus datos de facturación", `value="30-71234567-1"`, `<option value="responsable_inscripto" selected>`)
		wantBody(t, b.get("/"), "Jane Doe SRL", "30-71234567-1", "Responsable inscripto")
	})

	t.Run("missing CSRF token", func(t *testing.T) {
		b.get("/billing") // a page with a valid token, which the forged form does not carry
		form := billingForm()
		form.Set("legal_name", "Forged")
		wantRefused(t, b.forge("/billing", form), csrfRefused)
		if got := f.billing(c); got.LegalName != "Jane Doe SRL" {
			t.Fatalf("a forged form changed the billing profile: %+v", got)
		}
	})

	t.Run("section off", func(t *testing.T) {
		f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdateBillingInfo = new(bool) })
		wantNoBody(t, okPage(t, b.get("/")), `href="/billing"`, "Datos de facturación")
		wantRefused(t, b.get("/billing"), sectionRefused)
		b.get("/")
		form := billingForm()
		form.Set("legal_name", "After")
		wantRefused(t, b.submit("/billing", form), sectionRefused)
		if got := f.billing(c); got.LegalName != "Jane Doe SRL" {
			t.Fatalf("billing changed with the section off: %+v", got)
		}
	})
}
