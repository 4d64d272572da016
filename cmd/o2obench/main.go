// Command o2obench is `make bench`: it starts the real service and DOKU simulator as processes on
// loopback, against a fresh database on the test PostgreSQL, and measures, each for a fixed time:
//
//  1. create invoice, 32 concurrent clients, simulator at 0 ms;
//  2. create invoice, simulator at 200 ms, 512 in flight (Little's-law bound 512/0.2 s = 2,560/s);
//  3. verified webhook notifications marking distinct invoices paid, 32 concurrent;
//  4. a duplicate storm: the same notifications delivered 10× concurrently;
//  5. the raw baseline: the SQL the service runs per create and per webhook, straight through pgx at
//     the same concurrency against the same database.
//
// It prints a table and writes it as JSON with the machine's cores and the Go and PostgreSQL
// versions, then removes its database and stops its processes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "o2obench:", err)
		os.Exit(1)
	}
}

type options struct {
	adminURL   string
	binDir     string
	out        string
	duration   time.Duration
	only       string
	profileDir string
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("o2obench", flag.ContinueOnError)
	fs.StringVar(&o.adminURL, "db", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server to create the bench database on")
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding the o2o and dokusim binaries")
	fs.StringVar(&o.out, "out", "bench-results/latest.json", "where to write the JSON report")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each scenario runs")
	fs.StringVar(&o.only, "only", "", "run only scenarios whose name contains this")
	fs.StringVar(&o.profileDir, "profile", "", "save CPU profiles of the service during the create and webhook scenarios here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // the whole bench is bounded
	defer cancel()

	st, err := startStack(ctx, o)
	if err != nil {
		return err
	}
	defer st.stop()

	rep, err := runScenarios(ctx, st, o)
	if err != nil {
		return err
	}
	rep.print(os.Stdout)
	return rep.write(o.out)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
