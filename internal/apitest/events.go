package apitest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
)

// PublishedView is an event as the feed shows it (EventWithDeliveries in the contract); a webhook's
// body and a stream's data are the same without Deliveries.
type PublishedView struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	CreatedAt     string         `json:"created_at"`
	InvoiceNumber *string        `json:"invoice_number"`
	Data          EventDataView  `json:"data"`
	Deliveries    []DeliveryView `json:"deliveries"`
}

func (v PublishedView) String() string { return asJSON(v) }

// EventDataView is an event's payload.
type EventDataView struct {
	Invoice   *InvoiceView   `json:"invoice"`
	Payment   *PaymentView   `json:"payment"`
	Attention *AttentionView `json:"attention"`
}

// DeliveryView is one event's delivery to one endpoint.
type DeliveryView struct {
	Endpoint      string        `json:"endpoint"`
	State         string        `json:"state"`
	Attempts      []AttemptView `json:"attempts"`
	NextAttemptAt *string       `json:"next_attempt_at"`
	FinishedAt    *string       `json:"finished_at"`
}

// AttemptView is one POST of an event.
type AttemptView struct {
	At        string `json:"at"`
	Status    *int   `json:"status"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error"`
}

// EventPage is GET /v1/events.
type EventPage struct {
	Items      []PublishedView `json:"items"`
	NextCursor *string         `json:"next_cursor"`
	HasMore    bool            `json:"has_more"`
}

// EventPage decodes a page of the event feed.
func (r Response) EventPage(t testing.TB) EventPage { t.Helper(); return decode[EventPage](t, r) }

// Published decodes one event with its deliveries.
func (r Response) Published(t testing.TB) PublishedView {
	t.Helper()
	return decode[PublishedView](t, r)
}

// AllEvents reads the whole feed (filtered by query, e.g. "invoice_number=INV-1"), following its cursor.
func (s *Stack) AllEvents(query string) []PublishedView {
	s.t.Helper()
	var out []PublishedView
	after := ""
	for {
		q := "limit=100"
		if query != "" {
			q += "&" + query
		}
		if after != "" {
			q += "&after=" + after
		}
		r := s.GET("/v1/events?" + q)
		if r.Status != http.StatusOK {
			s.t.Fatalf("GET /v1/events?%s: HTTP %d %s", q, r.Status, r.Body)
		}
		page := r.EventPage(s.t)
		out = append(out, page.Items...)
		if page.NextCursor != nil {
			after = *page.NextCursor
		}
		if !page.HasMore {
			return out
		}
	}
}

// Listen starts the stack's LISTEN connection (what Run does in production), for tests of the status
// streams and of the deliverer's wake-ups, and waits until it listens.
func (s *Stack) Listen() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() { defer close(done); s.App.Listen(ctx, func() { once.Do(func() { close(listening) }) }) }()
	s.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		s.t.Fatal("the event listener did not connect")
	}
}

// SSE is an open status stream, read event by event.
type SSE struct {
	t        testing.TB
	resp     *http.Response
	events   chan SSEEvent
	comments atomic.Int64
}

// SSEEvent is one event of a stream.
type SSEEvent struct {
	ID, Event, Data string
}

// OpenStream opens url (a status stream) with the given headers and checks the answer is a stream;
// it is closed when the test ends.
func OpenStream(t testing.TB, url string, header http.Header) *SSE {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: HTTP %d %s %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if err := CheckResponse(req, resp.StatusCode, resp.Header, nil); err != nil {
		t.Errorf("contract: stream answer: %v", err)
	}
	s := &SSE{t: t, resp: resp, events: make(chan SSEEvent, 100)}
	go s.read()
	t.Cleanup(s.Close)
	return s
}

// read parses the stream (comments and retry lines skipped); Next checks each message's data against
// the contract's StreamMessage.
func (s *SSE) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var ev SSEEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Data != "" {
				s.events <- ev
			}
			ev = SSEEvent{}
		case strings.HasPrefix(line, ":"):
			s.comments.Add(1) // a heartbeat
		case strings.HasPrefix(line, "id: "):
			ev.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.Data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// Next is the next event within wait; ok is false when none came (or the stream ended).
func (s *SSE) Next(wait time.Duration) (SSEEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			if err := CheckSchema("StreamMessage", []byte(ev.Data)); err != nil {
				s.t.Errorf("contract: stream %s data does not match StreamMessage: %v\n%s", ev.Event, err, ev.Data)
			}
		}
		return ev, ok
	case <-time.After(wait):
		return SSEEvent{}, false
	}
}

