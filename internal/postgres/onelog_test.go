package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/postgres"
	"github.com/merchant/o2o/migrations"
)

// migrateThrough applies the committed migrations up to and including version last.
func migrateThrough(t *testing.T, pool *pgxpool.Pool, last int) {
	t.Helper()
	fsys := fstest.MapFS{}
	names, _ := fs.Glob(migrations.FS, "*.sql")
	for _, n := range names {
		var v int
		if _, err := fmt.Sscanf(n, "%05d_", &v); err != nil || v > last {
			continue
		}
		raw, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			t.Fatal(err)
		}
		fsys[n] = &fstest.MapFile{Data: raw}
	}
	m, err := postgres.NewMigratorFS(pool, fsys)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate through %05d: %v", last, err)
	}
}

func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// legacyChange is what the release before the one log writes for a change: under the invoice's row
// lock, history rows in invoice_events (its statement, word for word).
func legacyChange(ctx context.Context, pool *pgxpool.Pool, number string, kinds ...string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var id int64
	if err := tx.QueryRow(ctx, `SELECT id FROM invoices WHERE invoice_number = $1 FOR UPDATE`, number).Scan(&id); err != nil {
		return err
	}
	n := len(kinds)
	at, source, from, to, detail := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range kinds {
		at[i], source[i], detail[i] = time.Now().UTC(), "reconciler", `{"written_by":"the release before"}`
	}
	if _, err := tx.Exec(ctx, `
	INSERT INTO invoice_events (invoice_id, at, source, kind, from_status, to_status, detail)
	SELECT $1, at, source, kind, nullif(from_s, ''), nullif(to_s, ''), detail::jsonb
	FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
		AS e(at, source, kind, from_s, to_s, detail)`, id, at, source, kinds, from, to, detail); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// The history recorded before the one log moves into it with migration 00021, in batches, while the
// release before keeps writing (as it does while the new release rolls out): every invoice's history
// reads the same before and after, what the release before wrote during the move is read in its
// place, and no change of the release before waits on the move.
func TestHistoryMovesIntoTheLogWhileTheReleaseBeforeWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := pgtest.NewEmpty(t)
	pool := openPool(t, url)
	migrateThrough(t, pool, 20)

	// 20,000 invoices of the release before, each with its history: created, the generate call, pending;
	// four in five paid (notification, payment, paid).
	const invoices = 20000
	seedStart := time.Now()
	for i, q := range []string{`
		INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id,
			doku_request_body, payment_code, paid_at, created_at)
		SELECT format('INV-%s', lpad(g::text, 6, '0')), 'alfa', 150000, CASE WHEN g % 5 = 0 THEN 'pending' ELSE 'paid' END,
			'A', 60, format('req-%s', g), '\x7b7d', format('8888%s', lpad(g::text, 12, '0')),
			CASE WHEN g % 5 = 0 THEN NULL ELSE timestamptz '2026-01-01' + g * interval '1 minute' + interval '10 minutes' END,
			timestamptz '2026-01-01' + g * interval '1 minute'
		FROM generate_series(1, $1) g`, `
		INSERT INTO invoice_events (invoice_id, at, source, kind, from_status, to_status, detail)
		SELECT i.id, i.created_at + k.n * interval '1 second', k.source, k.kind, k.from_s, k.to_s,
			jsonb_build_object('step', k.n, 'invoice', i.invoice_number)
		FROM invoices i, (VALUES (0, 'api', 'created', NULL, 'creating'), (1, 'api', 'doku_generate', NULL, NULL),
			(2, 'api', 'status_changed', 'creating', 'pending'), (3, 'webhook', 'notification', NULL, NULL),
			(4, 'webhook', 'payment_recorded', NULL, NULL), (5, 'webhook', 'status_changed', 'pending', 'paid'))
			AS k(n, source, kind, from_s, to_s)
		WHERE k.n < 3 OR i.status = 'paid'
		ORDER BY i.id, k.n`} {
		var args []any
		if i == 0 {
			args = append(args, invoices)
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	var legacy int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM invoice_events WHERE kind <> 'created'`).Scan(&legacy); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d invoices and %d history rows (besides their creation) in %s", invoices, legacy, time.Since(seedStart).Round(time.Millisecond))

	store := postgres.NewStore(pool)
	sample := []string{"INV-000001", "INV-000005", "INV-010000", "INV-020000"}
	read := func() map[string][]invoice.Event {
		out := map[string][]invoice.Event{}
		for _, n := range sample {
			evs, err := store.Events(ctx, n)
			if err != nil {
				t.Fatalf("history of %s: %v", n, err)
			}
			out[n] = evs
		}
		return out
	}
	before := read()
	if got := len(before["INV-000001"]); got != 6 {
		t.Fatalf("INV-000001's history, read by this release from the release before's rows: %d items, want 6", got)
	}

	// The release before, still running: changes to the sampled invoices, each under the row lock.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var waits []time.Duration
	written := map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := sample[i%len(sample)]
			start := time.Now()
			if err := legacyChange(ctx, pool, n, "doku_check", "notification"); err != nil {
				t.Errorf("a change by the release before: %v", err)
				return
			}
			mu.Lock()
			waits, written[n] = append(waits, time.Since(start)), written[n]+2
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	moveStart := time.Now()
	migrateThrough(t, pool, 21)
	took := time.Since(moveStart)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()

	slices.Sort(waits)
	if len(waits) < 10 {
		t.Fatalf("the release before made only %d changes while the move ran", len(waits))
	}
	longest := waits[len(waits)-1]
	t.Logf("moved in %s; %d changes of the release before meanwhile, the longest %s (median %s)", took.Round(time.Millisecond),
		len(waits), longest.Round(time.Microsecond), waits[len(waits)/2].Round(time.Microsecond))
	if longest > time.Second {
		t.Errorf("a change of the release before waited %s during the move", longest)
	}

	// Everything there when the move started is in the log; what the release before wrote during the
	// move is read where it is.
	var entries, items, left int
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(json_array_length(history)), 0) FROM events WHERE type = 'history'`).Scan(&entries, &items); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM invoice_events`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range written {
		total += n
	}
	t.Logf("the log holds %d history entries with %d items; %d rows written by the release before remain", entries, items, left)
	if items+left != legacy+total {
		t.Errorf("%d items moved and %d rows left, want %d history rows in all (%d seeded, %d written during the move)",
			items, left, legacy+total, legacy, total)
	}
	if left >= total+1 || items < legacy {
		t.Errorf("the move left %d of the seeded rows behind", left-total)
	}
	after := read()
	for _, n := range sample {
		b, a := before[n], after[n]
		if len(a) != len(b)+written[n] {
			t.Errorf("%s: %d items after, want %d before and %d written during the move", n, len(a), len(b), written[n])
			continue
		}
		for i := range b {
			if !sameEvent(a[i], b[i]) {
				t.Errorf("%s item %d: %+v after the move, %+v before", n, i, a[i], b[i])
			}
		}
		for i, e := range a[len(b):] {
			if e.Detail["written_by"] != "the release before" || (i > 0 && e.At.Before(a[len(b)+i-1].At)) {
				t.Errorf("%s: item %d of the release before: %+v", n, len(b)+i, e)
			}
		}
	}
}

func sameEvent(a, b invoice.Event) bool {
	return a.At.Equal(b.At) && a.Source == b.Source && a.Kind == b.Kind && a.From == b.From && a.To == b.To &&
		fmt.Sprint(a.Detail) == fmt.Sprint(b.Detail)
}

// The statements of the release before the one log that read events in bulk, word for word (its
// internal/postgres/events.go: ListEvents without filters, InvoiceEvents). While this release rolls
// out, that release still serves: it must never meet a history entry, whose id, feed position,
// invoice number and payload are NULL and which it would fail to scan. (GetEvent and Redeliver find
// an event by its id, which a history entry has not. A thinned event exists only EVENTS_RETENTION after
// this release wrote it, long after the rollout: the release before never meets one either.)
const releaseBeforeColumns = `e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, e.xid::text::bigint AS xid,
	coalesce((SELECT json_agg(json_build_object('endpoint', d.endpoint, 'state', d.state, 'attempts', d.attempts,
		'next_attempt_at', d.next_attempt_at, 'finished_at', d.finished_at,
		'tries', coalesce((SELECT json_agg(json_build_object('at', a.at, 'status', a.status, 'latency_ms', a.latency_ms,
			'error', a.error) ORDER BY a.id) FROM webhook_attempts a WHERE a.event_seq = d.event_seq AND a.endpoint = d.endpoint), '[]'))
		ORDER BY d.endpoint) FROM webhook_deliveries d WHERE d.event_seq = e.seq), '[]') AS deliveries`

const releaseBeforeHorizon = `
	SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot())) AS xid
	FROM pg_snapshot_xip(pg_current_snapshot()) AS x
	WHERE NOT EXISTS (
		SELECT 1 FROM pg_stat_activity a
		WHERE a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND a.backend_xid::text::bigint = x::text::bigint % 4294967296)
	  AND NOT EXISTS (
		SELECT 1 FROM pg_prepared_xacts p
		WHERE p.database <> current_database() AND p.transaction::text::bigint = x::text::bigint % 4294967296)`

var releaseBefore = map[string]string{
	"ListEvents": `
		WITH h AS (` + releaseBeforeHorizon + `)
		SELECT ` + releaseBeforeColumns + ` FROM events e, h
		WHERE e.xid < h.xid AND (e.xid, e.seq) > ($1::bigint::text::xid8, $2::bigint)
		ORDER BY e.xid, e.seq LIMIT 100`,
	"InvoiceEvents": `
		SELECT e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, e.xid::text::bigint AS xid, '[]'::json AS deliveries
		FROM events e WHERE e.invoice_number = $1 AND e.seq > $2 ORDER BY e.seq`,
}

// What the release before does with events, run on this release's log: every row it reads has each
// column it scans into a non-nullable Go value (its eventRow), and its purge, run right after this
// release wrote, removes no history.
func TestReleaseBeforeNeverSeesHistoryEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	store := postgres.NewStore(db.Pool)

	// This release writes: an invoice issued (its pending event carries the history of the call), and
	// a status check that changed nothing (a history entry).
	issued(t, store, "INV-BEFORE")
	if _, err := store.Update(ctx, "INV-BEFORE", func(i *invoice.Invoice) error {
		i.Record(invoice.Event{Source: invoice.SourceReconciler, Kind: invoice.EventDokuCheck, Detail: map[string]any{"result": "no news"}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var history, public int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE type = 'history'), count(*) FILTER (WHERE type <> 'history') FROM events`).
		Scan(&history, &public); err != nil || history != 1 || public != 1 {
		t.Fatalf("this release wrote %d history entries and %d events (%v), want the check's and the pending one", history, public, err)
	}

	for name, q := range releaseBefore {
		args := []any{int64(0), int64(0)}
		if name == "InvoiceEvents" {
			args = []any{"INV-BEFORE", int64(0)}
		}
		rows, err := db.Pool.Query(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The release before's eventRow: none of these may be NULL.
		type eventRow struct {
			Seq           int64
			ID            string
			Type          string
			InvoiceNumber string
			CreatedAt     time.Time
			Data          []byte
			Xid           int64
			Deliveries    []any
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[eventRow])
		if err != nil {
			t.Errorf("%s: the release before cannot read the log: %v", name, err)
			continue
		}
		if len(got) != 1 || got[0].Type != "invoice.pending" || got[0].Data == nil {
			t.Errorf("%s: the release before reads %+v, want the pending event alone", name, got)
		}
	}

	// Its purge (its statement's condition, EVENTS_RETENTION 30 days) deletes nothing just written.
	tag, err := db.Pool.Exec(ctx, `DELETE FROM events e WHERE e.created_at < now() - interval '30 days'
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = e.seq)`)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("the release before's purge deleted %d rows (%v)", tag.RowsAffected(), err)
	}
}
