package postgres

import (
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

// The outbox. Every event is written by the statement that writes its change, or by the one after it
// in the same transaction, so an event exists exactly when its change committed. Each statement also
// queues the event for every configured webhook endpoint — a disabled one too: what waits for it goes
// out, in order, once a person enables it again — and, when its invoice is watched on a status stream
// (stream_watches), wakes the replicas (pg_notify: delivered at commit, and only then). The replica
// that committed wakes its own deliverer and streams in process (Store.OnPublished).

// eventsChannel is the LISTEN/NOTIFY channel of new events; the payload is the invoice number.
const eventsChannel = "o2o_events"

// queueAndNotify is the tail of every statement that inserts events (as CTE ev). It notifies only
// for watched invoices: every notifying commit takes one server-wide lock, which cost about a tenth
// of the webhook's throughput when every change notified.
const queueAndNotify = `,
	queued AS (
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number)
		SELECT ev.seq, ep.name, ev.invoice_number FROM ev CROSS JOIN webhook_endpoints ep WHERE ep.active)
	SELECT count(pg_notify('` + eventsChannel + `', ev.invoice_number)) FROM ev
	WHERE EXISTS (SELECT 1 FROM stream_watches w WHERE w.invoice_number = ev.invoice_number AND w.until > now())`

// newEventID is an event's public id: time-ordered, unguessable, and stable across redeliveries.
func newEventID() string {
	return "evt_" + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}

var publishChangesStmt = compile(`
		WITH ev AS (
			INSERT INTO events (id, type, invoice_id, invoice_number, created_at, data)
			SELECT e.id, e.type, @invoice_id, @number, @now, e.data::json
			FROM unnest(@id::text[], @type::text[], @data::text[]) WITH ORDINALITY AS e(id, type, data, n)
			ORDER BY e.n
			RETURNING seq, invoice_number)` + queueAndNotify)

// publishChanges writes the events of inv's status changes and payments, in the order they happened.
func publishChanges(inv *invoice.Invoice, now time.Time) stmt {
	n := len(inv.NewChanges)
	ids, types, data := make([]string, n), make([]string, n), make([]string, n)
	for i, c := range inv.NewChanges {
		raw, err := view.ChangeData(c, inv)
		if err != nil {
			return stmt{err: err}
		}
		ids[i], types[i], data[i] = newEventID(), string(c.Type), string(raw)
	}
	return publishChangesStmt.with(pgx.NamedArgs{"invoice_id": inv.ID, "number": inv.Number, "now": now, "id": ids, "type": types, "data": data}).publishing()
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
			RETURNING seq, invoice_number)` + queueAndNotify)

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
