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
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/dokusim"
)

type config struct {
	Addr            string `envconfig:"DOKUSIM_ADDR" default:":8081" desc:"listen address"`
	ClientID        string `envconfig:"DOKU_CLIENT_ID" required:"true" desc:"the Client-Id it accepts (the service's)"`
	SecretKey       string `envconfig:"DOKU_SECRET_KEY" required:"true" desc:"the secret it signs and verifies with (the service's)"`
	NotificationURL string `envconfig:"DOKUSIM_NOTIFICATION_URL" required:"true" desc:"where it sends payment notifications (the service's webhook)"`
	// RetrySchedule is DOKU's retry offsets after a failed delivery; shorten it for demos.
	RetrySchedule []time.Duration `envconfig:"DOKUSIM_RETRY_SCHEDULE" default:"30m,6h,12h" desc:"redeliveries after a failed one, from the first attempt"`
	// StateFile keeps issued codes across restarts, so no code is ever issued twice.
	StateFile string `envconfig:"DOKUSIM_STATE_FILE" desc:"file keeping its codes and payments across restarts (empty: memory only)"`
	// PublicURL is the base of the how-to-pay links, as the customer's browser reaches the simulator.
	PublicURL string `envconfig:"DOKUSIM_PUBLIC_URL" desc:"base URL of the how-to-pay links (empty: the request's Host)"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"json or console"`
}

const usage = `dokusim — a DOKU O2O simulator, as strict as DOKU documents itself: generate payment code (Alfa,
Indomaret), check status, signed notifications with DOKU's retries, and controls to pay at the counter,
send any notification, inject faults and move its clock (api/DOKU.md, the simulator).

Usage: dokusim            (settings from the environment)

Settings (DOKU_SECRET_KEY may instead be given as a file: DOKU_SECRET_KEY_FILE=/run/secrets/doku_secret_key):
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "help", "-h", "-help", "--help":
			fmt.Print(usage)
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			_ = envconfig.Usagef("", &config{}, tw, `{{range .}}  {{usage_key .}}	{{if usage_required .}}(required){{else}}{{usage_default .}}{{end}}	{{usage_description .}}
{{end}}`)
			tw.Flush()
			return
		default:
			fmt.Fprintf(os.Stderr, "dokusim: unknown argument %q (dokusim --help)\n", os.Args[1])
			os.Exit(2)
		}
	}
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dokusim:", err)
		os.Exit(1)
	}
}

// loadConfig reads the environment.
func loadConfig() (config, error) {
	// The secret may come as a file (Docker and Kubernetes secrets), as the service's may.
	if file := os.Getenv("DOKU_SECRET_KEY_FILE"); file != "" && os.Getenv("DOKU_SECRET_KEY") == "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return config{}, errors.New("config: DOKU_SECRET_KEY_FILE: cannot read the file it names")
		}
		os.Setenv("DOKU_SECRET_KEY", strings.TrimSpace(string(raw)))
	}
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return config{}, errors.New("config: " + strings.TrimPrefix(err.Error(), "envconfig.Process: "))
	}
	return cfg, nil
}

func run(ctx context.Context, stdout io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
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
