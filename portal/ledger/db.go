package ledger

import "database/sql"

// DB returns the store's connection pool, for packages that keep their own tables in the same
// database (portal/auth) with their own migrations.
func (s *Store) DB() *sql.DB { return s.db }
