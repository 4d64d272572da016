-- +goose Up
-- Cancellation: the merchant may call an order off while it is creating or pending. DOKU has no way to
-- withdraw an O2O code, so an issued one may still be paid: that money is recorded, the invoice becomes
-- paid with paid_after_cancel, and a paid_after_cancel attention item asks for a refund decision.
ALTER TABLE invoices
    ADD COLUMN cancelled_at      timestamptz,
    ADD COLUMN cancel_reason     text    NOT NULL DEFAULT '',
    ADD COLUMN paid_after_cancel boolean NOT NULL DEFAULT false,
    DROP CONSTRAINT invoices_status_valid,
    ADD CONSTRAINT invoices_status_valid
        CHECK (status IN ('creating', 'pending', 'paid', 'expired', 'failed', 'cancelled')),
    -- Cancelled while its code was being requested, an invoice may have none.
    DROP CONSTRAINT invoices_issued_has_code,
    ADD CONSTRAINT invoices_issued_has_code
        CHECK (status IN ('creating', 'failed', 'cancelled') OR payment_code IS NOT NULL),
    ADD CONSTRAINT invoices_cancelled_has_time CHECK (status <> 'cancelled' OR cancelled_at IS NOT NULL);

ALTER TABLE attention_items
    DROP CONSTRAINT attention_items_reason_valid,
    ADD CONSTRAINT attention_items_reason_valid CHECK (reason IN ('amount_mismatch', 'channel_mismatch',
        'code_mismatch', 'invoice_mismatch', 'paid_while_failed', 'paid_after_expiry', 'second_payment',
        'unidentified_payment', 'unreadable_notification', 'unknown_invoice', 'stuck_creating',
        'paid_after_cancel'));

-- The outbox: one row per change the merchant's systems are told of, written in the same transaction as
-- the change, so an event exists exactly when its change committed. seq orders the feed and each
-- invoice's events (an invoice's changes are serialised by its row lock); id is the public, stable id;
-- data is the event's payload as the API shows it at that moment (the invoice, and the payment or the
-- attention item it is about). xid is the writing transaction: the feed shows only events whose
-- transaction is older than every one still running, so a page never skips an event that commits
-- after it with a smaller seq.
CREATE TABLE events (
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text        NOT NULL,
    type            text        NOT NULL,
    invoice_id      bigint      REFERENCES invoices (id),
    invoice_number  text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    xid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    data            jsonb       NOT NULL,

    CONSTRAINT events_id_key UNIQUE (id),
    CONSTRAINT events_type_valid CHECK (type IN ('invoice.pending', 'invoice.paid', 'invoice.expired',
        'invoice.failed', 'invoice.cancelled', 'payment.recorded', 'attention.raised'))
);
CREATE INDEX events_invoice_number_seq_idx ON events (invoice_number, seq);
CREATE INDEX events_type_seq_idx ON events (type, seq);

-- The receivers of signed webhooks, as the configuration names them (synchronised at start). An
-- endpoint that answered 410 Gone is disabled until a person enables it again; one no longer
-- configured is inactive. Neither receives new events.
CREATE TABLE webhook_endpoints (
    name            text        PRIMARY KEY,
    url             text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    disabled_at     timestamptz,
    disabled_reason text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One delivery per event and endpoint, created with the event. A worker in any replica claims due
-- deliveries (FOR UPDATE SKIP LOCKED, then a lease: no transaction is held during the POST), an
-- invoice's events one at a time and in order, until a 2xx or the retry period ends (dead).
CREATE TABLE webhook_deliveries (
    event_seq       bigint      NOT NULL REFERENCES events (seq),
    endpoint        text        NOT NULL REFERENCES webhook_endpoints (name),
    -- The order key: an invoice's events go out one after the other ('' for an item without invoice).
    invoice_number  text        NOT NULL DEFAULT '',
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,

    PRIMARY KEY (event_seq, endpoint),
    CONSTRAINT webhook_deliveries_state_valid CHECK (state IN ('pending', 'delivered', 'dead')),
    CONSTRAINT webhook_deliveries_finished_when CHECK ((state = 'pending') = (finished_at IS NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint, next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint, invoice_number, event_seq)
    WHERE state = 'pending';

-- Every attempt, for the feed and for a person asking "did they get it?".
CREATE TABLE webhook_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq       bigint      NOT NULL,
    endpoint        text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    status          integer,    -- the HTTP status, NULL when none came
    latency_ms      integer     NOT NULL,
    error           text        NOT NULL DEFAULT '',

    FOREIGN KEY (event_seq, endpoint) REFERENCES webhook_deliveries (event_seq, endpoint)
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (event_seq, endpoint, id);

-- Scoped tokens for one invoice's status stream, for checkout pages that cannot hold an API key. Only
-- the token's SHA-256 is kept: the token itself exists only in the answer that issued it.
CREATE TABLE stream_tokens (
    digest          bytea       PRIMARY KEY,
    invoice_id      bigint      NOT NULL REFERENCES invoices (id),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX stream_tokens_expires_at_idx ON stream_tokens (expires_at);

-- +goose Down
DROP TABLE stream_tokens;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE events;
ALTER TABLE attention_items
    DROP CONSTRAINT attention_items_reason_valid,
    ADD CONSTRAINT attention_items_reason_valid CHECK (reason IN ('amount_mismatch', 'channel_mismatch',
        'code_mismatch', 'invoice_mismatch', 'paid_while_failed', 'paid_after_expiry', 'second_payment',
        'unidentified_payment', 'unreadable_notification', 'unknown_invoice', 'stuck_creating'));
ALTER TABLE invoices
    DROP CONSTRAINT invoices_cancelled_has_time,
    DROP CONSTRAINT invoices_issued_has_code,
    ADD CONSTRAINT invoices_issued_has_code CHECK (status IN ('creating', 'failed') OR payment_code IS NOT NULL),
    DROP CONSTRAINT invoices_status_valid,
    ADD CONSTRAINT invoices_status_valid CHECK (status IN ('creating', 'pending', 'paid', 'expired', 'failed')),
    DROP COLUMN paid_after_cancel,
    DROP COLUMN cancel_reason,
    DROP COLUMN cancelled_at;
