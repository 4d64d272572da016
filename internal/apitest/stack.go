// Package apitest brings up the whole service for tests: a fresh real Postgres database, the DOKU
// simulator on a real HTTP port, and the service's real router on another, wired as in production.
// Every response the test client receives is checked against api/openapi.yaml.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/httpapi"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/worker"
)

// Test credentials. They look like real ones so that log-redaction tests mean something.
const (
	ClientID         = "MCH-0001-10791114622547"
	SecretKey        = "SK-TEST-0123456789abcdef"
	APIKey           = "test-api-key-0123456789abcdef"
	APIKey2          = "test-api-key-rotated-9876543210"
	APIKeyName       = "checkout"
	APIKey2Name      = "ops-rotated"
	NotificationPath = "/v1/notifications/doku"
)

// BodyDefaults are the generate-request defaults of the test stack.
var BodyDefaults = doku.BodyDefaults{Info: "Online purchase", CustomerEmail: "payments@merchant.example", ReceiptFooter: "Thank you"}

// Options tune a Stack.
type Options struct {
	DokuTimeout   time.Duration
	RetrySchedule []time.Duration
	// Config changes the service's configuration (the test defaults below, on top of config.Defaults)
	// before the service is built.
	Config func(*config.Config)
	// Adjust changes what the service decides by that the configuration derives (leases).
	Adjust func(*service.Config)
	// Sim sets the simulator's knobs (its credentials and notification URL are the stack's).
	Sim dokusim.Config
}

// Stack is a running service with its simulator and database, built by app.New as production builds
// it; only its settings are the tests'.
type Stack struct {
	t       testing.TB
	App     *app.App
	DB      *pgtest.DB
	Service *service.Service
	Sim     *dokusim.Simulator
	SimURL  string
	URL     string
	Client  *http.Client
	Logs    *SyncBuffer
	Metrics *metrics.Metrics
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Config is the configuration of a test stack: the defaults, with the stack's credentials, its
// simulator as DOKU and workers that run when a test says so.
func Config(db *pgtest.DB, simURL string, dokuTimeout time.Duration) config.Config {
	c := config.Defaults()
	c.DatabaseURL = config.Secret(db.URL)
	c.APIKeys = []config.Secret{APIKeyName + ":" + APIKey, APIKey2Name + ":" + APIKey2}
	c.DokuBaseURL, c.DokuClientID, c.DokuSecretKey = simURL, ClientID, SecretKey
	c.DokuNotificationPath, c.DokuTimeout = NotificationPath, dokuTimeout
	c.DokuDefaultInfo, c.DokuDefaultCustomerEmail, c.DokuDefaultReceiptFooter = BodyDefaults.Info, BodyDefaults.CustomerEmail, BodyDefaults.ReceiptFooter
	// Rounds are run by the tests (RunOnce); these only size them.
	c.ResumerBaseBackoff, c.ResumerMaxBackoff, c.ResumerMaxAttempts = time.Millisecond, 5*time.Millisecond, 5
	c.ResumerInterval, c.ReconcileInterval = 20*time.Millisecond, 20*time.Millisecond
	return c
}

// New starts a stack and registers its shutdown.
func New(t testing.TB, opts Options) *Stack {
	t.Helper()
	if opts.DokuTimeout == 0 {
		opts.DokuTimeout = 5 * time.Second
	}
	if opts.RetrySchedule == nil {
		opts.RetrySchedule = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	}
	s := &Stack{t: t, DB: pgtest.New(t), Logs: &SyncBuffer{}}
	log := zerolog.New(s.Logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()

	// The service's server starts first so the simulator knows where to notify; its handler is set
	// once the service can point at the simulator.
	var handler http.Handler
	svcSrv := httptest.NewUnstartedServer(nil)
	svcSrv.Config = httpapi.NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }), opts.DokuTimeout)
	svcSrv.Start()
	t.Cleanup(svcSrv.Close)
	s.URL = svcSrv.URL

	simCfg := opts.Sim
	simCfg.ClientID, simCfg.SecretKey, simCfg.NotificationURL = ClientID, SecretKey, s.URL+NotificationPath
	simCfg.RetrySchedule, simCfg.Logger = opts.RetrySchedule, log.With().Str("service", "dokusim").Logger()
	sim, err := dokusim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Sim = sim
	simSrv := httptest.NewServer(s.Sim)
	t.Cleanup(func() { simSrv.Close(); s.Sim.Close() })
	s.SimURL = simSrv.URL

	cfg := Config(s.DB, s.SimURL, opts.DokuTimeout)
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the test stack's configuration: %v", err)
	}
	a, err := app.New(context.Background(), cfg, log.With().Str("service", "o2o").Logger(), app.Options{Pool: s.DB.Pool, Adjust: opts.Adjust})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	s.App, s.Service, s.Metrics, handler = a, a.Service, a.Metrics, a.Handler
	s.Client = &http.Client{Timeout: 30 * time.Second, Transport: &ContractTransport{T: t, Base: http.DefaultTransport}}
	return s
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Dump is the whole response as text, headers included.
func (r Response) Dump() string { return fmt.Sprint(r.Header) + "\n" + string(r.Body) }

