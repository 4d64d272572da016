// Command o2o is the DOKU O2O payment-code service.
//
//	o2o [serve]                 run the HTTP service (migrates the database first)
//	o2o migrate up|down|status  manage the schema
//	o2o healthcheck [URL]       exit 0 when the service (or URL) answers 200: for container healthchecks
//	o2o help                    commands and settings
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/httpapi"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/postgres"
	"github.com/merchant/o2o/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "o2o:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only supplies the process's context, arguments and output. (Settings
// come from the environment through envconfig, which reads it directly; tests set it with t.Setenv.)
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			return fmt.Errorf("serve takes no arguments")
		}
		return serve(ctx, stdout, nil)
	case "migrate":
		if len(args) != 1 {
			return errors.New("usage: o2o migrate up|down|status")
		}
		return migrate(ctx, args[0], stdout)
	case "healthcheck":
		if len(args) > 1 {
			return errors.New("usage: o2o healthcheck [URL]")
		}
		return healthcheck(ctx, args)
	case "help", "-h", "-help", "--help":
		return help(stdout)
	default:
		return fmt.Errorf("unknown command %q (o2o help lists the commands)", cmd)
	}
}

const usage = `o2o — DOKU convenience-store payment codes (Alfa Group, Indomaret).

Commands:
  o2o [serve]                 run the service: migrate the database, then serve HTTP and run the
                              resumer and the reconciler until SIGTERM
  o2o migrate up|down|status  apply every pending migration, roll back the last one, or list them
                              (needs only DATABASE_URL)
  o2o healthcheck [URL]       exit 0 when GET URL answers 200; URL defaults to /readyz on HTTP_ADDR
                              (for container healthchecks: the image has no shell)
  o2o help                    this text

Settings (environment variables; a secret NAME may also be given as a file, NAME_FILE):
`

func help(stdout io.Writer) error {
	fmt.Fprint(stdout, usage)
	return config.Usage(stdout)
}

