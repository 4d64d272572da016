-- +goose Up
-- Two foreign keys that no query uses and that cost a lookup of the invoice (and a lock on it) for
-- every row written on the payment path: every payment and every entry of the log is written in the
-- transaction that holds its invoice's row lock, with the id it just read, and invoices are never
-- deleted — the check could never fail. (A wrong but existing id, the mistake a bug could make, it
-- would not catch either.) The columns stay, and stay indexed: the payments of an invoice and its
-- history are read by them.
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE events DROP CONSTRAINT events_invoice_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_invoice_id_fkey;

-- +goose Down
SET LOCAL lock_timeout = '3s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE payments ADD CONSTRAINT payments_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES invoices (id) NOT VALID;
ALTER TABLE events ADD CONSTRAINT events_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES invoices (id) NOT VALID;
