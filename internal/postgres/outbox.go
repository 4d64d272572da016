package postgres

import (
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

// The log. Every change of an invoice appends to events, in the transaction of the change, one entry
// per thing it tells the merchant's systems (a public event: invoice.paid, attention.raised, …) or,
// when it tells them nothing, one entry of type history. The history of the change — the DOKU call,
// the notification, the payment, the status — rides on its first entry, so an invoice's history is
// its entries read in order, and a change that pays an invoice writes one row where it wrote four
// (two history rows and two events, each with a copy of the invoice). An event exists exactly when
// its change committed.
//
// A public entry is queued in the same statement for every registered webhook endpoint — a disabled
// one too: what waits for it goes out, in order, once a person enables it again — and, when its
// invoice is watched on a status stream (stream_watches), wakes the replicas (pg_notify: delivered
// at commit, and only then). The replica that committed wakes its own deliverer and streams in
// process (Store.OnPublished). A history entry has no public id, feed position or payload, so the
// feed, the streams and the deliveries never see it.

// eventsChannel is the LISTEN/NOTIFY channel of new events; the payload is the invoice number.
const eventsChannel = "o2o_events"

// queueAndNotify is the tail of every statement that appends to the log (as CTE ev, returning seq,
// id and invoice_number). It notifies only for watched invoices: every notifying commit takes one
// server-wide lock, which cost about a tenth of the webhook's throughput when every change notified.
const queueAndNotify = `,
	queued AS (
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number)
		SELECT ev.seq, ep.name, ev.invoice_number FROM ev CROSS JOIN webhook_endpoints ep
		WHERE ep.active AND ev.id IS NOT NULL)
	SELECT count(pg_notify('` + eventsChannel + `', ev.invoice_number)) FROM ev
	WHERE ev.id IS NOT NULL
	  AND EXISTS (SELECT 1 FROM stream_watches w WHERE w.invoice_number = ev.invoice_number AND w.until > now())`

// newEventID is an event's public id: time-ordered, unguessable, and stable across redeliveries.
func newEventID() string {
	return "evt_" + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}

// appendLogStmt writes a change's entries, given as parallel arrays in order; an entry without an id
// is a history entry (no id, feed position, invoice number or payload).
var appendLogStmt = compile(`
		WITH ev AS (
			INSERT INTO events (id, type, invoice_id, invoice_number, xid, created_at, data, history)
			SELECT nullif(e.id, ''), e.type, @invoice_id, CASE WHEN e.id <> '' THEN @number END,
				CASE WHEN e.id <> '' THEN pg_current_xact_id() END, @now, nullif(e.data, '')::json,
				nullif(e.history, '')::json
			FROM unnest(@id::text[], @type::text[], @data::text[], @history::text[]) WITH ORDINALITY AS e(id, type, data, history, n)
			ORDER BY e.n
			RETURNING seq, id, invoice_number)` + queueAndNotify)

// appendLog writes what a change of inv tells the merchant's systems (its NewChanges, in the order
// they happened, each with the invoice as the change left it) and the change's history (NewEvents),
// on the first entry — or, when it tells them nothing, on an entry of its own.
func appendLog(inv *invoice.Invoice, now time.Time) stmt {
	n := max(len(inv.NewChanges), 1)
	ids, types, data, history := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	types[0] = invoice.LogHistory
	for i, c := range inv.NewChanges {
		raw, err := view.ChangeData(c, inv)
		if err != nil {
			return stmt{err: err}
		}
		ids[i], types[i], data[i] = newEventID(), string(c.Type), string(raw)
	}
	if len(inv.NewEvents) > 0 {
		var err error
		if history[0], err = HistoryJSON(inv.NewEvents, now); err != nil {
			return stmt{err: err}
		}
	}
	st := appendLogStmt.with(pgx.NamedArgs{"invoice_id": inv.ID, "number": inv.Number, "now": now, "id": ids, "type": types,
		"data": data, "history": history})
	if len(inv.NewChanges) > 0 {
		st = st.publishing()
	}
	return st
}

var insertAttentionStmt = compile(`
		WITH a AS (
			INSERT INTO attention_items (key, reason, invoice_id, invoice_number, source, evidence, created_at)
			SELECT key, reason, @invoice_id, number, source, evidence::jsonb, @now
			FROM unnest(@key::text[], @reason::text[], @number::text[], @source::text[], @evidence::text[])
				WITH ORDINALITY AS a(key, reason, number, source, evidence, n)
			ORDER BY a.n
			ON CONFLICT (key) DO NOTHING
			RETURNING id, key),
		ev AS (
			INSERT INTO events (id, type, invoice_id, invoice_number, created_at, data)
			SELECT DISTINCT ON (a.id) e.event_id, 'attention.raised', @invoice_id, e.number, @now,
				jsonb_set(e.data::jsonb, '{attention,id}', to_jsonb(a.id))::json
			FROM a JOIN unnest(@key::text[], @event_id::text[], @number::text[], @data::text[]) AS e(key, event_id, number, data)
				ON e.key = a.key
			ORDER BY a.id
			RETURNING seq, id, invoice_number)` + queueAndNotify)

// insertAttention flags cases for a person, each once: an item whose key exists is left as it is.
// Every item stored is published as an attention.raised event, with the invoice it is about (inv
// nil: a notification without an invoice of ours). The item's id, known only once stored, is set into
// the event's payload by the statement.
func insertAttention(inv *invoice.Invoice, items []invoice.Attention, now time.Time) stmt {
	n := len(items)
	key, reason, number, source, evidence, eventID, data := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range items {
		a := items[i]
		a.CreatedAt, a.State = now, invoice.AttentionOpen
		key[i], reason[i], number[i], source[i], eventID[i] = a.Key, string(a.Reason), a.InvoiceNumber, string(a.Source), newEventID()
		var err error
		if evidence[i], err = jsonText(a.Evidence); err != nil {
			return stmt{err: err}
		}
		raw, err := view.AttentionData(&a, inv)
		if err != nil {
			return stmt{err: err}
		}
		data[i] = string(raw)
	}
	var invoiceID *int64
	if inv != nil {
		invoiceID = &inv.ID
	}
	return insertAttentionStmt.with(pgx.NamedArgs{"invoice_id": invoiceID, "now": now, "key": key, "reason": reason, "number": number,
		"source": source, "evidence": evidence, "event_id": eventID, "data": data}).publishing()
}
