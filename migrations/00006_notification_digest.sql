-- +goose Up
-- A notification is its Request-Id and its bytes: DOKU redelivers one under the same Request-Id and
-- body, and a different body under a Request-Id already seen is another notification, to be
-- processed, never dropped as a duplicate.
ALTER TABLE notifications ADD COLUMN body_sha256 bytea;
UPDATE notifications SET body_sha256 = sha256(body);
ALTER TABLE notifications
    ALTER COLUMN body_sha256 SET NOT NULL,
    DROP CONSTRAINT notifications_doku_request_id_key,
    ADD CONSTRAINT notifications_request_body_key UNIQUE (doku_request_id, body_sha256),
    DROP CONSTRAINT notifications_outcome_valid,
    ADD CONSTRAINT notifications_outcome_valid CHECK (outcome IN ('applied', 'duplicate', 'identified',
        'amount_mismatch', 'channel_mismatch', 'code_mismatch', 'invoice_mismatch', 'unidentified_payment',
        'ignored_status', 'not_issued', 'unknown_invoice', 'malformed'));

-- Payments are named by what identifies the payment itself: the store's transaction id when DOKU
-- gives one; a payment only a status check has seen is the placeholder 'poll' until a notification
-- names it. A single-use code's payment used to be 'single' whatever reported it.
UPDATE payments SET dedupe_key = 'trx:' || (identifiers ->> 'AGENT_TRX_ID')
WHERE dedupe_key = 'single' AND coalesce(identifiers ->> 'AGENT_TRX_ID', '') <> '';
UPDATE payments SET dedupe_key = 'poll' WHERE dedupe_key = 'single';

-- +goose Down
UPDATE payments p SET dedupe_key = 'single' FROM invoices i
WHERE p.invoice_id = i.id AND NOT i.reusable
  AND p.id = (SELECT min(id) FROM payments WHERE invoice_id = i.id);
UPDATE notifications SET outcome = 'duplicate' WHERE outcome = 'identified';
DELETE FROM notifications n USING notifications o
WHERE n.doku_request_id = o.doku_request_id AND n.id > o.id;
ALTER TABLE notifications
    DROP CONSTRAINT notifications_request_body_key,
    ADD CONSTRAINT notifications_doku_request_id_key UNIQUE (doku_request_id),
    DROP CONSTRAINT notifications_outcome_valid,
    ADD CONSTRAINT notifications_outcome_valid CHECK (outcome IN ('applied', 'duplicate', 'amount_mismatch',
        'channel_mismatch', 'code_mismatch', 'invoice_mismatch', 'unidentified_payment', 'ignored_status',
        'not_issued', 'unknown_invoice', 'malformed')),
    DROP COLUMN body_sha256;
