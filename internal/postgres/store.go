package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
)

// Store is the invoice store. Every method is one short transaction or one statement; none is held
// open while anything else (DOKU in particular) is called.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// Metrics counts status transitions; nil counts nothing.
	Metrics *metrics.Metrics
	// FirstCheck is how long after a code is issued the reconciler first checks its status.
	FirstCheck time.Duration
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, now: time.Now, FirstCheck: time.Minute}
}

const invoiceColumns = `id, invoice_number, channel, amount, status, customer_name, customer_email,
	expires_in_minutes, reusable, info, receipt_footer, metadata, doku_request_id, doku_request_body,
	coalesce(payment_code, ''), how_to_pay_page, how_to_pay_api, expires_at, paid_at, paid_after_expiry,
	failure_code, failure_message, created_at, updated_at, issue_attempts, expired_by_grace`

// paymentsJSON selects an invoice's payments as one JSON array in the same query as the invoice, so a
// read is one round trip whatever the number of payments.
const paymentsJSON = `coalesce((SELECT json_agg(json_build_object('id', p.id, 'dedupe_key', p.dedupe_key,
	'amount', p.amount, 'paid_at', p.paid_at, 'source', p.source, 'doku_request_id', p.doku_request_id,
	'identifiers', p.identifiers, 'created_at', p.created_at) ORDER BY p.id)
	FROM payments p WHERE p.invoice_id = invoices.id), '[]')`

type paymentRow struct {
	ID          int64             `json:"id"`
	DedupeKey   string            `json:"dedupe_key"`
	Amount      int64             `json:"amount"`
	PaidAt      time.Time         `json:"paid_at"`
	Source      invoice.Source    `json:"source"`
	RequestID   string            `json:"doku_request_id"`
	Identifiers map[string]string `json:"identifiers"`
	CreatedAt   time.Time         `json:"created_at"`
}

// scanInvoiceWithPayments scans invoiceColumns followed by paymentsJSON.
func scanInvoiceWithPayments(row pgx.Row) (*invoice.Invoice, error) {
	var raw []byte
	inv, err := scanInvoiceInto(row, &raw)
	if err != nil {
		return nil, err
	}
	var rows []paymentRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, fmt.Errorf("postgres: decode payments: %w", err)
	}
	for _, p := range rows {
		inv.Payments = append(inv.Payments, invoice.Payment{ID: p.ID, DedupeKey: p.DedupeKey, Amount: p.Amount,
			PaidAt: p.PaidAt.UTC(), Source: p.Source, RequestID: p.RequestID, Identifiers: p.Identifiers, CreatedAt: p.CreatedAt.UTC()})
	}
	return inv, nil
}

func scanInvoice(row pgx.Row) (*invoice.Invoice, error) { return scanInvoiceInto(row) }

func scanInvoiceInto(row pgx.Row, extra ...any) (*invoice.Invoice, error) {
	var inv invoice.Invoice
	var metadata []byte
	dest := append([]any{&inv.ID, &inv.Number, &inv.Channel, &inv.Amount, &inv.Status, &inv.Customer.Name,
		&inv.Customer.Email, &inv.ExpiresInMinutes, &inv.Reusable, &inv.Info, &inv.ReceiptFooter, &metadata,
		&inv.DokuRequestID, &inv.DokuRequestBody, &inv.PaymentCode, &inv.HowToPayPage, &inv.HowToPayAPI,
		&inv.ExpiresAt, &inv.PaidAt, &inv.PaidAfterExpiry, &inv.FailureCode, &inv.FailureMessage,
		&inv.CreatedAt, &inv.UpdatedAt, &inv.IssueAttempts, &inv.ExpiredByGrace}, extra...)
	err := row.Scan(dest...)
	if err != nil {
		return nil, err
	}
	if len(metadata) > 0 {
		inv.Metadata = metadata
	}
	return &inv, nil
}

