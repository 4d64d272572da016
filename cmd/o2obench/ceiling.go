package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The ceiling is what this PostgreSQL server does with pgbench's built-in TPC-B-like script (five
// statements, three updates and an insert, one commit) on its own database, with as many clients as
// the create and webhook scenarios and for as long. The service's rows are then read against it: a
// webhook commits one transaction, a create two.
const (
	ceilingClients = 32
	// TPC-B updates one of scale branch rows per transaction: with fewer branches than clients,
	// waiting for those row locks, not the server, would be the limit.
	ceilingScale   = ceilingClients
	ceilingThreads = 2
)

// ceiling is pgbench's run as the report keeps it.
type ceiling struct {
	Pgbench      string  `json:"pgbench,omitempty"`
	Version      string  `json:"version,omitempty"`
	Command      string  `json:"command,omitempty"`
	TPS          float64 `json:"tps,omitempty"` // without initial connection time
	Transactions int     `json:"transactions,omitempty"`
	Failed       int     `json:"failed,omitempty"`
	LatencyAvgMs float64 `json:"latency_avg_ms,omitempty"`
	InitSeconds  float64 `json:"init_seconds,omitempty"`
	Missing      string  `json:"missing,omitempty"` // why there is no ceiling on this run
}

// pgbenchHelp says how to get pgbench where it is missing.
const pgbenchHelp = `It measures the "ceiling" row: the server's own rate of write transactions, which the
service's throughput is read against. Install it:
  Debian/Ubuntu: apt-get install postgresql — pgbench is /usr/lib/postgresql/<version>/bin/pgbench; on
    Debian 12 it ships in the server package postgresql-<version>, and the /usr/bin/pgbench of
    postgresql-client-common is only a wrapper that runs it from there;
  elsewhere: the package with PostgreSQL's client and server programs (pgbench is part of PostgreSQL).
Or name one with -pgbench PATH, or run without the ceiling with -skip-missing-pgbench.`

var errNoPgbench = errors.New("pgbench is not installed (not on PATH, nor in /usr/lib/postgresql/*/bin)")

// findPgbench returns a pgbench that runs, and its version: the one named, else the one on PATH,
// else the newest of Debian's per-version directories (on PATH there may be only Debian's wrapper,
// which fails when no version's pgbench is installed).
func findPgbench(named string) (path, version string, err error) {
	if named != "" {
		if version, err = pgbenchVersion(named); err != nil {
			return "", "", fmt.Errorf("-pgbench %s: %w", named, err)
		}
		return named, version, nil
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	slices.SortFunc(candidates, func(a, b string) int { return cmp.Compare(major(b), major(a)) })
	if p, err := exec.LookPath("pgbench"); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	for _, p := range candidates {
		if version, err := pgbenchVersion(p); err == nil {
			return p, version, nil
		}
	}
	return "", "", errNoPgbench
}

func pgbenchVersion(path string) (string, error) {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

var (
	tpsLine       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)`)
	processedLine = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	failedLine    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	latencyLine   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// runCeiling makes a throwaway database beside the bench's, initialises it with pgbench -i at
// ceilingScale, runs pgbench for d and drops the database.
func runCeiling(ctx context.Context, st *stack, m *meter, c *ceiling, d time.Duration) (result, error) {
	db := st.dbName + "_pgbench"
	st.otherDBs = append(st.otherDBs, db)
	if _, err := m.admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return result{}, err
	}
	defer func() {
		_, _ = m.admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		// Initialising wrote about half a gigabyte of WAL: take the checkpoint that calls for now, not
		// in the middle of a later scenario. Best effort: it needs superuser or pg_checkpoint.
		_, _ = m.admin.Exec(context.WithoutCancel(ctx), "CHECKPOINT")
	}()
	url := st.urlOf(db)

	// Server-side data generation (G) is pgbench's quickest initialisation; v and p vacuum and index
	// as the default does, so the run itself can skip its vacuum (-n).
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, c.Pgbench, "-i", "-q", "-I", "dtGvp", "-s", strconv.Itoa(ceilingScale), url).CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("pgbench -i: %w: %s", err, tailOf(out))
	}
	c.InitSeconds = round(time.Since(t0).Seconds(), 1)

	// -M prepared: the service's pgx prepares and caches its statements too.
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(ceilingClients), "-j", strconv.Itoa(ceilingThreads),
		"-T", strconv.Itoa(max(1, int(d.Round(time.Second).Seconds())))}
	c.Command = "pgbench " + strings.Join(args, " ") + fmt.Sprintf(", scale %d", ceilingScale)
	var out []byte
	var runErr error
	var pgbenchCPU time.Duration
	cst, err := m.measure(ctx, db, true, func() int {
		cmd := exec.CommandContext(ctx, c.Pgbench, append(args, url)...)
		out, runErr = cmd.CombinedOutput()
		if cmd.ProcessState != nil {
			pgbenchCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if runErr == nil {
			runErr = parsePgbench(out, c)
		}
		return c.Transactions
	})
	if err != nil {
		return result{}, err
	}
	if runErr != nil {
		return result{}, fmt.Errorf("%s: %w: %s", c.Command, runErr, tailOf(out))
	}
	if c.Transactions > 0 {
		cst.App, cst.AppCPU = "pgbench", round(float64(pgbenchCPU.Microseconds())/float64(c.Transactions), 0)
	}
	return result{Name: rowCeiling, Concurrency: ceilingClients, Ops: c.Transactions + c.Failed, Errors: c.Failed,
		Seconds: d.Seconds(), OpsPerSec: round(c.TPS, 0), Cost: cst,
		Note: fmt.Sprintf("%s; latency average %.2f ms", c.Command, c.LatencyAvgMs)}, nil
}

func parsePgbench(out []byte, c *ceiling) error {
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return errors.New(`no "tps = … (without initial connection time)" line`)
	}
	c.TPS, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := processedLine.FindSubmatch(out); m != nil {
		c.Transactions, _ = strconv.Atoi(string(m[1]))
	}
	if m := failedLine.FindSubmatch(out); m != nil {
		c.Failed, _ = strconv.Atoi(string(m[1]))
	}
	if m := latencyLine.FindSubmatch(out); m != nil {
		c.LatencyAvgMs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	return nil
}
