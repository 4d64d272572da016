package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/pgtest"
)

func setEnv(t *testing.T, dbURL string) {
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("API_KEYS", "cmd-test-key-0123456789")
	t.Setenv("DOKU_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("DOKU_CLIENT_ID", "MCH-CMD")
	t.Setenv("DOKU_SECRET_KEY", "SK-cmd-secret-0123")
	t.Setenv("LOG_LEVEL", "debug")
}

func TestRunRefusesBadConfigurationWithOneLine(t *testing.T) {
	setEnv(t, "postgres://127.0.0.1/x")
	t.Setenv("DOKU_CLIENT_ID", "")
	t.Setenv("API_KEYS", "short")
	err := run(context.Background(), nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "API_KEYS") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
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
	sim := dokusim.New(dokusim.Config{ClientID: "MCH-CMD", SecretKey: "SK-cmd-secret-0123", NotificationURL: "http://127.0.0.1:1/n"})
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
