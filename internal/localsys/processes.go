package localsys

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// spawn starts a child that dies with localrun (Pdeathsig), logs to <local>/<name>.log, and is
// stopped by Stop.
func (s *System) spawn(ctx context.Context, name string, env []string, bin string, args ...string) (*exec.Cmd, error) {
	cmd, err := s.spawnDetached(ctx, name, env, bin, args...)
	if err != nil {
		return nil, err
	}
	s.children = append(s.children, cmd)
	return cmd, nil
}

// spawnDetached is spawn for a child whose caller stops it (the local portal runner).
func (s *System) spawnDetached(ctx context.Context, name string, env []string, bin string, args ...string) (*exec.Cmd, error) {
	local := s.opts.State
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run `make build envtest-assets`", bin)
	}
	// The first start of a run begins its log afresh; a restart (the runner restarting a portal
	// that exited) appends, so the lines that say why it stopped are still there.
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	s.mu.Lock()
	if !s.logged[name] {
		flags |= os.O_TRUNC
		if s.logged == nil {
			s.logged = map[string]bool{}
		}
		s.logged[name] = true
	}
	s.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(local, name+".log"), flags, 0o644)
	if err != nil {
		return nil, err
	}
	// The child has its own descriptor of the log; ours would stay open for every restart.
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

// startMailpit runs Mailpit with its mailbox under bin/local, so mail survives a restart.
func (s *System) startMailpit(ctx context.Context) (smtpPort string, err error) {
	local := s.opts.State
	smtpPort, httpPort := freePort(), freePort()
	_, err = s.spawn(ctx, "mailpit", nil, filepath.Join(s.opts.Assets, "mailpit"),
		"--smtp", "127.0.0.1:"+smtpPort,
		"--listen", "127.0.0.1:"+httpPort,
		"--database", filepath.Join(local, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns",
		"--smtp-auth-accept-any", "--smtp-auth-allow-insecure")
	if err != nil {
		return "", err
	}
	s.MailpitURL = "http://127.0.0.1:" + httpPort + "/"
	if err := WaitHTTP(ctx, s.MailpitURL+"api/v1/info", 30*time.Second); err != nil {
		return "", fmt.Errorf("mailpit: %w", err)
	}
	return smtpPort, nil
}

// WaitHTTP polls url until it answers 200, the deadline passes or ctx ends.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}
