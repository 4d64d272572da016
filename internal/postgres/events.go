package postgres

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// eventRow is an event as stored, with its deliveries and their attempts read as JSON in the same
// query.
type eventRow struct {
	Seq           int64         `db:"seq"`
	ID            string        `db:"id"`
	Type          string        `db:"type"`
	InvoiceNumber string        `db:"invoice_number"`
	CreatedAt     time.Time     `db:"created_at"`
	Data          []byte        `db:"data"`
	Deliveries    []deliveryRow `db:"deliveries"`
	Xid           int64         `db:"xid"`
}

type deliveryRow struct {
	Endpoint      string       `json:"endpoint"`
	State         string       `json:"state"`
	Attempts      int          `json:"attempts"`
	NextAttemptAt time.Time    `json:"next_attempt_at"`
	FinishedAt    *time.Time   `json:"finished_at"`
	Tries         []attemptRow `json:"tries"`
}

type attemptRow struct {
	At        time.Time `json:"at"`
	Status    *int      `json:"status"`
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error"`
}

// eventColumns reads an event (table alias e) with its deliveries, for eventRow.
const eventColumns = `e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, e.xid::text::bigint AS xid,
	coalesce((SELECT json_agg(json_build_object('endpoint', d.endpoint, 'state', d.state, 'attempts', d.attempts,
		'next_attempt_at', d.next_attempt_at, 'finished_at', d.finished_at,
		'tries', coalesce((SELECT json_agg(json_build_object('at', a.at, 'status', a.status, 'latency_ms', a.latency_ms,
			'error', a.error) ORDER BY a.id) FROM webhook_attempts a WHERE a.event_seq = d.event_seq AND a.endpoint = d.endpoint), '[]'))
		ORDER BY d.endpoint) FROM webhook_deliveries d WHERE d.event_seq = e.seq), '[]') AS deliveries`

func (r *eventRow) toPublished() *invoice.Published {
	p := &invoice.Published{Seq: r.Seq, ID: r.ID, Type: invoice.ChangeType(r.Type), InvoiceNumber: r.InvoiceNumber,
		CreatedAt: r.CreatedAt.UTC(), Data: r.Data, Xid: r.Xid}
	for _, d := range r.Deliveries {
		del := invoice.Delivery{Endpoint: d.Endpoint, State: invoice.DeliveryState(d.State), Attempts: d.Attempts,
			NextAttemptAt: d.NextAttemptAt.UTC(), FinishedAt: d.FinishedAt}
		for _, a := range d.Tries {
			t := invoice.Attempt{At: a.At.UTC(), Latency: time.Duration(a.LatencyMS) * time.Millisecond, Error: a.Error}
			if a.Status != nil {
				t.Status = *a.Status
			}
			del.Tries = append(del.Tries, t)
		}
		p.Deliveries = append(p.Deliveries, del)
	}
	return p
}

func collectEvents(rows pgx.Rows, err error) ([]*invoice.Published, error) {
	if err != nil {
		return nil, classify(err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*invoice.Published, error) {
		r, err := pgx.RowToStructByName[eventRow](row)
		if err != nil {
			return nil, err
		}
		return r.toPublished(), nil
	})
	return evs, classify(err)
}

