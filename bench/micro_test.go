package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/charging"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/mail"
	"github.com/portero-dev/portero/portal/payments"
	"github.com/portero-dev/portero/portal/payments/sandbox"
	"github.com/portero-dev/portero/portal/web"
)

// Micro-benchmarks of the hot paths the system benchmarks exercise: the token check the portal
// makes on every link exchange, and the ledger queries behind the overview page. Run with
//
//	go test ./bench -run '^$' -bench . -benchmem
//
// The PostgreSQL variants start a throwaway server from Debian's binaries and are skipped when
// there is none.

func BenchmarkMintToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := controllers.MintToken(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashToken(b *testing.B) {
	tok, _ := controllers.MintToken()
	b.ReportAllocs()
	for b.Loop() {
		_ = controllers.HashToken(tok)
	}
}

func BenchmarkTokenMatches(b *testing.B) {
	tok, _ := controllers.MintToken()
	hash := controllers.HashToken(tok)
	other, _ := controllers.MintToken()
	b.Run("match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !controllers.TokenMatches(tok, hash) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("mismatch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if controllers.TokenMatches(other, hash) {
				b.Fatal("match")
			}
		}
	})
}

// The overview customer's ledger (5 methods, 3 subscriptions, 50 payments), one per engine.
var (
	pgOnce   sync.Once
	pgServer *ledgertest.Postgres
	pgErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgServer.Stop()
	os.Exit(code)
}

