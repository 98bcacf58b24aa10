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

// NewPaymentMethod is the input of AddPaymentMethod. Set the field that matches Type.
type NewPaymentMethod struct {
	Type payments.MethodType
	// Card (type card) goes to the processor to be tokenized and is then dropped: neither the
	// number nor the CVC reaches the database or the logs.
	Card *payments.CardDetails
	// Account is the CBU (direct_debit) or CVU (cvu); spaces and dashes are accepted.
	Account string
	// Wallet names the wallet provider (type wallet), e.g. "mercadopago".
	Wallet string
	// Limit, when positive, is the most methods the customer may keep (the portal's
	// paymentMethods.maxPerCustomer): an add that would go beyond it is refused with
	// ErrPaymentMethodLimit. Methods already saved above a lowered limit stay.
	Limit int
}

const methodColumns = `id, customer_id, ordinal, method_type, card_token, card_brand, card_last4,
	card_exp_month, card_exp_year, card_fingerprint, account_number, wallet, created_at`

func scanMethod(row interface{ Scan(...any) error }) (PaymentMethod, error) {
	var m PaymentMethod
	var card CardInfo
	var created int64
	err := row.Scan(&m.ID, &m.CustomerID, &m.Position, &m.Type, &card.Token, &card.Brand,
		&card.Last4, &card.ExpMonth, &card.ExpYear, &card.Fingerprint, &m.Account, &m.Wallet, &created)
	if m.Type == payments.MethodCard {
		m.Card = &card
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

// prepareMethod validates the input and, for cards, tokenizes them. It runs before the
// transaction because the processor is a network call.
func (s *Store) prepareMethod(ctx context.Context, in NewPaymentMethod) (PaymentMethod, error) {
	m := PaymentMethod{Type: in.Type}
	switch in.Type {
	case payments.MethodCard:
		if in.Card == nil {
			return m, newError(KindInvalid, CodeRequired, "card", nil)
		}
		tok, err := s.processor.TokenizeCard(ctx, *in.Card)
		if err != nil {
			var pe *payments.Error
			if errors.As(err, &pe) {
				field := "card"
				if pe.Field != "" {
					field += "." + pe.Field
				}
				return m, invalid(field, pe)
			}
			return m, fmt.Errorf("tokenize card with %s: %w", s.processor.Name(), err)
		}
		m.Card = &CardInfo{Brand: tok.Brand, Last4: tok.Last4, ExpMonth: tok.ExpMonth,
			ExpYear: tok.ExpYear, Fingerprint: tok.Fingerprint, Token: tok.Token}
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

// AddPaymentMethod appends a method to the customer's list (the first one becomes preferred)
// and then lets the customer's incomplete payments proceed with it, each exactly once.
func (s *Store) AddPaymentMethod(ctx context.Context, customerID string, in NewPaymentMethod) (PaymentMethod, error) {
	// Fail fast on an unknown customer before asking the processor to tokenize anything.
	if _, err := s.GetCustomer(ctx, customerID); err != nil {
		return PaymentMethod{}, err
	}
	// And on a full list: a customer at the cap must not reach the processor either, or the
	// add form would still test cards. The count under the lock below is the one that holds.
	if in.Limit > 0 {
		n, err := countMethods(ctx, s.read(), customerID)
		if err != nil {
			return PaymentMethod{}, fmt.Errorf("add payment method for customer %s: %w", customerID, err)
		}
		if n >= in.Limit {
			return PaymentMethod{}, methodLimit(in.Limit)
		}
	}
	m, err := s.prepareMethod(ctx, in)
	if err != nil {
		return PaymentMethod{}, err
	}
	m.ID = newID(prefixMethod)
	m.CustomerID = customerID
	m.CreatedAt = s.nowMs()
	err = s.inTx(ctx, func(q querier) error {
		if err := lockCustomer(ctx, q, customerID); err != nil {
			return err
		}
		// Under the customer lock the count is the next free position, and concurrent adds
		// (other requests, other replicas) wait here, so none can slip past the limit.
		n, err := countMethods(ctx, q, customerID)
		if err != nil {
			return err
		}
		if in.Limit > 0 && n >= in.Limit {
			return methodLimit(in.Limit)
		}
		m.Position = n
		var card CardInfo
		if m.Card != nil {
			card = *m.Card
		}
		_, err = q.exec(ctx, `INSERT INTO payment_methods (id, customer_id, ordinal, method_type,
			processor, card_token, card_brand, card_last4, card_exp_month, card_exp_year,
			card_fingerprint, account_number, wallet, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, customerID, m.Position, string(m.Type), s.processor.Name(), card.Token,
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
		return PaymentMethod{}, fmt.Errorf("add payment method for customer %s: %w", customerID, err)
	}
	s.log.Info("payment method added", "customer", customerID, "payment_method", m.ID,
		"type", m.Type, "position", m.Position)
	s.settleAfterMethodChange(ctx, customerID)
	return m, nil
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

// settleAfterMethodChange runs SettleIncomplete after a method change. Its failure does not
// undo the change the customer made; the payments stay incomplete and the next change or an
// explicit SettleIncomplete picks them up.
func (s *Store) settleAfterMethodChange(ctx context.Context, customerID string) {
	// The change is committed; finish the follow-up even if the request is canceled now.
	ctx = context.WithoutCancel(ctx)
	if _, err := s.SettleIncomplete(ctx, customerID); err != nil {
		s.log.Error("settle incomplete payments after payment method change", "customer", customerID, "err", err)
	}
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

// RemovePaymentMethod detaches a method. It is refused with ErrLastMethodWithActiveSubscription
// when it is the customer's only method and a subscription is still billing (active or past
// due). Subscriptions pinned to it fall back to the preferred method.
func (s *Store) RemovePaymentMethod(ctx context.Context, customerID, methodID string) error {
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
		if len(rest) == 0 {
			var billing int
			if err := q.queryRow(ctx, `SELECT COUNT(*) FROM subscriptions
				WHERE customer_id = ? AND status IN ('active', 'past_due')`, customerID).Scan(&billing); err != nil {
				return err
			}
			if billing > 0 {
				return newError(KindConflict, CodeLastMethodWithActiveSubscription, "", nil)
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
	s.settleAfterMethodChange(ctx, customerID)
	return out, nil
}

// resolveMethod picks the method to charge: the subscription's pinned method when it is still
// attached and usable, else the customer's first usable method in preference order. Expired
// cards are skipped rather than charged into a certain decline. nil means none is usable.
func resolveMethod(ctx context.Context, q querier, customerID, subscriptionID string, now time.Time) (*PaymentMethod, error) {
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
			if pinned.Valid && ms[i].ID == pinned.String && ms[i].usableAt(now) {
				return &ms[i], nil
			}
		}
	}
	for i := range ms {
		if ms[i].usableAt(now) {
			return &ms[i], nil
		}
	}
	return nil, nil
}
