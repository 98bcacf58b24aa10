// Package chargingtest holds an in-memory charging.Recorder with the conditions the ledger keeps,
// for tests of the driver and of processor adapters that need no database.
package chargingtest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/payments"
)

// PaymentIncomplete is the state of a payment waiting for a usable method (no attempt yet).
const PaymentIncomplete charging.AttemptStatus = "incomplete"

// Memory is an in-memory charging.Recorder. Its clock starts at a fixed instant and moves only
// by Advance.
type Memory struct {
	mu        sync.Mutex
	now       time.Time
	seq       int
	customers map[string]*charging.Customer
	// processorIDs are the customers' ids at each processor: customer → processor → id.
	processorIDs map[string]map[payments.ProcessorType]string
	methods      map[string][]charging.StoredMethod // by customer, preferred first
	payments     map[string]*Payment
	order        []string // payment ids, oldest first
	events       map[string]string
}

// Payment is a payment as the memory recorder holds it.
type Payment struct {
	ID          string
	CustomerID  string
	Amount      int64
	Currency    string
	Description string
	Status      charging.AttemptStatus
	Attempts    []charging.Attempt
	FailureCode string
	// Transitions lists every status RecordResult moved the payment to, in order.
	Transitions []charging.AttemptStatus
	updated     time.Time
}

// NewMemory returns an empty recorder.
func NewMemory() *Memory {
	return &Memory{
		now:          time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC),
		customers:    map[string]*charging.Customer{},
		processorIDs: map[string]map[payments.ProcessorType]string{},
		methods:      map[string][]charging.StoredMethod{},
		payments:     map[string]*Payment{},
		events:       map[string]string{},
	}
}

// Advance moves the recorder's clock.
func (m *Memory) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}

func (m *Memory) id(prefix string) string {
	m.seq++
	return prefix + "_" + strconv.Itoa(m.seq)
}

// AddCustomer creates a customer and returns its id.
func (m *Memory) AddCustomer(email, name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.id("cus")
	m.customers[id] = &charging.Customer{ID: id, Email: email, Name: name, Locale: "es"}
	return id
}

// CreatePayment records a payment for the customer: processing with its first attempt claimed
// when the customer has a method (returned, for the caller to Charge), incomplete otherwise.
func (m *Memory) CreatePayment(customerID string, amount int64, currency, description string) (string, *charging.Attempt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &Payment{ID: m.id("pay"), CustomerID: customerID, Amount: amount, Currency: currency,
		Description: description, Status: PaymentIncomplete, updated: m.now}
	m.payments[p.ID] = p
	m.order = append(m.order, p.ID)
	a := m.claimLocked(p, "")
	return p.ID, a
}

// claimLocked starts a new attempt on p with the customer's first method that processor can
// charge ("" for any), if there is one.
func (m *Memory) claimLocked(p *Payment, processor payments.ProcessorType) *charging.Attempt {
	var pm *charging.StoredMethod
	for i, x := range m.methods[p.CustomerID] {
		if processor == "" || x.Processor == processor || x.Processor == "" {
			pm = &m.methods[p.CustomerID][i]
			break
		}
	}
	if pm == nil {
		return nil
	}
	a := charging.Attempt{PaymentID: p.ID, CustomerID: p.CustomerID, Number: len(p.Attempts) + 1,
		Amount: p.Amount, Currency: p.Currency, Description: p.Description,
		Method:            payments.MethodRef{Type: pm.Type, Token: pm.ProcessorID},
		Processor:         pm.Processor,
		ProcessorCustomer: m.processorIDs[p.CustomerID][pm.Processor],
		Status:            charging.AttemptProcessing}
	p.Attempts = append(p.Attempts, a)
	p.Status, p.FailureCode, p.updated = charging.AttemptProcessing, "", m.now
	return &a
}

// Payment returns a copy of a payment.
func (m *Memory) Payment(id string) Payment {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := *m.payments[id]
	p.Attempts = append([]charging.Attempt(nil), p.Attempts...)
	p.Transitions = append([]charging.AttemptStatus(nil), p.Transitions...)
	return p
}

// Methods returns the customer's methods, preferred first.
func (m *Memory) Methods(customerID string) []charging.StoredMethod {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]charging.StoredMethod(nil), m.methods[customerID]...)
}

// Customer implements charging.Recorder.
func (m *Memory) Customer(_ context.Context, processor payments.ProcessorType, id string) (charging.Customer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.customers[id]
	if !ok {
		return charging.Customer{}, charging.ErrNotFound
	}
	out := *c
	out.ProcessorCustomer = m.processorIDs[id][processor]
	return out, nil
}

// SetProcessorCustomer implements charging.Recorder: the first writer wins.
func (m *Memory) SetProcessorCustomer(_ context.Context, processor payments.ProcessorType, id, processorID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.customers[id]; !ok {
		return "", charging.ErrNotFound
	}
	if m.processorIDs[id] == nil {
		m.processorIDs[id] = map[payments.ProcessorType]string{}
	}
	if m.processorIDs[id][processor] == "" {
		m.processorIDs[id][processor] = processorID
	}
	return m.processorIDs[id][processor], nil
}

// AddMethod implements charging.Recorder.
func (m *Memory) AddMethod(_ context.Context, customerID string, processor payments.ProcessorType, pm payments.Method) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.customers[customerID]; !ok {
		return "", false, charging.ErrNotFound
	}
	for _, ms := range m.methods {
		for _, x := range ms {
			if x.Processor == processor && x.ProcessorID != "" && x.ProcessorID == pm.ProcessorID {
				return x.ID, false, nil
			}
		}
	}
	sm := charging.StoredMethod{ID: m.id("pm"), Processor: processor, Method: pm}
	m.methods[customerID] = append(m.methods[customerID], sm)
	return sm.ID, true, nil
}

