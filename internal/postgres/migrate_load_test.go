package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/postgres"
	"github.com/merchant/o2o/migrations"
)

const (
	// loadLockTimeout is the lock_timeout of the throwaway migrations below: the longest a migration
	// written to the rules of .github/CONTRIBUTING.md may make a webhook wait.
	loadLockTimeout = 500 * time.Millisecond
	// loadSlack is what a webhook may take besides waiting for a lock, with the race detector on:
	// tens of milliseconds on an idle machine, up to 1.8s seen on a two-core one at load average 8.
	// Generous, yet well short of loadReportHold, nearly all of which a webhook waits behind a
	// migration without lock_timeout.
	loadSlack = 3 * time.Second
	// loadReportHold is how long the slow report stays open when nothing ends it sooner.
	loadReportHold = 6 * time.Second
)

// Every migration from 00012 on is written to run while the service takes payments (CONTRIBUTING.md,
// "Migrations"). This shows that it does: with webhooks flowing and a slow report holding the
// invoices table open, throwaway migrations of each kind go through the production migrator (goose,
// its session lock, its connections), and no webhook waits longer than lock_timeout (plus loadSlack)
// during any of them:
//
//	(a) ADD COLUMN … DEFAULT under SET LOCAL lock_timeout: it cannot have its ACCESS EXCLUSIVE lock
//	    while the report is open, gives up after lock_timeout (the webhooks queued behind it go on),
//	    and goes through when run again after the report;
//	(b) CREATE INDEX CONCURRENTLY in a NO TRANSACTION migration: it never queues webhooks; it gives up
//	    waiting for the report's snapshot after lock_timeout, leaves an invalid index behind, and
//	    the run after the report drops that and builds the index;
//	(c) ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a migration of its own (in the same
//	    transaction, the scan would run under ADD CONSTRAINT's ACCESS EXCLUSIVE lock, held until the
//	    commit).
//
// And the contrast, which also shows the test can fail: an ADD COLUMN like (a)'s without lock_timeout
// queues every webhook behind it for as long as the report lasts.
func TestMigrationsUnderWebhookLoad(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	pool := s.DB.Pool
	ctx := context.Background()

	// The throwaway migrations, numbered after the real ones (which the stack's database has).
	lt := fmt.Sprintf("'%dms'", loadLockTimeout.Milliseconds())
	version := lastVersion(t)
	file := func(name string) string {
		version++
		return fmt.Sprintf("%05d_loadtest_%s.sql", version, name)
	}
	var (
		addColumn = migration{file("add_column"), `-- +goose Up
SET LOCAL lock_timeout = ` + lt + `;
SET LOCAL statement_timeout = '60s';
ALTER TABLE invoices ADD COLUMN loadtest_note text NOT NULL DEFAULT '';
`}
		createIndex = migration{file("create_index"), `-- +goose NO TRANSACTION
-- +goose Up
SET lock_timeout = ` + lt + `;
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS invoices_loadtest_email_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_loadtest_email_idx ON invoices (customer_email);
`}
		addConstraint = migration{file("add_constraint"), `-- +goose Up
SET LOCAL lock_timeout = ` + lt + `;
SET LOCAL statement_timeout = '60s';
ALTER TABLE invoices ADD CONSTRAINT invoices_loadtest_amount_cap CHECK (amount <= 1000000000000) NOT VALID;
`}
		validateConstraint = migration{file("validate_constraint"), `-- +goose Up
SET LOCAL lock_timeout = ` + lt + `;
SET LOCAL statement_timeout = 0;
ALTER TABLE invoices VALIDATE CONSTRAINT invoices_loadtest_amount_cap;
`}
		// What the rules forbid (squawk's require-lock-timeout), for the contrast. The migrator's
		// connections have the pool's lock_timeout (10s in tests, DB_LOCK_TIMEOUT in production),
		// longer than the report.
		unsafeAddColumn = migration{file("unsafe_add_column"), `-- +goose Up
ALTER TABLE invoices ADD COLUMN loadtest_unsafe text NOT NULL DEFAULT '';
`}
	)

	// An autovacuum of invoices holds SHARE UPDATE EXCLUSIVE, which CREATE INDEX CONCURRENTLY waits
	// for: under lock_timeout, (b) could give up before it has built anything, at a moment the test
	// does not choose, instead of while it waits for the report (and leave no invalid index behind).
	if _, err := pool.Exec(ctx, `ALTER TABLE invoices SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	load := startWebhookLoad(t, s)
	load.waitUntil(t, "20 webhooks answered", func() bool { return len(load.hooks) >= 20 })
	t.Logf("before any migration: %s", load.summary(time.Time{}, time.Now()))
	bound := loadLockTimeout + loadSlack

	// (a) ADD COLUMN … DEFAULT, while the report is open: a lock timeout, not a queue of webhooks.
	load.waitReady(t)
	end := openReport(t, s.DB.URL, loadReportHold)
	start := time.Now()
	applied, took, err := up(t, pool, addColumn)
	switch {
	case err == nil:
		t.Errorf("(a) went through while the report was open (%v): it waited %v for its lock instead of giving up after lock_timeout", applied, took.Round(time.Millisecond))
	case !lockTimedOut(err):
		t.Fatalf("(a) while the report is open: %v; want a lock timeout (55P03)", err)
	case took > bound:
		t.Errorf("(a) gave up after %v; lock_timeout is %v", took.Round(time.Millisecond), loadLockTimeout)
	}
	waited := time.Now()
	end()
	upApplied(t, pool, "(a) after the report", []migration{addColumn}, addColumn)
	load.check(t, "(a) ADD COLUMN … DEFAULT", start, bound)
	if hooks, _ := load.within(start, waited); len(hooks) == 0 {
		t.Errorf("(a): no webhook was in flight while it waited for its lock; the load shows nothing")
	}
	if n := s.Count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'invoices' AND column_name = 'loadtest_note'`); n != 1 {
		t.Errorf("(a): invoices.loadtest_note does not exist after the migration")
	}

	// (b) CREATE INDEX CONCURRENTLY, while the report is open: it waits for the report's snapshot
	// without holding any webhook up, gives up after lock_timeout and leaves an invalid index behind;
	// run again after the report, it drops that and builds the index.
	end = openReport(t, s.DB.URL, loadReportHold)
	start = time.Now()
	applied, took, err = up(t, pool, addColumn, createIndex)
	switch {
	case err == nil:
		t.Errorf("(b) went through while the report was open (%v, %v): the report's snapshot should have held it up", applied, took.Round(time.Millisecond))
	case !lockTimedOut(err):
		t.Fatalf("(b) while the report is open: %v; want a lock timeout (55P03)", err)
	default:
		if valid, ok := indexValid(t, pool, "invoices_loadtest_email_idx"); !ok || valid {
			t.Errorf("(b) gave up, yet left no invalid index behind (exists %v, valid %v)", ok, valid)
		}
	}
	end()
	upApplied(t, pool, "(b) after the report", []migration{addColumn, createIndex}, createIndex)
	load.check(t, "(b) CREATE INDEX CONCURRENTLY", start, bound)
	if valid, ok := indexValid(t, pool, "invoices_loadtest_email_idx"); !ok || !valid {
		t.Errorf("(b): after the migration, invoices_loadtest_email_idx exists %v, valid %v", ok, valid)
	}

	// (c) ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a migration of its own.
	start = time.Now()
	upApplied(t, pool, "(c)", []migration{addColumn, createIndex, addConstraint, validateConstraint}, addConstraint, validateConstraint)
	load.check(t, "(c) ADD CONSTRAINT … NOT VALID, VALIDATE CONSTRAINT", start, bound)
	var validated bool
	if err := pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conname = 'invoices_loadtest_amount_cap'`).Scan(&validated); err != nil || !validated {
		t.Errorf("(c): invoices_loadtest_amount_cap validated %v (%v)", validated, err)
	}

	// The contrast: an ADD COLUMN like (a)'s without lock_timeout waits out the report, and every
	// webhook that comes meanwhile waits behind it.
	load.waitReady(t)
	end = openReport(t, s.DB.URL, loadReportHold)
	start = time.Now()
	applied, took, err = up(t, pool, addColumn, createIndex, addConstraint, validateConstraint, unsafeAddColumn)
	end()
	if err != nil || !slices.Equal(applied, []string{unsafeAddColumn.file}) {
		t.Fatalf("the migration without lock_timeout: applied %v, %v", applied, err)
	}
	load.stop()
	_, longest := load.within(start, time.Now())
	t.Logf("without lock_timeout: the migration waited %v for the report; %s", took.Round(time.Millisecond), load.summary(start, time.Now()))
	// It queued for its lock at once, so the webhooks sent in the first moments after queued behind
	// it for nearly as long as it waited.
	if longest <= bound || longest < took-time.Second {
		t.Errorf("without lock_timeout the migration waited %v for the report, yet the longest webhook took only %v: the load does not show the webhooks it held up",
			took.Round(time.Millisecond), longest.Round(time.Millisecond))
	}
}

// A migration is a file and its text.
type migration struct{ file, sql string }

// lastVersion is the version of the last embedded migration.
func lastVersion(t *testing.T) int {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded migrations (%v)", err)
	}
	last := 0
	for _, n := range names {
		var v int
		if _, err := fmt.Sscanf(n, "%d_", &v); err != nil {
			t.Fatalf("%s: not a goose migration name (%v)", n, err)
		}
		last = max(last, v)
	}
	return last
}

// up runs the migrator, as production does, over the embedded migrations followed by extra, and
// returns what it applied, how long it took and its error.
func up(t *testing.T, pool *pgxpool.Pool, extra ...migration) ([]string, time.Duration, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	names, _ := fs.Glob(migrations.FS, "*.sql")
	for _, n := range names {
		raw, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		fsys[n] = &fstest.MapFile{Data: raw}
	}
	for _, m := range extra {
		fsys[m.file] = &fstest.MapFile{Data: []byte(m.sql)}
	}
	m, err := postgres.NewMigratorFS(pool, fsys)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := time.Now()
	applied, err := m.Up(context.Background())
	return applied, time.Since(start), err
}

// upApplied runs up until it has applied want. A migration that gives up on a lock is run again, as
// an operator would: with webhooks flowing, one of their transactions may be slow enough on a busy
// machine to outlast lock_timeout even with nothing else in the way.
func upApplied(t *testing.T, pool *pgxpool.Pool, what string, extra []migration, want ...migration) {
	t.Helper()
	var files []string
	for _, m := range want {
		files = append(files, m.file)
	}
	var got []string
	for try := 1; ; try++ {
		applied, _, err := up(t, pool, extra...)
		got = append(got, applied...)
		if err == nil {
			break
		}
		if !lockTimedOut(err) || try == 5 {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: gave up on a lock (try %d); again", what, try)
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, files) {
		t.Errorf("%s: applied %v, want %v", what, got, files)
	}
}

func lockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03" // lock_not_available
}

// indexValid says whether the index exists, and whether it is valid (a failed concurrent build
// leaves an invalid one).
func indexValid(t *testing.T, pool *pgxpool.Pool, name string) (valid, exists bool) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`, name).Scan(&valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return valid, true
}

