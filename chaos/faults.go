package chaos

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// switchable is a service on a fixed loopback port that can be taken down and brought back:
// down, the port is closed (connections are refused, as when the process is gone) and open
// connections are cut; up, the same port listens again.
type switchable struct {
	addr    string
	handler http.Handler // for HTTP services; nil with proxyTo
	proxyTo string       // for TCP services: forward each connection here

	mu    sync.Mutex
	l     net.Listener
	srv   *http.Server
	conns map[net.Conn]bool
}

// newSwitchableHTTP serves h on a free loopback port, up.
func newSwitchableHTTP(h http.Handler) (*switchable, error) {
	s := &switchable{handler: h, conns: map[net.Conn]bool{}}
	return s, s.start("127.0.0.1:0")
}

// newSwitchableProxy forwards a free loopback port to target (a TCP service such as SMTP), up.
func newSwitchableProxy(target string) (*switchable, error) {
	s := &switchable{proxyTo: target, conns: map[net.Conn]bool{}}
	return s, s.start("127.0.0.1:0")
}

// URL is the HTTP service's base URL, with a trailing slash.
func (s *switchable) URL() string { return "http://" + s.addr + "/" }

// Port is the listening port.
func (s *switchable) Port() string {
	_, p, _ := net.SplitHostPort(s.addr)
	return p
}

func (s *switchable) start(addr string) error {
	var l net.Listener
	var err error
	// The port was just freed by Down; a moment may pass before the kernel lets it go.
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.l, s.addr = l, l.Addr().String()
	if s.handler != nil {
		srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
		s.srv = srv
		go func() { _ = srv.Serve(l) }()
		return nil
	}
	go s.accept(l)
	return nil
}

func (s *switchable) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go s.forward(c)
	}
}

func (s *switchable) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", s.proxyTo, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	if s.l == nil { // went down meanwhile
		s.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	s.conns[c], s.conns[up] = true, true
	s.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	s.mu.Lock()
	delete(s.conns, c)
	delete(s.conns, up)
	s.mu.Unlock()
}

// Down closes the port and cuts every open connection.
func (s *switchable) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l == nil {
		return
	}
	s.l.Close()
	s.l = nil
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
	for c := range s.conns {
		c.Close()
	}
}

// Up listens on the same port again.
func (s *switchable) Up() error {
	s.mu.Lock()
	up := s.l != nil
	s.mu.Unlock()
	if up {
		return nil
	}
	return s.start(s.addr)
}

// Close takes the service down for good.
func (s *switchable) Close() { s.Down() }
