// Command o2obench is `make bench`: it starts the real service and DOKU simulator as processes on
// loopback, against a fresh database on the test PostgreSQL, and measures, each for a fixed time
// (-duration, 10 s):
//
//  0. the ceiling: pgbench's built-in TPC-B-like script, 32 clients, on a throwaway database of its
//     own on the same server (scale 32, so its branch rows are not the limit);
//  1. create invoice, 32 concurrent clients (closed loop), simulator at 0 ms;
//  2. create invoice, simulator at 200 ms, 128 in flight: Little's-law bound 128/0.2 s = 640/s,
//     well below what the database takes;
//  3. verified webhook notifications marking distinct invoices paid, 32 concurrent;
//  4. the raw baseline: the service's own code for a create (4a) and a webhook (4b), called in
//     process through app.New over the same database, without HTTP, JSON, signatures or DOKU;
//  5. a duplicate storm: the same notifications delivered 10× concurrently, checked exactly-once;
//  6. the webhook row again with events delivered: the service restarted with a webhook endpoint
//     (a receiver in this process that checks each signature), beside row 3 without;
//  7. events delivered per second to that receiver, from the first POST to the last;
//  8. open loop: create and webhook started on a fixed schedule at 25, 50 and 75 % of rows 1 and 3,
//     with latency from each request's scheduled start (p50, p99, p99.9).
//
// Every throughput row is read against the ceiling (ops/s ÷ tps, and per database transaction:
// a create commits two, a webhook one). Every row also gets its cost per completed request: CPU of
// the service and of PostgreSQL from /proc, transactions and WAL bytes, and, for the closed-loop
// rows, commits and rows written from pg_stat_database (statements too with pg_stat_statements).
//
// It prints tables and writes them as JSON with the machine's cores and the Go and PostgreSQL
// versions, then removes its databases and stops its processes. -only picks scenarios by name
// (ceiling, create, little, webhook, raw, storm, open, deliver; comma-separated); -profile DIR saves CPU
// profiles of the service during rows 1 and 3.
//
// -volume N runs the rows on the empty database, loads a year of a large merchant's data (N
// invoices, volume.go) into the same database and runs them again, comparing each row's cost per
// request; it also times the reconciler's claim, the delivery claim and a feed page at three volumes
// (claims.go) and the purge of the year under a webhook load (purge.go). -throwaway-cluster runs the
// whole bench on a PostgreSQL cluster it creates and removes itself, with pg_stat_statements loaded
// (cluster.go). -compare prints before/after pairs of earlier reports (compare.go; compare.sh builds
// two revisions and runs them back to back).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
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
	// pgbench runs the ceiling: found before anything starts; "" when missing and skipped.
	pgbench, pgbenchVersion string
	skipMissingPgbench      bool
	// -volume: invoices of the year loaded after the empty run (0: no volume run).
	volume int
	// The purge row: how long each of its two phases lasts, and how long the purge may go on after
	// its loaded phase before it is stopped.
	purgePhase, purgeMax time.Duration
	// -throwaway-cluster: a cluster of the bench's own, with these extra settings.
	throwaway   bool
	clusterConf string
	// -compare: reports to print as before/after pairs, instead of running the bench.
	compare string
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("o2obench", flag.ContinueOnError)
	fs.StringVar(&o.adminURL, "db", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server to create the bench database on")
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding the o2o and dokusim binaries")
	fs.StringVar(&o.out, "out", "bench-results/latest.json", "where to write the JSON report")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each scenario runs")
	fs.StringVar(&o.only, "only", "", "run only the scenarios whose name contains one of these comma-separated words:\nceiling, create, little, webhook, raw, storm, open, deliver; with -volume also claims, purge")
	fs.StringVar(&o.profileDir, "profile", "", "save CPU profiles of the service during the create and webhook scenarios here")
	fs.StringVar(&o.pgbench, "pgbench", "", "the pgbench to measure the ceiling with (default: on PATH, else /usr/lib/postgresql/*/bin)")
	fs.BoolVar(&o.skipMissingPgbench, "skip-missing-pgbench", false, "run without the ceiling when pgbench is not installed, instead of failing")
	fs.IntVar(&o.volume, "volume", 0, "after the rows, load a year of this many invoices into the same database and run them again (e.g. 2000000)")
	fs.DurationVar(&o.purgePhase, "purge-phase", 0, "with -volume: length of each phase of the purge row (default twice -duration)")
	fs.DurationVar(&o.purgeMax, "purge-max", 30*time.Minute, "with -volume: how long the purge may go on after its loaded phase before it is stopped")
	fs.BoolVar(&o.throwaway, "throwaway-cluster", false, "run on a PostgreSQL cluster of the bench's own (initdb in a temporary directory), with pg_stat_statements")
	fs.StringVar(&o.clusterConf, "cluster-conf", "", "with -throwaway-cluster: extra postgresql.conf settings, comma-separated (e.g. autovacuum=off,shared_buffers=256MB)")
	fs.StringVar(&o.compare, "compare", "", "print before/after pairs of these reports (comma-separated JSON files: before, after, before, after, …) and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.compare != "" {
		return printComparison(os.Stdout, strings.Split(o.compare, ","))
	}
	if o.volume < 0 || o.volume > 0 && o.volume < 1000 {
		return errors.New("-volume needs at least 1000 invoices (its intermediate volume is a tenth)")
	}
	if o.purgePhase <= 0 {
		o.purgePhase = 2 * o.duration
	}
	if wanted(o.only)("ceiling") {
		var err error
		o.pgbench, o.pgbenchVersion, err = findPgbench(o.pgbench)
		if errors.Is(err, errNoPgbench) && !o.skipMissingPgbench {
			return fmt.Errorf("%w.\n%s", err, pgbenchHelp)
		}
		if err != nil && !errors.Is(err, errNoPgbench) {
			return err
		}
	}
	// The whole bench is bounded: about 3.5 min at 10 s a scenario (13 scenarios, pgbench's
	// initialisation, and statsSettle of quiet after each of the 7 whose database counters are read).
	ctx, cancel := context.WithTimeout(ctx, runBound(o))
	defer cancel()

	if o.throwaway {
		c, err := startCluster(ctx, o.clusterConf)
		if err != nil {
			return err
		}
		defer c.stop()
		o.adminURL = c.url
		fmt.Fprintf(os.Stderr, "o2obench: a throwaway cluster (%s) at %s\n", c.version, redact(c.url))
	}

	st, err := startStack(ctx, o)
	if err != nil {
		return err
	}
	defer st.stop()

	rep, err := runScenarios(ctx, st, o)
	if rep == nil {
		return err
	}
	// A -volume run that failed after its first pass still reports what it measured.
	rep.print(os.Stdout)
	if werr := rep.write(o.out); err == nil {
		err = werr
	}
	return err
}

// runBound is how long the whole run may take: a pass of the rows is 2 min + 25 × the scenario
// duration at most; -volume adds a second pass, the load (budgeted at 30 min per million invoices
// on a slow machine), the claims and the purge row.
func runBound(o options) time.Duration {
	pass := 2*time.Minute + 25*o.duration
	if o.volume == 0 {
		return pass
	}
	load := 10*time.Minute + time.Duration(float64(o.volume)/1e6*float64(30*time.Minute))
	return 2*pass + load + 5*time.Minute + 2*o.purgePhase + o.purgeMax + 10*time.Minute
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