// The feed's order and its proof. Every event records the id of the transaction that wrote it (xid);
// the feed lists events by (xid, seq) and shows only those whose xid is below a horizon: the smallest
// id of a transaction of this database still running when the reading statement took its snapshot
// (or, with none running, the first id not yet assigned). PostgreSQL assigns transaction ids in
// increasing order and a transaction's events carry its own id, so once every transaction below the
// horizon has ended, no event with a smaller xid can ever appear: the set the feed shows is exactly
// "all events with xid < horizon", and the horizon never moves back (a later snapshot's oldest running
// transaction is at least as new). A reader that has read up to (xid, seq) in one set finds every event
// added later at a larger (xid, seq): it never skips one and never sees one twice. Sequence numbers
// alone would not do: they are drawn when a transaction inserts its event, which may be after a newer
// transaction already committed a larger one.
//
// Transactions of other databases on the same server cannot write these events, so they are left out
// of the horizon: a transaction id positively seen running in another database, in pg_stat_activity or
// pg_prepared_xacts, is not ours. The look at pg_stat_activity must come before the snapshot
// (readHorizon): a statement's snapshot is taken before it runs, so a neighbour's transaction that
// ended between the two was in the snapshot but no longer in pg_stat_activity, was counted, and held
// the horizon back below events an earlier read had shown (on one read in five with a busy
// neighbour). Taken first, every transaction id in the snapshot that was already running is in the
// picture; one that began after it is newer than every event already committed, so counting it
// hides nothing a reader could have seen, and the horizon never moves back. (A prepared transaction
// of another database that ends mid-read can still hold one read back; that only delays.) One
// invoice's events keep their order in the feed too: each change takes its invoice's row lock as its
// first write (lockedTx), and PostgreSQL assigns a row locker its id once it holds the lock, so a
// later change of the same invoice has a larger xid (TestWaitingForARowLockTakesNoTransactionID).
const feedHorizon = `
	SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot())) AS xid
	FROM pg_snapshot_xip(pg_current_snapshot()) AS x
	WHERE NOT EXISTS (
		SELECT 1 FROM pg_stat_activity a
		WHERE a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND a.backend_xid::text::bigint = x::text::bigint % 4294967296)
	  AND NOT EXISTS (
		SELECT 1 FROM pg_prepared_xacts p
		WHERE p.database <> current_database() AND p.transaction::text::bigint = x::text::bigint % 4294967296)`

// ListEvents returns events in feed order, filtered, the cursor to continue after them (the given
// one when there are none yet), and whether more are visible already.
//
// The feed and the purge. The purge records the largest feed position it removed (its mark); it may
// keep older events around it (those a dead or waiting delivery still holds). So the feed starts at
// the mark when no cursor is given — an event kept behind it is still read by its id, its invoice's
// history and the delivery_state listing — and a cursor before the mark is invoice.ErrCursorExpired:
// continuing after it would skip what was purged silently. The mark is read again after the page: a
// purge that committed between the first read and the page may have removed events the page then did
// not see, and the reader is told so rather than led past them. The delivery_state listing is not a
// follower's feed — it lists the deliveries that exist — so the mark does not apply to it.
func (s *Store) ListEvents(ctx context.Context, f invoice.EventFilter) ([]*invoice.Published, string, bool, error) {
	mark, err := s.purgeMark(ctx)
	if err != nil {
		return nil, "", false, err
	}
	after, err := feedPosition(f.After)
	if err != nil {
		return nil, "", false, err
	}
	follower := f.DeliveryState == ""
	if follower {
		if f.After == "" {
			after = mark
		} else if after.before(mark) {
			return nil, "", false, errCursorPurged
		}
	}
	// Each filter is its own statement text, so each gets a plan that uses its index: a generic plan of
	// "(@x = '' OR col = @x)" cannot.
	where := []string{"e.xid < h.xid", "(e.xid, e.seq) > (@after_xid::bigint::text::xid8, @after_seq::bigint)"}
	args := pgx.NamedArgs{"after_xid": after.xid, "after_seq": after.seq, "limit": f.Limit + 1}
	if f.Type != "" {
		where, args["type"] = append(where, "e.type = @type"), string(f.Type)
	}
	if f.InvoiceNumber != "" {
		where, args["invoice_number"] = append(where, "e.invoice_number = @invoice_number"), f.InvoiceNumber
	}
	if f.DeliveryState != "" {
		cond := "d.state = @delivery_state"
		if f.Endpoint != "" {
			cond, args["endpoint"] = cond+" AND d.endpoint = @endpoint", f.Endpoint
		}
		where, args["delivery_state"] = append(where, "e.seq IN (SELECT d.event_seq FROM webhook_deliveries d WHERE "+cond+")"), string(f.DeliveryState)
	} else if f.Endpoint != "" {
		where, args["endpoint"] = append(where, "e.seq IN (SELECT d.event_seq FROM webhook_deliveries d WHERE d.endpoint = @endpoint)"), f.Endpoint
	}
	var evs []*invoice.Published
	err = s.readHorizon(ctx, func(br pgx.BatchResults) (err error) {
		evs, err = collectEvents(br.Query())
		return err
	}, `
		WITH h AS (`+feedHorizon+`)
		SELECT `+eventColumns+` FROM events e, h
		WHERE `+strings.Join(where, " AND ")+`
		ORDER BY e.xid, e.seq LIMIT @limit`, args)
	if err != nil {
		return nil, "", false, err
	}
	if follower && f.After != "" {
		if mark, err = s.purgeMark(ctx); err != nil {
			return nil, "", false, err
		}
		if after.before(mark) {
			return nil, "", false, errCursorPurged
		}
	}
	more := len(evs) > f.Limit
	if more {
		evs = evs[:f.Limit]
	}
	next := f.After
	if len(evs) > 0 {
		last := evs[len(evs)-1]
		next = feedCursor{xid: last.Xid, seq: last.Seq}.String()
	}
	return evs, next, more, nil
}

