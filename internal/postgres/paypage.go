package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// Instructions are the how-to-pay instructions kept for an invoice, and where they came from ('doku'
// or 'fallback'); found is false when none are kept yet.
func (s *Store) Instructions(ctx context.Context, invoiceID int64) (ins []invoice.Instruction, source string, found bool, err error) {
	var body []byte
	err = s.pool.QueryRow(ctx, `SELECT source, body FROM payment_instructions WHERE invoice_id = $1`, invoiceID).Scan(&source, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, classify(err)
	}
	if err := json.Unmarshal(body, &ins); err != nil {
		return nil, "", false, err
	}
	return ins, source, true, nil
}

// SaveInstructions keeps an invoice's how-to-pay instructions, unless some are kept already (a
// concurrent first view): the first stays.
func (s *Store) SaveInstructions(ctx context.Context, invoiceID int64, source string, ins []invoice.Instruction) error {
	body, err := json.Marshal(ins)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO payment_instructions (invoice_id, source, body) VALUES ($1, $2, $3)
		ON CONFLICT (invoice_id) DO NOTHING`, invoiceID, source, string(body))
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
