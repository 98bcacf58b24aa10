package auth

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/portero-dev/portero/portal/ledger"
)

// TestReplicasOpenOneNewSQLiteFileTogether: make run starts two portal processes on one SQLite
// ledger; they migrate the ledger and auth tables at the same moment and all must come up.
func TestReplicasOpenOneNewSQLiteFileTogether(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "ledger.db")
	ctx := context.Background()
	const replicas = 4
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := ledger.Open(ctx, dsn, ledger.Options{})
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			if _, err := OpenLedger(ctx, st, Options{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a replica failed to open: %v", err)
	}
}
