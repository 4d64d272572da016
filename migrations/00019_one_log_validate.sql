-- +goose Up
-- The rule 00018 added NOT VALID, checked for the rows already there: a scan of events that takes a
-- SHARE UPDATE EXCLUSIVE lock, which lets every write go on meanwhile. Its own migration, so that the
-- scan does not run under the lock 00018's ALTER TABLE took. No time limit: the scan takes as long as
-- the table is large; only the wait for the lock is bounded.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = 0;
ALTER TABLE events VALIDATE CONSTRAINT events_entry_valid;

-- +goose Down
SELECT 1;
