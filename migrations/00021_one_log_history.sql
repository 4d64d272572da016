-- +goose NO TRANSACTION
-- +goose Up
-- The history recorded before the one log (invoice_events) moves into it, in batches of 5,000 rows,
-- each its own short transaction: no lock is held longer than one batch, the service takes payments
-- throughout, and a move stopped half way (a crash, a timeout) is finished by running it again. Each
-- batch becomes one 'history' entry per invoice, created now (a release before this one purges events
-- by age and must not see these as old), the items keeping their own times, in their order. An
-- invoice's "created" entry is not moved: the history derives it from the invoice itself.
--
-- Only the rows there when the move starts are moved: the release before this one keeps writing
-- invoice_events until its last replica stops, and the history reads what it wrote there (in time
-- order with the log) until a later release moves the rest and drops the table.
SET lock_timeout = '3s';
SET statement_timeout = 0;

-- +goose StatementBegin
DO $$
DECLARE
    done_id bigint := 0;
    stop_id bigint;
    next_id bigint;
BEGIN
    SELECT coalesce(max(id), 0) INTO stop_id FROM invoice_events;
    LOOP
        WITH batch AS (
            SELECT id FROM invoice_events WHERE id > done_id AND id <= stop_id ORDER BY id LIMIT 5000),
        gone AS (
            DELETE FROM invoice_events e USING batch WHERE e.id = batch.id
            RETURNING e.id, e.invoice_id, e.at, e.source, e.kind, e.from_status, e.to_status, e.detail),
        moved AS (
            INSERT INTO events (type, invoice_id, invoice_number, xid, created_at, history)
            SELECT 'history', g.invoice_id, NULL, NULL, now(),
                json_agg(json_build_object('at', g.at, 'source', g.source, 'kind', g.kind, 'from', g.from_status,
                    'to', g.to_status, 'detail', g.detail) ORDER BY g.id)
            FROM gone g WHERE g.kind <> 'created'
            GROUP BY g.invoice_id ORDER BY min(g.id))
        SELECT max(id) INTO next_id FROM batch;
        COMMIT;
        EXIT WHEN next_id IS NULL;
        done_id := next_id;
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose Down
-- Back into invoice_events, on a database that has just run Up: every 'history' entry is one Up made.
SET lock_timeout = '3s';
SET statement_timeout = 0;
-- +goose StatementBegin
WITH gone AS (
    DELETE FROM events WHERE type = 'history' RETURNING seq, invoice_id, history)
INSERT INTO invoice_events (invoice_id, at, source, kind, from_status, to_status, detail)
SELECT g.invoice_id, (h.item->>'at')::timestamptz, h.item->>'source', h.item->>'kind', h.item->>'from',
    h.item->>'to', (h.item->'detail')::jsonb
FROM gone g, json_array_elements(g.history) WITH ORDINALITY AS h(item, n)
ORDER BY g.seq, h.n;
-- +goose StatementEnd
-- +goose StatementBegin
INSERT INTO invoice_events (invoice_id, at, source, kind, to_status, detail)
SELECT i.id, i.created_at, 'api', 'created', 'creating', jsonb_build_object('doku_request_id', i.doku_request_id)
FROM invoices i WHERE NOT EXISTS (SELECT 1 FROM invoice_events e WHERE e.invoice_id = i.id AND e.kind = 'created');
-- +goose StatementEnd
