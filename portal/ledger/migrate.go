package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
)

// MigrationSet is one package's migrations, kept in their own goose version table so the ledger
// and the stores beside it (sign-in codes, browser sessions) evolve independently in one database.
type MigrationSet struct {
	// Name appears in errors and logs ("ledger", "auth").
	Name string
	// FS holds the .sql files at its root.
	FS fs.FS
	// Table is goose's version table; empty means goose's default.
	Table string
	// LockClass is the first key of the PostgreSQL advisory lock that serialises replicas.
	LockClass int32
}

// Migrate applies a migration set on either engine. On PostgreSQL a session advisory lock scoped
// to the current schema serialises replicas that start together (pg_advisory_lock blocks until
// granted, so nobody polls). SQLite has no such lock: when two processes open the same new file at
// once, the loser's migration fails on tables the winner just created, so "nothing pending" after
// a failure counts as success.
func Migrate(ctx context.Context, db *sql.DB, engine Engine, set MigrationSet, log *slog.Logger) error {
	dialect := goose.DialectSQLite3
	if engine == Postgres {
		dialect = goose.DialectPostgres
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if set.Table != "" {
		opts = append(opts, goose.WithTableName(set.Table))
	}
	p, err := goose.NewProvider(dialect, db, set.FS, opts...)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set.Name, err)
	}
	if engine == Postgres {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", set.Name, err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1, hashtext(coalesce(current_schema(), '')))", set.LockClass); err != nil {
			return fmt.Errorf("migrate %s: take migration lock: %w", set.Name, err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext(coalesce(current_schema(), '')))", set.LockClass)
		}()
	}
	// SQLite has no advisory lock: processes sharing a new file (make run's portals) race, and
	// the loser's migration fails on what the winner just created. That is fine once nothing is
	// pending; while the winner is still between two migrations, look again shortly.
	var results []*goose.MigrationResult
	for attempt := 1; ; attempt++ {
		results, err = p.Up(ctx)
		if err == nil || engine != SQLite {
			break
		}
		pending, perr := p.HasPending(ctx)
		if perr == nil && !pending {
			log.Info("migrations applied concurrently by another process", "set", set.Name, "engine", engine)
			return nil
		}
		if attempt == 20 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("migrate %s (%s): %w", set.Name, engine, err)
	}
	for _, r := range results {
		log.Info("applied migration", "set", set.Name, "version", r.Source.Version, "engine", engine, "duration", r.Duration)
	}
	return nil
}

// engineMigrations is one engine's view of the ledger's migrations: the files shared by both
// engines (the root of migrations/) and that engine's own (migrations/sqlite/ or
// migrations/postgres/), side by side as goose expects them. Almost everything is shared; only
// what the engines cannot write alike (triggers) is not, with the same version number in both
// directories.
type engineMigrations struct{ shared, own fs.FS }

// Open opens a file of either set.
func (m engineMigrations) Open(name string) (fs.File, error) {
	f, err := m.own.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return m.shared.Open(name)
	}
	return f, err
}

// ReadDir lists the files of both sets (no directories); a file in both is an error.
func (m engineMigrations) ReadDir(name string) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	for _, f := range []fs.FS{m.shared, m.own} {
		es, err := fs.ReadDir(f, name)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if !e.IsDir() {
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for i := 1; i < len(out); i++ {
		if out[i].Name() == out[i-1].Name() {
			return nil, fmt.Errorf("migration %s is both shared and engine-specific", out[i].Name())
		}
	}
	return out, nil
}
