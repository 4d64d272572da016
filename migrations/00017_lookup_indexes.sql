-- +goose NO TRANSACTION
-- +goose Up
-- What a person looks up in the inbox, on its index (internal/plans found both walking the inbox).
-- Built CONCURRENTLY (so outside a transaction), each after dropping what a failed build left.
SET lock_timeout = '3s';
SET statement_timeout = 0;

-- GET /v1/notifications?invoice_number=: "what did DOKU send us about this order?"
DROP INDEX CONCURRENTLY IF EXISTS notifications_invoice_number_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_invoice_number_idx ON notifications (invoice_number, id DESC);

-- GET /v1/notifications?outcome=flagged: the few that need a person, newest first, without walking the
-- many that do not. Its condition is written out the same in postgres.flaggedOutcomes.
DROP INDEX CONCURRENTLY IF EXISTS notifications_flagged_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_flagged_idx ON notifications (id DESC)
    WHERE outcome IN ('amount_mismatch', 'channel_mismatch', 'code_mismatch', 'invoice_mismatch', 'unidentified_payment');

-- +goose Down
SET lock_timeout = '3s';
DROP INDEX CONCURRENTLY IF EXISTS notifications_flagged_idx;
DROP INDEX CONCURRENTLY IF EXISTS notifications_invoice_number_idx;
