// Package postgres stores invoices and payments in PostgreSQL through a pgx/v5 pool, and migrates the
// schema with goose from the migrations embedded in the binary.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/migrations"
)

// PoolOptions bound the pool and every session in it. The timeouts are set on the server for each
// session, so no statement, lock wait or transaction left idle can hold a request, a worker or
// shutdown forever, whatever the database or the network does; zero leaves PostgreSQL's default.
type PoolOptions struct {
	MaxConns int32 // 0: pool_max_conns from the URL, or pgx's default
	// ConnectTimeout bounds each connection attempt unless the URL sets connect_timeout.
	ConnectTimeout   time.Duration
	StatementTimeout time.Duration
	LockTimeout      time.Duration
	IdleInTxTimeout  time.Duration
}

// Open connects a pool to url. The pool is shared by every request and worker in the process, never
// created per request.
func Open(ctx context.Context, url string, o PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx quotes the URL in its error, password included: say only what is wrong.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 && o.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
	}
	for param, d := range map[string]time.Duration{"statement_timeout": o.StatementTimeout, "lock_timeout": o.LockTimeout,
		"idle_in_transaction_session_timeout": o.IdleInTxTimeout} {
		if d > 0 {
			cfg.ConnConfig.RuntimeParams[param] = strconv.FormatInt(d.Milliseconds(), 10)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: create pool: %w", err)
	}
	return pool, nil
}

// SessionConfig is the connection configuration of what needs a database session of its own — the
// event listener and the migrator — with pool's session settings: directURL's when it is given
// (DATABASE_URL then goes through a transaction-mode pooler, which keeps no session), else pool's.
func SessionConfig(pool *pgxpool.Pool, directURL string) (*pgx.ConnConfig, error) {
	cc := pool.Config().ConnConfig.Copy()
	if directURL == "" {
		return cc, nil
	}
	direct, err := pgx.ParseConfig(directURL)
	if err != nil {
		return nil, errors.New("DATABASE_DIRECT_URL is not a valid PostgreSQL connection string")
	}
	for k, v := range cc.RuntimeParams {
		if _, set := direct.RuntimeParams[k]; !set {
			direct.RuntimeParams[k] = v
		}
	}
	if direct.ConnectTimeout == 0 {
		direct.ConnectTimeout = cc.ConnectTimeout
	}
	return direct, nil
}

// Migrator applies the embedded migrations.
type Migrator struct {
	pool     *pgxpool.Pool
	db       *sql.DB
	provider *goose.Provider
}

// NewMigrator returns a Migrator for pool's database. It migrates over connections of its own, on
// which no statement timeout applies (a migration may rewrite a large table), under goose's session
// lock: an advisory lock held for the whole run, so any number of replicas can start at once and
// exactly one migrates while the others wait for it. Close it when done.
func NewMigrator(pool *pgxpool.Pool) (*Migrator, error) {
	return newMigrator(pool, pool.Config().ConnConfig.Copy(), migrations.FS)
}

// NewMigratorFS is NewMigrator with the migrations of fsys in place of the embedded ones, under the
// same settings: a test runs throwaway migrations through it exactly as production runs the real ones.
func NewMigratorFS(pool *pgxpool.Pool, fsys fs.FS) (*Migrator, error) {
	return newMigrator(pool, pool.Config().ConnConfig.Copy(), fsys)
}

// NewMigratorVia is NewMigrator migrating over session, a connection configuration of its own (see
// SessionConfig): goose's lock is a session-level advisory lock, which a transaction-mode pooler does
// not keep.
func NewMigratorVia(pool *pgxpool.Pool, session *pgx.ConnConfig) (*Migrator, error) {
	return newMigrator(pool, session.Copy(), migrations.FS)
}

func newMigrator(pool *pgxpool.Pool, cc *pgx.ConnConfig, fsys fs.FS) (*Migrator, error) {
	cc.RuntimeParams["statement_timeout"] = "0"
	db := stdlib.OpenDB(*cc)
	// Waiters poll for the lock every second, for up to ten minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
	if err != nil {
		db.Close()
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: load migrations: %w", err)
	}
	return &Migrator{pool: pool, db: db, provider: p}, nil
}

// Pool is the pool the migrator works on.
func (m *Migrator) Pool() *pgxpool.Pool { return m.pool }

// Close releases the migrator's database handle (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration and returns the file names it applied.
func (m *Migrator) Up(ctx context.Context) ([]string, error) {
	results, err := m.provider.Up(ctx)
	return applied(results), err
}

// Down rolls back the most recent migration and returns its file name.
func (m *Migrator) Down(ctx context.Context) ([]string, error) {
	result, err := m.provider.Down(ctx)
	if result == nil {
		return nil, err
	}
	return applied([]*goose.MigrationResult{result}), err
}

func applied(results []*goose.MigrationResult) []string {
	var out []string
	for _, r := range results {
		if r != nil && r.Error == nil && !r.Empty {
			out = append(out, r.Source.Path)
		}
	}
	return out
}

// Status writes one line per migration: version, state and file name.
func (m *Migrator) Status(ctx context.Context, w io.Writer) error {
	results, err := m.provider.Status(ctx)
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Fprintf(w, "%05d  %-8s  %s\n", r.Source.Version, r.State, r.Source.Path)
	}
	return nil
}

// Current reports whether the database has every embedded migration: it is at the latest, or past it.
// Past it is the case during a rollout whose migrations ran first (o2o migrate up before the new
// replicas start): the previous release keeps serving, which every migration from 00012 on allows —
// it adds, or drops only indexes and constraints that release does not rely on, and what a release
// stops using is removed by a later release's migration (.github/CONTRIBUTING.md; 00021's move of the
// history is the one exception, written down in deploy/RUNBOOK.md).
func (m *Migrator) Current(ctx context.Context) (bool, error) {
	v, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return false, err
	}
	sources := m.provider.ListSources()
	return len(sources) > 0 && v >= sources[len(sources)-1].Version, nil
}

// classify turns a database error into the domain's vocabulary: "the database is unavailable" (the
// caller answers 503 and the client or DOKU retries) or an internal fault (500, logged in full). Only
// faults of reaching the database count as unavailable; a query or decoding bug must not pass for an
// outage, or it would be retried forever instead of fixed.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var known *invoice.Error
	var invalid *invoice.ValidationError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return invoice.Errorf(invoice.ErrNotFound, "invoice not found")
	case errors.As(err, &known), errors.As(err, &invalid):
		return err
	case unavailable(err):
		return &invoice.Error{Kind: invoice.ErrUnavailable, Message: "the database is unavailable", Cause: err}
	}
	return fmt.Errorf("postgres: %w", err)
}

func unavailable(err error) bool {
	var (
		connectErr *pgconn.ConnectError
		pgErr      *pgconn.PgError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &connectErr): // refused, or the server refused the session: whatever the reason
		return true
	case errors.As(err, &pgErr):
		switch pgErr.Code[:2] {
		case "08", "53", "57", "40": // connection, resources, operator intervention, serialization
			return true
		}
		// A standby during failover (read-only) and a lock that could not be had are passing states.
		return pgErr.Code == "25006" || pgErr.Code == "55P03"
	case errors.As(err, &netErr), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	return false
}

// Permanent says why a failure to connect will not pass by waiting — the database named does not
// exist, or the server refuses the credentials — or returns "" for a failure worth retrying.
func Permanent(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return ""
	}
	switch pgErr.Code {
	case "3D000":
		return "the database named in DATABASE_URL does not exist (create it, or fix the name)"
	case "28P01", "28000":
		return "the server refuses DATABASE_URL's user or password"
	}
	return ""
}
