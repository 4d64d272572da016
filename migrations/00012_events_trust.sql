-- +goose Up
-- From this migration on, every migration is written to run on a large, busy database without taking
-- the payment path offline (README, "Where a change goes"): it waits at most lock_timeout for a lock
-- (and fails rather than queue every webhook behind it), adds nothing that rewrites a table, and builds
-- indexes CONCURRENTLY in migrations of their own. `make lint` holds them to it with squawk.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';

-- Webhook endpoints are a registry the merchant controls, not a side effect of one process's
-- configuration: a replica registers the endpoints it is configured with and never deactivates
-- another's. active now means "registered": false only once removed through the API (removed_at), and
-- a configuration that still names a removed endpoint does not bring it back (enable does). enabled_at
-- is when the endpoint was last enabled: a delivery's retry period counts from then if that is later
-- than its creation, so time spent disabled never counts against it.
ALTER TABLE webhook_endpoints
    ADD COLUMN removed_at timestamptz,
    ADD COLUMN enabled_at timestamptz;

-- A stream token can be revoked before it expires.
ALTER TABLE stream_tokens ADD COLUMN revoked_at timestamptz;

-- A notification's raw body is thinned to its digest (body_sha256, kept) after the dispute window.
ALTER TABLE notifications ADD COLUMN body_thinned_at timestamptz;

-- A job that must run on one replica at a time (the purge) holds its lease here: one short UPDATE on
-- the database's clock, never a lock held for the job's length (and no session-level lock, which a
-- transaction-mode connection pooler would not keep).
CREATE TABLE worker_leases (
    name    text        PRIMARY KEY,
    holder  text        NOT NULL,
    until   timestamptz NOT NULL
);

-- How far each purge has gone. For 'events': the largest feed position (xid, seq) purged, so that a
-- feed cursor from before it is told it expired instead of silently skipping what was purged. For a
-- purge that walks a table by its key and leaves rows behind (thinned notifications): the last key
-- done (seq), where the next run starts.
CREATE TABLE purge_marks (
    name    text        PRIMARY KEY,
    xid     xid8,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
-- Down undoes Up on a database that has just run it; nothing else uses what it drops.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-table
DROP TABLE purge_marks;
-- squawk-ignore ban-drop-table
DROP TABLE worker_leases;
-- squawk-ignore ban-drop-column
ALTER TABLE notifications DROP COLUMN body_thinned_at;
-- squawk-ignore ban-drop-column
ALTER TABLE stream_tokens DROP COLUMN revoked_at;
-- squawk-ignore ban-drop-column
ALTER TABLE webhook_endpoints DROP COLUMN enabled_at, DROP COLUMN removed_at;