// feedCursor is a position in the feed: after the event (xid, seq).
type feedCursor struct {
	xid int64
	seq int64
}

const feedCursorPrefix = "ev:"

func (c feedCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(feedCursorPrefix + strconv.FormatInt(c.xid, 10) + ":" + strconv.FormatInt(c.seq, 10)))
}

var errBadFeedCursor = invoice.Invalid("after", "is not a cursor this feed returned (pass next_cursor back as it is)")

// feedPosition reads a cursor the feed returned. A cursor of the feed's first version (a sequence
// number alone) has expired: the first version listed events by sequence number, and a position in
// that order is none in this one — continuing from its event here would skip an event numbered after
// it but written by an older transaction, and repeat one numbered before it by a newer one. The
// follower starts again without a cursor (and reads again what it may have read).
func feedPosition(c string) (feedCursor, error) {
	if c == "" {
		return feedCursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return feedCursor{}, errBadFeedCursor
	}
	rest, ok := strings.CutPrefix(string(raw), feedCursorPrefix)
	if !ok {
		if _, err := decodeCursor(c); err == nil {
			return feedCursor{}, errFirstVersionCursor
		}
		return feedCursor{}, errBadFeedCursor
	}
	var pos feedCursor
	x, q, _ := strings.Cut(rest, ":")
	var errX, errQ error
	pos.xid, errX = strconv.ParseInt(x, 10, 64)
	pos.seq, errQ = strconv.ParseInt(q, 10, 64)
	if errX != nil || errQ != nil || pos.xid <= 0 || pos.seq <= 0 {
		return feedCursor{}, errBadFeedCursor
	}
	return pos, nil
}

var errFirstVersionCursor = invoice.Errorf(invoice.ErrCursorExpired,
	"this cursor is from the feed's first version, whose order this one does not keep: start again without a cursor")

var errCursorPurged = invoice.Errorf(invoice.ErrCursorExpired,
	"events after this cursor were purged (EVENTS_RETENTION): start again without a cursor, from the oldest event still in the feed")

// before says whether c comes before d in the feed.
func (c feedCursor) before(d feedCursor) bool {
	return c.xid < d.xid || c.xid == d.xid && c.seq < d.seq
}

// purgeMark is the largest feed position the purge has removed (PurgeEvents), the zero position when
// it has removed none.
func (s *Store) purgeMark(ctx context.Context) (feedCursor, error) {
	var m feedCursor
	err := s.pool.QueryRow(ctx, `SELECT coalesce(xid::text::bigint, 0), seq FROM purge_marks WHERE name = 'events'`).Scan(&m.xid, &m.seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return feedCursor{}, nil
	}
	return m, classify(err)
}

// FeedLag is how far the feed trails what is committed: the age of the oldest event committed but not
// yet shown, because a transaction older than it is still running (0 when the feed shows everything).
func (s *Store) FeedLag(ctx context.Context) (time.Duration, error) {
	var secs float64
	err := s.readHorizon(ctx, func(br pgx.BatchResults) error { return br.QueryRow().Scan(&secs) }, `
		WITH h AS (`+feedHorizon+`)
		SELECT coalesce(extract(epoch FROM now() - min(e.created_at)), 0) FROM events e, h WHERE e.xid >= h.xid`)
	return time.Duration(max(secs, 0) * float64(time.Second)), classify(err)
}

