package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// historyItem is one item of an invoice's history as the log stores it, in an entry's history
// array.
type historyItem struct {
	At     time.Time      `json:"at"`
	Source string         `json:"source"`
	Kind   string         `json:"kind"`
	From   *string        `json:"from"`
	To     *string        `json:"to"`
	Detail map[string]any `json:"detail"`
}

// HistoryJSON encodes a change's history items as the log stores them (an entry's history column);
// an item without a time happened now. make bench's year of data writes its history with it.
func HistoryJSON(evs []invoice.Event, now time.Time) (string, error) {
	items := make([]historyItem, len(evs))
	for i, e := range evs {
		at := now
		if !e.At.IsZero() {
			at = e.At
		}
		d := e.Detail
		if d == nil {
			d = map[string]any{}
		}
		items[i] = historyItem{At: at, Source: string(e.Source), Kind: string(e.Kind), From: optional(string(e.From)),
			To: optional(string(e.To)), Detail: d}
	}
	return jsonText(items)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (h historyItem) event() invoice.Event {
	e := invoice.Event{At: h.At, Source: invoice.Source(h.Source), Kind: invoice.EventKind(h.Kind), Detail: h.Detail}
	if h.From != nil {
		e.From = invoice.Status(*h.From)
	}
	if h.To != nil {
		e.To = invoice.Status(*h.To)
	}
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	return e
}

// Events returns an invoice's history, oldest first, or invoice.ErrNotFound: its creation (the invoice
// row is its record), then the items of its log entries in the order they were written — each change
// takes the invoice's row lock before it appends, so that is the order the changes happened in.
// Items the release before the one log recorded in invoice_events while this one rolled out (the
// rest were moved into the log) are merged in by time. One round trip.
func (s *Store) Events(ctx context.Context, number string) ([]invoice.Event, error) {
	var created time.Time
	var requestID string
	var logged, legacy []byte
	err := s.pool.QueryRow(ctx, `
		SELECT i.created_at, i.doku_request_id,
			coalesce((SELECT json_agg(e.history ORDER BY e.seq) FROM events e
				WHERE e.invoice_id = i.id AND e.history IS NOT NULL), '[]'),
			coalesce((SELECT json_agg(json_build_object('at', l.at, 'source', l.source, 'kind', l.kind,
				'from', l.from_status, 'to', l.to_status, 'detail', l.detail) ORDER BY l.id)
				FROM invoice_events l WHERE l.invoice_id = i.id AND l.kind <> 'created'), '[]')
		FROM invoices i WHERE i.invoice_number = $1`, number).Scan(&created, &requestID, &logged, &legacy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, invoice.Errorf(invoice.ErrNotFound, "invoice not found")
	}
	if err != nil {
		return nil, classify(err)
	}
	var entries [][]historyItem
	var old []historyItem
	if err := json.Unmarshal(logged, &entries); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(legacy, &old); err != nil {
		return nil, err
	}
	var items []historyItem
	for _, e := range entries {
		items = append(items, e...)
	}
	out := []invoice.Event{{At: created, Source: invoice.SourceAPI, Kind: invoice.EventCreated, To: invoice.StatusCreating,
		Detail: map[string]any{"doku_request_id": requestID}}}
	return append(out, mergeByTime(old, items)...), nil
}

// mergeByTime merges two histories, each in its own order, into one: an item of first goes before an
// item of second that happened later (or at the same time).
func mergeByTime(first, second []historyItem) []invoice.Event {
	out := make([]invoice.Event, 0, len(first)+len(second))
	i, j := 0, 0
	for i < len(first) || j < len(second) {
		if j == len(second) || i < len(first) && !first[i].At.After(second[j].At) {
			out = append(out, first[i].event())
			i++
			continue
		}
		out = append(out, second[j].event())
		j++
	}
	return out
}
