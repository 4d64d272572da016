package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/postgres"
)

func newInvoice(number string) *invoice.Invoice {
	return &invoice.Invoice{Number: number, Channel: invoice.ChannelAlfa, Amount: 150000, Status: invoice.StatusCreating,
		Customer: invoice.Customer{Name: "A"}, ExpiresInMinutes: 60, DokuRequestID: "req-" + number,
		DokuRequestBody: []byte(`{"order":{}}`), Metadata: []byte(`{"k":"v"}`)}
}

func issued(t *testing.T, s *postgres.Store, number string) *invoice.Invoice {
	t.Helper()
	ctx := context.Background()
	if _, _, err := s.Create(ctx, newInvoice(number), time.Minute); err != nil {
		t.Fatal(err)
	}
	inv, err := s.Update(ctx, number, func(inv *invoice.Invoice) error {
		inv.MarkIssued(invoice.Issued{PaymentCode: "8888" + number, ExpiresAt: time.Now().Add(time.Hour)}, invoice.SourceAPI)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestCreateIsInsertOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()

	first, created, err := s.Create(ctx, newInvoice("INV-1"), time.Minute)
	if err != nil || !created || first.ID == 0 || string(first.DokuRequestBody) != `{"order":{}}` || string(first.Metadata) != `{"k": "v"}` {
		t.Fatalf("create: %+v %v %v", first, created, err)
	}
	again := newInvoice("INV-1")
	again.DokuRequestID = "another-id"
	got, created, err := s.Create(ctx, again, time.Minute)
	if err != nil || created || got.DokuRequestID != "req-INV-1" {
		t.Fatalf("second create must return the stored invoice with its original Request-Id: %+v %v %v", got, created, err)
	}
}

func TestSchemaForbidsDuplicatesAndNonsense(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	inv := issued(t, s, "INV-1")

	cases := map[string]string{
		// (No case for a duplicate Request-Id: it is unique by construction — derived from the invoice
		// number, which is — and migration 00023 dropped its index.)
		"duplicate invoice number": `INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id, doku_request_body) VALUES ('INV-1', 'alfa', 1, 'creating', 'A', 60, 'r2', '')`,
		"bad invoice number":       `INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id, doku_request_body) VALUES ('INV 2', 'alfa', 1, 'creating', 'A', 60, 'r2', '')`,
		"zero amount":              `INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id, doku_request_body) VALUES ('INV-2', 'alfa', 0, 'creating', 'A', 60, 'r2', '')`,
		"unknown channel":          `INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id, doku_request_body) VALUES ('INV-2', 'ovo', 1, 'creating', 'A', 60, 'r2', '')`,
		"pending without code":     `INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id, doku_request_body) VALUES ('INV-2', 'alfa', 1, 'pending', 'A', 60, 'r2', '')`,
		"footer on indomaret":      `INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes, doku_request_id, doku_request_body, receipt_footer) VALUES ('INV-2', 'indomaret', 1, 'creating', 'A', 60, 'r2', '', 'x')`,
		"paid without time":        `UPDATE invoices SET status = 'paid' WHERE invoice_number = 'INV-1'`,
		"same payment twice":       fmt.Sprintf(`INSERT INTO payments (invoice_id, dedupe_key, amount, paid_at, source) VALUES (%[1]d, 'single', 1, now(), 'webhook'), (%[1]d, 'single', 1, now(), 'webhook')`, inv.ID),
		"negative payment":         fmt.Sprintf(`INSERT INTO payments (invoice_id, dedupe_key, amount, paid_at, source) VALUES (%d, 'x', -1, now(), 'webhook')`, inv.ID),
	}
	for name, sql := range cases {
		_, err := db.Pool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "23505" && pgErr.Code != "23514") {
			t.Errorf("%s: err = %v, want a unique or check violation", name, err)
		}
	}
}

// The webhook and the reconciler may report the same payment at the same moment, and DOKU may
// deliver a notification twice at once: the row lock makes it one payment whatever the interleaving.
func TestConcurrentReportsRecordOnePayment(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	issued(t, s, "INV-1")
	ctx := context.Background()

	var wg sync.WaitGroup
	outcomes := make(chan invoice.Outcome, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Update(ctx, "INV-1", func(inv *invoice.Invoice) error {
				outcomes <- inv.ApplyPayment(invoice.PaymentReport{InvoiceNumber: "INV-1", Amount: 150000,
					DokuStatus: invoice.DokuSuccess, Source: invoice.SourceWebhook, PaidAt: time.Now(),
					RequestID: fmt.Sprint("req-", i), Identifiers: map[string]string{"AGENT_TRX_ID": "T1"}}, time.Now())
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	close(outcomes)
	applied := 0
	for o := range outcomes {
		if o == invoice.OutcomeApplied {
			applied++
		}
	}
	inv, err := s.Get(ctx, "INV-1")
	if err != nil {
		t.Fatal(err)
	}
	if applied != 1 || len(inv.Payments) != 1 || inv.Status != invoice.StatusPaid {
		t.Fatalf("applied %d times, %d payments, status %s", applied, len(inv.Payments), inv.Status)
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	issued(t, s, "INV-1")
	boom := errors.New("boom")
	_, err := s.Update(context.Background(), "INV-1", func(inv *invoice.Invoice) error {
		inv.ApplyPayment(invoice.PaymentReport{Amount: 150000, DokuStatus: invoice.DokuSuccess, Source: invoice.SourceWebhook}, time.Now())
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	inv, _ := s.Get(context.Background(), "INV-1")
	if inv.Status != invoice.StatusPending || len(inv.Payments) != 0 {
		t.Fatalf("a failed update wrote: %+v", inv)
	}
	if _, err := s.Update(context.Background(), "INV-NOPE", func(*invoice.Invoice) error { return nil }); !errors.Is(err, invoice.ErrNotFound) {
		t.Fatalf("update of unknown invoice: %v", err)
	}
}

func TestDatabaseDownIsUnavailable(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	db.Pool.Close()
	if _, err := s.Get(context.Background(), "INV-1"); !errors.Is(err, invoice.ErrUnavailable) {
		t.Fatalf("get on a closed pool: %v, want unavailable", err)
	}
}

func TestMigrateDownAndUp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	m, err := postgres.NewMigrator(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if ok, err := m.Current(ctx); err != nil || !ok {
		t.Fatalf("fresh database not current: %v %v", ok, err)
	}
	if _, err := m.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Current(ctx); ok {
		t.Fatal("current after down")
	}
	s := postgres.NewStore(db.Pool)
	if err := s.Ready(ctx, m); !errors.Is(err, invoice.ErrUnavailable) {
		t.Fatalf("ready with an old schema: %v", err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx, m); err != nil {
		t.Fatalf("ready after up: %v", err)
	}
	// A newer release migrated first (its migration Job ran before its rollout): this replica, of
	// the release before, stays ready.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx, m); err != nil {
		t.Fatalf("not ready on a schema one release newer: %v", err)
	}
}

// A decision that waited for the row lock must see the payment its predecessor just recorded: the
// same payment of a reusable code reported by two paths at once is recorded once, without an error.
func TestWaiterOnTheLockSeesThePreviousHoldersPayment(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	inv := newInvoice("INV-R")
	inv.Reusable = true
	if _, _, err := s.Create(ctx, inv, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "INV-R", func(inv *invoice.Invoice) error {
		inv.MarkIssued(invoice.Issued{PaymentCode: "8888", ExpiresAt: time.Now().Add(time.Hour)}, invoice.SourceAPI)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	report := func(src invoice.Source) invoice.PaymentReport {
		return invoice.PaymentReport{InvoiceNumber: "INV-R", Amount: 150000, DokuStatus: invoice.DokuSuccess, Source: src,
			PaidAt: at, Identifiers: map[string]string{"AGENT_TRX_ID": "1246"}}
	}
	holding := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, "INV-R", func(inv *invoice.Invoice) error {
			inv.ApplyPayment(report(invoice.SourceReconciler), time.Now())
			close(holding)
			time.Sleep(300 * time.Millisecond) // the second report is now waiting for the lock
			return nil
		})
		first <- err
	}()
	<-holding
	time.Sleep(50 * time.Millisecond)
	var outcome invoice.Outcome
	_, err := s.Update(ctx, "INV-R", func(inv *invoice.Invoice) error {
		outcome = inv.ApplyPayment(report(invoice.SourceWebhook), time.Now())
		return nil
	})
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err != nil || outcome != invoice.OutcomeDuplicate {
		t.Fatalf("second report: outcome %s, err %v; want duplicate", outcome, err)
	}
	if got, _ := s.Get(ctx, "INV-R"); len(got.Payments) != 1 {
		t.Fatalf("%d payments stored", len(got.Payments))
	}
}

func TestOnlyReachabilityFaultsAreUnavailable(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	s := postgres.NewStore(db.Pool)
	// A failover to a read-only standby is a passing state: 503, retry.
	if _, err := db.Pool.Exec(ctx, "ALTER DATABASE "+db.Name+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	db.Pool.Reset() // new connections pick the setting up
	_, _, err := s.Create(ctx, newInvoice("INV-RO"), time.Minute)
	if !errors.Is(err, invoice.ErrUnavailable) {
		t.Fatalf("read-only database: %v, want unavailable", err)
	}
	pgtest.AdminExec(t, "ALTER DATABASE "+db.Name+" SET default_transaction_read_only = off")
	db.Pool.Reset()
	// A statement the database refuses for what it is (here a constraint) is a fault of ours: 500.
	var known *invoice.Error
	if _, _, err := s.Create(ctx, newInvoice("INV 1"), time.Minute); err == nil || errors.As(err, &known) {
		t.Fatalf("check violation: %v, want an internal error", err)
	}
}

// Replicas starting at the same instant on an empty database all start: migrations run under goose's
// session lock, one replica migrates, the others wait and find the schema current.
func TestReplicasMigrateAtOnce(t *testing.T) {
	t.Parallel()
	for run := 0; run < 10; run++ {
		t.Run(fmt.Sprint("run ", run), func(t *testing.T) {
			t.Parallel()
			replicasMigrate(t)
		})
	}
}

func replicasMigrate(t *testing.T) {
	{
		_, url := pgtest.NewEmpty(t)
		const replicas = 5
		errs := make(chan error, replicas)
		start := make(chan struct{})
		for i := 0; i < replicas; i++ {
			go func() {
				errs <- func() error {
					<-start
					ctx := context.Background()
					pool, err := postgres.Open(ctx, url, postgres.PoolOptions{MaxConns: 2})
					if err != nil {
						return err
					}
					defer pool.Close()
					m, err := postgres.NewMigrator(pool)
					if err != nil {
						return err
					}
					defer m.Close()
					if _, err := m.Up(ctx); err != nil {
						return err
					}
					if ok, err := m.Current(ctx); err != nil || !ok {
						return fmt.Errorf("schema not current after migrating: %v", err)
					}
					return nil
				}()
			}()
		}
		close(start)
		for i := 0; i < replicas; i++ {
			if err := <-errs; err != nil {
				t.Fatalf("a replica failed to start: %v", err)
			}
		}
	}
}

// A change that waits for an invoice's row lock sees what the lock's holder committed — its payments
// included. Forced: another transaction holds the lock and adds a payment; the change starts, waits
// for the lock (seen waiting in pg_stat_activity); the holder commits. Read in the statement that took
// the lock, the payments would come from the snapshot taken before the wait, without that payment.
func TestAChangeWaitingForTheLockSeesTheHoldersPayments(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	inv := issued(t, s, "INV-WAIT")

	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, `SELECT 1 FROM invoices WHERE id = $1 FOR UPDATE`, inv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `INSERT INTO payments (invoice_id, dedupe_key, amount, paid_at, source) VALUES ($1, 'by-the-holder', 150000, now(), 'webhook')`, inv.ID); err != nil {
		t.Fatal(err)
	}

	seen := make(chan int, 1)
	go func() {
		_, err := s.Update(ctx, "INV-WAIT", func(i *invoice.Invoice) error {
			seen <- len(i.Payments)
			return nil
		})
		if err != nil {
			t.Errorf("update: %v", err)
			seen <- -1
		}
	}()
	db.WaitForLockWait(t, "FOR UPDATE")
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-seen; n != 1 {
		t.Errorf("the change that waited for the lock saw %d payments, want the one its holder committed", n)
	}
}
