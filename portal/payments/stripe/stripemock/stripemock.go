// Package stripemock runs stripe-mock (bin/k8s/stripe-mock, built by hack/build-tools.sh from
// the Go module proxy) for tests: Stripe's API stub, driven by Stripe's OpenAPI spec. It
// checks requests against the spec and answers with the spec's fixtures; it keeps no state.
package stripemock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running stripe-mock, listening on loopback only.
type Server struct {
	// URL is its HTTP base URL, e.g. http://127.0.0.1:41234 (use it as api_base).
	URL string

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer // the first lines of its output, for failure messages
}

// Start starts stripe-mock and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartProcess()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop stripe-mock: %v", err)
		}
	})
	return s
}

// Binary is the stripe-mock executable: $KUBEBUILDER_ASSETS/stripe-mock, else the
// repository's bin/k8s/stripe-mock.
func Binary() string {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "bin", "k8s")
	}
	return filepath.Join(dir, "stripe-mock")
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// StartProcess starts stripe-mock on free loopback ports (the system picks them: HTTP for the
// tests, HTTPS bound too because stripe-mock starts it unless told a port) and waits until it
// answers. The caller must Stop it.
func StartProcess() (*Server, error) {
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("stripe-mock not found at %s: run `make envtest-assets` first", bin)
	}
	s := &Server{done: make(chan struct{})}
	s.cmd = exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = &lockedWriter{s: s}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	addr := make(chan string, 1)
	go func() {
		// stripe-mock prints a line per request: keep reading to the end so it never blocks.
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := sc.Text()
			s.note(line)
			if m := listening.FindStringSubmatch(line); m != nil && !found {
				found = true
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	// Loading the spec takes a few seconds on a busy machine.
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.done:
		return nil, fmt.Errorf("stripe-mock exited before listening: %s", s.output())
	case <-time.After(2 * time.Minute):
		_ = s.Stop()
		return nil, fmt.Errorf("stripe-mock did not listen within 2 minutes: %s", s.output())
	}
	if err := s.waitReady(time.Minute); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/balance", nil)
		req.Header.Set("Authorization", "Bearer sk_test_readiness")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v1/balance: %s", resp.Status)
		}
		last = err
		select {
		case <-s.done:
			return fmt.Errorf("stripe-mock exited: %s", s.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("stripe-mock not ready after %s: %v", timeout, last)
}

func (s *Server) note(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out.Len() < 4096 {
		s.out.WriteString(line)
		s.out.WriteByte('\n')
	}
}

func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(s.out.String())
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.note(string(p))
	return len(p), nil
}

// Stop terminates stripe-mock (SIGTERM, then SIGKILL after 10s) and waits for it. Stopping twice
// is harmless.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal stripe-mock: %w", err)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("stripe-mock ignored SIGTERM for 10s and was killed")
	}
}
