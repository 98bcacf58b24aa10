package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// NewPaymentMethod is the input of AddPaymentMethod: a method no processor holds, which the
// portal validates itself. Cards are tokenized by the portal's processor and recorded through
// AddMethod (portal/charging drives that), so a card number never reaches the ledger.
type NewPaymentMethod struct {
	Type payments.MethodType
	// Account is the CBU (direct_debit) or CVU (cvu); spaces and dashes are accepted.
	Account string
	// Wallet names the wallet provider (type wallet), e.g. "mercadopago".
	Wallet string
	// Limit, when positive, is the most methods the customer may keep (the portal's
	// paymentMethods.maxPerCustomer): an add that would go beyond it is refused with
	// ErrPaymentMethodLimit. Methods already saved above a lowered limit stay.
	Limit int
}

const methodColumns = `id, customer_id, ordinal, method_type, processor, card_token, card_brand, card_last4,
	card_exp_month, card_exp_year, card_fingerprint, account_number, wallet, created_at`

func scanMethod(row interface{ Scan(...any) error }) (PaymentMethod, error) {
	var m PaymentMethod
	var card CardInfo
	var created int64
	err := row.Scan(&m.ID, &m.CustomerID, &m.Position, &m.Type, &m.Processor, &card.Token, &card.Brand,
		&card.Last4, &card.ExpMonth, &card.ExpYear, &card.Fingerprint, &m.Account, &m.Wallet, &created)
	if m.Type == payments.MethodCard {
		m.Card = &card
	} else {
		m.processorID = card.Token
	}
	m.CreatedAt = fromMillis(created)
	return m, err
}

// listMethods returns the customer's attached methods in preference order.
func listMethods(ctx context.Context, q querier, customerID string) ([]PaymentMethod, error) {
	rows, err := q.query(ctx, "SELECT "+methodColumns+` FROM payment_methods
		WHERE customer_id = ? AND detached_at IS NULL ORDER BY ordinal, created_at, id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	defer rows.Close()
	var out []PaymentMethod
	for rows.Next() {
		m, err := scanMethod(rows)
		if err != nil {
			return nil, fmt.Errorf("list payment methods: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	return out, nil
}

// prepareMethod validates a method the portal checks itself (no processor holds it).
func prepareMethod(in NewPaymentMethod) (PaymentMethod, error) {
	m := PaymentMethod{Type: in.Type}
	switch in.Type {
	case payments.MethodCard:
		// Only a processor's token may stand for a card here (AddMethod).
		return m, newError(KindInvalid, payments.CodeUnsupportedMethod, "type", nil)
	case payments.MethodDirectDebit:
		acct, err := payments.ParseCBU(in.Account)
		if err != nil {
			return m, invalid("account", err)
		}
		m.Account = acct
	case payments.MethodCVU:
		acct, err := payments.ParseCVU(in.Account)
		if err != nil {
			return m, invalid("account", err)
		}
		m.Account = acct
	case payments.MethodWallet:
		w, err := checkText("wallet", in.Wallet, 50)
		if err != nil {
			return m, err
		}
		m.Wallet = strings.ToLower(w)
	case payments.MethodBankTransfer, payments.MethodQR:
	default:
		return m, newError(KindInvalid, payments.CodeUnsupportedMethod, "type", nil)
	}
	return m, nil
}

// AddPaymentMethod appends a method no processor holds (CBU, CVU, transfer, QR, wallet) to the
// customer's list; the first one becomes preferred. Incomplete payments it could settle stay
// incomplete until the portal's charging driver settles them (charging.Driver.SettleIncomplete):
// the ledger only records.
func (s *Store) AddPaymentMethod(ctx context.Context, customerID string, in NewPaymentMethod) (PaymentMethod, error) {
	m, err := prepareMethod(in)
	if err != nil {
		return PaymentMethod{}, err
	}
	m, _, err = s.insertMethod(ctx, customerID, m, in.Limit)
	return m, err
}

// CheckMethodLimit refuses with ErrPaymentMethodLimit when the customer already keeps limit
// methods (limit ≤ 0: no cap). Callers check it before asking a processor for anything, so a
// customer at the cap cannot test cards; the add itself checks again under the customer lock.
func (s *Store) CheckMethodLimit(ctx context.Context, customerID string, limit int) error {
	if limit <= 0 {
		return nil
	}
	n, err := countMethods(ctx, s.read(), customerID)
	if err != nil {
		return fmt.Errorf("check payment methods of customer %s: %w", customerID, err)
	}
	if n >= limit {
		return methodLimit(limit)
	}
	return nil
}

// insertMethod appends m to the customer's list under the customer lock, refusing it beyond
// limit (limit ≤ 0: no cap). A card whose processor token is already on a list is not added
// again: the stored method is returned with added=false (a hosted set-up completed twice, by
// the customer's return and by the processor's webhook).
func (s *Store) insertMethod(ctx context.Context, customerID string, m PaymentMethod, limit int) (PaymentMethod, bool, error) {
	m.ID = newID(prefixMethod)
	m.CustomerID = customerID
	m.CreatedAt = s.nowMs()
	var existing *PaymentMethod
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		if m.handle() != "" {
			prior, err := scanMethod(q.queryRow(ctx, "SELECT "+methodColumns+` FROM payment_methods
				WHERE processor = ? AND card_token = ? AND card_token <> '' AND detached_at IS NULL`,
				string(m.Processor), m.handle()))
			switch {
			case err == nil && prior.CustomerID != customerID:
				// A processor attaches a method to one customer; another's cannot be adopted.
				return invalid("processor_payment_method", &payments.Error{Code: payments.CodePaymentMethodInUse})
			case err == nil:
				existing = &prior
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("look up processor method: %w", err)
			}
		}
		// Under the customer lock the count is the next free position, and concurrent adds
		// (other requests, other replicas) wait here, so none can slip past the limit.
		n, err := countMethods(ctx, q, customerID)
		if err != nil {
			return err
		}
		if limit > 0 && n >= limit {
			return methodLimit(limit)
		}
		m.Position = n
		card := CardInfo{Token: m.handle()}
		if m.Card != nil {
			card = *m.Card
		}
		_, err = q.exec(ctx, `INSERT INTO payment_methods (id, customer_id, ordinal, method_type,
			processor, card_token, card_brand, card_last4, card_exp_month, card_exp_year,
			card_fingerprint, account_number, wallet, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, customerID, m.Position, string(m.Type), string(m.Processor), card.Token,
			string(card.Brand), card.Last4, card.ExpMonth, card.ExpYear, card.Fingerprint,
			m.Account, m.Wallet, toMillis(m.CreatedAt))
		if err != nil {
			return err
		}
		if err := s.recordEvent(ctx, q, EventPaymentMethodAdded, customerID, m.ID, m); err != nil {
			return err
		}
		if m.Position == 0 { // the first method is the preferred one
			return s.recordEvent(ctx, q, EventPaymentMethodPreferredChanged, customerID, m.ID, m)
		}
		return nil
	})
	if err != nil {
		return PaymentMethod{}, false, fmt.Errorf("add payment method for customer %s: %w", customerID, err)
	}
	if existing != nil {
		return *existing, false, nil
	}
	s.log.Info("payment method added", "customer", customerID, "payment_method", m.ID,
		"type", m.Type, "position", m.Position)
	return m, true, nil
}

