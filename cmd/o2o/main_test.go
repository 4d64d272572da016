package main

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/migrations"
)

func setEnv(t *testing.T, dbURL string) {
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("API_KEYS", "cmd-test-key-0123456789")
	t.Setenv("DOKU_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("DOKU_CLIENT_ID", "MCH-CMD")
	t.Setenv("DOKU_SECRET_KEY", "SK-cmd-secret-0123")
	t.Setenv("DOKU_DEFAULT_CUSTOMER_EMAIL", "payments@merchant.example")
	t.Setenv("LOG_LEVEL", "debug")
}

func TestRunRefusesBadConfigurationWithOneLine(t *testing.T) {
	setEnv(t, "postgres://127.0.0.1/x")
	t.Setenv("DOKU_CLIENT_ID", "")
	t.Setenv("API_KEYS", "short")
	err := run(context.Background(), nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "\n  API_KEYS: ") || !strings.Contains(err.Error(), "\n  DOKU_CLIENT_ID: ") {
		t.Fatalf("err = %v, want every bad setting on a line of its own", err)
	}
	if err := run(context.Background(), []string{"fly"}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), []string{"migrate", "sideways"}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown migrate direction accepted")
	}
}

func TestServeStartsMigratesAndStopsGracefully(t *testing.T) {
	db := pgtest.New(t)
	setEnv(t, db.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &apitest.SyncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, logs, ready) }()

	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	out := logs.String()
	if !strings.Contains(out, "o2o listening") || !strings.Contains(out, `"message":"stopped"`) {
		t.Fatalf("logs lack start/stop lines:\n%s", out)
	}
	for _, secret := range []string{"SK-cmd-secret-0123", "cmd-test-key-0123456789"} {
		if strings.Contains(out, secret) {
			t.Fatalf("logs contain a secret:\n%s", out)
		}
	}

	var status bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "status"}, &status); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status.String(), "00001_invoices.sql") || !strings.Contains(status.String(), "applied") {
		t.Fatalf("migrate status:\n%s", status.String())
	}
}

// SIGTERM during a create that is waiting on DOKU: the request still completes (and its code is
// stored), new connections are refused, and serve returns cleanly.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	db := pgtest.New(t)
	setEnv(t, db.URL)
	sim, err := dokusim.New(dokusim.Config{ClientID: "MCH-CMD", SecretKey: "SK-cmd-secret-0123", NotificationURL: "http://127.0.0.1:1/n"})
	if err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(dokusim.Faults{LatencyMS: 700})
	simSrv := httptest.NewServer(sim)
	defer func() { simSrv.Close(); sim.Close() }()
	t.Setenv("DOKU_BASE_URL", simSrv.URL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &apitest.SyncBuffer{}, ready) }()
	addr := <-ready

	type result struct {
		status int
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/invoices", strings.NewReader(
			`{"invoice_number":"INV-SHUT","channel":"alfa","amount":150000,"customer":{"name":"A"}}`))
		req.Header.Set("Authorization", "Bearer cmd-test-key-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode}
	}()
	time.Sleep(200 * time.Millisecond) // the request is now waiting on DOKU
	cancel()

	r := <-inflight
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("in-flight request during shutdown: %d %v", r.status, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
	var status string
	if err := db.Pool.QueryRow(context.Background(), `SELECT status FROM invoices WHERE invoice_number = 'INV-SHUT'`).Scan(&status); err != nil || status != "pending" {
		t.Fatalf("invoice after shutdown: %q %v", status, err)
	}
}