// JSON decodes the body into a generic map.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// Do sends a request to the service. body may be nil, a string/[]byte (sent as is) or a value
// (marshalled). The API key is added unless headers set Authorization (use "" to send none).
func (s *Stack) Do(method, path string, body any, headers map[string]string) Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b // streamed: no Content-Length
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Invoice is a valid create request for number on channel; tweak the map for variants.
func Invoice(number, channel string) map[string]any {
	req := map[string]any{
		"invoice_number":     number,
		"channel":            channel,
		"amount":             150000,
		"customer":           map[string]any{"name": "Taufik Ismail", "email": "taufik@example.com"},
		"expires_in_minutes": 60,
		"info":               "Online Shop",
	}
	if channel == "alfa" {
		req["receipt_footer"] = "Call Center 021 555-0525"
	}
	return req
}

// Pay pays code at the simulated counter and returns the simulator's answer.
func (s *Stack) Pay(code string, amount int64) map[string]any { return s.PayWith(code, amount, nil) }

// Notify sends body to the webhook signed as DOKU would, with requestID; mutate may alter the
// headers (after signing) to forge a bad notification.
func (s *Stack) Notify(body []byte, requestID string, mutate func(h http.Header)) Response {
	s.t.Helper()
	h := doku.SignedHeaders([]byte(SecretKey), doku.Components{ClientID: ClientID, RequestID: requestID,
		Timestamp: time.Now().UTC().Format(doku.TimestampLayout), Target: NotificationPath, Digest: doku.Digest(body)}, true)
	if mutate != nil {
		mutate(h)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+NotificationPath, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header = h
	resp, err := s.Client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// NotificationBody is a DOKU success notification for an invoice.
func NotificationBody(number, channel, code string, amount int64, trxID string) []byte {
	return dokusim.NotificationBody(dokusim.Payment{InvoiceNumber: number, Channel: invoice.Channel(channel),
		PaymentCode: code, Amount: amount, At: time.Now(), TransactionID: trxID, OriginalRequestID: "x"})
}

// Count runs a counting query against the stack's database.
func (s *Stack) Count(query string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.DB.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		s.t.Fatalf("count %q: %v", query, err)
	}
	return n
}

// Resumer is the stack's resumer (RESUMER_* of its configuration).
func (s *Stack) Resumer() *worker.Resumer { return s.App.Resumer }

// Reconciler is the stack's reconciler.
func (s *Stack) Reconciler() *worker.Reconciler { return s.App.Reconciler }

// Get is the invoice as the service holds it.
func (s *Stack) Get(number string) *invoice.Invoice {
	s.t.Helper()
	inv, err := s.Service.Get(context.Background(), number)
	if err != nil {
		s.t.Fatalf("get %s: %v", number, err)
	}
	return inv
}

// MakeDue makes every invoice's next status check due now, as if the schedule's wait had passed.
func (s *Stack) MakeDue() {
	s.t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET next_check_at = now() WHERE next_check_at IS NOT NULL`); err != nil {
		s.t.Fatal(err)
	}
}

// PayWith pays code at the simulated counter with extra request fields (e.g. "late": true).
func (s *Stack) PayWith(code string, amount int64, extra map[string]any) map[string]any {
	s.t.Helper()
	req := map[string]any{"payment_code": code, "amount": amount}
	for k, v := range extra {
		req[k] = v
	}
	raw, _ := json.Marshal(req)
	resp, err := http.Post(s.SimURL+"/simulator/payments", "application/json", bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("simulator pay %s: HTTP %d %v", code, resp.StatusCode, out)
	}
	return out
}

// Attention lists attention items with the given query (e.g. "state=open&invoice_number=INV-1").
func (s *Stack) Attention(query string) []map[string]any {
	s.t.Helper()
	r := s.Do(http.MethodGet, "/v1/attention?"+query, nil, nil)
	if r.Status != http.StatusOK {
		s.t.Fatalf("GET /v1/attention?%s: HTTP %d %s", query, r.Status, r.Body)
	}
	var out struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		s.t.Fatal(err)
	}
	return out.Items
}

// Reconcile makes every check due and runs the reconciler once, times times over.
func (s *Stack) Reconcile(times int) {
	s.t.Helper()
	for i := 0; i < times; i++ {
		s.MakeDue()
		if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
			s.t.Fatal(err)
		}
	}
}
