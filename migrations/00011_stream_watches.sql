-- +goose Up
-- The invoices someone follows on a status stream, and until when. pg_notify serialises every
-- notifying commit on one server-wide lock (queue entries must appear in commit order), so a change
-- wakes the other replicas only for an invoice that is watched here. Everything else that waits for
-- events looks for itself: the deliverer is woken in process by the replica that committed, and polls.
-- A row outlives its stream (it is not removed when the client leaves); stale rows only cost a
-- notification, and the next watch clears them.
CREATE TABLE stream_watches (
    invoice_number  text        PRIMARY KEY,
    until           timestamptz NOT NULL
);
CREATE INDEX stream_watches_until_idx ON stream_watches (until);

-- +goose Down
DROP TABLE stream_watches;