// A row lock held elsewhere (here for up to a minute) stalls the reconciler's store step only as long
// as its bound: it gives up, the invoice keeps its place on the schedule and is checked again later.
// And however long the database makes a worker wait, SIGTERM ends the process within
// SHUTDOWN_TIMEOUT and a small margin.
func TestEveryWaitHasABound(t *testing.T) {
	db := pgtest.New(t)
	setEnv(t, db.URL)
	sim, err := dokusim.New(dokusim.Config{ClientID: "MCH-CMD", SecretKey: "SK-cmd-secret-0123", NotificationURL: "http://127.0.0.1:1/n"})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	defer func() { simSrv.Close(); sim.Close() }()
	t.Setenv("DOKU_BASE_URL", simSrv.URL)
	t.Setenv("RECONCILE_INTERVAL", "100ms")
	t.Setenv("RECONCILE_SCHEDULE", "1s")
	t.Setenv("SHUTDOWN_TIMEOUT", "3s")
	t.Setenv("DB_LOCK_TIMEOUT", "1s")
	// A check whose store step gave up is checked again once its claim runs out: DOKU_TIMEOUT + 5 s
	// + DB_STATEMENT_TIMEOUT (8 s here).
	t.Setenv("DOKU_TIMEOUT", "1s")
	t.Setenv("DB_STATEMENT_TIMEOUT", "2s")
	bg := context.Background()

	start := func(logs *apitest.SyncBuffer) (string, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(bg)
		ready, done := make(chan string, 1), make(chan error, 1)
		go func() { done <- serve(ctx, logs, ready) }()
		select {
		case addr := <-ready:
			return addr, cancel, done
		case err := <-done:
			t.Fatalf("serve: %v\n%s", err, logs)
		}
		return "", cancel, done
	}
	// lockDuringCheck waits for the reconciler's next check-status call and, while DOKU takes its
	// time answering, takes the invoice's row lock, which it then holds for up to a minute: the
	// reconciler's store step will find it held.
	lockDuringCheck := func() pgx.Tx {
		t.Helper()
		calls := sim.StatusCalls()
		for deadline := time.Now().Add(15 * time.Second); sim.StatusCalls() == calls; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the reconciler never checked the invoice")
			}
		}
		tx, err := db.Pool.Begin(bg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(bg, `SELECT 1 FROM invoices WHERE invoice_number = 'INV-LOCKED' FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		release := time.AfterFunc(time.Minute, func() { _ = tx.Rollback(bg) })
		t.Cleanup(func() { release.Stop(); _ = tx.Rollback(bg) })
		return tx
	}

	logs := &apitest.SyncBuffer{}
	addr, stop, done := start(logs)
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/invoices", strings.NewReader(
		`{"invoice_number":"INV-LOCKED","channel":"alfa","amount":150000,"customer":{"name":"A"}}`))
	req.Header.Set("Authorization", "Bearer cmd-test-key-0123456789")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", resp, err)
	}
	sim.SetFaults(dokusim.Faults{LatencyMS: 1000})

	holder := lockDuringCheck()
	locked := time.Now()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(logs.String(), "status check failed"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the reconciler never gave up on the locked invoice:\n%s", logs)
		}
	}
	t.Logf("the reconciler's store step gave up %v after the lock was taken (DOKU answering in 1s, DB_LOCK_TIMEOUT 1s)",
		time.Since(locked).Round(10*time.Millisecond))
	var status string
	var scheduled bool
	if err := db.Pool.QueryRow(bg, `SELECT status, next_check_at IS NOT NULL FROM invoices WHERE invoice_number = 'INV-LOCKED'`).Scan(&status, &scheduled); err != nil ||
		status != "pending" || !scheduled {
		t.Fatalf("after giving up: %s, still scheduled %v (%v)", status, scheduled, err)
	}
	_ = holder.Rollback(bg)
	// Retried later: once the lock is gone, a later round checks it again and stores the answer.
	checked := strings.Count(logs.String(), `"doku_endpoint":"check_status"`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var events int
		_ = db.Pool.QueryRow(bg, `SELECT count(*) FROM events e JOIN invoices i ON i.id = e.invoice_id,
			json_array_elements(e.history) h WHERE i.invoice_number = 'INV-LOCKED' AND h->>'kind' = 'doku_check'`).Scan(&events)
		if events > 0 && strings.Count(logs.String(), `"doku_endpoint":"check_status"`) > checked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the invoice was not checked again after the lock was released:\n%s", logs)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	// Now the database makes the worker wait far longer than the shutdown allows.
	t.Setenv("DB_LOCK_TIMEOUT", "60s")
	t.Setenv("DB_STATEMENT_TIMEOUT", "60s")
	logs = &apitest.SyncBuffer{}
	_, stop, done = start(logs)
	lockDuringCheck()
	time.Sleep(1500 * time.Millisecond) // DOKU has answered; the store step waits on the lock
	sigterm := time.Now()
	stop()
	select {
	case err := <-done:
		took := time.Since(sigterm)
		if took > 3*time.Second+2*time.Second {
			t.Fatalf("shutdown took %v, want at most SHUTDOWN_TIMEOUT (3s) + 2s", took)
		}
		t.Logf("shutdown with a worker stuck on a row lock took %v", took.Round(10*time.Millisecond))
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown hung on the database")
	}
	if !strings.Contains(logs.String(), "workers still busy at the shutdown deadline") {
		t.Fatalf("the worker was not stuck at shutdown, so this proves nothing:\n%s", logs)
	}
}

// `o2o migrate up|down` say what they did.
func TestMigrateSaysWhatItDid(t *testing.T) {
	db := pgtest.New(t)
	t.Setenv("DATABASE_URL", db.URL)
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatal(names, err)
	}
	last := names[len(names)-1]
	var out bytes.Buffer
	for _, step := range []struct{ dir, want string }{
		{"up", "migrate up: nothing to do"},
		{"down", "migrated down: " + last},
		{"up", "migrated up: " + last},
	} {
		out.Reset()
		if err := run(context.Background(), []string{"migrate", step.dir}, &out); err != nil {
			t.Fatalf("migrate %s: %v", step.dir, err)
		}
		if !strings.Contains(out.String(), step.want) {
			t.Fatalf("migrate %s printed %q, want %q", step.dir, out.String(), step.want)
		}
	}
}
