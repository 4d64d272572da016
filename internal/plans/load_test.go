package plans_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// invoicesLoaded is the volume: a year of a modest merchant, about 550 invoices a day. It is enough
// for the planner to prefer an index wherever one serves, and loads in seconds with set-based SQL.
const invoicesLoaded = 200_000

// loadStep is one set-based statement of the load; the name is what the log says it did.
type loadStep struct {
	name string
	sql  string
}

// yearOfTraffic is the load: a year of invoices in the proportions production has, and everything
// they leave behind — payments, history, notifications (their bodies thinned after 90 days), attention
// items, events with their deliveries and attempts — written straight in SQL from generate_series.
// Invoice g of N was created (N-g)/N of a year ago, so keys and times grow together as they do in
// production; the tables are read in the order they were written (no ORDER BY: sorting the wide rows
// would cost more than writing them), so each table's key follows time as well. @n is N, @env the DOKU
// environment the drive's service records on its invoices, @endpoint the endpoint it delivers to.
//
// It is deliberately the worst case for the tables the purge keeps small: events, deliveries and
// attempts are kept for the whole year (a purge that fell behind, or longer retention windows), not
// only for EVENTS_RETENTION.
var yearOfTraffic = []loadStep{
	{"invoices", `
		INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, customer_email, expires_in_minutes,
			reusable, info, receipt_footer, metadata, doku_request_id, doku_request_body, doku_env, payment_code,
			how_to_pay_page, how_to_pay_api, expires_at, paid_at, failure_code, failure_message, created_at, updated_at,
			issue_attempts, next_issue_at, next_check_at, check_attempts, last_synced_at, cancelled_at, cancel_reason)
		SELECT 'LOAD-' || lpad(g::text, 7, '0'), ch, amount, st, 'Customer ' || g, 'customer' || g || '@example.com', minutes,
			reusable, 'Online purchase', CASE WHEN ch = 'alfa' THEN 'Thank you for shopping' ELSE '' END,
			CASE WHEN g % 2 = 0 THEN jsonb_build_object('order_id', 'ORD-' || g, 'segment', 'retail') END,
			'load-req-' || g,
			convert_to('{"order":{"invoice_number":"LOAD-' || lpad(g::text, 7, '0') || '","amount":' || amount || '},"virtual_account_info":'
				|| '{"expired_time":' || minutes || ',"reusable_status":' || reusable || ',"info":"Online purchase"},'
				|| '"customer":{"name":"Customer ' || g || '","email":"customer' || g || '@example.com"},"online_to_offline_info":'
				|| '{"receipt_footer":"Thank you for shopping"},"padding":"' || repeat('x', 120) || '"}', 'UTF8'),
			CASE WHEN created > now() - interval '180 days' OR st IN ('creating', 'pending') OR reusable THEN @env END,
			code, CASE WHEN code IS NOT NULL THEN 'https://doku.example/how-to-pay/' || code ELSE '' END,
			CASE WHEN code IS NOT NULL THEN 'https://doku.example/how-to-pay-api/' || code ELSE '' END,
			CASE WHEN code IS NOT NULL THEN created + minutes * interval '1 minute' END,
			CASE WHEN st = 'paid' THEN created + interval '20 minutes' END,
			CASE WHEN st = 'failed' THEN 'doku_rejected' ELSE '' END,
			CASE WHEN st = 'failed' THEN 'Invalid customer email' ELSE '' END,
			created, created + interval '20 minutes', 1, created + interval '10 seconds',
			-- Pending invoices are checked on their schedule (a few due now); paid reusable codes until
			-- their expiry and the reconcile window after it; every other invoice is final.
			CASE WHEN st = 'pending' THEN now() + ((g % 120) - 6) * interval '1 minute'
				WHEN reusable AND st = 'paid' AND created > now() - interval '37 days' THEN now() + (g % 360) * interval '1 minute' END,
			g % 6, CASE WHEN g % 200 = 0 THEN created + interval '2 hours' END,
			CASE WHEN st = 'cancelled' THEN created + interval '5 minutes' END,
			CASE WHEN st = 'cancelled' THEN 'the customer cancelled the order' ELSE '' END
		FROM generate_series(1, @n::int) g,
			LATERAL (SELECT now() - (@n - g) * (interval '365 days' / @n) AS created,
				CASE WHEN g % 3 = 0 THEN 'indomaret' ELSE 'alfa' END AS ch,
				10000 + (g % 97) * 2500 AS amount,
				g % 100 >= 97 AS reusable,
				CASE WHEN g % 100 >= 97 THEN 43200 ELSE 1440 END AS minutes,
				-- The newest few are being issued; about the last day's are pending (or paid); the rest
				-- are 80 % paid, 10 % expired, 5 % cancelled, 2 % failed, 3 % paid reusable codes.
				CASE WHEN g > @n - 5 THEN 'creating'
					WHEN g > @n - 600 AND g % 2 = 0 THEN 'pending'
					WHEN g % 100 < 80 OR g % 100 >= 97 THEN 'paid'
					WHEN g % 100 < 90 THEN 'expired'
					WHEN g % 100 < 95 THEN 'cancelled'
					ELSE 'failed' END AS st) x,
			LATERAL (SELECT CASE WHEN st IN ('creating', 'failed') THEN NULL
				ELSE CASE ch WHEN 'alfa' THEN '8888' ELSE '7777' END || lpad(g::text, 12, '0') END AS code) y`},

	// One payment per paid invoice; three for a reusable code, two for one invoice in 500 (a second
	// payment of a single-use code).
	{"payments", `
		INSERT INTO payments (invoice_id, dedupe_key, amount, paid_at, source, doku_request_id, identifiers, created_at)
		SELECT i.id, 'trx:TRX-' || i.id || '-' || k, i.amount, i.paid_at + (k - 1) * interval '3 days',
			CASE WHEN i.id % 50 = 0 THEN 'reconciler' ELSE 'webhook' END, 'notif-' || i.id || '-' || k,
			jsonb_build_object('AGENT_TRX_ID', 'TRX-' || i.id || '-' || k, 'STORE_ID', 'S' || (i.id % 3000),
				'STORE_NAME', 'Store ' || (i.id % 3000)),
			i.paid_at + (k - 1) * interval '3 days'
		FROM invoices i, generate_series(1, CASE WHEN i.reusable THEN 3 WHEN i.id % 500 = 0 THEN 2 ELSE 1 END) k
		WHERE i.status = 'paid' AND i.invoice_number LIKE 'LOAD-%'`},

	// The history: created, issued (pending), and how it ended — for a paid invoice, DOKU's
	// notification and the status it brought.
	{"invoice_events", `
		INSERT INTO invoice_events (invoice_id, at, source, kind, from_status, to_status, detail)
		SELECT i.id, i.created_at + k * interval '4 minutes', CASE WHEN k >= 3 AND i.status = 'paid' THEN 'webhook' ELSE 'api' END,
			CASE WHEN k = 1 THEN 'created' WHEN k = 3 AND i.status = 'paid' THEN 'notification' ELSE 'status_changed' END,
			CASE WHEN k = 2 THEN 'creating' WHEN k >= 3 AND NOT (k = 3 AND i.status = 'paid') THEN 'pending' END,
			CASE WHEN k = 1 THEN 'creating' WHEN k = 2 AND i.status = 'failed' THEN 'failed' WHEN k = 2 THEN 'pending'
				WHEN k = 3 AND i.status = 'paid' THEN NULL ELSE i.status END,
			CASE WHEN k = 1 THEN jsonb_build_object('doku_request_id', i.doku_request_id)
				WHEN k = 3 AND i.status = 'paid' THEN jsonb_build_object('outcome', 'applied', 'doku_status', 'SUCCESS')
				ELSE '{}'::jsonb END
		FROM invoices i, generate_series(1, CASE i.status WHEN 'creating' THEN 1 WHEN 'failed' THEN 2 WHEN 'pending' THEN 2
			WHEN 'paid' THEN 4 ELSE 3 END) k
		WHERE i.invoice_number LIKE 'LOAD-%'`},

	// DOKU's notifications: one per payment (one in twenty delivered twice), a few duplicates, amounts
	// that did not match, invoices of another system and bodies we could not read. Raw bodies older
	// than 90 days are thinned to their digest.
	{"notifications", `
		INSERT INTO notifications (doku_request_id, invoice_number, invoice_id, headers, body, body_sha256, outcome,
			deliveries, received_at, last_received_at, body_thinned_at)
		SELECT n.req, n.number, n.invoice_id,
			jsonb_build_object('Client-Id', 'MCH-0001-10791114622547', 'Request-Id', n.req,
				'Request-Timestamp', to_char(n.at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'Signature', 'HMACSHA256=' || md5(n.req)),
			CASE WHEN n.at < now() - interval '90 days' THEN ''::bytea
				ELSE convert_to('{"order":{"invoice_number":"' || n.number || '","amount":' || n.amount || '},'
					|| '"online_to_offline_info":{"payment_code":"8888000000000000","store_name":"Store 1"},'
					|| '"transaction":{"status":"SUCCESS","date":"' || n.at || '","original_request_id":"' || n.req || '"},'
					|| '"padding":"' || repeat('x', 150) || '"}', 'UTF8') END,
			sha256(convert_to(n.req, 'UTF8')), n.outcome, CASE WHEN n.seq % 20 = 0 THEN 2 ELSE 1 END, n.at, n.at,
			CASE WHEN n.at < now() - interval '90 days' THEN n.at + interval '91 days' END
		FROM (
			SELECT p.doku_request_id AS req, i.invoice_number AS number, i.id AS invoice_id, p.amount, p.paid_at AS at,
				CASE WHEN p.dedupe_key LIKE '%-1' THEN 'applied' ELSE 'identified' END AS outcome, p.id AS seq
			FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE i.invoice_number LIKE 'LOAD-%'
			UNION ALL
			SELECT 'dup-' || i.id, i.invoice_number, i.id, i.amount, i.paid_at + interval '1 hour', 'duplicate', i.id
			FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.status = 'paid' AND i.id % 50 = 3
			UNION ALL
			SELECT 'mismatch-' || i.id, i.invoice_number, i.id, i.amount - 1000, i.created_at + interval '15 minutes',
				'amount_mismatch', i.id
			FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.id % 200 = 7
			UNION ALL
			SELECT 'unknown-' || k, 'ELSEWHERE-' || k, NULL, 50000, now() - k * interval '1 day', 'unknown_invoice', k
			FROM generate_series(1, 300) k
			UNION ALL
			SELECT 'junk-' || k, '', NULL, 0, now() - k * interval '12 days', 'malformed', k
			FROM generate_series(1, 30) k
			ORDER BY at) n`},

	// The attention queue: every case once, resolved by a person within a day, except the last ten
	// days' (still open).
	{"attention_items", `
		INSERT INTO attention_items (key, reason, invoice_id, invoice_number, source, evidence, state, created_at,
			resolved_at, resolved_by, note)
		SELECT a.key, a.reason, a.invoice_id, a.number, a.source, jsonb_build_object('doku_request_id', a.key, 'evidence', 'load'),
			CASE WHEN a.at > now() - interval '10 days' THEN 'open' ELSE 'resolved' END, a.at,
			CASE WHEN a.at > now() - interval '10 days' THEN NULL ELSE a.at + interval '1 day' END,
			CASE WHEN a.at > now() - interval '10 days' THEN '' ELSE 'ops' END,
			CASE WHEN a.at > now() - interval '10 days' THEN '' ELSE 'settled with the customer' END
		FROM (
			SELECT 'notification:' || n.doku_request_id AS key,
				CASE n.outcome WHEN 'amount_mismatch' THEN 'amount_mismatch' WHEN 'unknown_invoice' THEN 'unknown_invoice'
					ELSE 'unreadable_notification' END AS reason,
				n.invoice_id, n.invoice_number AS number, 'webhook' AS source, n.received_at AS at
			FROM notifications n WHERE n.outcome IN ('amount_mismatch', 'unknown_invoice', 'malformed') AND n.doku_request_id NOT LIKE 'req-plan-%'
			UNION ALL
			SELECT 'second_payment:' || i.id, 'second_payment', i.id, i.invoice_number, 'webhook', i.paid_at + interval '3 days'
			FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.status = 'paid' AND NOT i.reusable AND i.id % 500 = 0
			UNION ALL
			SELECT 'stuck_creating:' || i.invoice_number, 'stuck_creating', i.id, i.invoice_number, 'resumer', i.created_at + interval '1 hour'
			FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.status = 'creating'
			ORDER BY at) a`},

	// The outbox: pending then paid (with its payment), expired, cancelled or failed, as each invoice
	// went; one transaction id per change.
	{"events", `
		INSERT INTO events (id, type, invoice_id, invoice_number, created_at, xid, data)
		SELECT 'evt_' || lpad(to_hex(i.id * 16 + k), 32, '0'), e.type, i.id, i.invoice_number,
			i.created_at + k * interval '10 minutes', (1000 + 2 * i.id + CASE WHEN k > 1 THEN 1 ELSE 0 END)::text::xid8,
			('{"invoice":{"invoice_number":"' || i.invoice_number || '","status":"' || i.status || '","channel":"' || i.channel
				|| '","amount":' || i.amount || ',"currency":"IDR","payment_code":"' || coalesce(i.payment_code, '')
				|| '","customer":{"name":"' || i.customer_name || '","email":"' || i.customer_email || '"},'
				|| '"expires_at":"' || coalesce(i.expires_at::text, '') || '"}}')::json
		FROM invoices i,
			LATERAL (SELECT CASE i.status WHEN 'paid' THEN ARRAY['invoice.pending', 'payment.recorded', 'invoice.paid']
				WHEN 'expired' THEN ARRAY['invoice.pending', 'invoice.expired']
				WHEN 'cancelled' THEN ARRAY['invoice.pending', 'invoice.cancelled']
				WHEN 'failed' THEN ARRAY['invoice.failed']
				WHEN 'pending' THEN ARRAY['invoice.pending']
				ELSE ARRAY[]::text[] END AS types) t,
			LATERAL unnest(t.types) WITH ORDINALITY AS e(type, k)
		WHERE i.invoice_number LIKE 'LOAD-%'`},

	{"webhook_endpoints", `
		INSERT INTO webhook_endpoints (name, url, active, removed_at, enabled_at, updated_at)
		VALUES ('legacy', 'https://legacy.example/hooks', false, now() - interval '300 days', now() - interval '365 days',
			now() - interval '300 days')
		ON CONFLICT (name) DO NOTHING`},

	// A delivery per event to the endpoint, and to a removed one for the first tenth of the year: all
	// delivered but one in a hundred dead, and the last two hours' pending (some failing now).
	{"webhook_deliveries", `
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number, state, attempts, next_attempt_at, created_at, finished_at)
		SELECT e.seq, ep.name, e.invoice_number, s.state,
			CASE s.state WHEN 'delivered' THEN 1 WHEN 'dead' THEN 15 ELSE (e.seq % 3)::int END,
			CASE WHEN s.state = 'pending' THEN now() + ((e.seq % 10) - 3) * interval '1 minute' ELSE e.created_at END,
			e.created_at,
			CASE s.state WHEN 'delivered' THEN e.created_at + interval '1 second' WHEN 'dead' THEN e.created_at + interval '3 days' END
		FROM events e
			JOIN webhook_endpoints ep ON ep.name = @endpoint OR (ep.name = 'legacy' AND e.created_at < now() - interval '330 days'),
			LATERAL (SELECT CASE WHEN ep.name = @endpoint AND e.created_at > now() - interval '2 hours' THEN 'pending'
				WHEN e.seq % 97 = 0 THEN 'dead' ELSE 'delivered' END AS state) s
		WHERE e.invoice_number LIKE 'LOAD-%'`},

	{"webhook_attempts", `
		INSERT INTO webhook_attempts (event_seq, endpoint, at, status, latency_ms, error)
		SELECT d.event_seq, d.endpoint, d.created_at + (k - 1) * interval '5 hours',
			CASE WHEN d.state = 'delivered' THEN 204 WHEN k % 3 = 0 THEN NULL ELSE 500 END,
			40 + (d.event_seq % 200)::int, CASE WHEN d.state <> 'delivered' AND k % 3 = 0 THEN 'timeout' ELSE '' END
		FROM webhook_deliveries d, generate_series(1, d.attempts) k
		WHERE d.invoice_number LIKE 'LOAD-%'`},

	// Stream tokens and watches of the last day's checkouts: what their garbage collection leaves.
	{"stream_tokens", `
		INSERT INTO stream_tokens (digest, invoice_id, expires_at, revoked_at)
		SELECT sha256(convert_to('token-' || i.id, 'UTF8')), i.id, i.created_at + interval '1 hour',
			CASE WHEN i.id % 10 = 0 THEN i.created_at + interval '30 minutes' END
		FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.created_at > now() - interval '1 day'`},
	{"stream_watches", `
		INSERT INTO stream_watches (invoice_number, until)
		SELECT i.invoice_number, now() + (i.id % 30 - 10) * interval '1 minute'
		FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.created_at > now() - interval '1 hour'
		ON CONFLICT (invoice_number) DO NOTHING`},

	// DOKU's how-to-pay instructions, kept for the invoices whose payment page was opened: a third of
	// the last three months'.
	{"payment_instructions", `
		INSERT INTO payment_instructions (invoice_id, source, body, fetched_at)
		SELECT i.id, 'doku', ('[{"title":"Di kasir","steps":["Sebutkan kode ' || i.payment_code || '","Bayar ' || i.amount
			|| '","Simpan struk"]}]')::json, i.created_at + interval '1 minute'
		FROM invoices i WHERE i.invoice_number LIKE 'LOAD-%' AND i.payment_code IS NOT NULL AND i.id % 3 = 0
		  AND i.created_at > now() - interval '90 days'`},

	// Where the purge got to: notification bodies thinned up to 90 days ago.
	{"purge_marks", `
		INSERT INTO purge_marks (name, seq, at)
		SELECT 'notifications', max(id), now() FROM notifications WHERE body_thinned_at IS NOT NULL
		ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`},
}

