-- +goose NO TRANSACTION
-- +goose Up
-- Built CONCURRENTLY (so outside a transaction): the tables stay writable while they are built. A
-- build that failed leaves an invalid index behind; dropping it first makes the migration safe to run
-- again.
SET lock_timeout = '3s';
SET statement_timeout = 0;

-- The feed walks events in (xid, seq) order from a cursor (postgres.ListEvents).
DROP INDEX CONCURRENTLY IF EXISTS events_xid_seq_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_xid_seq_idx ON events (xid, seq);

-- Dead deliveries, by endpoint: ?delivery_state=dead and the bulk redelivery find them without walking
-- the delivered ones.
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_dead_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_dead_idx ON webhook_deliveries (endpoint, event_seq) WHERE state = 'dead';

-- +goose Down
SET lock_timeout = '3s';
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_dead_idx;
DROP INDEX CONCURRENTLY IF EXISTS events_xid_seq_idx;
