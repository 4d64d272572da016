-- +goose Up
-- Each invoice remembers the DOKU that issued it: a digest of DOKU's base URL and the Client-Id
-- (doku.EnvironmentID). The reconciler, the resumer and manual sync ask only that DOKU, so a service
-- pointed at another DOKU (the sandbox after the simulator, production after the sandbox) on the same
-- database never sends status requests for invoices it did not issue. Invoices from before this
-- column existed are still open or already final; the first replica to start claims the open ones
-- for its own DOKU (app.Run), the final ones are never asked about again.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE invoices ADD COLUMN doku_env text;

-- +goose Down
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-column
ALTER TABLE invoices DROP COLUMN doku_env;