// healthcheck asks the service's readiness endpoint (or url) and fails unless it answers 200.
func healthcheck(ctx context.Context, args []string) error {
	url := ""
	if len(args) == 1 {
		url = args[0]
	} else {
		addr := os.Getenv("HTTP_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("HTTP_ADDR %q is not host:port", addr)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		url = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel) // validated by config
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "o2o").Logger()
}

// openDatabase connects and waits (bounded) for the database to answer, so the service can start
// alongside its database (docker compose, a rolling deploy) instead of crashing on the first try.
func openDatabase(ctx context.Context, db config.Database, log zerolog.Logger) (*postgres.Migrator, func(), error) {
	pool, err := postgres.Open(ctx, db.DatabaseURL.Value(), postgres.PoolOptions{MaxConns: db.DBMaxConns,
		StatementTimeout: db.DBStatementTimeout, LockTimeout: db.DBLockTimeout, IdleInTxTimeout: db.DBIdleInTxTimeout})
	if err != nil {
		return nil, nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, db.DBStartupTimeout)
	defer cancel()
	for {
		err = pool.Ping(waitCtx)
		if err == nil {
			break
		}
		if why := postgres.Permanent(err); why != "" {
			pool.Close()
			return nil, nil, fmt.Errorf("database: %s", why)
		}
		log.Warn().Err(err).Msg("database not answering yet")
		select {
		case <-waitCtx.Done():
			pool.Close()
			return nil, nil, fmt.Errorf("database did not answer within DB_STARTUP_TIMEOUT (%s): %w", db.DBStartupTimeout, err)
		case <-time.After(time.Second):
		}
	}
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return m, func() { m.Close(); pool.Close() }, nil
}

func migrate(ctx context.Context, direction string, stdout io.Writer) error {
	if direction != "up" && direction != "down" && direction != "status" {
		return fmt.Errorf("unknown migrate direction %q (want up, down or status)", direction)
	}
	db, err := config.LoadDatabase()
	if err != nil {
		return err
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	m, closeDB, err := openDatabase(ctx, db, log)
	if err != nil {
		return err
	}
	defer closeDB()
	var done []string
	switch direction {
	case "up":
		done, err = m.Up(ctx)
	case "down":
		done, err = m.Down(ctx)
	case "status":
		return m.Status(ctx, stdout)
	}
	for _, name := range done {
		fmt.Fprintf(stdout, "migrated %s: %s\n", direction, name)
	}
	if err == nil && len(done) == 0 {
		fmt.Fprintf(stdout, "migrate %s: nothing to do\n", direction)
	}
	return err
}

// serve runs the service until ctx is cancelled, then shuts down gracefully. If ready is not nil it
// receives the listening address once requests are accepted (tests listen on port 0).
func serve(ctx context.Context, stdout io.Writer, ready chan<- string) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)

	m, closeDB, err := openDatabase(ctx, cfg.Database, log)
	if err != nil {
		return err
	}
	// Closing the pool waits for connections in use; a hung database must not hold the exit.
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if !within(closeCtx, closeDB) {
			log.Warn().Msg("database connections still busy at exit; leaving them")
		}
	}()
	applied, err := m.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range applied {
		log.Info().Str("migration", name).Msg("migrated")
	}
	pool := m.Pool()
	mx := metrics.New(pool)
	store := postgres.NewStore(pool)
	store.FirstCheck = cfg.ReconcileSchedule[0]
	store.Metrics = mx
	mx.WatchAttention(store.OpenAttention)

	dokuClient := doku.New(doku.Config{
		BaseURL:   cfg.DokuBaseURL,
		ClientID:  cfg.DokuClientID,
		SecretKey: cfg.DokuSecretKey.Value(),
		Timeout:   cfg.DokuTimeout,
		MaxConns:  int(cfg.DBMaxConns) * 4,
		Metrics:   mx,
		Logger:    log,
		Defaults: doku.BodyDefaults{Info: cfg.DokuDefaultInfo, CustomerEmail: cfg.DokuDefaultCustomerEmail,
			ReceiptFooter: cfg.DokuDefaultReceiptFooter},
	})
	svc := invoice.NewService(store, dokuClient, cfg.DokuTimeout)
	svc.ExpiryGrace = cfg.ExpiryGrace
	svc.SyncInterval = cfg.SyncMinInterval
	svc.StoreTimeout = cfg.DBStatementTimeout
	keys, _ := cfg.Keys() // validated by Load
	apiKeys := make([]httpapi.APIKey, len(keys))
	for i, k := range keys {
		apiKeys[i] = httpapi.APIKey{Name: k.Name, Digest: k.Digest}
	}
	handler := httpapi.NewServer(httpapi.Config{
		APIKeys:          apiKeys,
		NotificationPath: cfg.DokuNotificationPath,
		MaxBodyBytes:     cfg.MaxBodyBytes,
		Limits:           cfg.Limits(),
		Webhook:          httpapi.WebhookConfig{AllowedNetworks: cfg.AllowedNetworks(), MaxAge: cfg.WebhookMaxAge},
	}, httpapi.Deps{
		Service: svc,
		Notifications: doku.Verifier{
			ClientID: cfg.DokuClientID,
			Secret:   []byte(cfg.DokuSecretKey.Value()),
			Target:   cfg.DokuNotificationPath,
		},
		Ready:        func(ctx context.Context) error { return store.Ready(ctx, m) },
		Logger:       log,
		Metrics:      mx,
		ServeMetrics: cfg.MetricsAddr == "",
	})

	srv := httpapi.NewHTTPServer(handler, cfg.DokuTimeout)
	srv.ErrorLog = stdlogTo(log)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("doku_base_url", cfg.DokuBaseURL).
		Str("notification_path", cfg.DokuNotificationPath).Msg("o2o listening")
	if ready != nil {
		ready <- ln.Addr().String()
	}

	resumer := &worker.Resumer{
		Claimer: store, Service: svc, Log: log.With().Str("worker", "resumer").Logger(), Metrics: mx,
		Interval: cfg.ResumerInterval, Batch: cfg.ResumerBatch, Concurrency: cfg.ResumerConcurrency,
		BaseBackoff: cfg.ResumerBaseBackoff, MaxBackoff: cfg.ResumerMaxBackoff, MaxAttempts: cfg.ResumerMaxAttempts,
	}
	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	var workers sync.WaitGroup
	reconciler := &worker.Reconciler{
		Claimer: store, Service: svc, Log: log.With().Str("worker", "reconciler").Logger(), Metrics: mx,
		Interval: cfg.ReconcileInterval, Batch: cfg.ReconcileBatch, Concurrency: cfg.ReconcileConcurrency,
		Schedule: cfg.ReconcileSchedule,
	}
	for _, w := range []interface{ Run(context.Context) error }{resumer, reconciler} {
		workers.Add(1)
		go func() { defer workers.Done(); _ = w.Run(workersCtx) }()
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var admin *http.Server
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", mx.Handler())
		if cfg.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		admin = &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- admin.ListenAndServe() }()
		log.Info().Str("addr", cfg.MetricsAddr).Msg("metrics on the admin address")
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
	log.Info().Dur("deadline", cfg.ShutdownTimeout).Msg("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	stopWorkers()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error().Err(err).Msg("shutdown deadline passed; closing remaining connections")
		_ = srv.Close()
	}
	if admin != nil {
		_ = admin.Shutdown(shutdownCtx)
	}
	if !within(shutdownCtx, workers.Wait) {
		log.Warn().Msg("workers still busy at the shutdown deadline; their claims expire by themselves")
	}
	log.Info().Msg("stopped")
	return serveErr
}

// within runs fn and reports whether it returned before ctx ended; if not, fn is left running.
func within(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
