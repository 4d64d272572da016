-- +goose Up
-- The history of an invoice: every status change, payment, DOKU call and notification, in order,
-- with its time and source — enough to answer "why is this invoice paid/expired/failed?". Written in
-- the same transaction as the change it records.
CREATE TABLE invoice_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id  bigint      NOT NULL REFERENCES invoices (id),
    at          timestamptz NOT NULL DEFAULT now(),
    source      text        NOT NULL,
    kind        text        NOT NULL,
    from_status text,
    to_status   text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX invoice_events_invoice_id_idx ON invoice_events (invoice_id, id);

-- +goose Down
DROP TABLE invoice_events;
