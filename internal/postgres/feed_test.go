package postgres_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	stdstrings "strings" // this package's tests have a helper named strings
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/postgres"
)

// changeTx is one change of an invoice as the store makes it (lockedTx), held open between its
// statements so that a test can interleave two of them by hand: the invoice's row lock first (which
// gives the transaction its id), the event later, then COMMIT.
type changeTx struct {
	t  *testing.T
	tx pgx.Tx
}

func lockInvoice(t *testing.T, pool *pgxpool.Pool, number string) *changeTx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT id FROM invoices WHERE invoice_number = $1 FOR UPDATE`, number); err != nil {
		t.Fatal(err)
	}
	return &changeTx{t: t, tx: tx}
}

func (c *changeTx) publish(id, number string) {
	c.t.Helper()
	if _, err := c.tx.Exec(context.Background(), `INSERT INTO events (id, type, invoice_number, data)
		VALUES ($1, 'invoice.cancelled', $2, '{"invoice": null}')`, id, number); err != nil {
		c.t.Fatal(err)
	}
}

func (c *changeTx) commit() {
	c.t.Helper()
	if err := c.tx.Commit(context.Background()); err != nil {
		c.t.Fatal(err)
	}
}

// feedIDs reads the whole feed after cursor, page by page (limit each), and returns the ids in the
// order read and the cursor to continue with.
func feedIDs(t *testing.T, s *postgres.Store, cursor string, limit int) ([]string, string) {
	t.Helper()
	var ids []string
	for {
		evs, next, more, err := s.ListEvents(context.Background(), invoice.EventFilter{After: cursor, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		cursor = next
		if !more {
			return ids, cursor
		}
	}
}

// feedUntil reads the feed after cursor like feedIDs until it has read at least want events, for up
// to ten seconds. A follower is promised every committed event, not that it shows on the first read:
// any older transaction of this database still running holds it back, autovacuum's ANALYZE included.
// A test that expects events reads with this; one that expects none with feedIDs.
func feedUntil(t *testing.T, s *postgres.Store, cursor string, limit, want int) ([]string, string) {
	t.Helper()
	var all []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var ids []string
		ids, cursor = feedIDs(t, s, cursor, limit)
		all = append(all, ids...)
		if len(all) >= want || time.Now().After(deadline) {
			return all, cursor
		}
	}
}

// eventCount is how many events the database holds: what a follower of a quiet feed reads in the end.
func eventCount(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func evtID(n int) string { return fmt.Sprintf("evt_%032x", n) }

// The interleaving that made the feed skip an event for good: transaction A takes its id (the row
// lock) before B does, but B takes its event's sequence number first; A commits while B is still
// open. A reader then saw A's event and moved its cursor past B's number, and B's event, committed a
// moment later, lay behind the cursor forever. The feed must show B's event on the next read.
func TestFeedShowsAnEventWhoseNumberIsSmallerThanOneAlreadyRead(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	issued(t, s, "INV-A")
	issued(t, s, "INV-B")
	_, cursor := feedUntil(t, s, "", 100, eventCount(t, db.Pool))

	a := lockInvoice(t, db.Pool, "INV-A") // xid X
	b := lockInvoice(t, db.Pool, "INV-B") // xid X+1
	b.publish(evtID(2), "INV-B")          // seq N
	a.publish(evtID(1), "INV-A")          // seq N+1
	a.commit()

	first, cursor := feedIDs(t, s, cursor, 1)
	b.commit()
	then, _ := feedUntil(t, s, cursor, 1, 2-len(first))
	got := append(first, then...)
	if len(got) != 2 || got[0] == got[1] {
		t.Fatalf("the feed read %v before B committed and %v after: want both events, once each", first, then)
	}
}

// And the opposite interleaving: the transaction with the smaller sequence number commits last. Its
// event is not shown before then, and nothing after it is either.
func TestFeedWaitsForAnOlderTransactionStillOpen(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	issued(t, s, "INV-A")
	issued(t, s, "INV-B")
	_, cursor := feedUntil(t, s, "", 100, eventCount(t, db.Pool))

	a := lockInvoice(t, db.Pool, "INV-A")
	a.publish(evtID(1), "INV-A")
	b := lockInvoice(t, db.Pool, "INV-B")
	b.publish(evtID(2), "INV-B")
	b.commit()
	if got, _ := feedIDs(t, s, cursor, 1); len(got) != 0 {
		t.Fatalf("the feed showed %v while an older transaction was still open", got)
	}
	a.commit()
	if got, _ := feedUntil(t, s, cursor, 1, 2); len(got) != 2 || got[0] != evtID(1) || got[1] != evtID(2) {
		t.Fatalf("after both committed the feed read %v", got)
	}
}

// An open transaction in another database of the same server cannot write this database's events,
// so it must not hold the feed back (a shared or busy cluster would otherwise stall every follower
// for as long as someone else's transaction lasts).
func TestFeedIgnoresTransactionsOfOtherDatabases(t *testing.T) {
	t.Parallel()
	db, other := pgtest.New(t), pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	tx, err := other.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil { // it holds a transaction id
		t.Fatal(err)
	}
	issued(t, s, "INV-OTHER-DB")
	if got, _ := feedUntil(t, s, "", 10, 1); len(got) != 1 {
		t.Fatalf("with another database's transaction open the feed showed %v, want the one event", got)
	}
	lag, err := s.FeedLag(ctx)
	if err != nil || lag != 0 {
		t.Fatalf("feed lag %v (%v), want 0", lag, err)
	}
}

// Another database's transactions ending while the feed is read must not hide an event already
// committed: a transaction that began before the event and ended between the reading statement's
// snapshot and its look at pg_stat_activity was counted as running, and for that read the feed fell
// back behind the event (and behind what an earlier read had shown). With four neighbours committing
// all the time, 58–67 of 300 reads hid their event.
func TestFeedShowsACommittedEventWhileAnotherDatabaseCommits(t *testing.T) {
	t.Parallel()
	db, other := pgtest.New(t), pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx, stop := context.WithCancel(context.Background())
	// Nothing else may run in this database: autovacuum's ANALYZE of events, after the inserts below,
	// takes a transaction id and would rightly hold a read back.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE events SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	var neighbours sync.WaitGroup
	for range 4 {
		neighbours.Add(1)
		go func() {
			defer neighbours.Done()
			for ctx.Err() == nil {
				tx, err := other.Pool.Begin(ctx)
				if err != nil {
					return
				}
				_, err = tx.Exec(ctx, `SELECT pg_current_xact_id()`)
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				if err == nil {
					err = tx.Commit(ctx)
				}
				if err != nil {
					_ = tx.Rollback(context.Background())
				}
			}
		}()
	}
	defer neighbours.Wait()
	defer stop()

	const events = 300
	var cursor string
	hidden := 0
	for i := 1; i <= events; i++ {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO events (id, type, invoice_number, data)
			VALUES ($1, 'invoice.cancelled', 'INV-N', '{"invoice": null}')`, evtID(i)); err != nil {
			t.Fatal(err)
		}
		// Committed, and nothing else runs in this database: the next read shows it.
		var ids []string
		ids, cursor = feedIDs(t, s, cursor, 10)
		if len(ids) != 1 || ids[0] != evtID(i) {
			hidden++
			_, cursor = feedUntil(t, s, cursor, 10, 1) // catch up, to go on counting
		}
	}
	if hidden > 0 {
		t.Fatalf("%d of %d events committed before the read were not shown by it", hidden, events)
	}
}

