package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// The webhook endpoints are a registry (invoice.Endpoint says why): events are queued for every
// active endpoint whichever replica made the change (queueAndNotify), and nothing here deactivates an
// endpoint because a configuration lacks it.

// RegisterEndpoints registers the endpoints a replica is configured with: new ones are added, one
// that an older configuration left inactive is active again, and one removed through the API stays
// removed. Endpoints registered by other replicas are left as they are. The URL a replica registers is
// recorded (for the listing); a new URL is a new receiver, so a 410 from the old one no longer
// disables the endpoint.
func (s *Store) RegisterEndpoints(ctx context.Context, eps []invoice.Endpoint) error {
	if len(eps) == 0 {
		return nil
	}
	names, urls := make([]string, len(eps)), make([]string, len(eps))
	for i, e := range eps {
		names[i], urls[i] = e.Name, e.URL
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_endpoints (name, url, enabled_at)
		SELECT n, u, now() FROM unnest(@names::text[], @urls::text[]) AS e(n, u)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url, updated_at = now(),
			active = webhook_endpoints.removed_at IS NULL,
			disabled_at = CASE WHEN webhook_endpoints.url = excluded.url THEN webhook_endpoints.disabled_at END,
			disabled_reason = CASE WHEN webhook_endpoints.url = excluded.url THEN webhook_endpoints.disabled_reason ELSE '' END
		WHERE webhook_endpoints.url <> excluded.url OR (NOT webhook_endpoints.active AND webhook_endpoints.removed_at IS NULL)`,
		pgx.NamedArgs{"names": names, "urls": urls})
	return classify(err)
}

const endpointColumns = `ep.name, ep.url, ep.active, ep.removed_at, ep.disabled_at, ep.disabled_reason, ep.enabled_at`

func scanEndpoint(row pgx.Row, extra ...any) (invoice.Endpoint, error) {
	var e invoice.Endpoint
	err := row.Scan(append([]any{&e.Name, &e.URL, &e.Active, &e.RemovedAt, &e.DisabledAt, &e.DisabledReason, &e.EnabledAt}, extra...)...)
	return e, err
}

// Endpoints lists every endpoint ever registered, removed ones too, with its state and backlog.
func (s *Store) Endpoints(ctx context.Context) ([]invoice.Endpoint, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+endpointColumns+`, b.pending, b.oldest FROM webhook_endpoints ep
		CROSS JOIN LATERAL (
			SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(d.created_at)), 0) AS oldest
			FROM webhook_deliveries d WHERE d.endpoint = ep.name AND d.state = 'pending') b
		ORDER BY ep.name`)
	if err != nil {
		return nil, classify(err)
	}
	eps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (invoice.Endpoint, error) {
		var pending int
		var oldest float64
		e, err := scanEndpoint(r, &pending, &oldest)
		e.Pending, e.Oldest = pending, seconds(oldest)
		return e, err
	})
	return eps, classify(err)
}

// seconds is a number of seconds the database computed, as a duration.
func seconds(s float64) time.Duration { return time.Duration(max(s, 0) * float64(time.Second)) }

// endpointNotFound is the refusal of an operation on an endpoint that was never registered.
func endpointNotFound(name string) error {
	return invoice.Errorf(invoice.ErrNotFound, "no webhook endpoint is named %q", name)
}

// RemoveEndpoint takes an endpoint out of the registry: no event is queued for it from now on, and
// its deliveries still waiting are left to the purge. A configuration that still names it does not
// bring it back; EnableEndpoint does.
func (s *Store) RemoveEndpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `
		UPDATE webhook_endpoints ep SET active = false, removed_at = coalesce(removed_at, now()), updated_at = now()
		WHERE name = $1 RETURNING `+endpointColumns, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, endpointNotFound(name)
	}
	return e, classify(err)
}

// DisableEndpoint stops deliveries to an endpoint (reason says why: a 410 Gone); its events are
// still queued and wait.
func (s *Store) DisableEndpoint(ctx context.Context, name, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2, updated_at = now()
		WHERE name = $1 AND disabled_at IS NULL`, name, reason)
	return classify(err)
}

// EnableEndpoint resumes deliveries to a disabled endpoint, or registers a removed one again. It
// touches the endpoint's row alone, whatever its backlog: what waited becomes due by itself, and its
// retry period counts from now (the claim reads enabled_at).
func (s *Store) EnableEndpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `
		UPDATE webhook_endpoints ep SET active = true, removed_at = NULL, disabled_at = NULL, disabled_reason = '',
			enabled_at = now(), updated_at = now()
		WHERE name = $1 RETURNING `+endpointColumns, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, endpointNotFound(name)
	}
	return e, classify(err)
}

// DeliveryBacklog is, for every registered endpoint — disabled ones included: their backlog grows
// and must be seen — how many deliveries wait and how long the oldest has.
func (s *Store) DeliveryBacklog(ctx context.Context) ([]invoice.Endpoint, error) {
	eps, err := s.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := eps[:0]
	for _, e := range eps {
		if e.Active {
			out = append(out, e)
		}
	}
	return out, nil
}

// RedeliverBatch offers again up to limit of endpoint's deliveries in state (dead or delivered) whose
// events were created in [from, to), those after event afterSeq in sequence order, each with a fresh
// retry period. It returns how many it offered and the last event it looked at (0: none left), for
// the caller's next batch: each batch is a short statement of its own, so a redelivery of any size
// never holds its rows for long.
func (s *Store) RedeliverBatch(ctx context.Context, endpoint string, state invoice.DeliveryState, from, to time.Time, afterSeq int64, limit int) (int, int64, error) {
	var n int
	var last *int64
	// The dead partial index serves state = 'dead'; delivered ones walk the primary key.
	err := s.pool.QueryRow(ctx, `
		WITH batch AS (
			SELECT d.event_seq FROM webhook_deliveries d
			WHERE d.endpoint = @endpoint AND d.state = @state AND d.event_seq > @after
			ORDER BY d.event_seq LIMIT @limit),
		upd AS (
			UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now(), created_at = now(), finished_at = NULL
			FROM batch JOIN events e ON e.seq = batch.event_seq
			WHERE d.event_seq = batch.event_seq AND d.endpoint = @endpoint AND d.state = @state
			  AND e.created_at >= @from AND e.created_at < @to
			RETURNING 1)
		SELECT (SELECT count(*) FROM upd), (SELECT max(event_seq) FROM batch)`,
		pgx.NamedArgs{"endpoint": endpoint, "state": string(state), "after": afterSeq, "limit": limit, "from": from, "to": to}).Scan(&n, &last)
	if err != nil {
		return 0, 0, classify(err)
	}
	if last == nil {
		return n, 0, nil
	}
	return n, *last, nil
}
