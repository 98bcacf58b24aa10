// Package auth is how customers get into a portal: one-time login codes sent by e-mail, the
// exchange of PortalSession link tokens, and the server-side browser sessions both end in.
//
// Its tables live in the ledger's database (SQLite or PostgreSQL, the same SQL on both) with
// their own goose migrations and version table, so the ledger and auth evolve independently.
// Nothing secret is stored in clear: codes are HMACed with a per-challenge salt, and challenge
// handles and session ids (256 random bits each) are stored as SHA-256 hashes, so a copy of the
// database opens no browser session.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"k8s.io/utils/clock"

	"github.com/portero-dev/portero/portal/ledger"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// versionTable is goose's bookkeeping table for auth's migrations, apart from the ledger's.
const versionTable = "portero_auth_db_version"

// Default session lifetimes.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
)

// Options configure a Store.
type Options struct {
	// Clock is the time source; nil means the real clock. Tests pass a fake one.
	Clock clock.PassiveClock
	// Logger receives operational logs (never a code, token or session id); nil discards them.
	Logger *slog.Logger
	// Pepper, when set, is mixed into the HMAC keys kept in the database, so a copy of the
	// database alone cannot test guesses of a live code offline. It must be the same on every
	// replica and across restarts.
	Pepper []byte
	// IdleTimeout ends a browser session not used for this long (default 30m).
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a browser session this long after sign-in whatever happens (12h).
	AbsoluteTimeout time.Duration
}

// Store keeps login challenges, browser sessions and rate-limit counters. It is safe for
// concurrent use, and several Stores (replicas) may share one PostgreSQL database.
type Store struct {
	db       *sql.DB
	stmts    *ledger.Statements
	clock    clock.PassiveClock
	log      *slog.Logger
	codeKey  []byte
	rateKey  []byte
	csrfKey  []byte
	idle     time.Duration
	absolute time.Duration
}

// OpenLedger opens auth on the ledger's own database.
func OpenLedger(ctx context.Context, l *ledger.Store, opts Options) (*Store, error) {
	return Open(ctx, l.DB(), l.Engine(), opts)
}

// Open applies auth's migrations to db (an SQLite or PostgreSQL pool, as engine says) and loads
// or creates its keys.
func Open(ctx context.Context, db *sql.DB, engine ledger.Engine, opts Options) (*Store, error) {
	if engine != ledger.SQLite && engine != ledger.Postgres {
		return nil, fmt.Errorf("open auth store: unsupported engine %q", engine)
	}
	s := &Store{db: db, stmts: ledger.NewStatements(db, engine), clock: opts.Clock, log: opts.Logger,
		idle: opts.IdleTimeout, absolute: opts.AbsoluteTimeout}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.idle <= 0 {
		s.idle = DefaultIdleTimeout
	}
	if s.absolute <= 0 {
		s.absolute = DefaultAbsoluteTimeout
	}
	if err := s.migrate(ctx, engine); err != nil {
		return nil, err
	}
	master, err := s.loadKey(ctx, "master")
	if err != nil {
		return nil, err
	}
	if len(opts.Pepper) > 0 {
		master = mac(opts.Pepper, master)
	}
	// One key per purpose, so a MAC made for one use can never be replayed as another.
	s.codeKey = mac(master, []byte("portero auth login code"))
	s.rateKey = mac(master, []byte("portero auth rate limit"))
	s.csrfKey = mac(master, []byte("portero auth pre-session csrf"))
	return s, nil
}

func (s *Store) migrate(ctx context.Context, engine ledger.Engine) error {
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("auth migrations: %w", err)
	}
	// "auth" as the lock class: distinct from the ledger's, so each serialises only itself.
	return ledger.Migrate(ctx, s.db, engine, ledger.MigrationSet{Name: "auth", FS: fsys, Table: versionTable, LockClass: 0x61757468}, s.log)
}

// loadKey returns the named key, creating it on first use; concurrent replicas agree on one.
func (s *Store) loadKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	if _, err := s.exec(ctx, `INSERT INTO auth_keys (name, secret, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, hex.EncodeToString(fresh), s.nowMs()); err != nil {
		return nil, fmt.Errorf("create auth key: %w", err)
	}
	var secret string
	if err := s.queryRow(ctx, "SELECT secret FROM auth_keys WHERE name = ?", name).Scan(&secret); err != nil {
		return nil, fmt.Errorf("load auth key: %w", err)
	}
	b, err := hex.DecodeString(secret)
	if err != nil || len(b) < 32 {
		return nil, errors.New("load auth key: stored key is malformed")
	}
	return b, nil
}

// Sweep deletes expired challenges, sessions and rate-limit windows. Run it now and then; the
// checks at the point of use do not depend on it.
func (s *Store) Sweep(ctx context.Context) error {
	now := s.nowMs()
	if _, err := s.exec(ctx, "DELETE FROM auth_login_challenges WHERE expires_at < ?", now-time.Hour.Milliseconds()); err != nil {
		return fmt.Errorf("sweep login challenges: %w", err)
	}
	if _, err := s.exec(ctx, "DELETE FROM auth_sessions WHERE expires_at <= ? OR last_seen_at <= ?", now, now-s.idle.Milliseconds()); err != nil {
		return fmt.Errorf("sweep sessions: %w", err)
	}
	if _, err := s.exec(ctx, "DELETE FROM auth_rate_limits WHERE window_start < ?", now-24*time.Hour.Milliseconds()); err != nil {
		return fmt.Errorf("sweep rate limits: %w", err)
	}
	return nil
}

// now is the clock's time at the millisecond precision the database keeps.
func (s *Store) now() time.Time { return s.clock.Now().UTC().Truncate(time.Millisecond) }

func (s *Store) nowMs() int64 { return s.clock.Now().UnixMilli() }

// Statements rebind "?" placeholders for PostgreSQL and, on SQLite, prepare each query once:
// the session lookup runs on every page.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.stmts.ExecContext(ctx, query, args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.stmts.QueryRowContext(ctx, query, args...)
}

// execOne runs a conditional statement and reports whether it changed exactly one row.
func (s *Store) execOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func mac(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// newHandle returns 256 random bits, base64url: a cookie value or link-like secret.
func newHandle() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashHandle is how handles are stored: hex SHA-256. A fast hash suffices for 256-bit secrets.
func hashHandle(h string) string {
	sum := sha256.Sum256([]byte(h))
	return hex.EncodeToString(sum[:])
}