// Writers on many invoices commit in every order while a follower pages with a small limit: it reads
// every event exactly once. (With the feed ordered by sequence number alone this lost 1-3 events in
// most runs.)
func TestFeedFollowerUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	const writers, changes = 3, 120
	for w := 0; w < writers; w++ {
		issued(t, s, fmt.Sprintf("INV-W%d", w))
	}
	ctx := context.Background()
	// Commits take a varying moment after their events are numbered, as a commit's WAL flush does on a
	// busy server: a deferred trigger sleeps at COMMIT.
	for _, sql := range []string{
		`CREATE FUNCTION commit_jitter() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_sleep(random() * 0.003); RETURN NULL; END $$`,
		`CREATE CONSTRAINT TRIGGER commit_jitter AFTER INSERT ON events
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_jitter()`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	var cursor string
	read := func() {
		var ids []string
		ids, cursor = feedIDs(t, s, cursor, 3)
		for _, id := range ids {
			seen[id]++
		}
	}

	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			number := fmt.Sprintf("INV-W%d", w)
			for i := 0; i < changes; i++ {
				_, err := s.Update(ctx, number, func(inv *invoice.Invoice) error {
					// The decision takes a moment, as a real one may: between the transaction's id (the
					// row lock, before) and its event's sequence number (after), others commit.
					time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
					// A change that publishes an event every time: cancel, then back to pending.
					inv.Status = invoice.StatusPending
					_, err := inv.Cancel("test", time.Now(), invoice.SourceAPI)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		read()
	}
	var total int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(seen) < total && time.Now().Before(deadline); {
		read()
	}
	// The race needs events whose sequence numbers and transaction ids are in opposite orders; without
	// them this test proves nothing.
	var inversions int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM events a JOIN events b ON a.seq < b.seq AND a.xid > b.xid`).Scan(&inversions); err != nil {
		t.Fatal(err)
	}
	if inversions == 0 {
		t.Fatal("no two events had their sequence numbers and transaction ids in opposite orders: the interleaving never happened")
	}
	repeated := 0
	for _, n := range seen {
		if n > 1 {
			repeated++
		}
	}
	if total != writers*(changes+1) || len(seen) != total || repeated != 0 {
		t.Fatalf("%d events written, the follower read %d distinct (%d missed), %d more than once", total, len(seen), total-len(seen), repeated)
	}
}

// The feed keeps one invoice's events in order because a change that waits for its invoice's row lock
// is given its transaction id only once it holds the lock, after the holder committed. If PostgreSQL
// assigned the id before the wait, a later change could carry the smaller id.
func TestWaitingForARowLockTakesNoTransactionID(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	issued(t, s, "INV-LOCK")
	holder := lockInvoice(t, db.Pool, "INV-LOCK")
	var holderXid int64
	if err := holder.tx.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&holderXid); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	waiter, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Release()
	var pid int
	if err := waiter.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	waited := make(chan int64, 1)
	go func() {
		var xid int64
		err := pgx.BeginFunc(ctx, waiter, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT id FROM invoices WHERE invoice_number = 'INV-LOCK' FOR UPDATE`); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid)
		})
		if err != nil {
			t.Error(err)
		}
		waited <- xid
	}()
	// The waiter is blocked on the lock: while it waits it has no transaction id.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var waiting bool
		var xid *string
		if err := db.Pool.QueryRow(ctx, `SELECT coalesce(wait_event_type = 'Lock', false), backend_xid::text FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&waiting, &xid); err != nil {
			t.Fatal(err)
		}
		if waiting {
			if xid != nil {
				t.Fatalf("a transaction waiting for a row lock already has transaction id %s", *xid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second transaction never waited for the lock")
		}
	}
	holder.commit()
	if xid := <-waited; xid <= holderXid {
		t.Fatalf("the waiter got transaction id %d, not after the holder's %d", xid, holderXid)
	}
}

// A cursor of the feed's first version is a sequence number: its follower has read the events
// numbered up to it. Three changes that took their transaction ids in one order (A, B, C) and their
// events' numbers in the other (C, B, A): the first version's follower, having read up to B's event,
// has read C's and not A's. Continued from B's event in (xid, seq) order it would read C's again and
// never A's, so such a cursor has expired.
func TestFeedRefusesAFirstVersionCursor(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	for _, n := range []string{"INV-V1-A", "INV-V1-B", "INV-V1-C"} {
		issued(t, s, n)
	}
	a := lockInvoice(t, db.Pool, "INV-V1-A")
	b := lockInvoice(t, db.Pool, "INV-V1-B")
	c := lockInvoice(t, db.Pool, "INV-V1-C")
	c.publish(evtID(3), "INV-V1-C")
	b.publish(evtID(2), "INV-V1-B")
	a.publish(evtID(1), "INV-V1-A")
	c.commit()
	b.commit()
	a.commit()
	var seqB int64
	if err := db.Pool.QueryRow(context.Background(), `SELECT seq FROM events WHERE id = $1`, evtID(2)).Scan(&seqB); err != nil {
		t.Fatal(err)
	}
	firstVersion := base64.RawURLEncoding.EncodeToString([]byte("id:" + strconv.FormatInt(seqB, 10)))
	evs, _, _, err := s.ListEvents(context.Background(), invoice.EventFilter{After: firstVersion, Limit: 10})
	if !errors.Is(err, invoice.ErrCursorExpired) {
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		t.Fatalf("a first-version cursor after B's event: %v, error %v — want ErrCursorExpired (C's event is %s, A's %s)", ids, err, evtID(3), evtID(1))
	}
}

// purgeAll runs the events' purge to its end with a cutoff in the future: every event that no
// delivery holds goes.
func purgeAll(t *testing.T, s *postgres.Store) {
	t.Helper()
	var from invoice.FeedKey
	for {
		step, next, err := s.PurgeEvents(context.Background(), from, time.Now().Add(time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if step.Done {
			return
		}
		from = next
	}
}

// The purge keeps an old event a delivery still holds (a dead one is kept EVENTS_DEAD_RETENTION) and
// removes the ones after it. A follower starting without a cursor must start after what was purged:
// started at the kept event, it got a cursor from before the purge, then 410 "start again without a
// cursor", then the same page again — for as long as the event was kept.
func TestFeedWithoutACursorStartsAfterThePurge(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	for _, n := range []string{"INV-P1", "INV-P2", "INV-P3"} {
		issued(t, s, n)
	}
	old, _ := feedUntil(t, s, "", 100, eventCount(t, db.Pool))
	if len(old) < 3 {
		t.Fatalf("the feed holds %v", old)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO webhook_endpoints (name, url) VALUES ('orders', 'https://orders.example/hook')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO webhook_deliveries (event_seq, endpoint, state, finished_at)
		SELECT seq, 'orders', 'dead', now() FROM events WHERE id = $1`, old[0]); err != nil {
		t.Fatal(err)
	}
	purgeAll(t, s)
	issued(t, s, "INV-P4")

	got, _ := feedUntil(t, s, "", 1, 1) // fails the test on a 410
	if len(got) == 0 {
		t.Fatal("a follower starting after the purge read nothing, not even the new event")
	}
	for _, id := range got {
		for _, o := range old {
			if id == o {
				t.Errorf("a follower starting without a cursor read %s, an event from before the purge mark", id)
			}
		}
	}
	// The kept event is still there for what reads it by its delivery.
	dead, _, _, err := s.ListEvents(ctx, invoice.EventFilter{DeliveryState: invoice.DeliveryDead, Limit: 10})
	if err != nil || len(dead) != 1 || dead[0].ID != old[0] {
		t.Errorf("the dead listing: %v, %v", dead, err)
	}
}