// readHorizon runs sql, a statement that reads feedHorizon, with read taking its result, in one
// round trip and one transaction after a statement that takes the transaction's picture of
// pg_stat_activity: PostgreSQL reads it once per transaction, on first use, and keeps it until the
// transaction ends, so the horizon's look at it is older than its snapshot (see feedHorizon). A batch
// runs in one implicit transaction, and under READ COMMITTED each of its statements takes its own
// snapshot when it starts.
func (s *Store) readHorizon(ctx context.Context, read func(pgx.BatchResults) error, sql string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT count(*) FROM pg_stat_activity`)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = read(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return classify(err)
}

// GetEvent returns one event with its deliveries, or invoice.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, id string) (*invoice.Published, error) {
	// A thinned event (past EVENTS_RETENTION, its history kept) is gone as an event.
	evs, err := collectEvents(s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events e WHERE e.id = $1 AND e.data IS NOT NULL`, id))
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, invoice.Errorf(invoice.ErrNotFound, "event not found")
	}
	return evs[0], nil
}

// InvoiceEvents returns the events of one invoice after the one with id after ("" for all), oldest
// first, without their deliveries. An invoice's events are written under its row lock, so their
// order is their commit order. An id that is not one of the invoice's events is invoice.ErrNotFound.
func (s *Store) InvoiceEvents(ctx context.Context, number, after string) ([]*invoice.Published, error) {
	var from int64
	if after != "" {
		err := s.pool.QueryRow(ctx, `SELECT seq FROM events WHERE id = $1 AND invoice_number = $2`, after, number).Scan(&from)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, invoice.Errorf(invoice.ErrNotFound, "event %s is not one of this invoice's", after)
		}
		if err != nil {
			return nil, classify(err)
		}
	}
	return collectEvents(s.pool.Query(ctx, `
		SELECT e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, e.xid::text::bigint AS xid, '[]'::json AS deliveries
		FROM events e WHERE e.invoice_number = $1 AND e.seq > $2 AND e.data IS NOT NULL ORDER BY e.seq`, number, from))
}

// Redeliver queues event id again for endpoint (every active endpoint when ""), as a new delivery
// whose retry period starts now.
func (s *Store) Redeliver(ctx context.Context, id, endpoint string) (*invoice.Published, error) {
	// The event is locked (FOR SHARE) before a delivery refers to it: a purge thinning or deleting
	// it at this moment holds its row, so the redelivery waits for the purge to commit and then finds
	// it gone from the feed (data IS NULL is checked again on the row as it then is). Without the
	// lock the foreign-key check's KEY SHARE lock did not wait for the thinning, and a delivery of an
	// event without a payload was queued.
	tag, err := s.pool.Exec(ctx, `
		WITH e AS (SELECT seq, invoice_number FROM events WHERE id = @id AND data IS NOT NULL FOR SHARE)
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number)
		SELECT e.seq, ep.name, e.invoice_number FROM e CROSS JOIN webhook_endpoints ep
		WHERE ep.active AND (@endpoint = '' OR ep.name = @endpoint)
		ON CONFLICT (event_seq, endpoint) DO UPDATE
			SET state = 'pending', next_attempt_at = now(), created_at = now(), finished_at = NULL`,
		pgx.NamedArgs{"id": id, "endpoint": endpoint})
	if err != nil {
		return nil, classify(err)
	}
	ev, err := s.GetEvent(ctx, id)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		if endpoint != "" {
			return nil, invoice.Errorf(invoice.ErrNotFound, "no configured webhook endpoint is named %q", endpoint)
		}
		return nil, invoice.Errorf(invoice.ErrNotFound, "no webhook endpoint is configured")
	}
	return ev, nil
}

