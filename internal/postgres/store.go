package postgres

import (
	"context"
	"encoding/base64"
	"errors"

	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/invoice"
)

// Store is the invoice store. It only persists: every wait, lease and limit it applies is passed in by
// its caller, which decides them. Every method is one statement or one short transaction; none is held
// open while anything else (DOKU in particular) is called.
type Store struct {
	pool        *pgxpool.Pool
	now         func() time.Time
	onPublished func(number string)
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, now: time.Now}
}

// OnPublished sets f to be called, with the invoice number, after each commit that wrote events (set
// it before the store is used). Other replicas learn of events only when the invoice is watched
// (WatchInvoice); this is how the committing replica wakes its own deliverer at once.
func (s *Store) OnPublished(f func(number string)) { s.onPublished = f }

// published calls onPublished when a committed transaction's statements wrote events.
func (s *Store) published(number string, committed []stmt) {
	if s.onPublished == nil {
		return
	}
	for _, st := range committed {
		if st.publishes {
			s.onPublished(number)
			return
		}
	}
}

// Create inserts inv if no invoice has its number yet, holding its issue lease for lease. It returns
// the stored invoice and true when it was inserted, or the existing invoice and false when the number
// was taken — the caller decides whether that is an idempotent replay or a conflict.
func (s *Store) Create(ctx context.Context, inv *invoice.Invoice, lease time.Duration) (*invoice.Invoice, bool, error) {
	var metadata any
	if len(inv.Metadata) > 0 {
		metadata = []byte(inv.Metadata)
	}
	// One statement, one row: the invoice is the record of its own creation (Store.Events).
	created, err := oneInvoice(s.pool.Query(ctx, `
		WITH ins AS (
			INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, customer_email,
				expires_in_minutes, reusable, info, receipt_footer, metadata, doku_request_id, doku_request_body, doku_env,
				page_token, issue_lease_until, issue_attempts, next_issue_at)
			VALUES (@number, @channel, @amount, @status, @customer_name, @customer_email, @expires_in_minutes,
				@reusable, @info, @receipt_footer, @metadata, @doku_request_id, @doku_request_body, @doku_env, @page_token,
				now() + @lease * interval '1 microsecond', 1, now() + @lease * interval '1 microsecond')
			ON CONFLICT (invoice_number) DO NOTHING
			RETURNING *)
		SELECT `+invoiceColumns+` FROM ins i`,
		pgx.NamedArgs{"number": inv.Number, "channel": inv.Channel, "amount": inv.Amount, "status": inv.Status,
			"customer_name": inv.Customer.Name, "customer_email": inv.Customer.Email, "expires_in_minutes": inv.ExpiresInMinutes,
			"reusable": inv.Reusable, "info": inv.Info, "receipt_footer": inv.ReceiptFooter, "metadata": metadata,
			"doku_request_id": inv.DokuRequestID, "doku_request_body": inv.DokuRequestBody, "doku_env": inv.DokuEnv,
			"page_token": inv.PageToken, "lease": lease.Microseconds()}))
	if err == nil {
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
	inv, err := oneInvoice(s.pool.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices i WHERE i.invoice_number = $1`, number))
	if err != nil {
		return nil, classify(err)
	}
	return inv, nil
}

// errBadCursor is returned for a cursor this store did not produce.
var errBadCursor = invoice.Invalid("cursor", "is not a cursor returned by this API")

// List returns invoices newest first and, when more remain, the cursor of the next page. The cursor is
// a keyset position (the last id seen), so pages stay stable while new invoices arrive.
func (s *Store) List(ctx context.Context, f invoice.ListFilter) ([]*invoice.Invoice, string, error) {
	after, err := afterCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	w := newFilter(pgx.NamedArgs{"limit": f.Limit + 1}).
		when(f.Status != "", "i.status = @status", "status", string(f.Status)).
		when(f.Channel != "", "i.channel = @channel", "channel", string(f.Channel)).
		when(after != nil, "i.id < @after", "after", after)
	rows, err := s.pool.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices i `+w.where()+` ORDER BY i.id DESC LIMIT @limit`, w.args)
	if err != nil {
		return nil, "", classify(err)
	}
	invs, err := pgx.CollectRows(rows, scanInvoice)
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
		return nil, errBadCursor
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
// what fn changed: the invoice's state, payments fn added or identified, attention items and history.
// If fn returns an error nothing is written and the error is returned. Concurrent Updates of one
// invoice run one after the other, which is what makes "recorded once" hold when the webhook and a
// poll see the same payment together.
func (s *Store) Update(ctx context.Context, number string, fn func(*invoice.Invoice) error) (*invoice.Invoice, error) {
	var out *invoice.Invoice
	err := s.lockedTx(ctx, number, nil, func(l *locked) ([]stmt, error) {
		if l == nil {
			return nil, invoice.Errorf(invoice.ErrNotFound, "invoice not found")
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
	return out, nil
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
		return &invoice.Error{Kind: invoice.ErrUnavailable, Message: "the database schema is not at the latest migration"}
	}
	return nil
}