// Create inserts inv if no invoice has its number yet, holding its issue lease for lease. It returns
// the stored invoice and true when it was inserted, or the existing invoice and false when the number
// was taken — the caller decides whether that is an idempotent replay or a conflict.
func (s *Store) Create(ctx context.Context, inv *invoice.Invoice, lease time.Duration) (*invoice.Invoice, bool, error) {
	var metadata any
	if len(inv.Metadata) > 0 {
		metadata = []byte(inv.Metadata)
	}
	// One statement: the invoice and the first entry of its history.
	row := s.pool.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, customer_email,
				expires_in_minutes, reusable, info, receipt_footer, metadata, doku_request_id, doku_request_body,
				issue_lease_until, issue_attempts, next_issue_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
				now() + $14 * interval '1 microsecond', 1, now() + $14 * interval '1 microsecond')
			ON CONFLICT (invoice_number) DO NOTHING
			RETURNING *),
		ev AS (
			INSERT INTO invoice_events (invoice_id, source, kind, to_status, detail)
			SELECT id, 'api', 'created', status, jsonb_build_object('doku_request_id', doku_request_id) FROM ins)
		SELECT `+invoiceColumns+` FROM ins`,
		inv.Number, inv.Channel, inv.Amount, inv.Status, inv.Customer.Name, inv.Customer.Email,
		inv.ExpiresInMinutes, inv.Reusable, inv.Info, inv.ReceiptFooter, metadata, inv.DokuRequestID,
		inv.DokuRequestBody, lease.Microseconds())
	created, err := scanInvoice(row)
	if err == nil {
		s.Metrics.Transition(string(created.Channel), "", string(created.Status))
		return created, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, classify(err)
	}
	existing, err := s.Get(ctx, inv.Number)
	if err != nil {
		return nil, false, err
	}
	return existing, false, nil
}

// Get returns the invoice with its payments, or invoice.ErrNotFound.
func (s *Store) Get(ctx context.Context, number string) (*invoice.Invoice, error) {
	inv, err := scanInvoiceWithPayments(s.pool.QueryRow(ctx, `SELECT `+invoiceColumns+`, `+paymentsJSON+` FROM invoices WHERE invoice_number = $1`, number))
	if err != nil {
		return nil, classify(err)
	}
	return inv, nil
}

// ErrBadCursor is returned for a cursor this store did not produce.
var ErrBadCursor = &invoice.Error{Code: invoice.CodeValidation, Message: "the cursor is not valid",
	Fields: []invoice.FieldError{{Field: "cursor", Message: "is not a cursor returned by this API"}}}

// List returns invoices newest first and, when more remain, the cursor of the next page. The cursor is
// a keyset position (the last id seen), so pages stay stable while new invoices arrive.
func (s *Store) List(ctx context.Context, f invoice.ListFilter) ([]*invoice.Invoice, string, error) {
	after, err := afterCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	var status, channel *string
	if f.Status != "" {
		v := string(f.Status)
		status = &v
	}
	if f.Channel != "" {
		v := string(f.Channel)
		channel = &v
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+invoiceColumns+`, `+paymentsJSON+` FROM invoices
		WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2)
		  AND ($3::bigint IS NULL OR id < $3)
		ORDER BY id DESC LIMIT $4`, status, channel, after, f.Limit+1)
	if err != nil {
		return nil, "", classify(err)
	}
	invs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*invoice.Invoice, error) { return scanInvoiceWithPayments(r) })
	if err != nil {
		return nil, "", classify(err)
	}
	invs, next := page(invs, f.Limit, func(inv *invoice.Invoice) int64 { return inv.ID })
	return invs, next, nil
}

// afterCursor is the id a cursor points after (nil for the first page).
func afterCursor(c string) (*int64, error) {
	if c == "" {
		return nil, nil
	}
	id, err := decodeCursor(c)
	if err != nil {
		return nil, ErrBadCursor
	}
	return &id, nil
}

// page trims the limit+1 rows a keyset query fetched to limit, and returns the cursor of the next page
// ("" when there is none: the extra row is how we know without counting).
func page[T any](items []T, limit int, id func(T) int64) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, encodeCursor(id(items[limit-1]))
}

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("id:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(raw) < 4 || string(raw[:3]) != "id:" {
		return 0, errors.New("bad cursor")
	}
	id, err := strconv.ParseInt(string(raw[3:]), 10, 64)
	if err != nil || id <= 0 {
		return 0, errors.New("bad cursor")
	}
	return id, nil
}

// Update runs fn on the invoice inside one transaction holding the invoice's row lock, then stores
// what fn changed: the invoice's state, any payments fn appended and its history. If fn returns an
// error nothing is written and the error is returned. Concurrent Updates of one invoice run one after
// the other, which is what makes "recorded once" hold when the webhook and a poll see the same payment
// together.
func (s *Store) Update(ctx context.Context, number string, fn func(*invoice.Invoice) error) (*invoice.Invoice, error) {
	var out *invoice.Invoice
	err := s.lockedTx(ctx, number, nil, func(l *locked) ([]stmt, error) {
		if l == nil {
			return nil, invoice.ErrNotFound
		}
		if err := fn(l.Invoice); err != nil {
			return nil, err
		}
		out = l.Invoice
		return s.writeChanges(l), nil
	})
	if err != nil {
		return nil, err
	}
	s.countTransitions(out)
	return out, nil
}

// countTransitions reports the status changes of a committed change to the metrics.
func (s *Store) countTransitions(inv *invoice.Invoice) {
	for _, e := range inv.NewEvents {
		if e.Kind == invoice.EventStatus {
			s.Metrics.Transition(string(inv.Channel), string(e.From), string(e.To))
		}
	}
}

// Ready reports whether the database answers and its schema is the one this binary expects.
func (s *Store) Ready(ctx context.Context, m *Migrator) error {
	if err := s.pool.Ping(ctx); err != nil {
		return classify(err)
	}
	current, err := m.Current(ctx)
	if err != nil {
		return classify(err)
	}
	if !current {
		return fmt.Errorf("%w: schema is not at the latest migration", invoice.ErrUnavailable)
	}
	return nil
}

// ClaimIssue takes the issue lease of a creating invoice for lease, if nobody holds it. It reports
// false when the invoice is not creating or another holder's lease is still running. The lease is
// taken in one statement on the database's clock, so replicas with skewed clocks still agree.
func (s *Store) ClaimIssue(ctx context.Context, number string, lease, backoff time.Duration) (*invoice.Invoice, bool, error) {
	inv, err := scanInvoice(s.pool.QueryRow(ctx, `
		UPDATE invoices SET issue_lease_until = now() + $2 * interval '1 microsecond',
			issue_attempts = issue_attempts + 1, next_issue_at = now() + $3 * interval '1 microsecond'
		WHERE invoice_number = $1 AND status = 'creating'
		  AND (issue_lease_until IS NULL OR issue_lease_until < now())
		RETURNING `+invoiceColumns, number, lease.Microseconds(), backoff.Microseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, classify(err)
	}
	return inv, true, nil
}

// ReleaseIssue gives up the issue lease after a DOKU call whose outcome is unknown, so that the next
// retry, by the client or the resumer, need not wait for the lease to run out, and records the call.
// attempt is the issue_attempts the lease was taken with: a late release by a holder whose lease ran
// out and was taken by another must not free the other's.
func (s *Store) ReleaseIssue(ctx context.Context, number string, attempt int, ev invoice.Event) error {
	return s.withInvoiceTx(ctx, number, func(tx pgx.Tx, id int64) error {
		if _, err := tx.Exec(ctx, `UPDATE invoices SET issue_lease_until = NULL
			WHERE id = $1 AND status = 'creating' AND issue_attempts = $2`, id, attempt); err != nil {
			return classify(err)
		}
		return s.addEvents(ctx, tx, id, []invoice.Event{ev})
	})
}

// AddEvent adds one entry to an invoice's history.
func (s *Store) AddEvent(ctx context.Context, number string, ev invoice.Event) error {
	return s.withInvoiceTx(ctx, number, func(tx pgx.Tx, id int64) error {
		return s.addEvents(ctx, tx, id, []invoice.Event{ev})
	})
}

// withInvoiceTx runs fn in a transaction with the id of the invoice with number.
func (s *Store) withInvoiceTx(ctx context.Context, number string, fn func(tx pgx.Tx, id int64) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	var id int64
	if err := tx.QueryRow(ctx, `SELECT id FROM invoices WHERE invoice_number = $1`, number).Scan(&id); err != nil {
		return classify(err)
	}
	if err := fn(tx, id); err != nil {
		return err
	}
	return classify(tx.Commit(ctx))
}

// addEvents writes history entries inside tx.
func (s *Store) addEvents(ctx context.Context, tx pgx.Tx, invoiceID int64, evs []invoice.Event) error {
	st := insertEvents(invoiceID, evs, s.now().UTC())
	if st.err != nil {
		return st.err
	}
	_, err := tx.Exec(ctx, st.sql, st.args...)
	return classify(err)
}

// Events returns an invoice's history, oldest first, or invoice.ErrNotFound.
func (s *Store) Events(ctx context.Context, number string) ([]invoice.Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.at, e.source, e.kind, coalesce(e.from_status, ''), coalesce(e.to_status, ''), e.detail
		FROM invoices i LEFT JOIN invoice_events e ON e.invoice_id = i.id
		WHERE i.invoice_number = $1 ORDER BY e.id`, number)
	if err != nil {
		return nil, classify(err)
	}
	var evs []invoice.Event
	found := false
	for rows.Next() {
		found = true
		var id *int64
		var e invoice.Event
		var at *time.Time
		var source, kind, from, to *string
		if err := rows.Scan(&id, &at, &source, &kind, &from, &to, &e.Detail); err != nil {
			rows.Close()
			return nil, classify(err)
		}
		if id == nil { // an invoice without events (not produced by this code, but possible)
			continue
		}
		e.ID, e.At, e.Source, e.Kind, e.From, e.To = *id, *at, invoice.Source(*source), invoice.EventKind(*kind), invoice.Status(*from), invoice.Status(*to)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	if !found {
		return nil, invoice.ErrNotFound
	}
	return evs, nil
}

