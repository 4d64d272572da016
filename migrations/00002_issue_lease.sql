-- +goose Up
-- Whoever calls DOKU for a creating invoice first takes its issue lease, in one short UPDATE, so
-- concurrent requests and resumers on any number of replicas never call DOKU for it at once. The
-- lease outlives a DOKU call (timeout + margin); a crashed holder's lease simply expires.
ALTER TABLE invoices
    ADD COLUMN issue_lease_until timestamptz,
    ADD COLUMN issue_attempts    integer     NOT NULL DEFAULT 0,
    ADD COLUMN next_issue_at     timestamptz NOT NULL DEFAULT now();

CREATE INDEX invoices_creating_due_idx ON invoices (next_issue_at) WHERE status = 'creating';

-- +goose Down
DROP INDEX invoices_creating_due_idx;
ALTER TABLE invoices
    DROP COLUMN issue_lease_until,
    DROP COLUMN issue_attempts,
    DROP COLUMN next_issue_at;