// Ended reports whether the server ended the stream within wait.
func (s *SSE) Ended(wait time.Duration) bool {
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// Heartbeats counts the comment lines received so far.
func (s *SSE) Heartbeats() int { return int(s.comments.Load()) }

// Close hangs up.
func (s *SSE) Close() { s.resp.Body.Close() }

// CheckSchema validates body against a schema of the contract's components.
func CheckSchema(name string, body []byte) error {
	if _, err := loadSpec(); err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	ref := specDoc.Components.Schemas[name]
	if ref == nil {
		return fmt.Errorf("the contract has no schema %s", name)
	}
	return ref.Value.VisitJSON(v)
}

// Receiver is a merchant's webhook endpoint: it verifies each delivery with the Standard Webhooks
// library — as a receiver would — and answers as the test tells it.
type Receiver struct {
	URL    string
	Secret string // whsec_…
	hook   *standardwebhooks.Webhook

	mu       sync.Mutex
	answer   func(r *http.Request) int
	verified []Delivery
	refused  int
}

// Delivery is a webhook the receiver accepted as genuine.
type Delivery struct {
	ID     string
	Status int // what the receiver answered
	Event  PublishedView
	Body   []byte
	Header http.Header
	// Start is when the request arrived; Took is how long the receiver took to answer: past the
	// sender's timeout, the sender never saw the answer.
	Start time.Time
	Took  time.Duration
}

// TestSecret is a valid Standard Webhooks secret.
const TestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// NewReceiver starts a receiver that answers 204 until told otherwise.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	rc := &Receiver{answer: func(*http.Request) int { return http.StatusNoContent }}
	rc.VerifyWith(t, TestSecret)
	srv := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rc.mu.Lock()
	hook := rc.hook
	rc.mu.Unlock()
	if err := hook.Verify(body, r.Header); err != nil {
		rc.mu.Lock()
		rc.refused++
		rc.mu.Unlock()
		http.Error(w, "signature: "+err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	answer := rc.answer
	rc.mu.Unlock()
	start := time.Now()
	status := answer(r)
	if status == 0 {
		return // the handler already answered (or hung up)
	}
	var ev PublishedView
	_ = json.Unmarshal(body, &ev)
	rc.mu.Lock()
	rc.verified = append(rc.verified, Delivery{ID: r.Header.Get("webhook-id"), Status: status, Event: ev, Body: body,
		Header: r.Header.Clone(), Start: start, Took: time.Since(start)})
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// VerifyWith makes the receiver verify with secret from now on (as a receiver does that rotated to a
// new secret); Secret is what a stack configures for it.
func (rc *Receiver) VerifyWith(t testing.TB, secret string) {
	t.Helper()
	hook, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.Secret, rc.hook = secret, hook
}

// Answer sets how the receiver answers from now on: the status, or 0 when fn answers itself.
func (rc *Receiver) Answer(fn func(r *http.Request) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = fn
}

// Deliveries are the genuine deliveries so far, in the order they arrived.
func (rc *Receiver) Deliveries() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := append([]Delivery(nil), rc.verified...)
	slices.SortStableFunc(out, func(a, b Delivery) int { return a.Start.Compare(b.Start) })
	return out
}

// Acknowledged are the deliveries the receiver answered 2xx, in arrival order.
func (rc *Receiver) Acknowledged() []Delivery {
	var out []Delivery
	for _, d := range rc.Deliveries() {
		if d.Status >= 200 && d.Status < 300 {
			out = append(out, d)
		}
	}
	return out
}

// Refused counts deliveries whose signature the library refused.
func (rc *Receiver) Refused() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.refused
}

// Replica is a second instance of the service over the stack's database and simulator, with its own
// HTTP server — another replica behind the load balancer.
type Replica struct {
	t   testing.TB
	App *app.App
	URL string
}

// Replica starts another replica of the stack's service, configured as the stack is and then by fn.
func (s *Stack) Replica(fn func(*config.Config)) *Replica {
	s.t.Helper()
	cfg := Config(s.DB, s.SimURL, 5*time.Second)
	if fn != nil {
		fn(&cfg)
	}
	a, err := app.New(context.Background(), cfg, zerolog.New(s.Logs).With().Str("service", "o2o-replica").Logger(), app.Options{Pool: s.DB.Pool})
	if err != nil {
		s.t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	s.t.Cleanup(srv.Close)
	return &Replica{t: s.t, App: a, URL: srv.URL}
}

// Notify sends a notification signed as DOKU would to this replica.
func (r *Replica) Notify(body []byte, requestID string) Response {
	r.t.Helper()
	return notify(r.t, &http.Client{Timeout: 30 * time.Second, Transport: &ContractTransport{T: r.t, Base: http.DefaultTransport}},
		r.URL, body, requestID, nil)
}

// Deliver runs the stack's delivery worker until the test ends.
func (s *Stack) Deliver() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.App.Deliverer.Run(ctx) }()
	s.t.Cleanup(func() { cancel(); <-done })
}

// Endpoint configures a stack to deliver its events to rc as endpoint name.
func Endpoint(name string, rc *Receiver) func(*config.Config) {
	return func(c *config.Config) {
		c.EventsEndpoints = append(c.EventsEndpoints, name+"="+rc.URL)
		c.EventsSecrets = append(c.EventsSecrets, config.Secret(name+"="+rc.Secret))
	}
}

// Verify checks a body and headers as the receiver does (for tampering tests).
func (rc *Receiver) Verify(body []byte, h http.Header) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.hook.Verify(body, h)
}

// EndpointWithSecrets configures a stack to deliver its events to rc as endpoint name, signed with
// each of secrets (a rotation).
func EndpointWithSecrets(name string, rc *Receiver, secrets ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.EventsEndpoints = append(c.EventsEndpoints, name+"="+rc.URL)
		c.EventsSecrets = append(c.EventsSecrets, config.Secret(name+"="+strings.Join(secrets, " ")))
	}
}

// Deliver runs this replica's delivery worker (which registers its endpoints first) until the test
// ends.
func (r *Replica) Deliver() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.App.Deliverer.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
}

// Send sends a request to this replica through the contract check.
func (r *Replica) Send(req Request) Response {
	r.t.Helper()
	return Do(r.t, &http.Client{Timeout: 30 * time.Second, Transport: &ContractTransport{T: r.t, Base: http.DefaultTransport}}, r.URL, req)
}
