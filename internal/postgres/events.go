package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
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
const eventColumns = `e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data,
	coalesce((SELECT json_agg(json_build_object('endpoint', d.endpoint, 'state', d.state, 'attempts', d.attempts,
		'next_attempt_at', d.next_attempt_at, 'finished_at', d.finished_at,
		'tries', coalesce((SELECT json_agg(json_build_object('at', a.at, 'status', a.status, 'latency_ms', a.latency_ms,
			'error', a.error) ORDER BY a.id) FROM webhook_attempts a WHERE a.event_seq = d.event_seq AND a.endpoint = d.endpoint), '[]'))
		ORDER BY d.endpoint) FROM webhook_deliveries d WHERE d.event_seq = e.seq), '[]') AS deliveries`

func (r *eventRow) toPublished() *invoice.Published {
	p := &invoice.Published{Seq: r.Seq, ID: r.ID, Type: invoice.ChangeType(r.Type), InvoiceNumber: r.InvoiceNumber,
		CreatedAt: r.CreatedAt.UTC(), Data: r.Data}
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

// ListEvents returns events oldest first, filtered, and the cursor to continue after them (the given
// one when there are none yet). Sequence numbers are taken before commit, so an event with a smaller
// one may commit after one with a larger one is visible; listing the larger then would make a reader
// that continues after it skip the smaller forever. So the whole feed lists only events whose
// transaction is older than every transaction still running — it lags by the longest transaction in
// flight, milliseconds. One invoice's events need no such wait: they are written under the invoice's
// row lock, one transaction after the other.
func (s *Store) ListEvents(ctx context.Context, f invoice.EventFilter) ([]*invoice.Published, string, bool, error) {
	after, err := afterCursor(f.After)
	if err != nil {
		return nil, "", false, err
	}
	evs, err := collectEvents(s.pool.Query(ctx, `
		SELECT `+eventColumns+` FROM events e
		WHERE (@after::bigint IS NULL OR e.seq > @after) AND (@type = '' OR e.type = @type)
		  AND (@invoice_number = '' OR e.invoice_number = @invoice_number)
		  AND (@invoice_number <> '' OR e.xid < pg_snapshot_xmin(pg_current_snapshot()))
		ORDER BY e.seq LIMIT @limit`,
		pgx.NamedArgs{"after": after, "type": string(f.Type), "invoice_number": f.InvoiceNumber, "limit": f.Limit + 1}))
	if err != nil {
		return nil, "", false, err
	}
	more := len(evs) > f.Limit
	if more {
		evs = evs[:f.Limit]
	}
	next := f.After
	if len(evs) > 0 {
		next = encodeCursor(evs[len(evs)-1].Seq)
	}
	return evs, next, more, nil
}

// GetEvent returns one event with its deliveries, or invoice.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, id string) (*invoice.Published, error) {
	evs, err := collectEvents(s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events e WHERE e.id = $1`, id))
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
		SELECT e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, '[]'::json AS deliveries
		FROM events e WHERE e.invoice_number = $1 AND e.seq > $2 ORDER BY e.seq`, number, from))
}

// Redeliver queues event id again for endpoint (every active endpoint when ""), as a new delivery
// whose retry period starts now.
func (s *Store) Redeliver(ctx context.Context, id, endpoint string) (*invoice.Published, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number)
		SELECT e.seq, ep.name, e.invoice_number FROM events e CROSS JOIN webhook_endpoints ep
		WHERE e.id = @id AND ep.active AND (@endpoint = '' OR ep.name = @endpoint)
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

// SyncEndpoints makes eps the active endpoints: new ones are added, changed URLs updated (a new URL
// is a new receiver: a 410 from the old one no longer disables it), and endpoints no longer
// configured made inactive — their deliveries wait, should they come back.
func (s *Store) SyncEndpoints(ctx context.Context, eps []invoice.Endpoint) error {
	names, urls := make([]string, len(eps)), make([]string, len(eps))
	for i, e := range eps {
		names[i], urls[i] = e.Name, e.URL
	}
	_, err := s.pool.Exec(ctx, `
		WITH upsert AS (
			INSERT INTO webhook_endpoints (name, url)
			SELECT * FROM unnest(@names::text[], @urls::text[])
			ON CONFLICT (name) DO UPDATE SET url = excluded.url, active = true, updated_at = now(),
				disabled_at = CASE WHEN webhook_endpoints.url = excluded.url THEN webhook_endpoints.disabled_at END,
				disabled_reason = CASE WHEN webhook_endpoints.url = excluded.url THEN webhook_endpoints.disabled_reason ELSE '' END)
		UPDATE webhook_endpoints SET active = false, updated_at = now() WHERE active AND name <> ALL (@names::text[])`,
		pgx.NamedArgs{"names": names, "urls": urls})
	return classify(err)
}

