-- +goose Up
-- Every notification that passes signature verification, stored raw with what it did, in the same
-- transaction as the state change it caused. DOKU's Request-Id is the replay key: a redelivery is
-- counted, never applied twice.
CREATE TABLE notifications (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doku_request_id   text        NOT NULL,
    invoice_number    text        NOT NULL DEFAULT '',
    invoice_id        bigint      REFERENCES invoices (id),
    -- Client-Id, Request-Id, Request-Timestamp and Signature as received (never our secret).
    headers           jsonb       NOT NULL,
    body              bytea       NOT NULL,
    outcome           text        NOT NULL,
    deliveries        integer     NOT NULL DEFAULT 1,
    received_at       timestamptz NOT NULL DEFAULT now(),
    last_received_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notifications_doku_request_id_key UNIQUE (doku_request_id),
    CONSTRAINT notifications_outcome_valid CHECK (outcome IN ('applied', 'duplicate', 'amount_mismatch',
        'channel_mismatch', 'code_mismatch', 'invoice_mismatch', 'unidentified_payment', 'ignored_status',
        'not_issued', 'unknown_invoice', 'malformed'))
);

CREATE INDEX notifications_outcome_id_idx ON notifications (outcome, id DESC);
CREATE INDEX notifications_invoice_id_idx ON notifications (invoice_id) WHERE invoice_id IS NOT NULL;

-- +goose Down
DROP TABLE notifications;