func overviewStore(b *testing.B, engine ledger.Engine) (*ledger.Store, string) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "ledger.db")
	if engine == ledger.Postgres {
		pgOnce.Do(func() { pgServer, pgErr = StartPostgres() })
		if pgErr != nil {
			b.Skipf("no PostgreSQL: %v", pgErr)
		}
		var err error
		if dsn, err = pgServer.Database(fmt.Sprintf("micro_%d", time.Now().UnixNano())); err != nil {
			b.Fatal(err)
		}
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	id, err := seedOverview(ctx, dsn, secret)
	if err != nil {
		b.Fatal(err)
	}
	st, err := ledger.Open(ctx, dsn, ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, id
}

// BenchmarkOverviewQueries runs the ledger reads the overview page makes for one request.
func BenchmarkOverviewQueries(b *testing.B) {
	for _, engine := range []ledger.Engine{ledger.SQLite, ledger.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			st, id := overviewStore(b, engine)
			ctx := context.Background()
			queries := []struct {
				name string
				fn   func() error
			}{
				{"GetCustomer", func() error { _, err := st.GetCustomer(ctx, id); return err }},
				{"ListPaymentMethods", func() error { _, err := st.ListPaymentMethods(ctx, id); return err }},
				{"ListSubscriptions", func() error { _, err := st.ListSubscriptions(ctx, id); return err }},
				{"ListPayments5", func() error {
					_, err := st.ListPayments(ctx, ledger.ListPaymentsParams{CustomerID: id, Limit: 5})
					return err
				}},
				{"ListPaymentsDue", func() error {
					_, err := st.ListPayments(ctx, ledger.ListPaymentsParams{CustomerID: id, Limit: 20,
						Statuses: []ledger.PaymentStatus{ledger.PaymentIncomplete, ledger.PaymentRequiresAction, ledger.PaymentFailed, ledger.PaymentPending}})
					return err
				}},
				{"ListPaymentsIncomplete", func() error {
					_, err := st.ListPayments(ctx, ledger.ListPaymentsParams{CustomerID: id, Status: ledger.PaymentIncomplete, Limit: 10})
					return err
				}},
				{"ListPayments50", func() error {
					_, err := st.ListPayments(ctx, ledger.ListPaymentsParams{CustomerID: id, Limit: 50})
					return err
				}},
				{"ListPaymentMethodSummaries", func() error { _, err := st.ListPaymentMethodSummaries(ctx, id); return err }},
				{"ListSubscriptionSummaries", func() error { _, err := st.ListSubscriptionSummaries(ctx, id); return err }},
				{"ListPaymentSummaries5", func() error {
					_, err := st.ListPaymentSummaries(ctx, ledger.ListPaymentsParams{CustomerID: id, Limit: 5})
					return err
				}},
				{"ListPaymentSummariesDue", func() error {
					_, err := st.ListPaymentSummaries(ctx, ledger.ListPaymentsParams{CustomerID: id, Limit: 20,
						Statuses: []ledger.PaymentStatus{ledger.PaymentIncomplete, ledger.PaymentRequiresAction, ledger.PaymentFailed, ledger.PaymentPending}})
					return err
				}},
			}
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := q.fn(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("all", func(b *testing.B) {
				// What the overview reads from the ledger: the customer, then summaries of its
				// methods, subscriptions, 5 latest payments and payments due.
				b.ReportAllocs()
				all := append(queries[:1:1], queries[len(queries)-4:]...)
				for b.Loop() {
					for _, q := range all {
						if err := q.fn(); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		})
	}
}

// BenchmarkSettleOne is one card added that settles one incomplete payment (tokenized, recorded,
// the payment claimed, charged and recorded, through the charging driver): the unit of the
// ledger system benchmark, without concurrency.
func BenchmarkSettleOne(b *testing.B) {
	for _, engine := range []ledger.Engine{ledger.SQLite, ledger.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			st, _ := overviewStore(b, engine)
			ctx := context.Background()
			secret := make([]byte, 32)
			_, _ = rand.Read(secret)
			sb, err := sandbox.New(secret, nil)
			if err != nil {
				b.Fatal(err)
			}
			drv, err := charging.New(charging.Options{Adapter: sb, Recorder: st})
			if err != nil {
				b.Fatal(err)
			}
			card := payments.CardDetails{Number: "4242424242424242", ExpMonth: 12, ExpYear: time.Now().Year() + 3, CVC: "123"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c, err := st.CreateCustomer(ctx, ledger.NewCustomer{Email: fmt.Sprintf("settle%d@bench.example", i)})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := st.CreatePayment(ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 1000, Currency: ledger.ARS, Processor: sb.Type()}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := drv.AddCard(ctx, c.ID, card); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// staticRules is a portal's live view that never changes: the overview benchmark measures the
// page, not the informer. Like portal/rules, it hands out shallow copies (the informer's cache
// reads do not deep-copy).
type staticRules struct {
	portal  *billingv1alpha1.CustomerPortal
	session *billingv1alpha1.PortalSession
}

func (r staticRules) Portal(context.Context) *billingv1alpha1.CustomerPortal {
	p := *r.portal
	return &p
}

func (r staticRules) Session(_ context.Context, name string) *billingv1alpha1.PortalSession {
	if name != r.session.Name {
		return nil
	}
	s := *r.session
	return &s
}

func (r staticRules) AwaitSessionByTokenHash(_ context.Context, hash string, _ time.Duration) *billingv1alpha1.PortalSession {
	if hash != r.session.Status.TokenHash {
		return nil
	}
	s := *r.session
	return &s
}

// BenchmarkOverviewPage serves a signed-in customer's overview (5 methods, 3 subscriptions, 50
// payments) through the portal's web handler in-process, on SQLite: the work behind the portal
// throughput figure without the network. Profile it with -cpuprofile.
func BenchmarkOverviewPage(b *testing.B) {
	ctx := context.Background()
	st, id := overviewStore(b, ledger.SQLite)
	as, err := auth.OpenLedger(ctx, st, auth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := controllers.MintToken()
	exp := metav1.NewTime(time.Now().Add(time.Hour))
	rl := staticRules{
		portal: &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "shop"},
			Spec: PortalSpec("http://127.0.0.1/")},
		session: &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "overview"},
			Spec:   billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "shop"}, Customer: billingv1alpha1.CustomerReference{ID: id}},
			Status: billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, ExpiresAt: &exp, TokenHash: controllers.HashToken(tok)}},
	}
	h, err := web.New(web.Options{Ledger: st, Auth: as, Rules: rl,
		Mailer: web.MailerFunc(func(context.Context, *billingv1alpha1.CustomerPortal) (mail.Sender, error) {
			return nil, errors.New("no mail in benchmarks")
		})})
	if err != nil {
		b.Fatal(err)
	}
	cookie, _, err := as.CreateSession(ctx, auth.NewSession{Portal: "bench/shop", CustomerID: id, PortalSession: "overview",
		Method: auth.MethodLink, NotAfter: exp.Time})
	if err != nil {
		b.Fatal(err)
	}
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		req.AddCookie(&http.Cookie{Name: "portero", Value: cookie})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := get(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "4242") {
		b.Fatalf("GET / = %d, want the overview (with the card ending 4242):\n%.500s", rec.Code, rec.Body.String())
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if rec := get(); rec.Code != http.StatusOK {
			b.Fatalf("GET / = %d", rec.Code)
		}
	}
	reportCPU(b, cpu0)
}

// processCPU is the CPU time the process has used so far (user and system, every thread, the
// garbage collector's included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the process CPU time per operation since cpu0 as "cpu-ns/op": it counts the
// work done, not the time spent waiting for a core, so on a shared machine it is steadier than
// ns/op.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu0 == 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDueQueryPrepared shows what the ledger's reads paid for being prepared on every call:
// the query the portal ran three times per page for payments due (per status), ad hoc as the
// ledger ran it, and as one *sql.Stmt prepared once; and the three statuses in one query, as
// the portal now reads them (ledger.Statements prepares every query once).
func BenchmarkDueQueryPrepared(b *testing.B) {
	for _, engine := range []ledger.Engine{ledger.SQLite, ledger.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			st, id := overviewStore(b, engine)
			ctx := context.Background()
			db := st.DB()
			const cols = `id, customer_id, amount, currency, description, subscription_id, period_start, period_end,
	payment_method_id, method_type, method_summary, status, idempotency_key, attempt_count, processor,
	processor_reference, instructions, failure_code, failure_message, created_at, updated_at`
			one := "SELECT " + cols + " FROM payments WHERE 1 = 1 AND customer_id = ? AND status = ? ORDER BY created_at DESC, id DESC LIMIT ?"
			all := "SELECT " + cols + " FROM payments WHERE customer_id = ? AND status IN ('incomplete', 'failed', 'pending') ORDER BY created_at DESC, id DESC LIMIT ?"
			if engine == ledger.Postgres {
				one = strings.NewReplacer("customer_id = ?", "customer_id = $1", "status = ?", "status = $2", "LIMIT ?", "LIMIT $3").Replace(one)
				all = strings.NewReplacer("customer_id = ?", "customer_id = $1", "LIMIT ?", "LIMIT $2").Replace(all)
			}
			drain := func(rows interface {
				Next() bool
				Close() error
			}, err error) {
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
			statuses := []string{"incomplete", "failed", "pending"}
			b.Run("adhoc-x3", func(b *testing.B) {
				for b.Loop() {
					for _, s := range statuses {
						drain(db.QueryContext(ctx, one, id, s, 11))
					}
				}
			})
			stmt, err := db.PrepareContext(ctx, one)
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			b.Run("prepared-x3", func(b *testing.B) {
				for b.Loop() {
					for _, s := range statuses {
						drain(stmt.QueryContext(ctx, id, s, 11))
					}
				}
			})
			stmtAll, err := db.PrepareContext(ctx, all)
			if err != nil {
				b.Fatal(err)
			}
			defer stmtAll.Close()
			b.Run("prepared-in-x1", func(b *testing.B) {
				for b.Loop() {
					drain(stmtAll.QueryContext(ctx, id, 11))
				}
			})
		})
	}
}

// BenchmarkSessionLookup is the browser-session check every signed-in page makes (cookie → live
// session, a prepared primary-key read), on SQLite.
func BenchmarkSessionLookup(b *testing.B) {
	ctx := context.Background()
	st, id := overviewStore(b, ledger.SQLite)
	as, err := auth.OpenLedger(ctx, st, auth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cookie, _, err := as.CreateSession(ctx, auth.NewSession{Portal: "bench/shop", CustomerID: id, PortalSession: "overview",
		Method: auth.MethodLink, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if _, err := as.Session(ctx, "bench/shop", cookie); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}
