package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/invoice"
)

// stmt is one statement of a batched transaction; scan reads its single row (nil: no result wanted).
type stmt struct {
	sql  string
	args []any
	scan func(pgx.Row) error
	err  error // a statement that could not even be built
	// publishes is set on statements that write events: once they commit, the store says so
	// (Store.OnPublished).
	publishes bool
	// payments, on the first of a lockedTx's first statements, says that it also reads the locked
	// invoice's payments (paymentsOfI, over invoices i of the invoice number) into it: the
	// transaction then sends no statement of its own for them.
	payments *[]paymentRow
}

func (st stmt) publishing() stmt {
	st.publishes = true
	return st
}

// locked is an invoice as read under its row lock, with what it was when read, so that only what a
// decision changed is written.
type locked struct {
	*invoice.Invoice
	readState    state
	readPayments int
	readKeys     []string // the payments' dedupe keys as read
}

// lockRead takes the invoice's row lock and reads the invoice; paymentsRead then reads its payments.
// They must be two statements: under READ COMMITTED a SELECT … FOR UPDATE that waited for the lock
// re-reads the locked row itself but evaluates its subqueries — the payments — in the snapshot taken
// before the wait, so a payment committed by the previous holder would be invisible. The next
// statement takes a new snapshot, after the lock is held. A change that reads something else under
// the lock (the notification inbox) reads it in the payments' statement (stmt.payments).
var (
	lockRead     = `SELECT ` + invoiceColumnsNoPayments + ` FROM invoices i WHERE i.invoice_number = $1 FOR UPDATE`
	paymentsRead = `SELECT ` + paymentsOfI + ` FROM invoices i WHERE i.invoice_number = $1`
)

// lockedTx is every multi-statement change, in two round trips to the database: first BEGIN, the
// lock and read of the invoice and its payments (skipped when number is empty) and the statements of
// first, which so see whatever the lock's previous holder committed; then
// decide, with the invoice (nil when there is none), returns the statements that store its decision,
// sent with COMMIT. No other work happens while the transaction is open, and an error anywhere rolls
// everything back. Round trips, not statements, were the service's largest cost on the hot paths.
func (s *Store) lockedTx(ctx context.Context, number string, first []stmt, decide func(*locked) ([]stmt, error)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Release()
	inv, err := begin(ctx, conn, number, first)
	if err == nil {
		var then []stmt
		if then, err = decide(inv); err == nil {
			if err = commit(ctx, conn, then); err == nil {
				s.published(number, then)
			}
		}
	}
	if err != nil {
		// Best effort, bounded: a connection left inside a transaction is destroyed by the pool.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = conn.Exec(rctx, "ROLLBACK")
		cancel()
	}
	return err
}

// begin is the first round trip: BEGIN, first's statements, and the invoice locked and read.
func begin(ctx context.Context, conn *pgxpool.Conn, number string, first []stmt) (*locked, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	ownPayments := len(first) == 0 || first[0].payments == nil
	if number != "" {
		b.Queue(lockRead, number)
		if ownPayments {
			b.Queue(paymentsRead, number)
		}
	}
	for _, st := range first {
		b.Queue(st.sql, st.args...)
	}
	br := conn.SendBatch(ctx, b)
	inv, err := readBegun(br, number, ownPayments, first)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return inv, classify(err)
}

func readBegun(br pgx.BatchResults, number string, ownPayments bool, first []stmt) (*locked, error) {
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	var read *invoice.Invoice
	var payments []paymentRow
	if number != "" {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		if read, err = pgx.CollectExactlyOneRow(rows, scanInvoice); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		if ownPayments {
			if err := br.QueryRow().Scan(&payments); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return nil, err
			}
		}
	}
	if err := runResults(br, first); err != nil {
		return nil, err
	}
	if read == nil {
		return nil, nil
	}
	if !ownPayments {
		payments = *first[0].payments
	}
	read.Payments = toPayments(payments)
	l := &locked{Invoice: read, readState: mutableState(read), readPayments: len(read.Payments)}
	for _, p := range read.Payments {
		l.readKeys = append(l.readKeys, p.DedupeKey)
	}
	return l, nil
}

// commit is the second round trip: the decision's statements and COMMIT.
func commit(ctx context.Context, conn *pgxpool.Conn, then []stmt) error {
	for _, st := range then {
		if st.err != nil {
			return st.err
		}
	}
	b := &pgx.Batch{}
	for _, st := range then {
		b.Queue(st.sql, st.args...)
	}
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	err := runResults(br, then)
	if err == nil {
		// A COMMIT of a transaction that failed answers ROLLBACK, not an error.
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("postgres: commit answered %q", tag.String())
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return classify(err)
}

// runResults reads one result per statement, in order.
func runResults(br pgx.BatchResults, sts []stmt) error {
	for _, st := range sts {
		var err error
		if st.scan != nil {
			err = st.scan(br.QueryRow())
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			return err
		}
	}
	return nil
}
