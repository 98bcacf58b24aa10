package chaos

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/portero-dev/portero/portal/billing"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments/sandbox"
)

// recoverAsBillingLoop runs, once, the recovery a portal's billing loop runs every minute —
// re-drive charges left processing, settle incomplete payments stranded beside a usable method —
// on the ledger at dsn, with its clock past the loop's stale threshold, so charges a killed
// process left behind count as abandoned now rather than five minutes from now. It is the
// ledger's and the charging driver's own public API; only the clock is moved.
func recoverAsBillingLoop(ctx context.Context, dsn string, secret []byte) error {
	ahead := func() time.Time { return time.Now().Add(billing.DefaultStaleAfter + time.Minute) }
	proc, err := sandbox.New(secret, ahead)
	if err != nil {
		return err
	}
	st, err := ledger.Open(ctx, dsn, ledger.Options{Now: ahead})
	if err != nil {
		return err
	}
	defer st.Close()
	drv, err := charging.New(charging.Options{Adapter: proc, Recorder: st})
	if err != nil {
		return err
	}
	for {
		n, err := drv.Redrive(ctx, billing.DefaultStaleAfter)
		if err != nil {
			return err
		}
		if n < 100 {
			break
		}
	}
	customers, err := st.StrandedCustomers(ctx)
	if err != nil {
		return err
	}
	for _, c := range customers {
		if _, err := drv.SettleIncomplete(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// processorSecret is the sandbox secret a portal on st charges with.
func processorSecret(st portalStorage) []byte {
	if st.postgresDSN != "" {
		return []byte(sharedProcessorSecret)
	}
	b, _ := os.ReadFile(filepath.Join(st.dataDir, "processor.key"))
	return b
}
