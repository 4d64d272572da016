package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

const attentionColumns = `id, key, reason, invoice_number, source, evidence, state, created_at, resolved_at, resolved_by, note`

func scanAttention(row pgx.Row, extra ...any) (*invoice.Attention, error) {
	var a invoice.Attention
	err := row.Scan(append([]any{&a.ID, &a.Key, &a.Reason, &a.InvoiceNumber, &a.Source, &a.Evidence, &a.State, &a.CreatedAt,
		&a.ResolvedAt, &a.ResolvedBy, &a.Note}, extra...)...)
	return &a, err
}

// ListAttention returns attention items newest first, filtered, with the keyset cursor of the next
// page.
func (s *Store) ListAttention(ctx context.Context, f invoice.AttentionFilter) ([]*invoice.Attention, string, error) {
	after, err := afterCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	w := newFilter(pgx.NamedArgs{"limit": f.Limit + 1}).
		when(f.State != "", "state = @state", "state", string(f.State)).
		when(f.Reason != "", "reason = @reason", "reason", string(f.Reason)).
		when(f.InvoiceNumber != "", "invoice_number = @invoice_number", "invoice_number", f.InvoiceNumber).
		when(after != nil, "id < @after", "after", after)
	rows, err := s.pool.Query(ctx, `SELECT `+attentionColumns+` FROM attention_items `+w.where()+` ORDER BY id DESC LIMIT @limit`, w.args)
	if err != nil {
		return nil, "", classify(err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*invoice.Attention, error) { return scanAttention(r) })
	if err != nil {
		return nil, "", classify(err)
	}
	items, next := page(items, f.Limit, func(a *invoice.Attention) int64 { return a.ID })
	return items, next, nil
}

// ResolveAttention marks an open item resolved by the named key with a note, and returns it. An item
// resolved already is returned unchanged with invoice.ErrAlreadyResolved: the first resolution stands.
func (s *Store) ResolveAttention(ctx context.Context, id int64, by, note string) (*invoice.Attention, error) {
	var now bool
	a, err := scanAttention(s.pool.QueryRow(ctx, `
		WITH upd AS (
			UPDATE attention_items SET state = 'resolved', resolved_at = now(), resolved_by = @by, note = @note
			WHERE id = @id AND state = 'open'
			RETURNING `+attentionColumns+`)
		SELECT `+attentionColumns+`, true FROM upd
		UNION ALL
		SELECT `+attentionColumns+`, false FROM attention_items WHERE id = @id AND NOT EXISTS (SELECT 1 FROM upd)`,
		pgx.NamedArgs{"id": id, "by": by, "note": note}), &now)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, invoice.Errorf(invoice.ErrNotFound, "no attention item has this id")
	}
	if err != nil {
		return nil, classify(err)
	}
	if !now {
		return a, invoice.Errorf(invoice.ErrAlreadyResolved, "this attention item was resolved by %s at %s",
			a.ResolvedBy, a.ResolvedAt.UTC().Format(time.RFC3339))
	}
	return a, nil
}

// OpenAttention counts open attention items by reason, every reason included (for the gauge).
func (s *Store) OpenAttention(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT reason, count(*) FROM attention_items WHERE state = 'open' GROUP BY reason`)
	if err != nil {
		return nil, classify(err)
	}
	out := make(map[string]int, len(invoice.Reasons))
	for _, r := range invoice.Reasons {
		out[string(r)] = 0
	}
	var reason string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&reason, &n}, func() error { out[reason] = n; return nil })
	return out, classify(err)
}
