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
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/httpapi"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/postgres"
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
	// LeastPrivileges runs the service as a role with only the privileges deploy/postgres/roles.sql
	// grants (the database was migrated by its owner).
	LeastPrivileges bool
	// Tracer, when set, is told of every statement the service sends (pgx calls it; when it is also a
	// pgx.BatchTracer, of each statement of a batch too): the service then runs on a pool of its own
	// over the stack's database, and DB.Pool, which the tests' own queries use, stays untraced.
	Tracer pgx.QueryTracer
	// DatabaseURL, when set, is a database the test provides (already migrated, on servers it runs
	// itself: a primary and its standby, say) instead of a fresh one from pgtest. The service opens
	// its pool from it as production does (app.OpenDatabase: every host of a multi-host URL,
	// target_session_attrs, DB_CONNECT_TIMEOUT), and DB.Pool, for the test's own queries, is a
	// separate pool over the same URL. It cannot be combined with LeastPrivileges or Tracer.
	DatabaseURL string
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
	if opts.DatabaseURL != "" && (opts.LeastPrivileges || opts.Tracer != nil) {
		t.Fatal("apitest: DatabaseURL cannot be combined with LeastPrivileges or Tracer")
	}
	s := &Stack{t: t, Logs: &SyncBuffer{}}
	if opts.DatabaseURL != "" {
		s.DB = givenDB(t, opts.DatabaseURL)
	} else {
		s.DB = pgtest.New(t)
	}
	log := zerolog.New(s.Logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()

	// The service's server starts first so the simulator knows where to notify; its handler is set
	// once the service can point at the simulator.
	var handler http.Handler
	svcSrv := httptest.NewUnstartedServer(nil)
	svcSrv.Config = httpapi.NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }), opts.DokuTimeout, 30*time.Second)
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
	pool := s.DB.Pool
	if opts.LeastPrivileges {
		pool = leastPrivilegedPool(t, s.DB)
		cfg.DatabaseURL = config.Secret(pool.Config().ConnString())
	}
	if opts.Tracer != nil {
		pool = tracedPool(t, s.DB.Pool, opts.Tracer)
	}
	if opts.DatabaseURL != "" {
		pool = nil // app.New opens the service's own from DATABASE_URL
	}
	a, err := app.New(context.Background(), cfg, log.With().Str("service", "o2o").Logger(), app.Options{Pool: pool, Adjust: opts.Adjust})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	a.Prepare(context.Background()) // as Run does before it serves
	s.App, s.Service, s.Metrics, handler = a, a.Service, a.Metrics, a.Handler
	s.Client = &http.Client{Timeout: 30 * time.Second, Transport: &ContractTransport{T: t, Base: http.DefaultTransport}}
	return s
}

// givenDB is the test's own database at url, with a pool of the test's (pgtest's session settings).
func givenDB(t testing.TB, url string) *pgtest.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := postgres.Open(ctx, url, postgres.PoolOptions{StatementTimeout: 30 * time.Second, LockTimeout: 10 * time.Second, IdleInTxTimeout: time.Minute})
	if err != nil {
		t.Fatalf("apitest: DatabaseURL: %v", err)
	}
	t.Cleanup(pool.Close)
	return &pgtest.DB{Pool: pool, URL: url, Name: pool.Config().ConnConfig.Database}
}

