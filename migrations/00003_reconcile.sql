-- +goose Up
-- The reconciler polls DOKU's check status for invoices that may still change: pending ones, and
-- reusable paid ones until their code expires. next_check_at is NULL once an invoice is final. A claim
-- moves next_check_at forward in the same statement, so no second claim can take the invoice until
-- its next turn: that is the whole lock.
ALTER TABLE invoices
    ADD COLUMN next_check_at     timestamptz,
    ADD COLUMN check_attempts    integer     NOT NULL DEFAULT 0,
    -- Manual sync is rate-limited per invoice, across replicas, by this column.
    ADD COLUMN last_synced_at    timestamptz,
    -- Expired by our grace period while DOKU still said PENDING (not by DOKU saying EXPIRED).
    ADD COLUMN expired_by_grace  boolean     NOT NULL DEFAULT false;

CREATE INDEX invoices_check_due_idx ON invoices (next_check_at) WHERE next_check_at IS NOT NULL;

-- +goose Down
DROP INDEX invoices_check_due_idx;
ALTER TABLE invoices
    DROP COLUMN next_check_at,
    DROP COLUMN check_attempts,
    DROP COLUMN last_synced_at,
    DROP COLUMN expired_by_grace;
