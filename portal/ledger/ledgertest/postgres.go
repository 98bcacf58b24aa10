// Package ledgertest provides real databases for tests of the ledger and of anything built on
// it (the merchant API, the portal UI): a fresh SQLite file or a fresh PostgreSQL schema per
// test.
//
// PostgreSQL comes from PORTERO_TEST_POSTGRES_DSN when set; each test then gets its own schema
// in that database (the role needs CREATE on it). Otherwise a throwaway server is started from
// Debian's binaries (/usr/lib/postgresql/<version>/bin, package "postgresql"): initdb into a
// temp dir, then postgres listening only on a unix socket in that dir, so no TCP port can clash.
// When the tests run as root the server runs as the "postgres" user, which owns the dir. The
// server gets a parent-death signal, so it cannot outlive the test binary even if TestMain's
// Stop never runs.
//
// When PostgreSQL cannot be had, tests FAIL if CI=true and are skipped, loudly, otherwise.
//
// Typical use:
//
//	var pg ledgertest.Postgres
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		dsn := pg.DSN(t) // or ledgertest.SQLiteDSN(t)
//		…
//	}
package ledgertest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for the admin connection
)

// EnvDSN names the variable that points the tests at an existing PostgreSQL database.
const EnvDSN = "PORTERO_TEST_POSTGRES_DSN"

// Postgres is a PostgreSQL server shared by a test binary, started on first use. The zero
// value is ready; call Stop from TestMain after m.Run.
type Postgres struct {
	// Durable keeps fsync and full-page writes on, as a deployment runs PostgreSQL; benchmarks
	// want that, tests do not (it costs most of their time). Commits still do not wait for the
	// WAL flush, like the ledger's SQLite setting (WAL with synchronous=NORMAL).
	Durable bool

	once     sync.Once
	adminDSN string
	admin    *sql.DB
	err      error

	cmd    *exec.Cmd
	exited chan struct{}
	dir    string
	// What launch needs to start the server again on the same data (Restart).
	binDir string
	args   []string
	cred   *syscall.Credential
	logMu  sync.Mutex
	log    bytes.Buffer
}

// SQLiteDSN returns a ledger DSN for a new SQLite file in the test's temp dir.
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "ledger.db")
}

// DSN returns a ledger DSN for a new, empty schema, dropped when the test ends. Without a
// server it fails the test when CI=true and skips it otherwise.
func (p *Postgres) DSN(t testing.TB) string {
	t.Helper()
	admin, adminDSN, err := p.get()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI but unavailable: %v", err)
		}
		t.Skipf("\n*** PostgreSQL NOT TESTED: %v\n*** Install Debian's postgresql package or set %s.", err, EnvDSN)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatalf("parse PostgreSQL DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// AdminDSN starts the server on first use (or takes PORTERO_TEST_POSTGRES_DSN) and returns the DSN
// of its administrative database.
func (p *Postgres) AdminDSN() (string, error) {
	_, dsn, err := p.get()
	return dsn, err
}

// Database creates a database on the server and returns its DSN.
func (p *Postgres) Database(name string) (string, error) {
	admin, adminDSN, err := p.get()
	if err != nil {
		return "", err
	}
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (p *Postgres) get() (*sql.DB, string, error) {
	p.once.Do(func() {
		p.adminDSN = os.Getenv(EnvDSN)
		if p.adminDSN == "" {
			if p.adminDSN, p.err = p.start(); p.err != nil {
				return
			}
		}
		if p.admin, p.err = sql.Open("pgx", p.adminDSN); p.err == nil {
			p.err = p.admin.Ping()
		}
	})
	return p.admin, p.adminDSN, p.err
}

// Stop shuts down a server this package started and removes its files. Safe to call when
// nothing was started, or on a nil *Postgres.
func (p *Postgres) Stop() {
	if p == nil {
		return
	}
	if p.admin != nil {
		p.admin.Close()
	}
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

func findBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	major := func(path string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return major(matches[i]) > major(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", fmt.Errorf("no initdb in /usr/lib/postgresql/*/bin or PATH (apt-get install postgresql)")
}

// baseDir picks where the server's directory goes: the usual temp dir, unless the postgres
// user could not reach it (a TMPDIR under /root) or the socket path would exceed the 107-byte
// limit of unix socket names; then /tmp.
func baseDir() string {
	base := os.TempDir()
	if len(base) > 60 {
		return "/tmp"
	}
	if os.Geteuid() == 0 {
		for d := base; ; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
				return "/tmp"
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return base
}

func (p *Postgres) start() (string, error) {
	bin, err := findBinDir()
	if err != nil {
		return "", err
	}
	if p.dir, err = os.MkdirTemp(baseDir(), "portero-pg-"); err != nil {
		return "", err
	}
	// PostgreSQL refuses to run as root: run it as the postgres user, which then owns the dir.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(p.dir, uid, gid); err != nil {
			return "", err
		}
		if err := os.Chmod(p.dir, 0o755); err != nil {
			return "", err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(p.dir, "data")
	initArgs := []string{"-D", data, "-U", "portero", "-A", "trust", "-E", "UTF8", "--no-locale"}
	settings := []string{"-c", "synchronous_commit=off", "-c", "max_connections=300"}
	if !p.Durable {
		// Durability is pointless for a throwaway test server and costs most of the test time.
		initArgs = append(initArgs, "--no-sync")
		settings = append(settings, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), initArgs...)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	p.binDir, p.cred = bin, cred
	p.args = append([]string{"-D", data, "-k", p.dir, "-p", "5432",
		"-c", "listen_addresses=", // unix socket only
		"-c", "log_min_messages=warning"}, settings...)
	if err := p.launch(); err != nil {
		return "", err
	}
	q := url.Values{"host": {p.dir}, "port": {"5432"}, "sslmode": {"disable"}}
	return "postgres://portero@/postgres?" + q.Encode(), nil
}

// launch starts postgres on the initialised data directory and waits until it is ready.
func (p *Postgres) launch() error {
	cmd := exec.Command(filepath.Join(p.binDir, "postgres"), p.args...)
	// SIGQUIT (immediate shutdown) if the test binary dies without calling Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	ready := make(chan struct{})
	go func() {
		// Readiness is the server saying so in its log, not a polling loop.
		sc := bufio.NewScanner(stderr)
		signaled := false
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			if p.log.Len() < 1<<20 {
				p.log.WriteString(line + "\n")
			}
			p.logMu.Unlock()
			if !signaled && strings.Contains(line, "database system is ready to accept connections") {
				signaled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("postgres exited during startup:\n%s", p.serverLog())
	case <-time.After(60 * time.Second):
		return fmt.Errorf("postgres not ready after 60s:\n%s", p.serverLog())
	}
}

// Restart stops the server this package started with a fast shutdown (every session is cut,
// open transactions roll back, as in a restart of a deployed server) and starts it again on the
// same data, for tests of what survives a database restart. Connections pooled before it fail
// once and are replaced. A server given by PORTERO_TEST_POSTGRES_DSN cannot be restarted.
func (p *Postgres) Restart() error {
	if _, _, err := p.get(); err != nil {
		return err
	}
	if p.cmd == nil {
		return fmt.Errorf("restart PostgreSQL: the server at %s was not started by the tests", EnvDSN)
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return p.launch()
}

func (p *Postgres) serverLog() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}