// openReport does to the invoices table what a slow report does, on a connection of its own: a
// REPEATABLE READ transaction that has read it, and so holds an ACCESS SHARE lock on it (which
// conflicts with ALTER TABLE's ACCESS EXCLUSIVE) and a snapshot (which CREATE INDEX CONCURRENTLY
// waits out) until it ends: after hold, or when end is called, whichever comes first. end returns
// once the transaction has ended.
func openReport(t *testing.T, url string, hold time.Duration) (end func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM invoices`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(hold):
		case <-stop:
		}
		if err := tx.Commit(ctx); err != nil {
			t.Errorf("the report: %v", err)
		}
		_ = conn.Close(ctx)
	}()
	var once sync.Once
	end = func() { once.Do(func() { close(stop) }); <-done }
	t.Cleanup(end)
	return end
}

// webhookLoad keeps DOKU's payment notifications flowing through the stack: producers create invoices
// (each gets its payment code from the simulator), consumers send each one's signed notification and
// time it. Invoices are created ahead into a buffer, so that webhooks keep coming while creating is
// held up.
type webhookLoad struct {
	s     *apitest.Stack
	ready chan loadInvoice
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu    sync.Mutex
	hooks []webhook // answered
}

type loadInvoice struct{ number, code string }

// webhook is one notification sent: by which consumer, when, how long the service took to answer it,
// and the answer.
type webhook struct {
	consumer int
	number   string
	start    time.Time
	took     time.Duration
	status   int
	body     []byte
}

const (
	// Creating takes several times as long as a webhook (it asks the simulator for a code), so more
	// producers than consumers, and consumers that pause: invoices pile up in the buffer (loadReady
	// before a migration that holds creating up), and every consumer has one to pay meanwhile.
	loadProducers = 4
	loadConsumers = 3
	loadPause     = 100 * time.Millisecond
	loadReady     = 16
)

func startWebhookLoad(t *testing.T, s *apitest.Stack) *webhookLoad {
	l := &webhookLoad{s: s, ready: make(chan loadInvoice, 64), quit: make(chan struct{})}
	for p := range loadProducers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				number := fmt.Sprintf("INV-LOAD-%d-%d", p, i)
				r := s.Create(apitest.NewInvoice(number, "alfa"))
				if r.Status != http.StatusCreated {
					t.Errorf("create %s: HTTP %d %s", number, r.Status, r.Body)
					return
				}
				code := r.Invoice(t).PaymentCode
				if code == nil {
					t.Errorf("create %s: no payment code: %s", number, r.Body)
					return
				}
				select {
				case l.ready <- loadInvoice{number, *code}:
				case <-l.quit:
					return
				}
			}
		}()
	}
	for c := range loadConsumers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				var inv loadInvoice
				select {
				case inv = <-l.ready:
				case <-l.quit:
					return
				}
				body := apitest.NotificationBody(inv.number, "alfa", inv.code, 150000, "TRX-"+inv.number)
				start := time.Now()
				r := s.Notify(body, "REQ-"+inv.number, nil)
				took := time.Since(start)
				l.mu.Lock()
				l.hooks = append(l.hooks, webhook{c, inv.number, start, took, r.Status, r.Body})
				l.mu.Unlock()
				time.Sleep(loadPause)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for the requests in flight.
func (l *webhookLoad) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}

// waitUntil waits until done, called with l.mu held, is true.
func (l *webhookLoad) waitUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		ok := done()
		l.mu.Unlock()
		if ok {
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("load: not %s after 30s", what)
		}
	}
}

// waitReady waits until loadReady invoices wait for their webhook.
func (l *webhookLoad) waitReady(t *testing.T) {
	t.Helper()
	l.waitUntil(t, fmt.Sprint(loadReady, " invoices created ahead"), func() bool { return len(l.ready) >= loadReady })
}

// within returns the webhooks in flight at any time between from and to, and the longest of them.
func (l *webhookLoad) within(from, to time.Time) (hooks []webhook, longest time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hooks {
		if h.start.Before(to) && h.start.Add(h.took).After(from) {
			hooks = append(hooks, h)
			longest = max(longest, h.took)
		}
	}
	return hooks, longest
}

func (l *webhookLoad) summary(from, to time.Time) string {
	hooks, longest := l.within(from, to)
	if len(hooks) == 0 {
		return "no webhooks"
	}
	took := make([]time.Duration, len(hooks))
	for i, h := range hooks {
		took[i] = h.took
	}
	slices.Sort(took)
	return fmt.Sprintf("%d webhooks, median %v, longest %v", len(hooks), took[len(took)/2].Round(time.Millisecond), longest.Round(time.Millisecond))
}

// check is called when a migration is done: it waits until every consumer has had a webhook sent
// after answered (so every webhook sent before has been answered too), and fails the test if one in
// flight since from took longer than bound or was not applied.
func (l *webhookLoad) check(t *testing.T, what string, from time.Time, bound time.Duration) {
	t.Helper()
	done := time.Now()
	l.waitUntil(t, "every consumer answered after "+what, func() bool {
		after := map[int]bool{}
		for _, h := range l.hooks {
			if h.start.After(done) {
				after[h.consumer] = true
			}
		}
		return len(after) == loadConsumers
	})
	to := time.Now()
	hooks, longest := l.within(from, to)
	t.Logf("%s: %s", what, l.summary(from, to))
	if longest > bound {
		t.Errorf("%s: a webhook took %v; lock_timeout is %v (bound %v with slack)", what, longest.Round(time.Millisecond), loadLockTimeout, bound)
	}
	for _, h := range hooks {
		var ack struct{ Outcome string }
		if h.status != http.StatusOK || json.Unmarshal(h.body, &ack) != nil || ack.Outcome != "applied" {
			t.Errorf("%s: the webhook of %s answered HTTP %d %s", what, h.number, h.status, h.body)
		}
	}
}