// countMethods is how many methods the customer has attached.
func countMethods(ctx context.Context, q querier, customerID string) (int, error) {
	var n int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM payment_methods
		WHERE customer_id = ? AND detached_at IS NULL`, customerID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count payment methods: %w", err)
	}
	return n, nil
}

func methodLimit(limit int) *Error {
	return &Error{Kind: KindConflict, Code: CodePaymentMethodLimit, Limit: limit}
}

// ListPaymentMethods returns the customer's methods in preference order (preferred first).
func (s *Store) ListPaymentMethods(ctx context.Context, customerID string) ([]PaymentMethod, error) {
	ms, err := listMethods(ctx, s.read(), customerID)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		if _, err := s.GetCustomer(ctx, customerID); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// methodSummaryColumns are what a list of methods shows (see ListPaymentMethodSummaries).
const methodSummaryColumns = `id, method_type, card_brand, card_last4, card_exp_month, card_exp_year, account_number, wallet`

// ListPaymentMethodSummaries is ListPaymentMethods with only what the portal shows of a method
// filled in: ID, Type, Account, Wallet and, for cards, Card's Brand, Last4, ExpMonth and
// ExpYear. CustomerID, Position, CreatedAt and the card's Token and Fingerprint stay zero (so the
// token, which can charge the card, is not even read). The portal lists the methods on the
// overview and the subscription pages; SQLite's driver costs per column read.
func (s *Store) ListPaymentMethodSummaries(ctx context.Context, customerID string) ([]PaymentMethod, error) {
	rows, err := s.read().query(ctx, "SELECT "+methodSummaryColumns+` FROM payment_methods
		WHERE customer_id = ? AND detached_at IS NULL ORDER BY ordinal, created_at, id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	defer rows.Close()
	var out []PaymentMethod
	for rows.Next() {
		var m PaymentMethod
		var card CardInfo
		if err := rows.Scan(&m.ID, &m.Type, &card.Brand, &card.Last4, &card.ExpMonth, &card.ExpYear, &m.Account, &m.Wallet); err != nil {
			return nil, fmt.Errorf("list payment methods: %w", err)
		}
		if m.Type == payments.MethodCard {
			m.Card = &card
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	if len(out) == 0 {
		if _, err := s.GetCustomer(ctx, customerID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// GetPaymentMethod returns one of the customer's attached methods; another customer's method
// or a removed one is not found.
func (s *Store) GetPaymentMethod(ctx context.Context, customerID, methodID string) (PaymentMethod, error) {
	return getMethod(ctx, s.read(), customerID, methodID)
}

func getMethod(ctx context.Context, q querier, customerID, methodID string) (PaymentMethod, error) {
	m, err := scanMethod(q.queryRow(ctx, "SELECT "+methodColumns+` FROM payment_methods
		WHERE id = ? AND customer_id = ? AND detached_at IS NULL`, methodID, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return PaymentMethod{}, notFound("payment_method")
	}
	if err != nil {
		return PaymentMethod{}, fmt.Errorf("get payment method %s: %w", methodID, err)
	}
	return m, nil
}

// RemovePaymentMethod removes a method from the customer's list. It is refused with
// ErrLastMethodWithActiveSubscription when it is the customer's only method and a subscription
// is still billing (active or past due). Subscriptions pinned to it fall back to the preferred
// method. A method a processor holds is detached there first by the portal's charging driver
// (charging.Driver.RemoveMethod), which records the removal through RemoveMethod.
func (s *Store) RemovePaymentMethod(ctx context.Context, customerID, methodID string) error {
	return s.removeMethod(ctx, customerID, methodID, true)
}

// CheckRemovePaymentMethod answers as RemovePaymentMethod would, without removing anything:
// callers ask before detaching a method at its processor, so a refusal leaves both sides as they
// were.
func (s *Store) CheckRemovePaymentMethod(ctx context.Context, customerID, methodID string) error {
	ms, err := listMethods(ctx, s.read(), customerID)
	if err != nil {
		return err
	}
	found := false
	for _, m := range ms {
		found = found || m.ID == methodID
	}
	if !found {
		return notFound("payment_method")
	}
	if len(ms) == 1 {
		return lastMethodGuard(ctx, s.read(), customerID)
	}
	return nil
}

// lastMethodGuard refuses to remove a customer's last method while a subscription bills.
func lastMethodGuard(ctx context.Context, q querier, customerID string) error {
	var billing int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM subscriptions
		WHERE customer_id = ? AND status IN ('active', 'past_due')`, customerID).Scan(&billing); err != nil {
		return err
	}
	if billing > 0 {
		return newError(KindConflict, CodeLastMethodWithActiveSubscription, "", nil)
	}
	return nil
}

// removeMethod removes a method; guard applies the last-method rule (a method the processor
// already removed is gone whatever the rule says).
func (s *Store) removeMethod(ctx context.Context, customerID, methodID string, guard bool) error {
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		ms, err := listMethods(ctx, q, customerID)
		if err != nil {
			return err
		}
		var rest []string
		var removed *PaymentMethod
		for i, m := range ms {
			if m.ID == methodID {
				removed = &ms[i]
			} else {
				rest = append(rest, m.ID)
			}
		}
		if removed == nil {
			return notFound("payment_method")
		}
		if len(rest) == 0 && guard {
			if err := lastMethodGuard(ctx, q, customerID); err != nil {
				return err
			}
		}
		now := toMillis(s.nowMs())
		if _, err := q.exec(ctx, "UPDATE payment_methods SET detached_at = ?, ordinal = -1 WHERE id = ?", now, methodID); err != nil {
			return err
		}
		unpinned, err := q.strings(ctx, `SELECT id FROM subscriptions WHERE payment_method_id = ? ORDER BY created_at, id`, methodID)
		if err != nil {
			return err
		}
		if _, err := q.exec(ctx, `UPDATE subscriptions SET payment_method_id = NULL, updated_at = ?
			WHERE payment_method_id = ?`, now, methodID); err != nil {
			return err
		}
		if err := writeOrder(ctx, q, rest); err != nil {
			return err
		}
		gone := *removed
		gone.Position = -1
		if err := s.recordEvent(ctx, q, EventPaymentMethodRemoved, customerID, methodID, gone); err != nil {
			return err
		}
		if removed.Position == 0 && len(rest) > 0 {
			if err := s.recordPreferred(ctx, q, customerID); err != nil {
				return err
			}
		}
		for _, id := range unpinned {
			sub, err := getSubscription(ctx, q, customerID, id)
			if err != nil {
				return err
			}
			if err := s.recordEvent(ctx, q, EventSubscriptionPaymentMethodChanged, customerID, id, sub); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove payment method %s: %w", methodID, err)
	}
	s.log.Info("payment method removed", "customer", customerID, "payment_method", methodID)
	return nil
}

// recordPreferred records that the customer's first method changed, with the new first one.
func (s *Store) recordPreferred(ctx context.Context, q querier, customerID string) error {
	ms, err := listMethods(ctx, q, customerID)
	if err != nil || len(ms) == 0 {
		return err
	}
	return s.recordEvent(ctx, q, EventPaymentMethodPreferredChanged, customerID, ms[0].ID, ms[0])
}

// writeOrder stores ids' positions as 0..n-1.
func writeOrder(ctx context.Context, q querier, ids []string) error {
	for i, id := range ids {
		if _, err := q.exec(ctx, "UPDATE payment_methods SET ordinal = ? WHERE id = ?", i, id); err != nil {
			return err
		}
	}
	return nil
}

// ReorderPaymentMethods sets the customer's full preference order; ids must be exactly the
// customer's current methods, each once. It returns the reordered list.
func (s *Store) ReorderPaymentMethods(ctx context.Context, customerID string, ids []string) ([]PaymentMethod, error) {
	return s.reorder(ctx, customerID, func(current []string) ([]string, error) {
		if len(ids) != len(current) {
			return nil, newError(KindInvalid, CodeInvalidField, "payment_method_ids", nil)
		}
		have := make(map[string]bool, len(current))
		for _, id := range current {
			have[id] = true
		}
		for _, id := range ids {
			if !have[id] {
				return nil, newError(KindInvalid, CodeInvalidField, "payment_method_ids", nil)
			}
			delete(have, id) // a repeated id is then missing on its second occurrence
		}
		return ids, nil
	})
}

// MakePreferred moves a method to position 0, keeping the others in their order.
func (s *Store) MakePreferred(ctx context.Context, customerID, methodID string) ([]PaymentMethod, error) {
	return s.reorder(ctx, customerID, func(current []string) ([]string, error) {
		order := []string{methodID}
		found := false
		for _, id := range current {
			if id == methodID {
				found = true
				continue
			}
			order = append(order, id)
		}
		if !found {
			return nil, notFound("payment_method")
		}
		return order, nil
	})
}

func (s *Store) reorder(ctx context.Context, customerID string, order func(current []string) ([]string, error)) ([]PaymentMethod, error) {
	var out []PaymentMethod
	err := s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		ms, err := listMethods(ctx, q, customerID)
		if err != nil {
			return err
		}
		current := make([]string, len(ms))
		for i, m := range ms {
			current[i] = m.ID
		}
		next, err := order(current)
		if err != nil {
			return err
		}
		if err := writeOrder(ctx, q, next); err != nil {
			return err
		}
		if out, err = listMethods(ctx, q, customerID); err != nil {
			return err
		}
		if len(out) > 0 && len(current) > 0 && out[0].ID != current[0] {
			return s.recordEvent(ctx, q, EventPaymentMethodPreferredChanged, customerID, out[0].ID, out[0])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reorder payment methods of customer %s: %w", customerID, err)
	}
	return out, nil
}

// resolveMethod picks the method the processor is to charge: the subscription's pinned method
// when it is still attached and usable, else the customer's first usable method in preference
// order. Usable means the processor can charge it (a card through the processor holding its
// token) and, for a card, not expired: those are skipped rather than charged into a certain
// decline. nil means none is usable.
func resolveMethod(ctx context.Context, q querier, customerID, subscriptionID string, now time.Time, processor payments.ProcessorType) (*PaymentMethod, error) {
	ms, err := listMethods(ctx, q, customerID)
	if err != nil {
		return nil, err
	}
	if subscriptionID != "" {
		var pinned sql.NullString
		err := q.queryRow(ctx, "SELECT payment_method_id FROM subscriptions WHERE id = ?", subscriptionID).Scan(&pinned)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("resolve pinned payment method: %w", err)
		}
		for i := range ms {
			if pinned.Valid && ms[i].ID == pinned.String && ms[i].usableAt(now) && ms[i].chargeableBy(processor) {
				return &ms[i], nil
			}
		}
	}
	for i := range ms {
		if ms[i].usableAt(now) && ms[i].chargeableBy(processor) {
			return &ms[i], nil
		}
	}
	return nil, nil
}
