-- +goose NO TRANSACTION
-- +goose Up
-- The reconciler's and the resumer's claims take the due invoices of their own DOKU, first due first:
-- an invoice of another DOKU, left alone, must not be walked over at every round. (The indexes these
-- replace, invoices_check_due_idx and invoices_creating_due_idx, serve the release before this one
-- during a rollout; a later migration drops them.)
SET lock_timeout = '3s';
SET statement_timeout = 0;

DROP INDEX CONCURRENTLY IF EXISTS invoices_env_check_due_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_env_check_due_idx ON invoices (doku_env, next_check_at)
    WHERE next_check_at IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS invoices_env_creating_due_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_env_creating_due_idx ON invoices (doku_env, next_issue_at)
    WHERE status = 'creating';

-- +goose Down
SET lock_timeout = '3s';
DROP INDEX CONCURRENTLY IF EXISTS invoices_env_creating_due_idx;
DROP INDEX CONCURRENTLY IF EXISTS invoices_env_check_due_idx;
