package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxStatements bounds a Statements cache. The queries are string constants plus a few filter
// combinations, far fewer than this; anything beyond runs unprepared rather than growing the
// cache without end.
const maxStatements = 256

// Statements runs SQL written with "?" placeholders against one pool, with the same code on both
// engines, and prepares each distinct query once.
//
// On SQLite a query run unprepared is parsed and planned on every call, and, as its plan
// depends on the bound values, planned again once they are bound: for the portal's small
// indexed reads that is most of the work. So each query is prepared once as a *sql.Stmt, which
// database/sql keeps prepared on every connection it has run on. On PostgreSQL pgx already
// caches prepared statements per connection (and re-prepares them after a schema change), so
// only the "?" → "$n" rewrite is done once per query.
//
// It is safe for concurrent use.
type Statements struct {
	db      *sql.DB
	pg      bool
	cache   sync.Map // query → *sql.Stmt (SQLite) or its $n form (PostgreSQL)
	size    atomic.Int32
	pending sync.Map // queries being prepared in the background
	closed  atomic.Bool
}

// NewStatements returns a statement cache for db, whose engine is engine.
func NewStatements(db *sql.DB, engine Engine) *Statements {
	return &Statements{db: db, pg: engine == Postgres}
}

// Close releases the prepared statements; the pool itself stays open.
func (s *Statements) Close() {
	s.closed.Store(true)
	s.cache.Range(func(k, v any) bool {
		if st, ok := v.(*sql.Stmt); ok {
			_ = st.Close()
		}
		s.cache.Delete(k)
		return true
	})
}

// ExecContext runs a statement on the pool.
func (s *Statements) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := s.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.db.ExecContext(ctx, s.rebind(query), args...)
}

// QueryContext runs a query on the pool (on SQLite, see uninterrupted).
func (s *Statements) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.stmt(ctx, query); st != nil {
		return st.QueryContext(uninterrupted(ctx), args...)
	}
	return s.db.QueryContext(ctx, s.rebind(query), args...)
}

// QueryRowContext runs a query expected to return at most one row on the pool (on SQLite, see
// uninterrupted).
func (s *Statements) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.stmt(ctx, query); st != nil {
		return st.QueryRowContext(uninterrupted(ctx), args...)
	}
	return s.db.QueryRowContext(ctx, s.rebind(query), args...)
}

// uninterrupted is the context an SQLite read on the pool runs in: ctx's values without its
// cancellation, unless ctx has already ended (then the read fails with its error at once).
//
// For a context that can end, database/sql starts a goroutine per query to close its rows
// when it does, and the SQLite driver another to interrupt the statement: together more CPU
// than the portal's point reads themselves, which run on indexes in microseconds and cannot
// be interrupted usefully once started. The reads still end: they wait for the database at
// most the busy timeout (10 s), and for a pooled connection only as long as the statements and
// transactions holding the others, all bounded the same way. Writes and transactions keep ctx.
func uninterrupted(ctx context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// stmt returns the query's prepared statement on SQLite, preparing it on first use; nil means
// run it unprepared (PostgreSQL, a full cache, or a query that does not prepare, whose error
// the unprepared run then reports).
func (s *Statements) stmt(ctx context.Context, query string) *sql.Stmt {
	if s.pg {
		return nil
	}
	if v, ok := s.cache.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if s.closed.Load() || s.size.Load() >= maxStatements {
		return nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	return s.store(query, st)
}

// store caches st for query, unless another goroutine got there first: then theirs is kept.
func (s *Statements) store(query string, st *sql.Stmt) *sql.Stmt {
	v, loaded := s.cache.LoadOrStore(query, st)
	if loaded {
		_ = st.Close()
		return v.(*sql.Stmt)
	}
	s.size.Add(1)
	if s.closed.Load() { // raced with Close: do not leave a statement behind
		s.cache.Delete(query)
		_ = st.Close()
	}
	return st
}

// inTx returns the query's statement bound to tx, or nil to run it unprepared in tx.
//
// A statement not prepared yet is not prepared here: preparing on the pool needs a second
// connection while tx holds one, and with every connection in a transaction doing the same
// that would wait forever. It runs unprepared this once and is prepared in the background for
// the next call.
func (s *Statements) inTx(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s.pg {
		return nil
	}
	if v, ok := s.cache.Load(query); ok {
		return tx.StmtContext(ctx, v.(*sql.Stmt))
	}
	if s.closed.Load() || s.size.Load() >= maxStatements {
		return nil
	}
	if _, busy := s.pending.LoadOrStore(query, true); !busy {
		go func() {
			defer s.pending.Delete(query)
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if st, err := s.db.PrepareContext(ctx, query); err == nil {
				s.store(query, st)
			}
		}()
	}
	return nil
}

// rebind turns "?" placeholders into PostgreSQL's "$1", "$2"…, once per query.
func (s *Statements) rebind(query string) string {
	if !s.pg {
		return query
	}
	if v, ok := s.cache.Load(query); ok {
		return v.(string)
	}
	out := rebindDollar(query)
	if s.size.Load() < maxStatements {
		if _, loaded := s.cache.LoadOrStore(query, out); !loaded {
			s.size.Add(1)
		}
	}
	return out
}

// rebindDollar turns "?" placeholders into "$1", "$2"…, leaving quoted literals alone.
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	inQuote := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Tx runs statements in a transaction, through the same cache.
type Tx struct {
	s  *Statements
	tx *sql.Tx
}

// ExecContext runs a statement in the transaction.
func (t Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.s.inTx(ctx, t.tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.s.rebind(query), args...)
}

// QueryContext runs a query in the transaction.
func (t Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.s.inTx(ctx, t.tx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.s.rebind(query), args...)
}

// QueryRowContext runs a query expected to return at most one row in the transaction.
func (t Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.s.inTx(ctx, t.tx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.s.rebind(query), args...)
}

// In returns the transaction's view of the cache.
func (s *Statements) In(tx *sql.Tx) Tx { return Tx{s: s, tx: tx} }
