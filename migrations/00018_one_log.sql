-- +goose Up
-- One log of every change. An invoice's history (invoice_events) and the events told to the merchant's
-- systems (events) recorded the same changes twice; from now on events is the one log. Each change
-- writes one entry: its public event when it tells the merchant something (invoice.paid, …), carrying
-- the history of the change in history (what DOKU answered, the notification, the payment); or, when
-- it tells nothing (a status check that found no change, a duplicate notification), an entry of type
-- 'history' that only the invoice's history shows. Whether an entry is public is its type.
--
-- A 'history' entry has no public id, no feed position (xid), no invoice_number and no payload: the
-- queries of the release before this one (still serving while this one rolls out) find events by
-- those columns, so they never see it. It belongs to its invoice by invoice_id. A public event past
-- EVENTS_RETENTION that carries history is thinned (its payload and feed position cleared) instead
-- of deleted: the history is kept with the invoice, the copy of the invoice is not.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE events ADD COLUMN history json;
-- The release before reads only rows that have all four (TestReleaseBeforeNeverSeesHistoryEntries).
-- squawk-ignore ban-drop-not-null
ALTER TABLE events ALTER COLUMN id DROP NOT NULL, ALTER COLUMN xid DROP NOT NULL, ALTER COLUMN invoice_number DROP NOT NULL, ALTER COLUMN data DROP NOT NULL;

-- The release before writes only public events, which the new rule allows; it is checked for new
-- rows at once and for the existing ones by the next migration, without blocking writes.
ALTER TABLE events DROP CONSTRAINT events_type_valid;
ALTER TABLE events ADD CONSTRAINT events_entry_valid CHECK (
    CASE WHEN type = 'history'
        THEN id IS NULL AND xid IS NULL AND invoice_number IS NULL AND data IS NULL
            AND invoice_id IS NOT NULL AND history IS NOT NULL
        ELSE type IN ('invoice.pending', 'invoice.paid', 'invoice.expired', 'invoice.failed', 'invoice.cancelled',
                'payment.recorded', 'attention.raised')
            AND id IS NOT NULL AND invoice_number IS NOT NULL AND (xid IS NULL) = (data IS NULL)
    END) NOT VALID;

-- +goose Down
-- Down undoes Up on a database that has just run it (no 'history' entry, nothing thinned yet).
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE events DROP CONSTRAINT events_entry_valid;
ALTER TABLE events ADD CONSTRAINT events_type_valid CHECK (type IN ('invoice.pending', 'invoice.paid',
    'invoice.expired', 'invoice.failed', 'invoice.cancelled', 'payment.recorded', 'attention.raised')) NOT VALID;
-- squawk-ignore adding-not-nullable-field
ALTER TABLE events ALTER COLUMN data SET NOT NULL, ALTER COLUMN invoice_number SET NOT NULL, ALTER COLUMN xid SET NOT NULL, ALTER COLUMN id SET NOT NULL;
-- squawk-ignore ban-drop-column
ALTER TABLE events DROP COLUMN history;
