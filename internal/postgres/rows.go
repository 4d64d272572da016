package postgres

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// invoiceRow is an invoice as the database holds it, mapped by column name (pgx.RowToStructByName):
// a new column is a new field here and a line in toInvoice, nothing else. A field with an `expr` tag is
// computed; the others are the column of their name. Every query reads invoices through
// invoiceColumns, built from this struct, as table alias i.
type invoiceRow struct {
	ID               int64        `db:"id"`
	InvoiceNumber    string       `db:"invoice_number"`
	Channel          string       `db:"channel"`
	Amount           int64        `db:"amount"`
	Status           string       `db:"status"`
	CustomerName     string       `db:"customer_name"`
	CustomerEmail    string       `db:"customer_email"`
	ExpiresInMinutes int          `db:"expires_in_minutes"`
	Reusable         bool         `db:"reusable"`
	Info             string       `db:"info"`
	ReceiptFooter    string       `db:"receipt_footer"`
	Metadata         []byte       `db:"metadata"`
	DokuRequestID    string       `db:"doku_request_id"`
	DokuRequestBody  []byte       `db:"doku_request_body"`
	DokuEnv          *string      `db:"doku_env"`
	PageToken        *string      `db:"page_token"`
	PaymentCode      *string      `db:"payment_code"`
	HowToPayPage     string       `db:"how_to_pay_page"`
	HowToPayAPI      string       `db:"how_to_pay_api"`
	ExpiresAt        *time.Time   `db:"expires_at"`
	PaidAt           *time.Time   `db:"paid_at"`
	PaidAfterExpiry  bool         `db:"paid_after_expiry"`
	CancelledAt      *time.Time   `db:"cancelled_at"`
	CancelReason     string       `db:"cancel_reason"`
	PaidAfterCancel  bool         `db:"paid_after_cancel"`
	ExpiredByGrace   bool         `db:"expired_by_grace"`
	FailureCode      string       `db:"failure_code"`
	FailureMessage   string       `db:"failure_message"`
	IssueAttempts    int          `db:"issue_attempts"`
	NextIssueAt      time.Time    `db:"next_issue_at"`
	IssueLeaseHeld   bool         `db:"issue_lease_held" expr:"coalesce(i.issue_lease_until > now(), false)"`
	CheckAttempts    int          `db:"check_attempts"`
	NextCheckAt      *time.Time   `db:"next_check_at"`
	CreatedAt        time.Time    `db:"created_at"`
	UpdatedAt        time.Time    `db:"updated_at"`
	Payments         []paymentRow `db:"payments"` // computed: paymentsOfI
}

// paymentsOfI is the payments of invoice i as one JSON array (paymentRow), oldest first.
const paymentsOfI = `coalesce((SELECT json_agg(json_build_object('id', p.id, 'dedupe_key', p.dedupe_key, 'amount', p.amount, 'paid_at', p.paid_at, 'source', p.source, 'doku_request_id', p.doku_request_id, 'identifiers', p.identifiers, 'created_at', p.created_at) ORDER BY p.id) FROM payments p WHERE p.invoice_id = i.id), '[]')`

// paymentRow is one payment, read as JSON with its invoice so that a read is one round trip whatever
// the number of payments.
type paymentRow struct {
	ID          int64             `json:"id"`
	DedupeKey   string            `json:"dedupe_key"`
	Amount      int64             `json:"amount"`
	PaidAt      time.Time         `json:"paid_at"`
	Source      string            `json:"source"`
	RequestID   string            `json:"doku_request_id"`
	Identifiers map[string]string `json:"identifiers"`
	CreatedAt   time.Time         `json:"created_at"`
}

// invoiceColumns is the select list of invoiceRow, over table alias i; invoiceColumnsNoPayments the
// same with an empty list of payments, for a statement whose subqueries must not be trusted (tx.go).
var invoiceColumns, invoiceColumnsNoPayments = selectList(false), selectList(true)

func selectList(noPayments bool) string {
	t := reflect.TypeOf(invoiceRow{})
	cols := make([]string, t.NumField())
	for k := range cols {
		f := t.Field(k)
		name := f.Tag.Get("db")
		switch expr := f.Tag.Get("expr"); {
		case name == "payments" && noPayments:
			cols[k] = "'[]'::json AS " + name
		case name == "payments":
			cols[k] = paymentsOfI + " AS " + name
		case expr != "":
			cols[k] = expr + " AS " + name
		default:
			cols[k] = "i." + name
		}
	}
	return strings.Join(cols, ", ")
}

// scanInvoice reads one invoice row.
func scanInvoice(row pgx.CollectableRow) (*invoice.Invoice, error) {
	r, err := pgx.RowToStructByName[invoiceRow](row)
	if err != nil {
		return nil, err
	}
	return r.toInvoice(), nil
}

// oneInvoice runs a query returning at most one invoice row; pgx.ErrNoRows when there is none.
func oneInvoice(rows pgx.Rows, err error) (*invoice.Invoice, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectExactlyOneRow(rows, scanInvoice)
}

func (r *invoiceRow) toInvoice() *invoice.Invoice {
	inv := &invoice.Invoice{
		ID: r.ID, Number: r.InvoiceNumber, Channel: invoice.Channel(r.Channel), Amount: r.Amount,
		Status: invoice.Status(r.Status), Customer: invoice.Customer{Name: r.CustomerName, Email: r.CustomerEmail},
		ExpiresInMinutes: r.ExpiresInMinutes, Reusable: r.Reusable, Info: r.Info, ReceiptFooter: r.ReceiptFooter,
		DokuRequestID: r.DokuRequestID, DokuRequestBody: r.DokuRequestBody,
		HowToPayPage: r.HowToPayPage, HowToPayAPI: r.HowToPayAPI, ExpiresAt: r.ExpiresAt, PaidAt: r.PaidAt,
		PaidAfterExpiry: r.PaidAfterExpiry, ExpiredByGrace: r.ExpiredByGrace,
		CancelledAt: r.CancelledAt, CancelReason: r.CancelReason, PaidAfterCancel: r.PaidAfterCancel,
		FailureCode: r.FailureCode, FailureMessage: r.FailureMessage,
		IssueAttempts: r.IssueAttempts, NextIssueAt: r.NextIssueAt, IssueLeaseHeld: r.IssueLeaseHeld,
		CheckAttempts: r.CheckAttempts, NextCheckAt: r.NextCheckAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.PaymentCode != nil {
		inv.PaymentCode = *r.PaymentCode
	}
	if r.DokuEnv != nil {
		inv.DokuEnv = *r.DokuEnv
	}
	if r.PageToken != nil {
		inv.PageToken = *r.PageToken
	}
	if len(r.Metadata) > 0 {
		inv.Metadata = json.RawMessage(r.Metadata)
	}
	inv.Payments = toPayments(r.Payments)
	return inv
}

func toPayments(rows []paymentRow) []invoice.Payment {
	var out []invoice.Payment
	for _, p := range rows {
		out = append(out, invoice.Payment{ID: p.ID, DedupeKey: p.DedupeKey, Amount: p.Amount,
			PaidAt: p.PaidAt.UTC(), Source: invoice.Source(p.Source), RequestID: p.RequestID, Identifiers: p.Identifiers,
			CreatedAt: p.CreatedAt.UTC()})
	}
	return out
}
