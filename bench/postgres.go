package bench

import (
	"bufio"
	"bytes"
	"database/sql"
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
	"time"
)

// Postgres is a throwaway PostgreSQL server from Debian's binaries (package postgresql), as
// portal/ledger/ledgertest starts for tests, but tuned like a real deployment rather than for
// speed: fsync stays on. Commits do not wait for the WAL flush (synchronous_commit=off), which
// is what SQLite's WAL mode with synchronous=NORMAL — the ledger's SQLite setting — does too:
// both can lose the last commits in an OS crash, neither can corrupt.
type Postgres struct {
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	logMu  sync.Mutex
	log    bytes.Buffer
	dsn    string
}

// StartPostgres initdb's a cluster under a new temp dir and starts it on a unix socket there.
func StartPostgres() (*Postgres, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	p := &Postgres{}
	// Unix socket paths are limited to 107 bytes, and the postgres user must reach the dir.
	if p.dir, err = os.MkdirTemp("/tmp", "portero-bench-pg-"); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(p.dir, uid, gid); err != nil {
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(p.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "portero", "-A", "trust", "-E", "UTF8", "--no-locale")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		p.Stop()
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", p.dir, "-p", "5432",
		"-c", "listen_addresses=", "-c", "synchronous_commit=off", "-c", "max_connections=100",
		"-c", "log_min_messages=warning")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		p.Stop()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		p.Stop()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	ready := make(chan struct{})
	go func() {
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
	go func() { _ = cmd.Wait(); close(p.exited) }()
	select {
	case <-ready:
	case <-p.exited:
		p.Stop()
		return nil, fmt.Errorf("postgres exited during startup:\n%s", p.serverLog())
	case <-time.After(60 * time.Second):
		p.Stop()
		return nil, fmt.Errorf("postgres not ready after 60s:\n%s", p.serverLog())
	}
	q := url.Values{"host": {p.dir}, "port": {"5432"}, "sslmode": {"disable"}}
	p.dsn = "postgres://portero@/postgres?" + q.Encode()
	return p, nil
}

// Database creates a database and returns its DSN.
func (p *Postgres) Database(name string) (string, error) {
	admin, err := sql.Open("pgx", p.dsn)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return strings.Replace(p.dsn, "/postgres?", "/"+name+"?", 1), nil
}

// Stop shuts the server down and removes its files.
func (p *Postgres) Stop() {
	if p == nil {
		return
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

func (p *Postgres) serverLog() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

func postgresBinDir() (string, error) {
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
