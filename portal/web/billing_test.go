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

func TestBillingInformation(t *testing.T) {
	f := newFixture(t)
	c := f.customer("jane@example.com", "Jane")
	b := f.browser()
	b.signIn(c)

	r := b.get("/billing")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `<label for="tax_id">CUIT / CUIL</label>`, `value="AR"`, "<legend>Domicilio fiscal</legend>")

	t.Run("field errors, all at once", func(t *testing.T) {
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
		wantFieldError(t, r, "tax_id")
		wantBody(t, r, "el CUIT es obligatorio")
	})

	t.Run("saved", func(t *testing.T) {
		wantRedirect(t, b.submit("/billing", billingForm()), "/billing")
		got, err := f.ledger.GetCustomer(f.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := ledger.BillingProfile{LegalName: "Jane Doe SRL", TaxID: "30712345671", TaxCondition: ledger.ResponsableInscripto,
			Address: ledger.Address{Line1: "Av. Corrientes 1234", Line2: "Piso 5", City: "CABA", Province: "Buenos Aires", PostalCode: "C1043", Country: "AR"}}
		if got.Billing != want {
			t.Fatalf("billing = %+v", got.Billing)
		}
		r := b.get("/billing")
		wantBody(t, r, "Guardamos tus datos de facturación", `value="30-71234567-1"`, `<option value="responsable_inscripto" selected>`)
		wantBody(t, b.get("/"), "Jane Doe SRL", "30-71234567-1", "Responsable inscripto")
	})

	t.Run("missing CSRF token", func(t *testing.T) {
		form := billingForm()
		form.Set("legal_name", "Forged")
		wantStatus(t, b.forge("/billing", form), http.StatusForbidden)
		if got, _ := f.ledger.GetCustomer(f.ctx, c.ID); got.Billing.LegalName == "Forged" {
			t.Fatal("a forged form changed the billing profile")
		}
	})

	t.Run("section off", func(t *testing.T) {
		f.updatePortal(func(s *billingv1alpha1.CustomerPortalSpec) { s.Permissions.UpdateBillingInfo = new(bool) })
		wantNoBody(t, b.get("/"), `href="/billing"`, "Datos de facturación")
		wantStatus(t, b.get("/billing"), http.StatusForbidden)
		b.get("/")
		form := billingForm()
		form.Set("legal_name", "After")
		wantStatus(t, b.submit("/billing", form), http.StatusForbidden)
		if got, _ := f.ledger.GetCustomer(f.ctx, c.ID); got.Billing.LegalName == "After" {
			t.Fatal("billing changed with the section off")
		}
	})
}
