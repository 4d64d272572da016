-- +goose Up
-- invoices.doku_request_id needs no unique index of its own. No query looks an invoice up by it, and
-- it is unique by construction: since 00014's release an invoice's Request-Id is derived from its
-- DOKU environment, its invoice number (unique) and its request, and before that it was a random
-- UUID. The index cost an entry on every write of an invoice: its creation and each change of its
-- status (none of them can be a HOT update, since the status is indexed).
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE invoices DROP CONSTRAINT invoices_doku_request_id_key;

-- +goose Down
-- A unique index is built by scanning the table under a lock that blocks writes: acceptable only in
-- a Down, on a database that has just run Up.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
-- squawk-ignore disallowed-unique-constraint, constraint-missing-not-valid
ALTER TABLE invoices ADD CONSTRAINT invoices_doku_request_id_key UNIQUE (doku_request_id);