// loadChains is the order of the load after the invoices, which everything refers to: three chains
// that depend on nothing of each other's, each run on a connection of its own, side by side.
var loadChains = [][]string{
	{"payments", "notifications", "attention_items", "stream_tokens", "stream_watches", "payment_instructions", "purge_marks"},
	{"invoice_events"},
	{"events", "webhook_endpoints", "webhook_deliveries", "webhook_attempts"},
}

// load writes the year into the drive's database and has the planner's statistics and the visibility
// map brought up to date, as autovacuum keeps them in production (the visibility map is what makes an
// index-only scan cheap).
func load(t *testing.T, pool *pgxpool.Pool, env string) {
	t.Helper()
	start := time.Now()
	steps := map[string]loadStep{}
	for _, st := range yearOfTraffic {
		steps[st.name] = st
	}
	var mu sync.Mutex
	var took []string
	run := func(names []string, vacuum []string) error {
		ctx := context.Background()
		conn, release, err := bulkSession(ctx, pool)
		if err != nil {
			return err
		}
		defer release()
		for _, name := range names {
			stepStart := time.Now()
			tag, err := conn.Exec(ctx, steps[name].sql, pgx.NamedArgs{"n": invoicesLoaded, "env": env, "endpoint": endpointName})
			if err != nil {
				return fmt.Errorf("load %s: %w", name, err)
			}
			mu.Lock()
			took = append(took, fmt.Sprintf("%s %d rows %s", name, tag.RowsAffected(), time.Since(stepStart).Round(time.Millisecond)))
			mu.Unlock()
		}
		for _, table := range vacuum {
			if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
				return fmt.Errorf("vacuum %s: %w", table, err)
			}
		}
		return nil
	}
	// The secondary indexes of the growing tables are built after the load, not entry by entry during
	// it: a bulk build costs a fraction of as many inserts. Each is built again from its own definition
	// (pg_get_indexdef), so the indexes the plans see are the schema's. The unique ones stay: they are
	// constraints, and rows are checked against them as in production.
	secondary := secondaryIndexes(t, pool)
	for _, ix := range secondary {
		if _, err := pool.Exec(context.Background(), "DROP INDEX "+pgx.Identifier{ix.name}.Sanitize()); err != nil {
			t.Fatalf("drop %s for the load: %v", ix.name, err)
		}
	}
	if err := run([]string{"invoices"}, nil); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(loadChains))
	for _, chain := range loadChains {
		go func() { errs <- run(chain, nil) }()
	}
	for range loadChains {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	indexStart := time.Now()
	build := make(chan index)
	for range 2 {
		go func() {
			conn, release, err := bulkSession(context.Background(), pool)
			if err == nil {
				defer release()
			}
			for ix := range build {
				if err == nil {
					_, err = conn.Exec(context.Background(), ix.def)
				}
				errs <- err
			}
		}()
	}
	go func() {
		for _, ix := range secondary {
			build <- ix
		}
		close(build)
	}()
	for _, ix := range secondary {
		if err := <-errs; err != nil {
			t.Fatalf("build the indexes again (%s among them): %v", ix.name, err)
		}
	}
	indexesTook := time.Since(indexStart)
	vacuumStart := time.Now()
	for i, chain := range loadChains {
		vacuum := chain
		if i == 1 {
			vacuum = append([]string{"invoices"}, chain...)
		}
		go func() { errs <- run(nil, vacuum) }()
	}
	for range loadChains {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	vacuumTook := time.Since(vacuumStart)
	// What the drive alone wrote: statistics for the small tables too.
	if err := run(nil, []string{"worker_leases", "goose_db_version"}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(took)
	t.Logf("loaded a year (%d invoices) in %s: %s; %d indexes built in %s; VACUUM (ANALYZE) %s", invoicesLoaded,
		time.Since(start).Round(time.Millisecond), strings.Join(took, "; "), len(secondary), indexesTook.Round(time.Millisecond),
		vacuumTook.Round(time.Millisecond))
}

// bulkSession is a connection of pool set for a bulk load of a test database, and what gives it back
// as it was: nothing is lost by not waiting for each commit's flush, a large load or index build must
// not hit the pool's statement timeout, and an index build sorts in memory. The foreign keys' triggers
// are off where the server lets this user turn them off (session_replication_role needs a superuser,
// as the tests' default server user is): the load's rows refer to rows it wrote before, by
// construction, and checking each of millions of references, locking the row referred to, was most
// of the load's time.
func bulkSession(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Conn, func(), error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	release := func() {
		// The pool's other users (the EXPLAINs) get the session as the pool made it.
		if _, err := conn.Exec(context.Background(), "RESET ALL"); err != nil {
			// One that cannot be reset is closed: the pool drops it instead of handing it out.
			_ = conn.Conn().PgConn().Close(context.Background())
		}
		conn.Release()
	}
	sets := []string{"SET synchronous_commit = off", "SET statement_timeout = 0", "SET maintenance_work_mem = '128MB'"}
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		release()
		return nil, nil, err
	}
	if super {
		sets = append(sets, "SET session_replication_role = replica")
	}
	for _, set := range sets {
		if _, err := conn.Exec(ctx, set); err != nil {
			release()
			return nil, nil, err
		}
	}
	return conn, release, nil
}

// index is an index and the statement that builds it.
type index struct{ name, def string }

// secondaryIndexes are the indexes of the growing tables that back no constraint.
func secondaryIndexes(t *testing.T, pool *pgxpool.Pool) []index {
	t.Helper()
	tables := make([]string, 0, len(growingTables))
	for table := range growingTables {
		tables = append(tables, table)
	}
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x
			JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class tb ON tb.oid = x.indrelid
			JOIN pg_namespace n ON n.oid = tb.relnamespace
		WHERE n.nspname = current_schema() AND tb.relname = ANY($1)
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
		ORDER BY c.relname`, tables)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		err := r.Scan(&ix.name, &ix.def)
		return ix, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
