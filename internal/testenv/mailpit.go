package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Mailpit is a running Mailpit (the real SMTP server tests deliver to), listening on loopback only.
type Mailpit struct {
	// SMTPHost and SMTPPort are where it accepts mail (plain SMTP, any or no credentials).
	SMTPHost string
	SMTPPort int
	// APIURL is the base URL of its HTTP API, e.g. http://127.0.0.1:41234.
	APIURL string

	cmd    *exec.Cmd
	done   chan struct{}
	output bytes.Buffer
}

// MailpitOptions choose Mailpit's ports; zero picks a free one.
type MailpitOptions struct {
	SMTPPort int
	HTTPPort int
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartMailpit starts bin/k8s/mailpit (or $KUBEBUILDER_ASSETS/mailpit) with a throw-away database and
// waits until its API answers. It stops when the test ends.
func StartMailpit(t testing.TB, opts MailpitOptions) *Mailpit {
	t.Helper()
	m, err := startMailpit(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mailpit: %v", err)
		}
	})
	return m
}

// StartMailpitIn is StartMailpit for a caller that is not a test (the fault suite's command):
// the database goes in dir, and the caller stops it.
func StartMailpitIn(dir string, opts MailpitOptions) (*Mailpit, error) {
	return startMailpit(dir, opts)
}

func startMailpit(dir string, opts MailpitOptions) (*Mailpit, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin", "k8s")
	}
	bin := filepath.Join(assets, "mailpit")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("mailpit not found in %s: run `make envtest-assets` first", assets)
	}
	var err error
	if opts.SMTPPort == 0 {
		if opts.SMTPPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if opts.HTTPPort == 0 {
		if opts.HTTPPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	m := &Mailpit{
		SMTPHost: "127.0.0.1",
		SMTPPort: opts.SMTPPort,
		APIURL:   "http://127.0.0.1:" + strconv.Itoa(opts.HTTPPort),
		done:     make(chan struct{}),
	}
	m.cmd = exec.Command(bin,
		"--smtp", net.JoinHostPort(m.SMTPHost, strconv.Itoa(opts.SMTPPort)),
		"--listen", "127.0.0.1:"+strconv.Itoa(opts.HTTPPort),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--quiet",
		"--disable-version-check",
		"--smtp-disable-rdns",
		"--smtp-auth-accept-any",
		"--smtp-auth-allow-insecure",
	)
	m.cmd.Stdout = &m.output
	m.cmd.Stderr = &m.output
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mailpit: %w", err)
	}
	go func() {
		_ = m.cmd.Wait()
		close(m.done)
	}()
	if err := m.waitReady(30 * time.Second); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return m, nil
}

// waitReady polls the API and the SMTP port until both answer.
func (m *Mailpit) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	smtpAddr := net.JoinHostPort(m.SMTPHost, strconv.Itoa(m.SMTPPort))
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			return fmt.Errorf("mailpit exited before it was ready: %s", strings.TrimSpace(m.output.String()))
		default:
		}
		resp, err := client.Get(m.APIURL + "/api/v1/info")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				conn, err := net.DialTimeout("tcp", smtpAddr, time.Second)
				if err == nil {
					conn.Close()
					return nil
				}
				lastErr = err
			} else {
				lastErr = fmt.Errorf("GET /api/v1/info: %s", resp.Status)
			}
		} else {
			lastErr = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("mailpit not ready after %s: %v", timeout, lastErr)
}

// Stop terminates Mailpit (SIGTERM, then SIGKILL after 10s) and waits for it to exit. Stopping
// twice is harmless.
func (m *Mailpit) Stop() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal mailpit: %w", err)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("mailpit ignored SIGTERM for 10s and was killed")
	}
}

// MailpitAddress is a sender or recipient as Mailpit reports it.
type MailpitAddress struct {
	Name    string
	Address string
}

// MailpitSummary is one message in a Mailpit listing.
type MailpitSummary struct {
	ID      string
	From    MailpitAddress
	To      []MailpitAddress
	Subject string
}

// MailpitMessage is one message with its bodies.
type MailpitMessage struct {
	ID      string
	From    MailpitAddress
	To      []MailpitAddress
	Subject string
	Text    string
	HTML    string
}

// Messages returns the messages addressed to exactly to (Mailpit's search matches substrings, so
// the result is filtered to the exact address).
func (m *Mailpit) Messages(to string) ([]MailpitSummary, error) {
	var out struct {
		Messages []MailpitSummary `json:"messages"`
	}
	q := url.Values{"query": {"to:" + to}}
	if err := m.getJSON(context.Background(), "/api/v1/search?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	var exact []MailpitSummary
	for _, msg := range out.Messages {
		for _, a := range msg.To {
			if strings.EqualFold(a.Address, to) {
				exact = append(exact, msg)
				break
			}
		}
	}
	return exact, nil
}

// Message returns one message by its Mailpit ID.
func (m *Mailpit) Message(id string) (*MailpitMessage, error) {
	var out MailpitMessage
	if err := m.getJSON(context.Background(), "/api/v1/message/"+url.PathEscape(id), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (m *Mailpit) getJSON(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("mailpit GET %s: decode: %w", path, err)
	}
	return nil
}
