// Package server assembles the portal's HTTP server: health and readiness probes, Prometheus
// metrics, and the handlers the web UI and the merchant API mount.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checker reports whether a dependency is usable (the database, the rules informers).
type Checker func(ctx context.Context) error

// Server is the portal's HTTP server. Metrics are not on the public mux: the Service and
// Ingress route every path of that one to customers, and login, payment and API counters are
// nobody else's business. They are served on their own address (ServeMetrics).
type Server struct {
	mux      *http.ServeMux
	metrics  http.Handler
	registry *prometheus.Registry
	ready    []Checker
	log      *slog.Logger
}

// New returns a server with /healthz and /readyz mounted; /metrics is on MetricsHandler.
func New(log *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{mux: http.NewServeMux(), registry: reg, log: log}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	m := http.NewServeMux()
	m.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.metrics = m
	return s
}

// MetricsHandler serves GET /metrics, for a listener of its own.
func (s *Server) MetricsHandler() http.Handler { return s.metrics }

// Registry is where the portal's packages register their metrics.
func (s *Server) Registry() prometheus.Registerer { return s.registry }

// Mux is where the web UI and the merchant API mount their routes.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// AddReadiness adds a check /readyz runs.
func (s *Server) AddReadiness(c Checker) { s.ready = append(s.ready, c) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for _, c := range s.ready {
		if err := c(ctx); err != nil {
			s.log.Warn("not ready", "err", err)
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok"))
}

// Timeouts bound what one client can hold of the server: a client that sends its headers (or
// its body) a byte at a time, reads its answer a byte at a time, or keeps a connection idle.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are generous for a person on a slow phone and short for a slowloris: headers
// in 5 s, a request in 15 s, an answer written in 30 s, an idle connection kept 2 minutes.
var DefaultTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 15 * time.Second, Write: 30 * time.Second, Idle: 2 * time.Minute}

// Serve listens on addr until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return serve(ctx, l, h, DefaultTimeouts)
}

func serve(ctx context.Context, l net.Listener, h http.Handler, t Timeouts) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    32 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
