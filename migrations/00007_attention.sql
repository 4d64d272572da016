-- +goose Up
-- Every case where money or an order needs a person's decision, once: key identifies the case itself
-- (the notification, the payment, the status answer that showed it), so seeing it again — a
-- redelivery, the next poll — never adds a second item. Written in the same transaction as the change
-- that raised it.
CREATE TABLE attention_items (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key             text        NOT NULL,
    reason          text        NOT NULL,
    invoice_id      bigint      REFERENCES invoices (id),
    invoice_number  text        NOT NULL DEFAULT '',
    source          text        NOT NULL,
    evidence        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state           text        NOT NULL DEFAULT 'open',
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    -- The name of the API key that resolved it ('system' when the case explained itself).
    resolved_by     text        NOT NULL DEFAULT '',
    note            text        NOT NULL DEFAULT '',

    CONSTRAINT attention_items_key_key UNIQUE (key),
    CONSTRAINT attention_items_reason_valid CHECK (reason IN ('amount_mismatch', 'channel_mismatch',
        'code_mismatch', 'invoice_mismatch', 'paid_while_failed', 'paid_after_expiry', 'second_payment',
        'unidentified_payment', 'unreadable_notification', 'unknown_invoice', 'stuck_creating')),
    CONSTRAINT attention_items_state_valid CHECK (state IN ('open', 'resolved')),
    CONSTRAINT attention_items_resolved_when CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);

-- The list walks newest first by id (the keyset cursor), within a state, a reason or an invoice.
CREATE INDEX attention_items_state_id_idx ON attention_items (state, id DESC);
CREATE INDEX attention_items_reason_id_idx ON attention_items (reason, id DESC);
CREATE INDEX attention_items_invoice_number_idx ON attention_items (invoice_number, id DESC);

-- +goose Down
DROP TABLE attention_items;
