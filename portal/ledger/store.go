// Package ledger is Portero's billing store: customers, their ordered payment methods,
// subscriptions and payments, in SQLite (the embedded default) or PostgreSQL (for several
// replicas or portals sharing one customer base), with the same SQL and migrations on both.
//
// Every state change happens in one transaction. The ledger only records: it never calls a
// payment processor (portal/charging does, and records what happened through the ledger's
// charging.Recorder methods). A charge attempt exists only once a conditional UPDATE claimed
// it, and only the claim's holder charges it, so a payment is charged at most once per attempt
// however many goroutines or replicas race for it.
package ledger

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationsFS embed.FS

// Engine is the SQL engine behind a Store.
type Engine string

// Engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Hooks are called after a transaction commits, synchronously, so they must be quick (queue an
// e-mail, bump a metric). Nil hooks are skipped.
type Hooks struct {
	// PaymentIncomplete reports a payment left waiting for a payment method: the caller e-mails
	// the customer a portal link to complete it (a PortalSession with flow complete_payment).
	PaymentIncomplete func(ctx context.Context, p Payment)
	// PaymentUpdated reports a charge attempt's outcome: succeeded, failed, pending, or
	// requires_action (the customer must authenticate it).
	PaymentUpdated func(ctx context.Context, p Payment)
}

// Options configure a Store.
type Options struct {
	// Now is the clock; nil means time.Now. Tests inject a fixed clock instead of sleeping.
	Now func() time.Time
	// Logger receives operational logs (ids and outcomes, never card data); nil discards them.
	Logger *slog.Logger
	// Hooks receive payment events.
	Hooks Hooks
	// BillingZone is where subscription periods count their days (see periodEnd); nil means
	// ArgentinaTime.
	BillingZone *time.Location
	// Events configures the merchant event log (see events.go).
	Events EventOptions
}

// Store is the ledger. It is safe for concurrent use, and several Stores (replicas) may share
// one PostgreSQL database.
type Store struct {
	db        *sql.DB
	stmts     *Statements
	engine    Engine
	now       func() time.Time
	log       *slog.Logger
	hooks     Hooks
	zone      *time.Location
	events    EventOptions
	customers keptCustomers // see GetCustomer
}

// Open connects to the database named by dsn and applies pending migrations.
//
// dsn is either a PostgreSQL URL ("postgres://…" or "postgresql://…", any pgx parameter such as
// search_path allowed) or an SQLite database file: "sqlite:///var/lib/portero/ledger.db",
// "sqlite://ledger.db" (relative) or a plain path. SQLite runs in WAL mode with foreign keys
// on, a busy timeout and BEGIN IMMEDIATE transactions, so concurrent writers queue instead of
// failing.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	engine, driverDSN, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	driver := "pgx"
	if engine == SQLite {
		driver = "sqlite"
	}
	db, err := sql.Open(driver, driverDSN)
	if err != nil {
		return nil, fmt.Errorf("open ledger (%s): %w", engine, err)
	}
	conns := 16
	if engine == SQLite {
		// WAL allows readers alongside the single writer; a few connections are enough, and
		// every extra one is another file handle waiting on the same write lock.
		conns = 8
	}
	db.SetMaxOpenConns(conns)
	// Keep them all when idle (database/sql keeps 2 by default): under load a connection closed
	// and reopened a moment later costs a connect and loses its prepared statements.
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{
		db:     db,
		stmts:  NewStatements(db, engine),
		engine: engine,
		now:    opts.Now,
		zone:   opts.BillingZone,
		log:    opts.Logger,
		hooks:  opts.Hooks,
		events: opts.Events,
	}
	if s.zone == nil {
		s.zone = ArgentinaTime
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := connect(ctx, db, engine); err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger (%s): connect: %w", engine, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// parseDSN picks the engine and turns the DSN into the driver's own form.
func parseDSN(dsn string) (Engine, string, error) {
	switch {
	case dsn == "":
		return "", "", errors.New("empty DSN")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn, nil
	}
	path := dsn
	if rest, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		path = rest
	} else if strings.Contains(dsn, "://") {
		return "", "", fmt.Errorf("unsupported DSN scheme in %q: use postgres:// or sqlite://", redactDSN(dsn))
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		// Each pooled connection would get its own empty in-memory database.
		return "", "", errors.New("an SQLite ledger needs a file path, not an in-memory database")
	}
	if strings.ContainsAny(path, "?#") {
		return "", "", errors.New("SQLite ledger path must not contain '?' or '#'; options are set by Portero")
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the
	// last commits, which the processor's own records then reconcile.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return SQLite, "file:" + path + "?" + q.Encode(), nil
}

// redactDSN hides a password in a URL DSN for error messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparseable DSN>"
	}
	return u.Redacted()
}

