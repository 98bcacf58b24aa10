package bench

import "github.com/portero-dev/portero/portal/ledger/ledgertest"

// StartPostgres starts the throwaway PostgreSQL server the ledger's tests use (Debian's binaries),
// but durable as a deployment runs it (fsync on), so the ledger figures are honest.
func StartPostgres() (*ledgertest.Postgres, error) {
	p := &ledgertest.Postgres{Durable: true}
	if _, err := p.AdminDSN(); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}
