// Package pgtest gives each test its own fresh, migrated PostgreSQL database on a real server, and
// drops it afterwards. Set TEST_DATABASE_URL to point at another server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	neturl "net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/postgres"
)

// DefaultURL is the server used when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the URL of the server tests create their databases on.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// DB is one test's database.
type DB struct {
	Pool *pgxpool.Pool
	URL  string
	Name string
}

// New creates a fresh database, migrates it to the latest schema, and registers its removal. A test
// that needs Postgres fails (never skips) when the server is not there: CI must not go green by
// testing nothing.
func New(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, dbURL := NewEmpty(t)
	pool, err := postgres.Open(ctx, dbURL, postgres.PoolOptions{StatementTimeout: 30 * time.Second, LockTimeout: 10 * time.Second, IdleInTxTimeout: time.Minute})
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return &DB{Pool: pool, URL: dbURL, Name: name}
}

// NewEmpty creates a fresh, empty database (no schema), registers its removal, and returns its name
// and URL.
func NewEmpty(t testing.TB) (name, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v (is PostgreSQL running? see README)", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)

	var b [6]byte
	_, _ = rand.Read(b[:])
	name = "o2o_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	u, err := neturl.Parse(AdminURL())
	if err != nil {
		t.Fatalf("pgtest: parse TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return name, u.String()
}

// AdminExec runs sql on the server's admin connection (TEST_DATABASE_URL), for what a test's own
// connections cannot do (ALTER DATABASE, ending other sessions), or fails the test.
func AdminExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(AdminURL()), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Outage takes this database away as a crashed or unreachable server would: new connections are
// refused and every open one is terminated. Only this database is touched, so tests of other
// databases (in parallel) are not. restore lets connections in again; it is also registered as a
// cleanup, and calling it more than once is harmless.
func (db *DB) Outage(t testing.TB) (restore func()) {
	t.Helper()
	AdminExec(t, "ALTER DATABASE "+pgx.Identifier{db.Name}.Sanitize()+" ALLOW_CONNECTIONS false")
	AdminExec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db.Name)
	var once sync.Once
	restore = func() {
		t.Helper()
		once.Do(func() { AdminExec(t, "ALTER DATABASE "+pgx.Identifier{db.Name}.Sanitize()+" ALLOW_CONNECTIONS true") })
	}
	t.Cleanup(restore)
	return restore
}

func redact(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "TEST_DATABASE_URL"
	}
	return u.Redacted()
}

// WaitForLockWait waits, up to ten seconds, until a session of this database whose statement contains
// match is waiting for a lock: how a test knows the interleaving it forces has happened.
func (db *DB) WaitForLockWait(t testing.TB, match string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0`, match).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement containing %q waited for a lock", match)
		}
	}
}
