package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTimeoutsCutSlowClients: each of the server's timeouts ends a connection that holds it —
// headers or a body dribbled in (slowloris), an answer not read, an idle keep-alive — with the
// timeouts made short; TestDefaultTimeouts checks the values the portal runs with. The fault
// suite (chaos/, scenario 9) sees the read and idle timeouts on the real portal process.
func TestTimeoutsCutSlowClients(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	big := strings.Repeat("x", 64<<20) // far more than the sockets buffer
	writeCut := make(chan time.Duration, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		start := time.Now()
		if _, err := io.WriteString(w, big); err != nil {
			writeCut <- time.Since(start)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	tm := Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: 500 * time.Millisecond, Idle: 400 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, l, mux, tm) }()
	t.Cleanup(func() { cancel(); <-done })

	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin dribbles one byte of more every 50 ms until the server closes the
	// connection, and fails unless it does within limit.
	closedWithin := func(t *testing.T, c net.Conn, limit time.Duration, more string) time.Duration {
		t.Helper()
		start := time.Now()
		gone := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, c); close(gone) }()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-gone:
				return time.Since(start)
			case <-tick.C:
			}
			if time.Since(start) > limit {
				t.Fatalf("connection still open after %s", limit)
			}
			if more != "" {
				_, _ = c.Write([]byte(more))
			}
		}
	}

	t.Run("headers dribbled in", func(t *testing.T) {
		c := dial(t)
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		if d := closedWithin(t, c, 5*tm.ReadHeader, "X: 1\r\n"); d < tm.ReadHeader/2 {
			t.Errorf("closed after %s, before the read-header timeout", d)
		}
	})
	t.Run("body dribbled in", func(t *testing.T) {
		c := dial(t)
		_, _ = c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"))
		closedWithin(t, c, 5*tm.Read, "a")
	})
	t.Run("answer not read", func(t *testing.T) {
		c := dial(t)
		_, _ = c.Write([]byte("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"))
		// The client reads nothing: the handler's write must fail once the timeout is up.
		select {
		case d := <-writeCut:
			if d > 5*tm.Write {
				t.Fatalf("the write gave up after %s", d)
			}
		case <-time.After(10 * tm.Write):
			t.Fatalf("the write still blocks after %s", 10*tm.Write)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection stayed open past the write timeout (%d bytes read)", n)
		}
		if n >= int64(len(big)) {
			t.Fatalf("the whole %d-byte answer arrived: the write timeout did not cut it", n)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t)
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		closedWithin(t, c, 5*tm.Idle, "")
	})
}

func TestDefaultTimeouts(t *testing.T) {
	d := DefaultTimeouts
	if d.ReadHeader <= 0 || d.ReadHeader > d.Read || d.Read > d.Write || d.Idle <= 0 {
		t.Fatalf("DefaultTimeouts = %+v: every one set, headers ≤ request ≤ answer", d)
	}
}