// A redelivery asked for while the purge is removing its event must not queue the event the purge
// leaves behind (a thinned one has no payload: the deliverer would have signed and sent "data":
// null). The purge's statement is held open at its mark, after it thinned the event and before it
// commits; the redelivery waits for it, then finds the event gone from the feed.
func TestARedeliveryDuringThePurgeQueuesNothingPurged(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	issued(t, s, "INV-RP-1")
	var id string
	if err := db.Pool.QueryRow(ctx, `SELECT id FROM events WHERE id IS NOT NULL AND history IS NOT NULL ORDER BY seq LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO webhook_endpoints (name, url) VALUES ('orders', 'https://orders.example/hook')`,
		`INSERT INTO purge_marks (name, xid, seq) VALUES ('events', '1', 1)`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	hold, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := hold.Exec(ctx, `SELECT 1 FROM purge_marks WHERE name = 'events' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	purged := make(chan error, 1)
	go func() {
		_, _, err := s.PurgeEvents(ctx, invoice.FeedKey{}, time.Now().Add(time.Hour), 100)
		purged <- err
	}()
	db.WaitForLockWait(t, "UPDATE events e SET data = NULL")
	redelivered := make(chan error, 1)
	go func() {
		_, err := s.Redeliver(ctx, id, "")
		redelivered <- err
	}()
	var rerr error
	answered := false
	select {
	case rerr = <-redelivered:
		// The redelivery did not wait for the purge: whatever it queued, the purge thins under it.
		answered = true
		t.Logf("the redelivery answered before the purge committed: %v", rerr)
	case <-time.After(300 * time.Millisecond):
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-purged; err != nil {
		t.Fatalf("purge: %v", err)
	}
	var queued int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq
		WHERE e.history IS NOT NULL AND e.data IS NULL`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Errorf("%d deliveries queued for an event the purge thinned", queued)
	}
	if !answered {
		select {
		case rerr = <-redelivered:
		case <-time.After(10 * time.Second):
			t.Fatal("the redelivery never answered")
		}
	}
	if !errors.Is(rerr, invoice.ErrNotFound) {
		t.Errorf("the redelivery of the purged event answered %v, want not found", rerr)
	}
}

// raceTracer runs hook once, just before the first statement (or batch holding one) whose text
// contains match is sent.
type raceTracer struct {
	match string
	once  sync.Once
	hook  func()
}

func (r *raceTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if stdstrings.Contains(data.SQL, r.match) {
		r.once.Do(r.hook)
	}
	return ctx
}

func (r *raceTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart runs hook before a batch holding a matching statement is sent.
func (r *raceTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	for _, q := range data.Batch.QueuedQueries {
		if stdstrings.Contains(q.SQL, r.match) {
			r.once.Do(r.hook)
		}
	}
	return ctx
}

func (r *raceTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *raceTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// A purge that commits after the feed has checked a follower's cursor and before it reads the page
// removes events the page then does not see. The follower must be told (410), not led past them: the
// interleaving is forced by running the purge from inside the page's statement start.
func TestFeedTellsAFollowerOfAPurgeDuringItsRead(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	for _, n := range []string{"INV-R1", "INV-R2", "INV-R3"} {
		issued(t, s, n)
	}
	first, _, _, err := s.ListEvents(context.Background(), invoice.EventFilter{Limit: 1})
	if err != nil || len(first) != 1 {
		t.Fatalf("first page: %v %v", first, err)
	}
	_, cursor, _, _ := s.ListEvents(context.Background(), invoice.EventFilter{Limit: 1})

	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = &raceTracer{match: "ORDER BY e.xid, e.seq LIMIT", hook: func() { purgeAll(t, s) }}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	evs, _, _, err := postgres.NewStore(pool).ListEvents(context.Background(), invoice.EventFilter{After: cursor, Limit: 10})
	if !errors.Is(err, invoice.ErrCursorExpired) {
		t.Fatalf("a page read while the purge removed what follows the cursor: %d events, error %v — want ErrCursorExpired", len(evs), err)
	}
}