// ClaimDueIssues takes the issue lease of up to limit creating invoices that are due for another
// attempt and have fewer than maxAttempts, and schedules their next attempt with exponential backoff
// (base·2^attempts, at most maxBackoff). SKIP LOCKED lets several resumers run against one database
// without waiting on or double-claiming each other's rows; the claim commits before any DOKU call.
func (s *Store) ClaimDueIssues(ctx context.Context, limit int, lease, base, maxBackoff time.Duration, maxAttempts int) ([]*invoice.Invoice, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE invoices SET issue_lease_until = now() + $2 * interval '1 microsecond',
			issue_attempts = issue_attempts + 1,
			next_issue_at = now() + least($3 * power(2, least(issue_attempts, 30)), $4) * interval '1 microsecond'
		WHERE id IN (
			SELECT id FROM invoices
			WHERE status = 'creating' AND next_issue_at <= now() AND issue_attempts < $5
			  AND (issue_lease_until IS NULL OR issue_lease_until < now())
			ORDER BY next_issue_at
			LIMIT $1
			FOR UPDATE SKIP LOCKED)
		RETURNING `+invoiceColumns,
		limit, lease.Microseconds(), float64(base.Microseconds()), float64(maxBackoff.Microseconds()), maxAttempts)
	if err != nil {
		return nil, classify(err)
	}
	invs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*invoice.Invoice, error) { return scanInvoice(r) })
	return invs, classify(err)
}

// recheckWindow is how long after its expiry an invoice that may still see money keeps being checked:
// a reusable code that was paid (more payments can come until DOKU closes it, and a notification can
// be lost), and one we expired by our grace period while DOKU still said PENDING.
const recheckWindow = "7 days"

// stillChanging is the SQL condition, over the given columns or parameters, for a paid or expired
// invoice that the reconciler keeps checking.
func stillChanging(status, reusable, byGrace, expiresAt string) string {
	return fmt.Sprintf(`((%[1]s = 'paid' AND %[2]s) OR (%[1]s = 'expired' AND %[3]s)) AND %[4]s + interval '%[5]s' > now()`,
		status, reusable, byGrace, expiresAt, recheckWindow)
}

// ClaimDueChecks hands out up to limit invoices whose status check is due and schedules each one's
// next check in the same statement: the k-th check waits schedule[k] (the last entry repeats), but
// never past the invoice's expiry or the end of its grace period, when the answer matters most. The
// claim commits before DOKU is called; SKIP LOCKED keeps replicas off each other's rows, and the moved
// next_check_at keeps them off until the next turn.
func (s *Store) ClaimDueChecks(ctx context.Context, limit int, schedule []time.Duration, grace time.Duration) ([]*invoice.Invoice, error) {
	// Invoices that became final without a write (a reusable code's expiry passing) leave the queue.
	if _, err := s.pool.Exec(ctx, `
		UPDATE invoices SET next_check_at = NULL
		WHERE next_check_at <= now() AND status <> 'pending'
		  AND NOT (`+stillChanging("status", "reusable", "expired_by_grace", "expires_at")+`)`); err != nil {
		return nil, classify(err)
	}
	delays := make([]int64, len(schedule))
	for i, d := range schedule {
		delays[i] = d.Microseconds()
	}
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT id AS due_id,
				($2::bigint[])[least(check_attempts + 2, cardinality($2::bigint[]))] * interval '1 microsecond' AS delay
			FROM invoices
			WHERE next_check_at <= now()
			ORDER BY next_check_at
			LIMIT $1
			FOR UPDATE SKIP LOCKED)
		UPDATE invoices i SET check_attempts = i.check_attempts + 1,
			next_check_at = CASE
				WHEN i.status = 'pending' AND i.expires_at > now()
					THEN least(now() + due.delay, i.expires_at + interval '1 second')
				WHEN i.status = 'pending' AND i.expires_at + $3 * interval '1 microsecond' > now()
					THEN least(now() + due.delay, i.expires_at + $3 * interval '1 microsecond' + interval '1 second')
				ELSE now() + due.delay END
		FROM due
		WHERE i.id = due.due_id
		RETURNING `+invoiceColumns, limit, delays, grace.Microseconds())
	if err != nil {
		return nil, classify(err)
	}
	invs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*invoice.Invoice, error) { return scanInvoice(r) })
	return invs, classify(err)
}

