package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// The purge keeps the tables that grow with traffic bounded (deploy/RUNBOOK.md, "Data lifecycle"). Each step is
// one statement over at most a batch of rows taken in key order from a position (a batch of
// deliveries takes their attempts with them: as many as the retries made), so no statement holds
// locks on more than a batch, whatever the table's size; a run is many such statements, and one that
// stops half way (a crash, a shutdown) leaves nothing half done.

// TakeLease takes (or renews) the lease of job name for holder until lease from now, on the
// database's clock, and reports whether holder has it: another holder's lease that has not run out
// is left alone.
func (s *Store) TakeLease(ctx context.Context, name, holder string, lease time.Duration) (bool, error) {
	var got bool
	err := s.pool.QueryRow(ctx, `
		INSERT INTO worker_leases AS l (name, holder, until) VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE l.until < now() OR l.holder = excluded.holder
		RETURNING true`, name, holder, lease.Microseconds()).Scan(&got)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	return got, classify(err)
}

// ReleaseLease gives up holder's lease of job name, if it still has it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.pool.Exec(ctx, `UPDATE worker_leases SET until = now() WHERE name = $1 AND holder = $2`, name, holder)
	return classify(err)
}

// PurgeDeliveries removes, among the next batch of deliveries after position from (in key order),
// those delivered before delivered, those dead since before dead, and those to an endpoint removed
// through the API whose events are older than delivered — each with its attempts. It returns how many
// of each it removed, where the batch ended (the next call's from), and whether the walk is done: no
// delivery was left, or the batch reached events created after both cutoffs. (Events are numbered as
// they are written, so their creation times follow the key, give or take a transaction's length; a
// delivery's own times do not: a redelivery renews them.)
func (s *Store) PurgeDeliveries(ctx context.Context, from invoice.DeliveryKey, delivered, dead time.Time, batch int) (invoice.PurgeStep, invoice.DeliveryKey, error) {
	var step invoice.PurgeStep
	var lastSeq *int64
	var lastEndpoint *string
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `
		WITH scan AS (
			SELECT d.event_seq, d.endpoint, e.created_at,
				d.state = 'delivered' AND d.finished_at < @delivered
				OR d.state = 'dead' AND d.finished_at < @dead
				OR NOT ep.active AND e.created_at < @delivered AS gone
			FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.name = d.endpoint JOIN events e ON e.seq = d.event_seq
			WHERE (d.event_seq, d.endpoint) > (@seq, @endpoint) AND e.seq >= @seq
			ORDER BY d.event_seq, d.endpoint LIMIT @batch),
		attempts AS (
			DELETE FROM webhook_attempts a USING scan
			WHERE scan.gone AND a.event_seq = scan.event_seq AND a.endpoint = scan.endpoint
			RETURNING 1),
		deliveries AS (
			DELETE FROM webhook_deliveries d USING scan
			WHERE scan.gone AND d.event_seq = scan.event_seq AND d.endpoint = scan.endpoint
			RETURNING 1),
		tail AS (SELECT event_seq, endpoint FROM scan ORDER BY event_seq DESC, endpoint DESC LIMIT 1)
		SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts),
			(SELECT event_seq FROM tail), (SELECT endpoint FROM tail), (SELECT min(created_at) FROM scan)`,
		pgx.NamedArgs{"seq": from.EventSeq, "endpoint": from.Endpoint, "delivered": delivered, "dead": dead, "batch": batch}).
		Scan(&step.Deleted, &step.Related, &lastSeq, &lastEndpoint, &oldest)
	if err != nil {
		return step, from, classify(err)
	}
	if lastSeq == nil {
		step.Done = true
		return step, from, nil
	}
	// The oldest event of the batch is newer than both cutoffs: so is everything after it.
	step.Done = oldest != nil && !oldest.Before(delivered) && !oldest.Before(dead)
	return step, invoice.DeliveryKey{EventSeq: *lastSeq, Endpoint: *lastEndpoint}, nil
}

