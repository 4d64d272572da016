-- +goose Up
-- A claim takes an endpoint's due deliveries in the order they fell due. The index holds pending
-- deliveries only, so a claim never walks the delivered ones (which stay, for the feed) however many
-- there are; while an invoice's first delivery backs off, its later ones back off with it (see
-- FinishAttempt), so they are not due and not walked either.
DROP INDEX webhook_deliveries_due_idx;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint, next_attempt_at, event_seq)
    WHERE state = 'pending';

-- +goose Down
DROP INDEX webhook_deliveries_due_idx;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint, next_attempt_at) WHERE state = 'pending';