// ClaimDeliveries hands out up to limit due deliveries to endpoint, those due first, each held for
// lease (its next attempt moved ahead) so that no other replica sends it meanwhile; no transaction
// stays open while they are sent. An invoice's events go one at a time, in order: a delivery waits
// while an earlier one of its invoice is pending. A disabled or removed endpoint gets none. A job's
// retry period counts from its delivery's creation or the endpoint's last enabling, whichever is
// later.
func (s *Store) ClaimDeliveries(ctx context.Context, endpoint string, limit int, lease time.Duration) ([]invoice.Job, error) {
	rows, err := s.pool.Query(ctx, `
		WITH ep AS (
			SELECT enabled_at FROM webhook_endpoints WHERE name = @endpoint AND active AND disabled_at IS NULL),
		due AS (
			SELECT d.event_seq FROM webhook_deliveries d
			WHERE d.endpoint = @endpoint AND d.state = 'pending' AND d.next_attempt_at <= now()
			  AND EXISTS (SELECT 1 FROM ep)
			  AND (d.invoice_number = '' OR NOT EXISTS (
				SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = d.endpoint AND p.invoice_number = d.invoice_number
				  AND p.state = 'pending' AND p.event_seq < d.event_seq))
			ORDER BY d.next_attempt_at, d.event_seq LIMIT @limit
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE webhook_deliveries d SET next_attempt_at = now() + @lease * interval '1 microsecond'
		FROM due JOIN events e ON e.seq = due.event_seq CROSS JOIN ep
		WHERE d.event_seq = due.event_seq AND d.endpoint = @endpoint
		RETURNING e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, d.attempts,
			greatest(d.created_at, ep.enabled_at)`,
		pgx.NamedArgs{"endpoint": endpoint, "limit": limit, "lease": lease.Microseconds()})
	if err != nil {
		return nil, classify(err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (invoice.Job, error) {
		j := invoice.Job{Endpoint: endpoint}
		e := &j.Event
		err := r.Scan(&e.Seq, &e.ID, &e.Type, &e.InvoiceNumber, &e.CreatedAt, &e.Data, &j.Attempts, &j.QueuedAt)
		return j, err
	})
	return orderJobs(jobs), classify(err)
}

// orderJobs sorts claimed jobs by event: RETURNING does not keep the claim's order.
func orderJobs(jobs []invoice.Job) []invoice.Job {
	slices.SortFunc(jobs, func(a, b invoice.Job) int { return cmp.Compare(a.Event.Seq, b.Event.Seq) })
	return jobs
}

// FinishAttempt records an attempt of job and the delivery's state after it: delivered or dead, or
// pending until next — and then the invoice's later deliveries to the endpoint, which wait for this
// one, wait until next too, so that no claim walks them meanwhile. A delivery no longer pending
// (redelivered and finished by another replica meanwhile) keeps its state; the attempt is recorded
// all the same.
func (s *Store) FinishAttempt(ctx context.Context, job invoice.Job, a invoice.Attempt, state invoice.DeliveryState, next time.Time) error {
	var status *int
	if a.Status != 0 {
		status = &a.Status
	}
	_, err := s.pool.Exec(ctx, `
		WITH attempt AS (
			INSERT INTO webhook_attempts (event_seq, endpoint, at, status, latency_ms, error)
			VALUES (@seq, @endpoint, @at, @status, @latency_ms, @error)),
		later AS (
			UPDATE webhook_deliveries SET next_attempt_at = greatest(next_attempt_at, @next)
			WHERE @state = 'pending' AND @invoice_number <> '' AND endpoint = @endpoint
			  AND invoice_number = @invoice_number AND state = 'pending' AND event_seq > @seq)
		UPDATE webhook_deliveries SET attempts = attempts + 1, state = @state,
			next_attempt_at = CASE WHEN @state = 'pending' THEN @next ELSE next_attempt_at END,
			finished_at = CASE WHEN @state = 'pending' THEN NULL ELSE now() END
		WHERE event_seq = @seq AND endpoint = @endpoint AND state = 'pending'`,
		pgx.NamedArgs{"seq": job.Event.Seq, "endpoint": job.Endpoint, "invoice_number": job.Event.InvoiceNumber, "at": a.At, "status": status,
			"latency_ms": a.Latency.Milliseconds(), "error": a.Error, "state": string(state), "next": next})
	return classify(err)
}

// CreateStreamToken keeps the digest of a new stream token for invoice number until ttl from now
// (the database's clock), and clears tokens that expired more than keepExpired ago: no sweeper is
// needed for a table that only grows with the tokens issued.
func (s *Store) CreateStreamToken(ctx context.Context, number string, digest []byte, ttl, keepExpired time.Duration) (time.Time, error) {
	var expires time.Time
	err := s.pool.QueryRow(ctx, `
		WITH gc AS (DELETE FROM stream_tokens WHERE expires_at < now() - @keep * interval '1 microsecond')
		INSERT INTO stream_tokens (digest, invoice_id, expires_at)
		SELECT @digest, id, now() + @ttl * interval '1 microsecond' FROM invoices WHERE invoice_number = @number
		RETURNING expires_at`, pgx.NamedArgs{"digest": digest, "number": number, "ttl": ttl.Microseconds(),
		"keep": keepExpired.Microseconds()}).Scan(&expires)
	return expires.UTC(), classify(err)
}

// StreamTokenInvoice is the invoice number a stream token (by digest) was issued for, and until when
// it admits: its expiry, or grace after its invoice became final (invoice.FinalSince, here in SQL),
// whichever is first. A reusable code's paid invoice ends at its deadline (or a later payment).
// invoice.ErrNotFound for a token that is unknown, revoked or past that.
func (s *Store) StreamTokenInvoice(ctx context.Context, digest []byte, grace time.Duration) (string, time.Time, error) {
	var number string
	var until time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT number, until FROM (
			SELECT i.invoice_number AS number, least(t.expires_at, CASE
				WHEN i.status = 'paid' THEN greatest(i.paid_at, CASE WHEN i.reusable THEN i.expires_at END)
				WHEN i.status = 'cancelled' THEN coalesce(i.cancelled_at, i.updated_at)
				WHEN i.status = 'expired' THEN coalesce(i.expires_at, i.updated_at)
				WHEN i.status = 'failed' THEN i.updated_at END + @grace * interval '1 microsecond') AS until
			FROM stream_tokens t JOIN invoices i ON i.id = t.invoice_id
			WHERE t.digest = @digest AND t.revoked_at IS NULL) tok
		WHERE until > now()`,
		pgx.NamedArgs{"digest": digest, "grace": grace.Microseconds()}).Scan(&number, &until)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, invoice.Errorf(invoice.ErrNotFound, "unknown, revoked or expired stream token")
	}
	return number, until.UTC(), classify(err)
}

// RevokeStreamTokens revokes every token of invoice number and returns how many were still valid.
func (s *Store) RevokeStreamTokens(ctx context.Context, number string) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE stream_tokens t SET revoked_at = now() FROM invoices i
		WHERE i.invoice_number = $1 AND t.invoice_id = i.id AND t.revoked_at IS NULL AND t.expires_at > now()`, number)
	return int(tag.RowsAffected()), classify(err)
}

// WatchInvoice records that a status stream follows invoice number for d from now (the database's
// clock), so that its changes are notified to every replica until then; a longer watch already
// there is kept. Watches that ended are cleared on the way: the table holds about as many rows as
// there are open streams. The clearing comes after the watch and skips rows another open holds, so
// an open waits only in its first statement, holding nothing: two streams opened together used to
// lock their own row and then each other's, and deadlock.
func (s *Store) WatchInvoice(ctx context.Context, number string, d time.Duration) error {
	b := &pgx.Batch{}
	b.Queue(`
		INSERT INTO stream_watches (invoice_number, until)
		SELECT invoice_number, now() + @for * interval '1 microsecond' FROM invoices WHERE invoice_number = @number
		ON CONFLICT (invoice_number) DO UPDATE SET until = greatest(stream_watches.until, excluded.until)`,
		pgx.NamedArgs{"number": number, "for": d.Microseconds()})
	b.Queue(`
		DELETE FROM stream_watches WHERE invoice_number IN (
			SELECT invoice_number FROM stream_watches WHERE until < now() FOR UPDATE SKIP LOCKED)`)
	return classify(s.pool.SendBatch(ctx, b).Close())
}