// tracedPool is a pool over base's database, with base's session settings, whose connections report
// every statement to tracer.
func tracedPool(t testing.TB, base *pgxpool.Pool, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	cfg := base.Config() // a copy
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("apitest: traced pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Dump is the whole response as text, headers included.
func (r Response) Dump() string { return fmt.Sprint(r.Header) + "\n" + string(r.Body) }

// Request is one request to the service.
type Request struct {
	Method, Path string
	// Body is sent as is, with Content-Type: application/json, when non-nil (an empty non-nil body
	// is sent empty, with the header).
	Body []byte
	// Stream is sent instead of Body, without a Content-Length (chunked), with the same
	// Content-Type: for tests of bodies whose length the server cannot know up front.
	Stream io.Reader
	// Key is the bearer API key sent; APIKey when "".
	Key string
	// NoKey sends no Authorization header at all.
	NoKey bool
	// Header holds extra headers, set after the defaults above (so they can replace them, e.g. an
	// Authorization of another scheme or a Content-Type).
	Header http.Header
}

// Send sends a request to the service through the contract check and returns its answer.
func (s *Stack) Send(r Request) Response {
	s.t.Helper()
	return Do(s.t, s.Client, s.URL, r)
}

// Do sends r to the service at baseURL (a replica's) with client, and returns its answer.
func Do(t testing.TB, client *http.Client, baseURL string, r Request) Response {
	t.Helper()
	var body io.Reader
	switch {
	case r.Stream != nil:
		// Hidden behind a plain io.Reader: net/http sets a Content-Length for the readers it knows.
		body = struct{ io.Reader }{r.Stream}
	case r.Body != nil:
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequest(r.Method, baseURL+r.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if !r.NoKey {
		key := r.Key
		if key == "" {
			key = APIKey
		}
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.Header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// GET sends GET path with the API key.
func (s *Stack) GET(path string) Response {
	s.t.Helper()
	return s.Send(Request{Method: http.MethodGet, Path: path})
}

// POST sends body (none when nil) to path with the API key.
func (s *Stack) POST(path string, body []byte) Response {
	s.t.Helper()
	return s.Send(Request{Method: http.MethodPost, Path: path, Body: body})
}

// Create sends c to POST /v1/invoices.
func (s *Stack) Create(c CreateBody) Response {
	s.t.Helper()
	return s.POST("/v1/invoices", JSON(s.t, c))
}

// Sync sends POST /v1/invoices/{number}/sync.
func (s *Stack) Sync(number string) Response {
	s.t.Helper()
	return s.POST("/v1/invoices/"+number+"/sync", nil)
}

// JSON is v marshalled, for a body built by hand (a map for a wrongly typed field, say).
func JSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return raw
}

// CreateBody is a create request (CreateInvoiceRequest), with what the tests set.
type CreateBody struct {
	InvoiceNumber    string          `json:"invoice_number"`
	Channel          string          `json:"channel"`
	Amount           int64           `json:"amount"`
	Customer         Customer        `json:"customer"`
	ExpiresInMinutes int             `json:"expires_in_minutes,omitempty"`
	Reusable         bool            `json:"reusable,omitempty"`
	Info             string          `json:"info,omitempty"`
	ReceiptFooter    string          `json:"receipt_footer,omitempty"`
	Metadata         json.RawMessage `json:"metadata,omitempty"`
}

// Customer is an invoice's customer.
type Customer struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// NewInvoice is a valid create request for number on channel; change its fields for variants.
func NewInvoice(number, channel string) CreateBody {
	c := CreateBody{
		InvoiceNumber:    number,
		Channel:          channel,
		Amount:           150000,
		Customer:         Customer{Name: "Taufik Ismail", Email: "taufik@example.com"},
		ExpiresInMinutes: 60,
		Info:             "Online Shop",
	}
	if channel == "alfa" {
		c.ReceiptFooter = "Call Center 021 555-0525"
	}
	return c
}

// Pay pays code at the simulated counter and returns the simulator's answer.
func (s *Stack) Pay(code string, amount int64) CounterPayment {
	s.t.Helper()
	return s.PayWith(code, amount, PayOptions{})
}

// Notify sends body to the webhook signed as DOKU would, with requestID; mutate may alter the
// headers (after signing) to forge a bad notification.
func (s *Stack) Notify(body []byte, requestID string, mutate func(h http.Header)) Response {
	s.t.Helper()
	return notify(s.t, s.Client, s.URL, body, requestID, mutate)
}

// notify sends a notification signed as DOKU would to the service at baseURL.
func notify(t testing.TB, client *http.Client, baseURL string, body []byte, requestID string, mutate func(h http.Header)) Response {
	t.Helper()
	h := doku.SignedHeaders([]byte(SecretKey), doku.Components{ClientID: ClientID, RequestID: requestID,
		Timestamp: time.Now().UTC().Format(doku.TimestampLayout), Target: NotificationPath, Digest: doku.Digest(body)}, true)
	if mutate != nil {
		mutate(h)
	}
	req, err := http.NewRequest(http.MethodPost, baseURL+NotificationPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
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

// PayOptions are the counter's less usual payments.
type PayOptions struct {
	// Late pays a code that has already expired, as DOKU may settle one after its expiry.
	Late bool `json:"late,omitempty"`
}

// PayWith pays code at the simulated counter as o says.
func (s *Stack) PayWith(code string, amount int64, o PayOptions) CounterPayment {
	s.t.Helper()
	req := struct {
		PaymentCode string `json:"payment_code"`
		Amount      int64  `json:"amount"`
		PayOptions
	}{code, amount, o}
	resp, err := http.Post(s.SimURL+"/simulator/payments", "application/json", bytes.NewReader(JSON(s.t, req)))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("simulator pay %s: HTTP %d %s", code, resp.StatusCode, raw)
	}
	var out CounterPayment
	if err := json.Unmarshal(raw, &out); err != nil || out.TransactionID == "" {
		s.t.Fatalf("simulator pay %s: not a payment (%v):\n%s", code, err, raw)
	}
	return out
}

// Attention lists attention items with the given query (e.g. "state=open&invoice_number=INV-1").
func (s *Stack) Attention(query string) []AttentionView {
	s.t.Helper()
	r := s.GET("/v1/attention?" + query)
	if r.Status != http.StatusOK {
		s.t.Fatalf("GET /v1/attention?%s: HTTP %d %s", query, r.Status, r.Body)
	}
	return r.AttentionList(s.t).Items
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

// leastPrivilegedPool creates a login role with exactly the grants of deploy/postgres/roles.sql (the
// file operators apply, read here as it is) on db, and returns a pool connected as that role with the
// session settings of db's pool. The role goes when the test ends.
func leastPrivilegedPool(t testing.TB, db *pgtest.DB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	role := "o2o_app_" + strings.TrimPrefix(db.Name, "o2o_test_")
	pgtest.AdminExec(t, "CREATE ROLE "+role+" LOGIN PASSWORD 'app-password-for-tests'")
	t.Cleanup(func() {
		// Its grants live in db (DROP OWNED BY revokes them there), the role in the cluster.
		if _, err := db.Pool.Exec(context.Background(), "DROP OWNED BY "+role); err != nil {
			t.Logf("drop %s's grants: %v", role, err)
		}
		pgtest.AdminExec(t, "DROP ROLE IF EXISTS "+role)
	})
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), "deploy", "postgres", "roles.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var owner string
	if err := db.Pool.QueryRow(ctx, "SELECT current_user").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	grants := strings.NewReplacer(`:"app"`, role, `:"owner"`, owner, `:"db"`, db.Name).Replace(string(raw))
	if _, err := db.Pool.Exec(ctx, grants); err != nil {
		t.Fatalf("deploy/postgres/roles.sql: %v", err)
	}
	cfg := db.Pool.Config()
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, "app-password-for-tests"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// RepoRoot is the repository's top directory, found from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatal("no go.mod above the test's directory")
		}
	}
}

// FreePort is a loopback TCP port nothing listens on right now, for a process a test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
