package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/postgres"
)

// A change wakes the other replicas (NOTIFY) only while its invoice is watched by a status stream;
// the committing replica is told of every change that wrote events, watched or not.
func TestOnlyWatchedInvoicesAreNotified(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	var mu sync.Mutex
	var published []string
	s.OnPublished(func(number string) { mu.Lock(); published = append(published, number); mu.Unlock() })
	ctx := context.Background()
	listener, err := pgx.ConnectConfig(ctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN o2o_events"); err != nil {
		t.Fatal(err)
	}
	notified := func(wait time.Duration) (string, bool) {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return n.Payload, true
	}
	pay := func(number, trx string) {
		t.Helper()
		if _, err := s.Update(ctx, number, func(inv *invoice.Invoice) error {
			inv.ApplyPayment(invoice.PaymentReport{InvoiceNumber: number, Amount: 150000, DokuStatus: invoice.DokuSuccess,
				Source: invoice.SourceWebhook, PaidAt: time.Now(), RequestID: "req-" + trx,
				Identifiers: map[string]string{"AGENT_TRX_ID": trx}}, time.Now())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	issued(t, s, "INV-A") // issuing publishes invoice.issued: nobody watches yet
	if payload, ok := notified(500 * time.Millisecond); ok {
		t.Fatalf("an unwatched invoice's change was notified (%q)", payload)
	}
	if err := s.WatchInvoice(ctx, "INV-A", time.Minute); err != nil {
		t.Fatal(err)
	}
	pay("INV-A", "T1")
	if payload, ok := notified(5 * time.Second); !ok || payload != "INV-A" {
		t.Fatalf("a watched invoice's payment: notified %v, payload %q", ok, payload)
	}

	// A watch that has ended notifies nothing; one of an unknown invoice is not kept.
	issued(t, s, "INV-B")
	if err := s.WatchInvoice(ctx, "INV-B", -time.Second); err != nil {
		t.Fatal(err)
	}
	pay("INV-B", "T2")
	if payload, ok := notified(500 * time.Millisecond); ok {
		t.Fatalf("a change after the watch ended was notified (%q)", payload)
	}
	if err := s.WatchInvoice(ctx, "INV-NOPE", time.Minute); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM stream_watches WHERE invoice_number = 'INV-NOPE'`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("watch of an unknown invoice: %d rows, %v", rows, err)
	}

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"INV-A", "INV-A", "INV-B", "INV-B"}; !slices.Equal(published, want) {
		t.Fatalf("OnPublished saw %q, want %q (issue and payment of each)", published, want)
	}
}

// Streams of two invoices whose earlier watches have run out, opened at the same moment (reconnects
// at the end of STREAM_MAX_DURATION): each open records its own watch and clears the ended ones. In
// one statement, each locked its own row and then the other's, in opposite orders: PostgreSQL found
// the deadlock after a second and failed one open (a 503) — about one pair in ten.
func TestStreamsOpenedTogetherNeverDeadlock(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := postgres.NewStore(db.Pool)
	ctx := context.Background()
	numbers := []string{"INV-WATCH-A", "INV-WATCH-B"}
	for _, n := range numbers {
		issued(t, s, n)
	}
	failures := map[string]int{}
	for i := 0; i < 60; i++ {
		for _, n := range numbers {
			if err := s.WatchInvoice(ctx, n, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Pool.Exec(ctx, `UPDATE stream_watches SET until = now() - interval '1 second'`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		start := make(chan struct{})
		for _, n := range numbers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := s.WatchInvoice(ctx, n, time.Minute); err != nil {
					mu.Lock()
					failures[err.Error()]++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	for e, n := range failures {
		t.Errorf("%d of 120 stream opens failed: %s", n, e)
	}
}
