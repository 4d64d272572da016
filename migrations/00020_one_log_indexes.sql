-- +goose NO TRANSACTION
-- +goose Up
-- Built CONCURRENTLY (so outside a transaction), each after dropping what a failed build left.
SET lock_timeout = '3s';
SET statement_timeout = 0;

-- An invoice's history: the entries of the log that carry some, in order (postgres.Store.Events).
DROP INDEX CONCURRENTLY IF EXISTS events_history_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_history_idx ON events (invoice_id, seq) WHERE history IS NOT NULL;

-- No query reads notifications by invoice_id (notifications_invoice_number_idx serves the only lookup
-- by invoice), and from this release on it is not written: an index entry per notification for nothing.
DROP INDEX CONCURRENTLY IF EXISTS notifications_invoice_id_idx;

-- +goose Down
SET lock_timeout = '3s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_invoice_id_idx ON notifications (invoice_id) WHERE invoice_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS events_history_idx;