// PurgeEvents purges, among the next batch of events still in the feed after position from (in feed
// order: every event the feed can show, and no other row of the log), those created before cutoff that
// no delivery waits for or keeps any more: an event carrying its change's history is thinned — its copy
// of the invoice and its feed position cleared, the history kept with the invoice for good — and one
// without is deleted. It records the largest feed position it purged (so that a feed cursor from before
// it expires instead of skipping) and returns how many it purged, where the batch ended, and whether
// the walk is done (no event left, or the batch reached events created after cutoff). A walk visits
// only what is still in the feed: what was purged before, and history entries, are never walked again.
func (s *Store) PurgeEvents(ctx context.Context, from invoice.FeedKey, cutoff time.Time, batch int) (invoice.PurgeStep, invoice.FeedKey, error) {
	var step invoice.PurgeStep
	var lastXid, lastSeq *int64
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `
		WITH scan AS (
			SELECT seq, xid, created_at, history IS NOT NULL AS has_history FROM events
			WHERE (xid, seq) > (@xid::bigint::text::xid8, @seq::bigint)
			ORDER BY xid, seq LIMIT @batch),
		gone AS (
			SELECT s.* FROM scan s
			WHERE s.created_at < @cutoff AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = s.seq)),
		del AS (
			DELETE FROM events e USING gone WHERE e.seq = gone.seq AND NOT gone.has_history
			RETURNING 1),
		thin AS (
			UPDATE events e SET data = NULL, xid = NULL FROM gone WHERE e.seq = gone.seq AND gone.has_history
			RETURNING 1),
		mark AS (
			INSERT INTO purge_marks AS m (name, xid, seq, at)
			SELECT 'events', xid, seq, now() FROM gone ORDER BY xid DESC, seq DESC LIMIT 1
			ON CONFLICT (name) DO UPDATE SET xid = excluded.xid, seq = excluded.seq, at = excluded.at
			WHERE (m.xid, m.seq) < (excluded.xid, excluded.seq)),
		tail AS (SELECT xid, seq FROM scan ORDER BY xid DESC, seq DESC LIMIT 1)
		SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM thin),
			(SELECT xid::text::bigint FROM tail), (SELECT seq FROM tail), (SELECT min(created_at) FROM scan)`,
		pgx.NamedArgs{"xid": from.Xid, "seq": from.Seq, "cutoff": cutoff, "batch": batch}).Scan(&step.Deleted, &lastXid, &lastSeq, &oldest)
	if err != nil {
		return step, from, classify(err)
	}
	if lastSeq == nil {
		step.Done = true
		return step, from, nil
	}
	step.Done = oldest != nil && !oldest.Before(cutoff)
	return step, invoice.FeedKey{Xid: *lastXid, Seq: *lastSeq}, nil
}

// ThinNotifications replaces the raw body of the next batch of notifications received before cutoff
// by nothing, keeping the digest (which still identifies a redelivery), the headers and what was
// parsed from it (the payment, the outcome). It walks the inbox by id from where the last call ended
// (kept in purge_marks, so a restart continues there) and stops at the first notification received
// after cutoff. It returns how many it thinned and whether it is done for now.
func (s *Store) ThinNotifications(ctx context.Context, cutoff time.Time, batch int) (invoice.PurgeStep, error) {
	var step invoice.PurgeStep
	var walked int
	err := s.pool.QueryRow(ctx, `
		WITH start AS (
			SELECT coalesce((SELECT seq FROM purge_marks WHERE name = 'notifications'), 0) AS id),
		scan AS (
			SELECT n.id, n.received_at < @cutoff AS old FROM notifications n, start
			WHERE n.id > start.id ORDER BY n.id LIMIT @batch),
		-- Only the run of old ones at the front: the mark must never pass a notification still recent.
		front AS (
			SELECT id FROM scan WHERE id < coalesce((SELECT min(id) FROM scan WHERE NOT old), 'infinity'::numeric)),
		thin AS (
			UPDATE notifications n SET body = ''::bytea, body_thinned_at = now() FROM front
			WHERE n.id = front.id AND n.body_thinned_at IS NULL
			RETURNING 1),
		mark AS (
			INSERT INTO purge_marks AS m (name, seq, at) SELECT 'notifications', max(id), now() FROM front HAVING count(*) > 0
			ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, at = excluded.at WHERE m.seq < excluded.seq)
		SELECT (SELECT count(*) FROM thin), (SELECT count(*) FROM front)`,
		pgx.NamedArgs{"cutoff": cutoff, "batch": batch}).Scan(&step.Deleted, &walked)
	if err != nil {
		return step, classify(err)
	}
	step.Done = walked < batch
	return step, nil
}

// TableSizes is, for each table that grows with traffic, its size on disk (indexes and TOAST
// included) and the planner's estimate of its rows: cheap enough to read at every scrape.
func (s *Store) TableSizes(ctx context.Context) ([]invoice.TableSize, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY($1)
		ORDER BY c.relname`, invoice.GrowingTables)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (invoice.TableSize, error) {
		var t invoice.TableSize
		err := r.Scan(&t.Table, &t.Bytes, &t.Rows)
		return t, err
	})
	return out, classify(err)
}
