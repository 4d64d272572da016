// Command dokusim runs the DOKU O2O simulator on its own port: the default DOKU of `make run` and of
// docker compose, so the whole flow works without DOKU credentials.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/dokusim"
)

type config struct {
	Addr            string `envconfig:"DOKUSIM_ADDR" default:":8081"`
	ClientID        string `envconfig:"DOKU_CLIENT_ID" required:"true"`
	SecretKey       string `envconfig:"DOKU_SECRET_KEY" required:"true"`
	NotificationURL string `envconfig:"DOKUSIM_NOTIFICATION_URL" required:"true"`
	// RetrySchedule is DOKU's retry offsets after a failed delivery; shorten it for demos.
	RetrySchedule []time.Duration `envconfig:"DOKUSIM_RETRY_SCHEDULE" default:"30m,6h,12h"`
	// StateFile keeps issued codes across restarts, so no code is ever issued twice.
	StateFile string `envconfig:"DOKUSIM_STATE_FILE"`
	// PublicURL is the base of the how-to-pay links, as the customer's browser reaches the simulator.
	PublicURL string `envconfig:"DOKUSIM_PUBLIC_URL"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dokusim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stdout io.Writer) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return errors.New("config: " + strings.TrimPrefix(err.Error(), "envconfig.Process: "))
	}
	var w io.Writer = stdout
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: stdout, TimeFormat: time.RFC3339}
	}
	log := zerolog.New(w).With().Timestamp().Str("service", "dokusim").Logger()

	sim, err := dokusim.New(dokusim.Config{
		ClientID:        cfg.ClientID,
		SecretKey:       cfg.SecretKey,
		NotificationURL: cfg.NotificationURL,
		RetrySchedule:   cfg.RetrySchedule,
		Logger:          log,
		StateFile:       cfg.StateFile,
		PublicURL:       cfg.PublicURL,
	})
	if err != nil {
		return err
	}
	defer sim.Close()
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           sim,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info().Str("addr", cfg.Addr).Str("notification_url", cfg.NotificationURL).Msg("dokusim listening")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