// migrate applies the ledger's embedded migrations (see Migrate): the shared ones and the
// engine's own (see engineMigrations).
func (s *Store) migrate(ctx context.Context) error {
	shared, err := fsSub(migrationsFS, "migrations")
	if err != nil {
		return err
	}
	own, err := fsSub(migrationsFS, "migrations/"+string(s.engine))
	if err != nil {
		return err
	}
	fsys := engineMigrations{shared: shared, own: own}
	// 0x706f7274 is "port": a fixed lock class so the lock cannot collide with other apps'.
	return Migrate(ctx, s.db, s.engine, MigrationSet{Name: "ledger", FS: fsys, LockClass: 0x706f7274}, s.log)
}

// Engine reports which SQL engine the store uses.
func (s *Store) Engine() Engine { return s.engine }

// Close releases the database connections.
func (s *Store) Close() error {
	s.stmts.Close()
	return s.db.Close()
}

// Ping checks the database is reachable (for readiness probes).
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// connect opens the first connection. On a brand-new SQLite file several processes switching it
// to WAL at once get SQLITE_BUSY straight away (that pragma bypasses the busy timeout), so a busy
// first connection is retried with a short backoff for up to 10 s.
func connect(ctx context.Context, db *sql.DB, engine Engine) error {
	deadline := time.Now().Add(10 * time.Second)
	wait := 10 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || engine != SQLite || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// querier runs SQL written with "?" placeholders on the pool or in a transaction, through the
// store's Statements, which rebind them for PostgreSQL and prepare them once on SQLite.
type querier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
	// tx is set inside inTx: what the transaction did that matters after it commits.
	tx *txState
}

// txState is what a transaction recorded for after its commit.
type txState struct {
	// events are the types of the events the transaction wrote.
	events []string
	// deliveries is set when it made deliveries (the worker has work).
	deliveries bool
}

func (q querier) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.q.ExecContext(ctx, query, args...)
}

func (q querier) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.q.QueryContext(ctx, query, args...)
}

// strings runs a query of one text column (ids, mostly) and returns its values in order.
func (q querier) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (q querier) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.q.QueryRowContext(ctx, query, args...)
}

// execOne runs a statement that must affect exactly one row and reports whether it did.
func (q querier) execOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// read returns a querier on the pool, for statements outside a transaction.
func (s *Store) read() querier { return querier{q: s.stmts} }

// inTx runs fn in a transaction, committing if it returns nil. On SQLite the transaction
// starts with BEGIN IMMEDIATE (from the DSN), taking the write lock up front so two writers
// never deadlock upgrading read locks; on PostgreSQL writers serialise on the rows they lock.
func (s *Store) inTx(ctx context.Context, fn func(q querier) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	st := &txState{}
	if err := fn(querier{q: s.stmts.In(tx), tx: st}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if (len(st.events) > 0 || st.deliveries) && s.events.Written != nil {
		s.events.Written(st.events, st.deliveries)
	}
	return nil
}

// lockCustomer takes the customer's row lock for the rest of the transaction (a no-op write
// that PostgreSQL locks and SQLite serialises anyway) and reports ErrNotFound if the customer
// does not exist. Every transaction that reads a customer's methods to decide something, or
// changes them, starts here: that is what makes "add a method" and "create a payment" see each
// other, so no payment is left incomplete next to a usable method.
func lockCustomer(ctx context.Context, q querier, customerID string) error {
	ok, err := q.execOne(ctx, "UPDATE customers SET version = version + 1 WHERE id = ?", customerID)
	if err != nil {
		return fmt.Errorf("lock customer %s: %w", customerID, err)
	}
	if !ok {
		return notFound("customer")
	}
	return nil
}

// Time is stored as Unix milliseconds in UTC.
func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromNullMillis(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMillis(n.Int64)
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
