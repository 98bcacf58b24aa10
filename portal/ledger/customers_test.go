package ledger

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

func TestCustomerLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c, err := e.store.CreateCustomer(e.ctx, NewCustomer{
			Email: "  Jane.Doe@Example.COM ",
			Name:  "Jane Doe",
			Billing: BillingProfile{
				LegalName:    "Jane Doe SRL",
				TaxID:        "30-50001091-2",
				TaxCondition: ResponsableInscripto,
				Address:      Address{Line1: "Av. Corrientes 1234", City: "CABA", Province: "Buenos Aires", PostalCode: "C1043"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Email != "jane.doe@example.com" || c.Billing.TaxID != "30500010912" || c.Billing.Address.Country != "AR" {
			t.Fatalf("not normalised: %+v", c)
		}
		if len(c.ID) != len("cus_")+24 || c.ID[:4] != "cus_" {
			t.Fatalf("id = %q", c.ID)
		}
		got, err := e.store.GetCustomer(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Billing != c.Billing || got.Email != c.Email || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("read back %+v, want %+v", got, c)
		}

		// Several customers may share an e-mail address.
		other := e.customer(t, "JANE.DOE@example.com")
		if other.ID == c.ID {
			t.Fatal("ids collide")
		}
		page, err := e.store.ListCustomers(e.ctx, ListCustomersParams{Email: "Jane.Doe@example.com"})
		if err != nil || len(page.Items) != 2 {
			t.Fatalf("ListCustomers by email = %+v, %v", page, err)
		}

		e.clock.Advance(time.Hour)
		name := "Jane D."
		upd, err := e.store.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Name: &name,
			Billing: &BillingProfile{TaxID: "20 12345678 6", TaxCondition: Monotributista}})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Name != name || upd.Email != c.Email || upd.Billing.TaxID != "20123456786" ||
			upd.Billing.LegalName != "" || !upd.UpdatedAt.After(c.UpdatedAt) {
			t.Fatalf("update: %+v", upd)
		}
		if got, _ := e.store.GetCustomer(e.ctx, c.ID); got.Name != name || got.Billing.TaxCondition != Monotributista {
			t.Fatalf("update not stored: %+v", got)
		}

		_, err = e.store.GetCustomer(e.ctx, "cus_missing")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetCustomer(missing) = %v", err)
		}
		_, err = e.store.UpdateCustomer(e.ctx, "cus_missing", CustomerUpdate{Name: &name})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("UpdateCustomer(missing) = %v", err)
		}
	})
}

func TestCustomerValidation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		tests := []struct {
			name      string
			in        NewCustomer
			wantCode  string
			wantField string
		}{
			{"no email", NewCustomer{}, CodeRequired, "email"},
			{"bad email", NewCustomer{Email: "not-an-email"}, CodeInvalidField, "email"},
			{"display name", NewCustomer{Email: "Jane <jane@example.com>"}, CodeInvalidField, "email"},
			{"bad cuit", NewCustomer{Email: "a@example.com", Billing: BillingProfile{TaxID: "20-12345678-7"}},
				payments.CodeInvalidCUITCheckDigit, "billing.tax_id"},
			{"bad cuit prefix", NewCustomer{Email: "a@example.com", Billing: BillingProfile{TaxID: "21-12345678-6"}},
				payments.CodeInvalidCUITPrefix, "billing.tax_id"},
			{"unknown condition", NewCustomer{Email: "a@example.com", Billing: BillingProfile{TaxCondition: "iva_loco"}},
				CodeInvalidField, "billing.tax_condition"},
			{"RI without CUIT", NewCustomer{Email: "a@example.com", Billing: BillingProfile{TaxCondition: ResponsableInscripto}},
				CodeRequired, "billing.tax_id"},
			{"bad country", NewCustomer{Email: "a@example.com", Billing: BillingProfile{Address: Address{Country: "ARG"}}},
				CodeInvalidField, "billing.address.country"},
			{"newline in name", NewCustomer{Email: "a@example.com", Name: "a\nb"}, CodeInvalidField, "name"},
		}
		for _, tt := range tests {
			_, err := e.store.CreateCustomer(e.ctx, tt.in)
			var le *Error
			if !errors.As(err, &le) || le.Code != tt.wantCode || le.Field != tt.wantField || le.Kind != KindInvalid {
				t.Errorf("%s: error = %v, want %s on %s", tt.name, err, tt.wantCode, tt.wantField)
			}
		}
		// Consumidor final needs no CUIT.
		if _, err := e.store.CreateCustomer(e.ctx, NewCustomer{Email: "cf@example.com",
			Billing: BillingProfile{TaxCondition: ConsumidorFinal}}); err != nil {
			t.Errorf("consumidor final without CUIT: %v", err)
		}
		page, _ := e.store.ListCustomers(e.ctx, ListCustomersParams{})
		if len(page.Items) != 1 {
			t.Errorf("rejected customers were stored: %d rows", len(page.Items))
		}
	})
}

func TestListCustomersPagination(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		var want []string
		for i := 0; i < 7; i++ {
			// Pairs share a timestamp so the id tie-breaker is exercised.
			if i%2 == 0 {
				e.clock.Advance(time.Second)
			}
			want = append(want, e.customer(t, fmt.Sprintf("c%d@example.com", i)).ID)
		}
		var got []string
		cur := ""
		pages := 0
		for {
			page, err := e.store.ListCustomers(e.ctx, ListCustomersParams{Limit: 3, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range page.Items {
				got = append(got, c.ID)
			}
			if page.NextCursor == "" {
				break
			}
			cur = page.NextCursor
		}
		if pages != 3 || len(got) != 7 {
			t.Fatalf("pages = %d, got %d customers", pages, len(got))
		}
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Fatalf("customer %s listed twice", id)
			}
			seen[id] = true
		}
		for _, id := range want {
			if !seen[id] {
				t.Fatalf("customer %s missing", id)
			}
		}
		if _, err := e.store.ListCustomers(e.ctx, ListCustomersParams{Cursor: "!!"}); CodeOf(err) != CodeInvalidField {
			t.Fatalf("bad cursor: %v", err)
		}
		if _, err := e.store.ListCustomers(e.ctx, ListCustomersParams{Limit: MaxPageSize + 1}); CodeOf(err) != CodeInvalidField {
			t.Fatalf("oversized limit: %v", err)
		}
	})
}
