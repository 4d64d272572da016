-- +goose Up
-- The customer's payment page. Each invoice gets an unguessable page token when it is created (in the
-- same INSERT: no statement more per create); the page's address holds the invoice number and the
-- token, so a page is found by the invoice's own unique key and needs no index of its own. Revoking a
-- page replaces the token. Invoices made before this column have no page.
--
-- DOKU's how-to-pay instructions for an invoice are fetched once — when its page is first opened, not
-- on every create (most checkouts never show the page, and a create must not wait for a second DOKU
-- call) — and kept here, or our own steps when DOKU's could not be had (source 'fallback').
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE invoices ADD COLUMN page_token text;

CREATE TABLE payment_instructions (
    invoice_id  bigint      PRIMARY KEY REFERENCES invoices (id),
    source      text        NOT NULL,
    body        json        NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT payment_instructions_source_valid CHECK (source IN ('doku', 'fallback'))
);

-- +goose Down
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore ban-drop-table
DROP TABLE payment_instructions;
-- squawk-ignore ban-drop-column
ALTER TABLE invoices DROP COLUMN page_token;
