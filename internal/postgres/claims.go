package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// Claims hand work to one caller at a time across replicas: each is one statement that marks the rows
// it takes (a lease, a moved due time) on the database's clock, so replicas with skewed clocks still
// agree, and commits before the caller calls DOKU. FOR UPDATE SKIP LOCKED keeps concurrent claimers
// off each other's rows without waiting.

// ClaimIssue takes the issue lease of a creating invoice for lease, if nobody holds it, and leaves
// it to the resumer only after resumeAfter. It reports false when the invoice is not creating or
// another holder's lease is still running.
func (s *Store) ClaimIssue(ctx context.Context, number string, lease, resumeAfter time.Duration) (*invoice.Invoice, bool, error) {
	inv, err := oneInvoice(s.pool.Query(ctx, `
		UPDATE invoices i SET issue_lease_until = now() + @lease * interval '1 microsecond',
			issue_attempts = i.issue_attempts + 1, next_issue_at = now() + @resume_after * interval '1 microsecond'
		WHERE i.invoice_number = @number AND i.status = 'creating'
		  AND (i.issue_lease_until IS NULL OR i.issue_lease_until < now())
		RETURNING `+invoiceColumns,
		pgx.NamedArgs{"number": number, "lease": lease.Microseconds(), "resume_after": resumeAfter.Microseconds()}))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, classify(err)
	}
	return inv, true, nil
}

// ClaimDueIssues takes the issue lease of up to limit creating invoices of DOKU environment env that
// are due for another attempt and have had fewer than maxAttempts. Each stays out of the queue for the
// lease; when its attempt fails, the caller plans the next one.
func (s *Store) ClaimDueIssues(ctx context.Context, limit int, lease time.Duration, maxAttempts int, env string) ([]*invoice.Invoice, error) {
	return s.claim(ctx, `
		UPDATE invoices i SET issue_lease_until = now() + @lease * interval '1 microsecond',
			issue_attempts = i.issue_attempts + 1, next_issue_at = now() + @lease * interval '1 microsecond'
		WHERE i.id IN (
			SELECT id FROM invoices
			WHERE status = 'creating' AND doku_env = @env AND next_issue_at <= now() AND issue_attempts < @max_attempts
			  AND (issue_lease_until IS NULL OR issue_lease_until < now())
			ORDER BY next_issue_at
			LIMIT @limit
			FOR UPDATE SKIP LOCKED)
		RETURNING `+invoiceColumns,
		pgx.NamedArgs{"limit": limit, "lease": lease.Microseconds(), "max_attempts": maxAttempts, "env": env})
}

// ClaimDueChecks hands out up to limit invoices of DOKU environment env whose status check is due,
// counting the check and moving each one's next check lease ahead: no other claim takes it until then,
// and if its caller dies, it is due again after the lease. The caller plans the real next check.
func (s *Store) ClaimDueChecks(ctx context.Context, limit int, lease time.Duration, env string) ([]*invoice.Invoice, error) {
	return s.claim(ctx, `
		UPDATE invoices i SET check_attempts = i.check_attempts + 1,
			next_check_at = now() + @lease * interval '1 microsecond'
		WHERE i.id IN (
			SELECT id FROM invoices
			WHERE doku_env = @env AND next_check_at <= now()
			ORDER BY next_check_at
			LIMIT @limit
			FOR UPDATE SKIP LOCKED)
		RETURNING `+invoiceColumns,
		pgx.NamedArgs{"limit": limit, "lease": lease.Microseconds(), "env": env})
}

func (s *Store) claim(ctx context.Context, sql string, args pgx.NamedArgs) ([]*invoice.Invoice, error) {
	rows, err := s.pool.Query(ctx, sql, args)
	if err != nil {
		return nil, classify(err)
	}
	invs, err := pgx.CollectRows(rows, scanInvoice)
	return invs, classify(err)
}

// ClaimSync takes the invoice's manual-sync slot now if the last sync was at least interval ago. The
// check and the write are one statement holding the row's lock, so concurrent syncs on any replica
// cannot both pass. Whether to refuse, and what to say, is the caller's to decide from the claim.
func (s *Store) ClaimSync(ctx context.Context, number string, interval time.Duration) (invoice.SyncClaim, error) {
	var c invoice.SyncClaim
	var wait float64
	err := s.pool.QueryRow(ctx, `
		WITH cur AS (
			SELECT id, last_synced_at FROM invoices WHERE invoice_number = @number FOR UPDATE),
		upd AS (
			UPDATE invoices i SET last_synced_at = now() FROM cur
			WHERE i.id = cur.id AND (cur.last_synced_at IS NULL OR cur.last_synced_at <= now() - @interval * interval '1 microsecond')
			RETURNING i.last_synced_at)
		SELECT EXISTS (SELECT 1 FROM upd), coalesce((SELECT last_synced_at FROM upd), now()), cur.last_synced_at,
			coalesce(extract(epoch FROM cur.last_synced_at + @interval * interval '1 microsecond' - now()), 0)
		FROM cur`, pgx.NamedArgs{"number": number, "interval": interval.Microseconds()}).Scan(&c.Taken, &c.At, &c.Previous, &wait)
	if err != nil {
		return c, classify(err)
	}
	c.Wait = time.Duration(wait * float64(time.Second))
	return c, nil
}

// ReleaseSync gives the slot back: the previous sync time is restored, unless another sync has taken
// the slot since.
func (s *Store) ReleaseSync(ctx context.Context, number string, c invoice.SyncClaim) error {
	_, err := s.pool.Exec(ctx, `UPDATE invoices SET last_synced_at = @previous WHERE invoice_number = @number AND last_synced_at = @at`,
		pgx.NamedArgs{"number": number, "previous": c.Previous, "at": c.At})
	return classify(err)
}

// AdoptInvoices makes the open invoices (still checked, or creating) that have no DOKU environment —
// made before invoices recorded theirs — or one of from, invoices of env, up to batch of them; it
// returns how many. The caller repeats it until none is left.
func (s *Store) AdoptInvoices(ctx context.Context, env string, from []string, batch int) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE invoices SET doku_env = @env WHERE id IN (
			SELECT id FROM invoices
			WHERE (doku_env IS NULL OR doku_env = ANY(@from)) AND (next_check_at IS NOT NULL OR status = 'creating')
			LIMIT @batch)`, pgx.NamedArgs{"env": env, "from": from, "batch": batch})
	return int(tag.RowsAffected()), classify(err)
}

// ForeignInvoices counts, by environment, the open invoices (still checked, or creating) issued by
// another DOKU environment than env: they are left alone.
func (s *Store) ForeignInvoices(ctx context.Context, env string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT doku_env, count(*) FROM (
			SELECT doku_env FROM invoices WHERE next_check_at IS NOT NULL AND doku_env <> @env
			UNION ALL
			SELECT doku_env FROM invoices WHERE status = 'creating' AND next_check_at IS NULL AND doku_env <> @env) open
		GROUP BY doku_env`, pgx.NamedArgs{"env": env})
	if err != nil {
		return nil, classify(err)
	}
	out := map[string]int{}
	var e string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&e, &n}, func() error { out[e] = n; return nil })
	return out, classify(err)
}
