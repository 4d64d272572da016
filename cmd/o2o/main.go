// Command o2o is the DOKU O2O payment-code service.
//
//	o2o [serve]                 run the HTTP service (migrates the database first, unless MIGRATE_ON_START=false)
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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/postgres"
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
  o2o [serve]                 run the service: migrate the database (unless MIGRATE_ON_START=false),
                              then serve HTTP and run the workers until SIGTERM
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

func migrate(ctx context.Context, direction string, stdout io.Writer) error {
	if direction != "up" && direction != "down" && direction != "status" {
		return fmt.Errorf("unknown migrate direction %q (want up, down or status)", direction)
	}
	db, err := config.LoadDatabase()
	if err != nil {
		return err
	}
	pool, err := app.OpenDatabase(ctx, db, zerolog.New(os.Stderr).With().Timestamp().Logger())
	if err != nil {
		return err
	}
	defer pool.Close()
	session, err := postgres.SessionConfig(pool, db.DatabaseDirectURL.Value())
	if err != nil {
		return err
	}
	m, err := postgres.NewMigratorVia(pool, session)
	if err != nil {
		return err
	}
	defer m.Close()
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
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	if cfg.MigrateOnStart {
		applied, err := a.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		for _, name := range applied {
			log.Info().Str("migration", name).Msg("migrated")
		}
	} else if err := a.Ready(ctx); err != nil {
		// Migrations are someone else's step (o2o migrate up before a rollout): until it has run, this
		// replica serves but answers /readyz 503, so no traffic reaches code newer than its schema.
		log.Warn().Err(err).Msg("MIGRATE_ON_START=false and the database is not ready: /readyz answers 503 until the schema is current")
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	log.Info().Str("addr", ln.Addr().String()).Str("doku_base_url", cfg.DokuBaseURL).
		Str("notification_path", cfg.DokuNotificationPath).Msg("o2o listening")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	err = a.Run(ctx, ln)
	log.Info().Msg("stopped")
	return err
}
