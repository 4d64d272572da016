package app

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/httpapi"
)

// Run serves HTTP on ln and runs the workers until ctx is cancelled or a listener fails, then shuts
// down within SHUTDOWN_TIMEOUT.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	srv := httpapi.NewHTTPServer(a.Handler, a.Config.DokuTimeout, a.Config.DBStatementTimeout)
	srv.ErrorLog = stdlogTo(a.Log)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }

	a.Prepare(ctx)
	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	var workers sync.WaitGroup
	for _, w := range []interface{ Run(context.Context) error }{a.Resumer, a.Reconciler, a.Deliverer, a.Purger} {
		workers.Add(1)
		go func() { defer workers.Done(); _ = w.Run(workersCtx) }()
	}
	// The listener serves the status streams, which live as long as the HTTP server: it stops when
	// Run returns, not with the workers.
	listenCtx, stopListening := context.WithCancel(context.WithoutCancel(ctx))
	defer stopListening()
	go a.Listen(listenCtx, nil)

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	admin := a.adminServer()
	if admin != nil {
		go func() { errc <- admin.ListenAndServe() }()
		a.Log.Info().Str("addr", a.Config.MetricsAddr).Msg("metrics on the admin address")
	}
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	// One deadline for everything: stop the workers claiming, stop accepting and let in-flight
	// requests finish, let a worker's DOKU call in progress complete and be stored — and past the
	// deadline leave what is still running: leases and claims expire by themselves, so nothing is
	// lost, and a hung database cannot keep the process alive until SIGKILL.
	a.Log.Info().Dur("deadline", a.Config.ShutdownTimeout).Msg("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	stopWorkers()
	a.EndStreams()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		a.Log.Error().Err(err).Msg("shutdown deadline passed; closing remaining connections")
		_ = srv.Close()
	}
	if admin != nil {
		_ = admin.Shutdown(shutdownCtx)
	}
	if !within(shutdownCtx, workers.Wait) {
		a.Log.Warn().Msg("workers still busy at the shutdown deadline; their claims expire by themselves")
	}
	return serveErr
}

// adminServer serves /metrics (and the profiler when PPROF is on) on METRICS_ADDR, or is nil.
func (a *App) adminServer() *http.Server {
	if a.Config.MetricsAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	if a.Config.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &http.Server{Addr: a.Config.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

// stdlogTo routes net/http's internal log lines (TLS errors, panics it recovered) into zerolog.
func stdlogTo(l zerolog.Logger) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		l.Warn().Str("source", "net/http").Msg(strings.TrimSpace(string(p)))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