// Endpoints lists every endpoint ever configured, with its state.
func (s *Store) Endpoints(ctx context.Context) ([]invoice.Endpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, url, active, disabled_at, disabled_reason FROM webhook_endpoints ORDER BY name`)
	if err != nil {
		return nil, classify(err)
	}
	eps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (invoice.Endpoint, error) {
		var e invoice.Endpoint
		err := r.Scan(&e.Name, &e.URL, &e.Active, &e.DisabledAt, &e.DisabledReason)
		return e, err
	})
	return eps, classify(err)
}

// DisableEndpoint stops deliveries to an endpoint (reason says why); EnableEndpoint resumes them.
func (s *Store) DisableEndpoint(ctx context.Context, name, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2, updated_at = now()
		WHERE name = $1 AND disabled_at IS NULL`, name, reason)
	return classify(err)
}

// EnableEndpoint resumes deliveries to a disabled endpoint: what waited is delivered now.
func (s *Store) EnableEndpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	var e invoice.Endpoint
	err := s.pool.QueryRow(ctx, `
		WITH ep AS (
			UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = '', updated_at = now() WHERE name = $1
			RETURNING name, url, active, disabled_at, disabled_reason),
		due AS (
			UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint = $1 AND state = 'pending')
		SELECT * FROM ep`, name).Scan(&e.Name, &e.URL, &e.Active, &e.DisabledAt, &e.DisabledReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, invoice.Errorf(invoice.ErrNotFound, "no webhook endpoint is named %q", name)
	}
	return e, classify(err)
}

// ClaimDeliveries hands out up to limit due deliveries to endpoint, those due first, each held for
// lease (its next attempt moved ahead) so that no other replica sends it meanwhile; no transaction
// stays open while they are sent. An invoice's events go one at a time, in order: a delivery waits
// while an earlier one of its invoice is pending. A disabled or inactive endpoint gets none.
func (s *Store) ClaimDeliveries(ctx context.Context, endpoint string, limit int, lease time.Duration) ([]invoice.Job, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT d.event_seq FROM webhook_deliveries d
			WHERE d.endpoint = @endpoint AND d.state = 'pending' AND d.next_attempt_at <= now()
			  AND EXISTS (SELECT 1 FROM webhook_endpoints ep WHERE ep.name = @endpoint AND ep.active AND ep.disabled_at IS NULL)
			  AND (d.invoice_number = '' OR NOT EXISTS (
				SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = d.endpoint AND p.invoice_number = d.invoice_number
				  AND p.state = 'pending' AND p.event_seq < d.event_seq))
			ORDER BY d.next_attempt_at, d.event_seq LIMIT @limit
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE webhook_deliveries d SET next_attempt_at = now() + @lease * interval '1 microsecond'
		FROM due JOIN events e ON e.seq = due.event_seq
		WHERE d.event_seq = due.event_seq AND d.endpoint = @endpoint
		RETURNING e.seq, e.id, e.type, e.invoice_number, e.created_at, e.data, d.attempts, d.created_at`,
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

// DeliveryBacklog is how many deliveries are pending to active, enabled endpoints, and how long the
// oldest has waited.
func (s *Store) DeliveryBacklog(ctx context.Context) (int, time.Duration, error) {
	var n int
	var oldest float64
	err := s.pool.QueryRow(ctx, `
		SELECT count(*), coalesce(extract(epoch FROM now() - min(d.created_at)), 0)
		FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.name = d.endpoint
		WHERE d.state = 'pending' AND ep.active AND ep.disabled_at IS NULL`).Scan(&n, &oldest)
	return n, time.Duration(oldest * float64(time.Second)), classify(err)
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

// StreamTokenInvoice is the invoice number an unexpired stream token (by digest) was issued for, and
// when it expires; invoice.ErrNotFound for an unknown or expired token.
func (s *Store) StreamTokenInvoice(ctx context.Context, digest []byte) (string, time.Time, error) {
	var number string
	var expires time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT i.invoice_number, t.expires_at FROM stream_tokens t JOIN invoices i ON i.id = t.invoice_id
		WHERE t.digest = $1 AND t.expires_at > now()`, digest).Scan(&number, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, invoice.Errorf(invoice.ErrNotFound, "unknown or expired stream token")
	}
	return number, expires.UTC(), classify(err)
}

// WatchInvoice records that a status stream follows invoice number for d from now (the database's
// clock), so that its changes are notified to every replica until then; a longer watch already
// there is kept. Watches that ended are cleared on the way: the table holds about as many rows as
// there are open streams.
func (s *Store) WatchInvoice(ctx context.Context, number string, d time.Duration) error {
	_, err := s.pool.Exec(ctx, `
		WITH gc AS (DELETE FROM stream_watches WHERE until < now() AND invoice_number <> @number)
		INSERT INTO stream_watches (invoice_number, until)
		SELECT invoice_number, now() + @for * interval '1 microsecond' FROM invoices WHERE invoice_number = @number
		ON CONFLICT (invoice_number) DO UPDATE SET until = greatest(stream_watches.until, excluded.until)`,
		pgx.NamedArgs{"number": number, "for": d.Microseconds()})
	return classify(err)
}
