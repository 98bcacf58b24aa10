package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/portero-dev/portero/portal/payments"
)

// NewCustomer is the input of CreateCustomer.
type NewCustomer struct {
	Email   string
	Name    string
	Billing BillingProfile
}

// CustomerUpdate changes the non-nil fields of a customer. Billing replaces the whole profile.
type CustomerUpdate struct {
	Email   *string
	Name    *string
	Billing *BillingProfile
}

// ListCustomersParams filter and page ListCustomers.
type ListCustomersParams struct {
	// Email, when set, returns only customers with that address (case-insensitive).
	Email  string
	Limit  int
	Cursor string
}

const customerColumns = `id, email, name, legal_name, tax_id, tax_condition, address_line1,
	address_line2, city, province, postal_code, country, version, created_at, updated_at`

func scanCustomer(row interface{ Scan(...any) error }) (Customer, error) {
	var c Customer
	var created, updated int64
	err := row.Scan(&c.ID, &c.Email, &c.Name, &c.Billing.LegalName, &c.Billing.TaxID,
		&c.Billing.TaxCondition, &c.Billing.Address.Line1, &c.Billing.Address.Line2,
		&c.Billing.Address.City, &c.Billing.Address.Province, &c.Billing.Address.PostalCode,
		&c.Billing.Address.Country, &c.Version, &created, &updated)
	c.CreatedAt, c.UpdatedAt = fromMillis(created), fromMillis(updated)
	return c, err
}

// normalizeEmail lowercases and validates a bare address. Lowercasing the whole address (not
// only the domain) is what customers expect when they log in with "Jane@Example.com".
func normalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", newError(KindInvalid, CodeRequired, "email", nil)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 {
		return "", newError(KindInvalid, CodeInvalidField, "email", nil)
	}
	return e, nil
}

func checkText(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max || strings.ContainsAny(s, "\x00\r\n") {
		return "", newError(KindInvalid, CodeInvalidField, field, nil)
	}
	return s, nil
}

// normalizeBilling validates a billing profile: the CUIT/CUIL check digit, a known tax
// condition, and a tax ID for every condition that invoices with one (all but consumidor final).
func normalizeBilling(b BillingProfile) (BillingProfile, error) {
	var err error
	texts := []struct {
		field string
		v     *string
		max   int
	}{
		{"billing.legal_name", &b.LegalName, 200},
		{"billing.address.line1", &b.Address.Line1, 200},
		{"billing.address.line2", &b.Address.Line2, 200},
		{"billing.address.city", &b.Address.City, 100},
		{"billing.address.province", &b.Address.Province, 100},
		{"billing.address.postal_code", &b.Address.PostalCode, 20},
	}
	for _, t := range texts {
		if *t.v, err = checkText(t.field, *t.v, t.max); err != nil {
			return b, err
		}
	}
	b.Address.Country = strings.ToUpper(strings.TrimSpace(b.Address.Country))
	if b.Address.Country == "" {
		b.Address.Country = "AR"
	}
	if len(b.Address.Country) != 2 || b.Address.Country[0] < 'A' || b.Address.Country[0] > 'Z' ||
		b.Address.Country[1] < 'A' || b.Address.Country[1] > 'Z' {
		return b, newError(KindInvalid, CodeInvalidField, "billing.address.country", nil)
	}
	if strings.TrimSpace(b.TaxID) != "" {
		if b.TaxID, err = payments.ParseCUIT(b.TaxID); err != nil {
			return b, invalid("billing.tax_id", err)
		}
	} else {
		b.TaxID = ""
	}
	if !b.TaxCondition.valid() {
		return b, newError(KindInvalid, CodeInvalidField, "billing.tax_condition", nil)
	}
	if b.TaxCondition != "" && b.TaxCondition != ConsumidorFinal && b.TaxID == "" {
		return b, newError(KindInvalid, CodeRequired, "billing.tax_id", nil)
	}
	return b, nil
}

