-- +goose Up
-- Fewer index entries per write on the hot paths (every status change rewrites the invoice row and
-- each of its indexes; every change inserts events):
-- * an index on channel (two values) never narrows a list enough to be used;
-- * the feed's ?type= filter walks events in order and filters: it is an operator's query, not a
--   hot path, and an index per event type is paid by every event written;
-- * an event's payload is kept as written (json, not jsonb): it is only ever sent back whole, so
--   taking it apart into jsonb on every insert bought nothing, and json keeps the field order the
--   API writes.
DROP INDEX invoices_channel_id_idx;
DROP INDEX events_type_seq_idx;
ALTER TABLE events ALTER COLUMN data TYPE json USING data::json;

-- +goose Down
ALTER TABLE events ALTER COLUMN data TYPE jsonb USING data::jsonb;
CREATE INDEX events_type_seq_idx ON events (type, seq);
CREATE INDEX invoices_channel_id_idx ON invoices (channel, id DESC);
