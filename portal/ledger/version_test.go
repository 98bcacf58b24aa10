package ledger

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portero-dev/portero/portal/payments"
)

// ownedTables are the ledger's tables whose rows belong to a customer (a customer_id column,
// or a payment's for payment_attempts), in an order rows can be deleted in.
var ownedTables = []string{"payment_attempts", "payments", "subscriptions", "payment_methods"}

// logTables are the merchant's event log and the processor's bookkeeping (customers' ids at
// each processor, the processor events handled): no customer page shows them, so they need no
// version triggers.
var logTables = []string{"event_deliveries", "events", "processor_customers", "processor_events"}

// tables lists the ledger's tables, goose's bookkeeping aside.
func tables(t *testing.T, e *env) []string {
	t.Helper()
	query := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if e.engine == Postgres {
		query = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	}
	rows, err := e.store.db.QueryContext(e.ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != "goose_db_version" {
			out = append(out, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

var sqliteTriggerEvent = regexp.MustCompile(`(?is)^CREATE TRIGGER \S+ (?:AFTER|BEFORE) (INSERT|UPDATE|DELETE) ON (\S+)\b.*UPDATE customers SET version = version \+ 1`)

// versionTriggers lists, per table, the events (INSERT, UPDATE, DELETE) on which a trigger
// changes customers.version.
func versionTriggers(t *testing.T, e *env) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	if e.engine == SQLite {
		rows, err := e.store.db.QueryContext(e.ctx, "SELECT sql FROM sqlite_master WHERE type = 'trigger'")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var src string
			if err := rows.Scan(&src); err != nil {
				t.Fatal(err)
			}
			if m := sqliteTriggerEvent.FindStringSubmatch(src); m != nil {
				out[m[2]] = append(out[m[2]], strings.ToUpper(m[1]))
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	} else {
		rows, err := e.store.db.QueryContext(e.ctx, `SELECT event_object_table, event_manipulation FROM information_schema.triggers
			WHERE trigger_schema = current_schema() AND action_statement LIKE 'EXECUTE FUNCTION portero_customer_version_%'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var table, event string
			if err := rows.Scan(&table, &event); err != nil {
				t.Fatal(err)
			}
			out[table] = append(out[table], event)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// Every table of the ledger holds a customer's data, and the portal keeps pages while the
// customer's version is unchanged: so every table must change the version on every write. A
// table added without the triggers fails here.
func TestVersionTriggersCoverEveryTable(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		want := append(append(append(append([]string{"customers"}, ownedTables...), logTables...), catalogueTables...), creditTables...)
		slices.Sort(want)
		if got := tables(t, e); !slices.Equal(got, want) {
			t.Fatalf("ledger tables = %v, want %v: give a new table the customer version triggers (migrations/sqlite and migrations/postgres) and add it to ownedTables", got, want)
		}
		trig := versionTriggers(t, e)
		if got := trig["customers"]; !slices.Equal(got, []string{"UPDATE"}) {
			t.Errorf("customers: version triggers on %v, want [UPDATE]", got)
		}
		for _, table := range append(append([]string(nil), ownedTables...), creditTables...) {
			if got := trig[table]; !slices.Equal(got, []string{"DELETE", "INSERT", "UPDATE"}) {
				t.Errorf("%s: version triggers on %v, want [DELETE INSERT UPDATE]", table, got)
			}
		}

		// And they work, for writes that bypass the store: each table's rows updated and
		// deleted by hand (in a transaction rolled back), and the customer row itself.
		c := e.customer(t, "v@example.com")
		m := e.addMethod(t, c.ID, card("4242424242424242"))
		if _, _, err := e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 1000,
			Currency: ARS, Interval: Month, PaymentMethodID: m.ID}); err != nil {
			t.Fatal(err)
		}
		tx, err := e.store.db.BeginTx(e.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		q := e.store.stmts.In(tx)
		version := func() int64 {
			var v int64
			if err := q.QueryRowContext(e.ctx, "SELECT version FROM customers WHERE id = ?", c.ID).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		changes := func(what, query string) {
			t.Helper()
			before := version()
			res, err := q.ExecContext(e.ctx, query)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				t.Fatalf("%s: no row", what)
			}
			if after := version(); after <= before {
				t.Errorf("%s left the customer's version at %d", what, after)
			}
		}
		changes("customers: update", "UPDATE customers SET name = 'x'")
		for _, table := range ownedTables {
			col := map[string]string{"payment_attempts": "method_summary", "payments": "description", "subscriptions": "plan", "payment_methods": "wallet"}[table]
			changes(table+": update", "UPDATE "+table+" SET "+col+" = "+col+" || 'x'")
		}
		if _, err := q.ExecContext(e.ctx, "UPDATE subscriptions SET payment_method_id = NULL"); err != nil {
			t.Fatal(err)
		}
		for _, table := range ownedTables {
			changes(table+": delete", "DELETE FROM "+table)
		}
	})
}

// Every write the store offers changes the version of the customer it writes for, on both
// engines: what the portal keeps of a customer's pages is then never reused after a change.
func TestEveryWriteChangesTheCustomerVersion(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "w@example.com")
		var (
			m1, m2, m3, transfer PaymentMethod
			sub                  Subscription
			pending, failed      Payment
			incomplete           Payment
		)
		steps := []struct {
			name string
			do   func() error
		}{
			{"UpdateCustomer", func() error {
				name := "Renamed"
				_, err := e.store.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Name: &name})
				return err
			}},
			{"UpdateCustomer billing", func() error {
				_, err := e.store.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Billing: &BillingProfile{LegalName: "W SA", TaxID: "27280335148", TaxCondition: ResponsableInscripto}})
				return err
			}},
			{"CreatePayment incomplete", func() (err error) {
				incomplete, err = e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 100, Currency: ARS})
				if err == nil && incomplete.Status != PaymentIncomplete {
					err = errors.New("not incomplete: " + string(incomplete.Status))
				}
				return err
			}},
			{"AddMethod (a card the processor tokenized) settling the incomplete payment", func() (err error) {
				m1, err = e.store.AddPaymentMethod(e.ctx, c.ID, card("4242424242424242"))
				return err
			}},
			{"AddMethod", func() (err error) {
				m2, err = e.store.AddPaymentMethod(e.ctx, c.ID, card("4000000000000002"))
				return err
			}},
			{"ReorderPaymentMethods", func() error {
				_, err := e.store.ReorderPaymentMethods(e.ctx, c.ID, []string{m2.ID, m1.ID})
				return err
			}},
			{"CreatePayment failed", func() (err error) {
				failed, err = e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 200, Currency: ARS})
				if err == nil && failed.Status != PaymentFailed {
					err = errors.New("not failed: " + string(failed.Status))
				}
				return err
			}},
			{"MakePreferred", func() error {
				_, err := e.store.MakePreferred(e.ctx, c.ID, m1.ID)
				return err
			}},
			{"RetryPayment", func() error {
				_, err := e.store.RetryPayment(e.ctx, c.ID, failed.ID)
				return err
			}},
			{"CreateSubscription", func() (err error) {
				sub, _, err = e.store.CreateSubscription(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Pro", Amount: 1000, Currency: ARS, Interval: Month})
				return err
			}},
			{"CreateSubscriptionIdempotent starting next year", func() error {
				// Starting later and unbilled, so RenewDue below still renews only sub.
				_, err := e.store.CreateSubscriptionIdempotent(e.ctx, NewSubscription{CustomerID: c.ID, Plan: "Later", Amount: 1000,
					Currency: ARS, Interval: Year, StartAt: e.clock.Now().AddDate(1, 0, 0), NoInitialPayment: true, IdempotencyKey: "later"})
				return err
			}},
			{"SetSubscriptionPaymentMethod", func() error {
				_, err := e.store.SetSubscriptionPaymentMethod(e.ctx, c.ID, sub.ID, m1.ID)
				return err
			}},
			{"CancelSubscription at period end", func() error {
				_, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelAtPeriodEnd, "too dear")
				return err
			}},
			{"ResumeSubscription", func() error {
				_, err := e.store.ResumeSubscription(e.ctx, c.ID, sub.ID)
				return err
			}},
			{"RenewDue", func() error {
				res, err := e.store.RenewDue(e.ctx, sub.CurrentPeriodEnd)
				if err == nil && len(res.Payments) != 1 {
					err = errors.New("renewed nothing")
				}
				return err
			}},
			{"CancelSubscription immediately", func() error {
				_, err := e.store.CancelSubscription(e.ctx, c.ID, sub.ID, CancelImmediately, "")
				return err
			}},
			{"AddPaymentMethod bank transfer", func() (err error) {
				transfer, err = e.store.AddPaymentMethod(e.ctx, c.ID, methodIn{Type: payments.MethodBankTransfer})
				if err == nil {
					_, err = e.store.MakePreferred(e.ctx, c.ID, transfer.ID)
				}
				return err
			}},
			{"CreatePayment pending", func() (err error) {
				pending, err = e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 300, Currency: ARS})
				if err == nil && pending.Status != PaymentPending {
					err = errors.New("not pending: " + string(pending.Status))
				}
				return err
			}},
			{"RecordResult (the merchant confirms a pending payment)", func() error {
				_, err := e.store.ConfirmPayment(e.ctx, pending.ID)
				return err
			}},
			{"RemovePaymentMethod", func() error {
				return e.store.Store.RemovePaymentMethod(e.ctx, c.ID, transfer.ID)
			}},
			{"AddMethod (a card the processor will detach)", func() (err error) {
				m3, err = e.store.AddPaymentMethod(e.ctx, c.ID, card("5555555555554444"))
				return err
			}},
			{"RemoveProcessorMethod (the processor detached it)", func() error {
				_, removed, err := e.store.RemoveProcessorMethod(e.ctx, e.proc.Type(), m3.Card.Token)
				if err == nil && !removed {
					err = errors.New("removed nothing")
				}
				return err
			}},
			{"CreatePayment with an unknown outcome", func() error {
				e.proc.setBeforeCharge(func(payments.ChargeRequest) error { return errors.New("connection reset by peer") })
				defer e.proc.setBeforeCharge(nil)
				p, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 400, Currency: ARS})
				if err == nil && p.Status != PaymentProcessing {
					err = errors.New("not processing: " + string(p.Status))
				}
				return err
			}},
			{"ClaimStale (the driver re-drives a charge whose answer was lost)", func() error {
				e.clock.Advance(10 * time.Minute)
				n, err := e.store.RecoverProcessing(e.ctx, 5*time.Minute)
				if err == nil && n != 1 {
					err = errors.New("recovered nothing")
				}
				return err
			}},
			{"RemoveMethod (the driver detaches it at the processor first)", func() (err error) {
				return e.store.RemovePaymentMethod(e.ctx, c.ID, m2.ID)
			}},
			{"CreatePayment incomplete (the only card expired)", func() (err error) {
				e.clock.Set(time.Date(cardExpYear+1, time.January, 1, 0, 0, 0, 0, time.UTC))
				incomplete, err = e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 500, Currency: ARS})
				if err == nil && incomplete.Status != PaymentIncomplete {
					err = errors.New("not incomplete: " + string(incomplete.Status))
				}
				return err
			}},
			{"ClaimIncomplete (the driver settles the customer's incomplete payments)", func() error {
				e.clock.Set(time.Date(cardExpYear, time.June, 1, 0, 0, 0, 0, time.UTC))
				settled, err := e.store.SettleIncomplete(e.ctx, c.ID)
				if err == nil && len(settled) != 1 {
					err = errors.New("settled nothing")
				}
				return err
			}},
			{"CreatePayment (stranded: a method committed, its settlement lost)", func() error {
				e.clock.Set(time.Date(cardExpYear+1, time.June, 1, 0, 0, 0, 0, time.UTC)) // the cards have expired
				p, err := e.store.CreatePayment(e.ctx, NewPayment{CustomerID: c.ID, Amount: 700, Currency: ARS})
				if err == nil && p.Status != PaymentIncomplete {
					return errors.New("not incomplete: " + string(p.Status))
				}
				e.clock.Advance(time.Minute)
				_, err = e.store.read().exec(e.ctx, `INSERT INTO payment_methods (id, customer_id, ordinal, method_type,
					processor, account_number, created_at) VALUES (?, ?, 99, 'direct_debit', ?, ?, ?)`,
					"pm_version_stranded", c.ID, e.proc.Name(), "2850590940090418135201", e.clock.Now().UnixMilli())
				return err
			}},
			{"StrandedCustomers settled", func() error {
				n, err := e.store.SettleStranded(e.ctx)
				if err == nil && n != 1 {
					err = fmt.Errorf("settled %d", n)
				}
				return err
			}},
		}
		covered := map[string]bool{}
		for _, s := range steps {
			before, err := e.store.GetCustomer(e.ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			after, err := e.store.GetCustomer(e.ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Version <= before.Version {
				t.Errorf("%s left the customer's version at %d", s.name, after.Version)
			}
			covered[strings.Fields(s.name)[0]] = true
		}
		// A write added to the store must be added above.
		reads := []string{"Close", "DB", "Engine", "Ping", "CreateCustomer", "GetCustomer", "ListCustomers",
			"GetPaymentMethod", "ListPaymentMethods", "ListPaymentMethodSummaries", "GetPayment", "GetPaymentForCustomer",
			"ListPayments", "ListPaymentSummaries", "GetSubscription", "GetSubscriptionForCustomer", "ListSubscriptions",
			"ListSubscriptionSummaries"}
		// What only the charging driver reads, and the processor's bookkeeping (see logTables).
		reads = append(reads, "Customer", "Method", "FindAttempt", "EventSeen", "CheckMethodLimit",
			"CheckRemovePaymentMethod", "SetProcessorCustomer", "MarkEvent")
		// The event log is the merchant's, on no customer page (see logTables).
		reads = append(reads, "ListEvents", "GetEvent", "RedeliverEvent", "ClaimDeliveries", "RecordAttempt",
			"DeliveryBacklog", "PendingEndpoints", "AbandonDeliveries", "RecordAttempts", "ReleaseDeliveries")
		reads = append(reads, planStoreMethods...)
		typ := reflect.TypeFor[*Store]()
		for i := range typ.NumMethod() {
			name := typ.Method(i).Name
			if !covered[name] && !slices.Contains(reads, name) {
				t.Errorf("Store.%s is neither a read nor a step of this test", name)
			}
		}
	})
}

// UpdateCustomer returns the version its write left.
func TestUpdateCustomerReturnsItsVersion(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "u@example.com")
		name := "U"
		got, err := e.store.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		read, err := e.store.GetCustomer(e.ctx, c.ID)
		if err != nil || read != got {
			t.Fatalf("UpdateCustomer = %+v, GetCustomer = %+v, %v", got, read, err)
		}
	})
}

// GetCustomer answers from the copy it kept only while the row's version is unchanged: every
// change to the row, by this store, by another (a replica) or by hand, is seen on the next read.
func TestGetCustomerSeesEveryChange(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		c := e.customer(t, "kept@example.com")
		get := func(s *flow) Customer {
			t.Helper()
			got, err := s.GetCustomer(e.ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		if got := get(e.store); got.Name != "Test Customer" {
			t.Fatalf("name %q", got.Name)
		}
		name := "By The Store"
		if _, err := e.store.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
		if got := get(e.store); got.Name != name {
			t.Fatalf("after UpdateCustomer: name %q", got.Name)
		}
		replica := e.open(t)
		get(replica)
		name = "By A Replica"
		if _, err := replica.UpdateCustomer(e.ctx, c.ID, CustomerUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
		if got := get(e.store); got.Name != name {
			t.Fatalf("after a replica's update: name %q", got.Name)
		}
		if _, err := e.store.db.ExecContext(e.ctx, "UPDATE customers SET email = 'by-hand@example.com' WHERE id = '"+c.ID+"'"); err != nil {
			t.Fatal(err)
		}
		if got := get(e.store); got.Email != "by-hand@example.com" || got.Name != name {
			t.Fatalf("after an update by hand: %+v", got)
		}
		if _, err := e.store.db.ExecContext(e.ctx, "DELETE FROM customers WHERE id = '"+c.ID+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.GetCustomer(e.ctx, c.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted customer: %v", err)
		}
	})
}
