-- +goose Up
CREATE TABLE invoices (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_number      text        NOT NULL,
    channel             text        NOT NULL,
    amount              bigint      NOT NULL,
    currency            text        NOT NULL DEFAULT 'IDR',
    status              text        NOT NULL,
    customer_name       text        NOT NULL,
    customer_email      text        NOT NULL DEFAULT '',
    expires_in_minutes  integer     NOT NULL,
    reusable            boolean     NOT NULL DEFAULT false,
    info                text        NOT NULL DEFAULT '',
    receipt_footer      text        NOT NULL DEFAULT '',
    metadata            jsonb,
    -- One Request-Id and one exact body per invoice, fixed at insert, resent on every retry.
    doku_request_id     text        NOT NULL,
    doku_request_body   bytea       NOT NULL,
    payment_code        text,
    how_to_pay_page     text        NOT NULL DEFAULT '',
    how_to_pay_api      text        NOT NULL DEFAULT '',
    expires_at          timestamptz,
    paid_at             timestamptz,
    paid_after_expiry   boolean     NOT NULL DEFAULT false,
    failure_code        text        NOT NULL DEFAULT '',
    failure_message     text        NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT invoices_invoice_number_key UNIQUE (invoice_number),
    CONSTRAINT invoices_doku_request_id_key UNIQUE (doku_request_id),
    CONSTRAINT invoices_invoice_number_format CHECK (invoice_number ~ '^[A-Za-z0-9._~-]{1,64}$'),
    CONSTRAINT invoices_channel_valid CHECK (channel IN ('alfa', 'indomaret')),
    CONSTRAINT invoices_amount_positive CHECK (amount > 0),
    CONSTRAINT invoices_currency_idr CHECK (currency = 'IDR'),
    CONSTRAINT invoices_status_valid CHECK (status IN ('creating', 'pending', 'paid', 'expired', 'failed')),
    CONSTRAINT invoices_issued_has_code CHECK (status IN ('creating', 'failed') OR payment_code IS NOT NULL),
    CONSTRAINT invoices_paid_has_time CHECK (status <> 'paid' OR paid_at IS NOT NULL),
    CONSTRAINT invoices_receipt_footer_alfa CHECK (receipt_footer = '' OR channel = 'alfa'),
    CONSTRAINT invoices_metadata_object CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object')
);

-- Listing walks newest first by id (the keyset cursor), optionally within a status or channel.
CREATE INDEX invoices_status_id_idx ON invoices (status, id DESC);
CREATE INDEX invoices_channel_id_idx ON invoices (channel, id DESC);

CREATE TABLE payments (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id          bigint      NOT NULL REFERENCES invoices (id),
    -- Identifies the payment itself, not the report of it: a notification retry, a second
    -- notification and a status poll of the same payment all carry the same key.
    dedupe_key          text        NOT NULL,
    amount              bigint      NOT NULL,
    paid_at             timestamptz NOT NULL,
    source              text        NOT NULL,
    doku_request_id     text        NOT NULL DEFAULT '',
    identifiers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT payments_recorded_once UNIQUE (invoice_id, dedupe_key),
    CONSTRAINT payments_amount_positive CHECK (amount > 0),
    CONSTRAINT payments_source_valid CHECK (source IN ('api', 'webhook', 'reconciler', 'sync'))
);

-- +goose Down
DROP TABLE payments;
DROP TABLE invoices;
