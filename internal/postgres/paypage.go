package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// Instructions are the how-to-pay instructions kept for an invoice, where they came from ('doku' or
// 'fallback') and when DOKU was last asked for them; found is false when none are kept yet.
func (s *Store) Instructions(ctx context.Context, invoiceID int64) (ins []invoice.Instruction, source string, asked time.Time, found bool, err error) {
	var body []byte
	err = s.pool.QueryRow(ctx, `SELECT source, body, fetched_at FROM payment_instructions WHERE invoice_id = $1`, invoiceID).Scan(&source, &body, &asked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", time.Time{}, false, nil
	}
	if err != nil {
		return nil, "", time.Time{}, false, classify(err)
	}
	if err := json.Unmarshal(body, &ins); err != nil {
		return nil, "", time.Time{}, false, err
	}
	return ins, source, asked, true, nil
}

// SaveInstructions keeps an invoice's how-to-pay instructions as just asked for. DOKU's, once kept,
// stay (a concurrent first view's answer changes nothing); a fallback — DOKU's could not be had — is
// replaced by the newer answer, DOKU's or another fallback with its new time.
func (s *Store) SaveInstructions(ctx context.Context, invoiceID int64, source string, ins []invoice.Instruction) error {
	body, err := json.Marshal(ins)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO payment_instructions (invoice_id, source, body) VALUES ($1, $2, $3)
		ON CONFLICT (invoice_id) DO UPDATE SET source = excluded.source, body = excluded.body, fetched_at = now()
		WHERE payment_instructions.source = 'fallback'`, invoiceID, source, string(body))
	return classify(err)
}

// ReplacePageToken gives an invoice's payment page a new token, so that the old address opens
// nothing any more, and returns the invoice.
func (s *Store) ReplacePageToken(ctx context.Context, number, token string) (*invoice.Invoice, error) {
	inv, err := oneInvoice(s.pool.Query(ctx, `
		UPDATE invoices i SET page_token = $2 WHERE i.invoice_number = $1 RETURNING `+invoiceColumns, number, token))
	if err != nil {
		return nil, classify(err)
	}
	return inv, nil
}