// ClaimSync takes the invoice's manual-sync slot now if the last sync was at least interval ago. The
// check and the write are one statement holding the row's lock, on the database's clock, so
// concurrent syncs on any replica cannot both pass. Whether to refuse, and what to say, is the
// caller's to decide from the claim.
func (s *Store) ClaimSync(ctx context.Context, number string, interval time.Duration) (invoice.SyncClaim, error) {
	var c invoice.SyncClaim
	var wait float64
	err := s.pool.QueryRow(ctx, `
		WITH cur AS (
			SELECT id, last_synced_at FROM invoices WHERE invoice_number = @number FOR UPDATE),
		upd AS (
			UPDATE invoices i SET last_synced_at = now() FROM cur
			WHERE i.id = cur.id AND (cur.last_synced_at IS NULL OR cur.last_synced_at <= now() - @interval * interval '1 microsecond')
			RETURNING i.last_synced_at)
		SELECT EXISTS (SELECT 1 FROM upd), coalesce((SELECT last_synced_at FROM upd), now()), cur.last_synced_at,
			coalesce(extract(epoch FROM cur.last_synced_at + @interval * interval '1 microsecond' - now()), 0)
		FROM cur`, pgx.NamedArgs{"number": number, "interval": interval.Microseconds()}).Scan(&c.Taken, &c.At, &c.Previous, &wait)
	if err != nil {
		return c, classify(err)
	}
	c.Wait = time.Duration(wait * float64(time.Second))
	return c, nil
}

// ReleaseSync gives the slot back after a sync DOKU could not answer, so the retry its answer asks
// for is not refused as too soon: the previous sync time is restored, unless another sync has taken
// the slot since.
func (s *Store) ReleaseSync(ctx context.Context, number string, c invoice.SyncClaim) error {
	_, err := s.pool.Exec(ctx, `UPDATE invoices SET last_synced_at = @previous WHERE invoice_number = @number AND last_synced_at = @at`,
		pgx.NamedArgs{"number": number, "previous": c.Previous, "at": c.At})
	return classify(err)
}