// Method implements charging.Recorder.
func (m *Memory) Method(_ context.Context, customerID, methodID string) (charging.StoredMethod, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.methods[customerID] {
		if x.ID == methodID {
			return x, nil
		}
	}
	return charging.StoredMethod{}, charging.ErrNotFound
}

// RemoveMethod implements charging.Recorder.
func (m *Memory) RemoveMethod(_ context.Context, customerID, methodID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.methods[customerID]
	for i, x := range ms {
		if x.ID == methodID {
			m.methods[customerID] = append(ms[:i:i], ms[i+1:]...)
			break
		}
	}
	return nil
}

// RemoveProcessorMethod implements charging.Recorder.
func (m *Memory) RemoveProcessorMethod(_ context.Context, processor payments.ProcessorType, processorID string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for c, ms := range m.methods {
		for i, x := range ms {
			if x.Processor == processor && x.ProcessorID == processorID {
				m.methods[c] = append(ms[:i:i], ms[i+1:]...)
				return c, true, nil
			}
		}
	}
	return "", false, nil
}

// ClaimIncomplete implements charging.Recorder.
func (m *Memory) ClaimIncomplete(_ context.Context, processor payments.ProcessorType, customerID string) ([]charging.Attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []charging.Attempt
	for _, id := range m.order {
		p := m.payments[id]
		if p.CustomerID != customerID || p.Status != PaymentIncomplete {
			continue
		}
		if a := m.claimLocked(p, processor); a != nil {
			out = append(out, *a)
		}
	}
	return out, nil
}

// ClaimStale implements charging.Recorder.
func (m *Memory) ClaimStale(_ context.Context, olderThan time.Duration, limit int) ([]charging.Attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cutoff := m.now.Add(-olderThan)
	var out []charging.Attempt
	for _, id := range m.order {
		p := m.payments[id]
		if p.Status != charging.AttemptProcessing || !p.updated.Before(cutoff) || len(out) == limit {
			continue
		}
		p.updated = m.now // the take-over: another sweep now finds it fresh
		out = append(out, m.current(p))
	}
	return out, nil
}

// FindAttempt implements charging.Recorder.
func (m *Memory) FindAttempt(_ context.Context, ref charging.AttemptRef) (charging.Attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.order {
		p := m.payments[id]
		if len(p.Attempts) == 0 {
			continue
		}
		if ref.PaymentID != "" {
			if p.ID != ref.PaymentID || (ref.CustomerID != "" && p.CustomerID != ref.CustomerID) {
				continue
			}
			return m.current(p), nil
		}
		for _, a := range p.Attempts {
			if (ref.Reference != "" && a.Reference == ref.Reference) ||
				(ref.Reference == "" && ref.IdempotencyKey != "" && a.IdempotencyKey() == ref.IdempotencyKey) {
				a.ProcessorCustomer = m.processorIDs[p.CustomerID][a.Processor]
				return a, nil
			}
		}
	}
	return charging.Attempt{}, charging.ErrNotFound
}

func (m *Memory) current(p *Payment) charging.Attempt {
	a := p.Attempts[len(p.Attempts)-1]
	a.ProcessorCustomer = m.processorIDs[p.CustomerID][a.Processor]
	return a
}

// RecordResult implements charging.Recorder with the transitions the interface documents.
func (m *Memory) RecordResult(_ context.Context, a charging.Attempt, res payments.ChargeResult) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.payments[a.PaymentID]
	if !ok {
		return false, charging.ErrNotFound
	}
	if len(p.Attempts) != a.Number {
		return false, nil // an answer about an attempt that is no longer current
	}
	next := charging.StatusOf(res)
	if !Allowed(p.Status, next) {
		return false, nil
	}
	cur := &p.Attempts[len(p.Attempts)-1]
	cur.Status = next
	if res.Reference != "" {
		cur.Reference = res.Reference
	}
	p.Status, p.updated = next, m.now
	p.FailureCode = ""
	if res.Failure != nil {
		p.FailureCode = res.Failure.Code
	}
	p.Transitions = append(p.Transitions, next)
	return true, nil
}

// Allowed is the transition table of charging.Recorder.RecordResult.
func Allowed(from, to charging.AttemptStatus) bool {
	switch from {
	case charging.AttemptProcessing:
		return to != charging.AttemptProcessing
	case charging.AttemptRequiresAction:
		return to == charging.AttemptSucceeded || to == charging.AttemptFailed || to == charging.AttemptPending
	case charging.AttemptPending:
		return to == charging.AttemptSucceeded || to == charging.AttemptFailed
	}
	return false
}

// EventSeen implements charging.Recorder.
func (m *Memory) EventSeen(_ context.Context, processor payments.ProcessorType, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.events[string(processor)+"/"+id]
	return ok, nil
}

// MarkEvent implements charging.Recorder.
func (m *Memory) MarkEvent(_ context.Context, processor payments.ProcessorType, id, typ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events[string(processor)+"/"+id] = typ
	return nil
}

// Events returns how many events were marked handled.
func (m *Memory) Events() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// String summarises a payment for test failures.
func (p Payment) String() string {
	return fmt.Sprintf("payment %s: %s (attempts %d, failure %q, transitions %v)", p.ID, p.Status, len(p.Attempts), p.FailureCode, p.Transitions)
}

var _ charging.Recorder = (*Memory)(nil)