// CreateCustomer validates and stores a new customer.
func (s *Store) CreateCustomer(ctx context.Context, in NewCustomer) (Customer, error) {
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return Customer{}, err
	}
	name, err := checkText("name", in.Name, 200)
	if err != nil {
		return Customer{}, err
	}
	billing, err := normalizeBilling(in.Billing)
	if err != nil {
		return Customer{}, err
	}
	now := s.nowMs()
	c := Customer{ID: newID(prefixCustomer), Email: email, Name: name, Billing: billing, CreatedAt: now, UpdatedAt: now}
	err = s.inTx(ctx, func(q querier) error {
		_, err := q.exec(ctx, `INSERT INTO customers (id, email, name, legal_name, tax_id, tax_condition,
			address_line1, address_line2, city, province, postal_code, country, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Email, c.Name, billing.LegalName, billing.TaxID, string(billing.TaxCondition),
			billing.Address.Line1, billing.Address.Line2, billing.Address.City, billing.Address.Province,
			billing.Address.PostalCode, billing.Address.Country, toMillis(now), toMillis(now))
		if err != nil {
			return err
		}
		return s.recordEvent(ctx, q, EventCustomerCreated, c.ID, c.ID, c)
	})
	if err != nil {
		return Customer{}, fmt.Errorf("create customer: %w", err)
	}
	s.log.Info("customer created", "customer", c.ID)
	return c, nil
}

// GetCustomer returns a customer by id.
//
// The portal reads the signed-in customer on every request, so the store keeps the customers
// it read: while a customer's version (which every write to the row changes) is the one read
// with the kept copy, the copy is the row, and reading the version alone is enough.
func (s *Store) GetCustomer(ctx context.Context, id string) (Customer, error) {
	if c, ok := s.customers.get(id); ok {
		var version int64
		err := s.read().queryRow(ctx, "SELECT version FROM customers WHERE id = ?", id).Scan(&version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			s.customers.drop(id)
			return Customer{}, notFound("customer")
		case err != nil:
			return Customer{}, fmt.Errorf("get customer %s: %w", id, err)
		case version == c.Version:
			return c, nil
		}
	}
	c, err := getCustomer(ctx, s.read(), id)
	if err == nil {
		s.customers.put(c)
	}
	return c, err
}

// maxKeptCustomers bounds the customers a Store keeps for GetCustomer (~1 KiB each).
const maxKeptCustomers = 4096

// keptCustomers are the customers GetCustomer read, by id.
type keptCustomers struct {
	mu sync.Mutex
	m  map[string]Customer
}

func (k *keptCustomers) get(id string) (Customer, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.m[id]
	return c, ok
}

// put keeps c, unless a copy of a later version is kept already; when full, an arbitrary
// other customer makes room.
func (k *keptCustomers) put(c Customer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]Customer{}
	}
	if old, ok := k.m[c.ID]; ok && old.Version > c.Version {
		return
	}
	if _, ok := k.m[c.ID]; !ok && len(k.m) >= maxKeptCustomers {
		for id := range k.m {
			delete(k.m, id)
			break
		}
	}
	k.m[c.ID] = c
}

func (k *keptCustomers) drop(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, id)
}

func getCustomer(ctx context.Context, q querier, id string) (Customer, error) {
	c, err := scanCustomer(q.queryRow(ctx, "SELECT "+customerColumns+" FROM customers WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Customer{}, notFound("customer")
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer %s: %w", id, err)
	}
	return c, nil
}

// UpdateCustomer applies the non-nil fields of u and returns the updated customer.
func (s *Store) UpdateCustomer(ctx context.Context, id string, u CustomerUpdate) (Customer, error) {
	var c Customer
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, id); err != nil {
			return err
		}
		var err error
		if c, err = getCustomer(ctx, q, id); err != nil {
			return err
		}
		if u.Email != nil {
			if c.Email, err = normalizeEmail(*u.Email); err != nil {
				return err
			}
		}
		if u.Name != nil {
			if c.Name, err = checkText("name", *u.Name, 200); err != nil {
				return err
			}
		}
		if u.Billing != nil {
			if c.Billing, err = normalizeBilling(*u.Billing); err != nil {
				return err
			}
		}
		c.UpdatedAt = s.nowMs()
		b := c.Billing
		_, err = q.exec(ctx, `UPDATE customers SET email = ?, name = ?, legal_name = ?, tax_id = ?,
			tax_condition = ?, address_line1 = ?, address_line2 = ?, city = ?, province = ?,
			postal_code = ?, country = ?, updated_at = ? WHERE id = ?`,
			c.Email, c.Name, b.LegalName, b.TaxID, string(b.TaxCondition), b.Address.Line1,
			b.Address.Line2, b.Address.City, b.Address.Province, b.Address.PostalCode,
			b.Address.Country, toMillis(c.UpdatedAt), id)
		if err != nil {
			return err
		}
		if err := q.queryRow(ctx, "SELECT version FROM customers WHERE id = ?", id).Scan(&c.Version); err != nil {
			return err
		}
		return s.recordEvent(ctx, q, EventCustomerUpdated, c.ID, c.ID, c)
	})
	if err != nil {
		return Customer{}, fmt.Errorf("update customer %s: %w", id, err)
	}
	return c, nil
}

// ListCustomers pages through customers, oldest first.
func (s *Store) ListCustomers(ctx context.Context, p ListCustomersParams) (Page[Customer], error) {
	limit, err := pageLimit(p.Limit)
	if err != nil {
		return Page[Customer]{}, err
	}
	where := []string{"1 = 1"}
	var args []any
	if p.Email != "" {
		where = append(where, "email = ?")
		args = append(args, strings.ToLower(strings.TrimSpace(p.Email)))
	}
	if p.Cursor != "" {
		c, err := decodeCursor(p.Cursor)
		if err != nil {
			return Page[Customer]{}, err
		}
		where = append(where, "(created_at > ? OR (created_at = ? AND id > ?))")
		args = append(args, c.createdAt, c.createdAt, c.id)
	}
	args = append(args, limit+1)
	rows, err := s.read().query(ctx, "SELECT "+customerColumns+" FROM customers WHERE "+
		strings.Join(where, " AND ")+" ORDER BY created_at, id LIMIT ?", args...)
	if err != nil {
		return Page[Customer]{}, fmt.Errorf("list customers: %w", err)
	}
	defer rows.Close()
	var page Page[Customer]
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return Page[Customer]{}, fmt.Errorf("list customers: %w", err)
		}
		page.Items = append(page.Items, c)
	}
	if err := rows.Err(); err != nil {
		return Page[Customer]{}, fmt.Errorf("list customers: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = cursor{createdAt: toMillis(last.CreatedAt), id: last.ID}.encode()
	}
	return page, nil
}
