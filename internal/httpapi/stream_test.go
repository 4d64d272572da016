package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
)

type streamToken struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	StreamURL string `json:"stream_url"`
}

func issueToken(t *testing.T, s *apitest.Stack, number, body string) streamToken {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	r := s.POST("/v1/invoices/"+number+"/stream-token", b)
	if r.Status != http.StatusCreated {
		t.Fatalf("stream token: HTTP %d %s", r.Status, r.Body)
	}
	var tok streamToken
	if err := json.Unmarshal(r.Body, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// next is the stream's next event of type typ, skipping none: any other event fails the test.
func next(t *testing.T, st *apitest.SSE, typ string, within time.Duration) apitest.SSEEvent {
	t.Helper()
	ev, ok := st.Next(within)
	if !ok {
		t.Fatalf("no %s event within %s", typ, within)
	}
	if ev.Event != typ {
		t.Fatalf("got a %s event (%s), want %s", ev.Event, ev.Data, typ)
	}
	return ev
}

// A checkout page's stream, opened with a scoped token on replica A, sees the payment replica B's
// webhook applied within a second; reconnecting with Last-Event-ID misses nothing.
func TestStreamSeesAPaymentAppliedByAnotherReplica(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Listen()
	b := s.Replica(nil)
	inv := s.Create(apitest.NewInvoice("INV-LIVE", "alfa")).Invoice(t)
	tok := issueToken(t, s, "INV-LIVE", "")

	st := apitest.OpenStream(t, s.URL+tok.StreamURL, nil)
	var snapshot apitest.PublishedView
	if err := json.Unmarshal([]byte(next(t, st, "invoice.snapshot", 5*time.Second).Data), &snapshot); err != nil || snapshot.Data.Invoice.Status != "pending" {
		t.Fatalf("the stream starts with the invoice: %v %v", snapshot, err)
	}
	// The merchant's own view of the same invoice, with an API key: every event.
	full := apitest.OpenStream(t, s.URL+"/v1/invoices/INV-LIVE/stream", http.Header{"Authorization": {"Bearer " + apitest.APIKey}})
	next(t, full, "invoice.snapshot", 5*time.Second)

	start := time.Now()
	if r := b.Notify(apitest.NotificationBody("INV-LIVE", "alfa", inv.Code(t), inv.Amount, "TRX-LIVE-1"), "req-live-1"); r.Status != http.StatusOK {
		t.Fatalf("notification to replica B: HTTP %d %s", r.Status, r.Body)
	}
	// The customer's page sees the status change (not the payment's details)...
	paid := next(t, st, "invoice.paid", time.Second)
	t.Logf("replica A's stream saw replica B's payment %s after the notification was answered", time.Since(start))
	var ev apitest.PublishedView
	if err := json.Unmarshal([]byte(paid.Data), &ev); err != nil || ev.ID != paid.ID || ev.Data.Invoice.Status != "paid" {
		t.Fatalf("paid event: %v %v", ev, err)
	}
	// ...the merchant's stream every event, the payment's details included.
	if full := next(t, full, "invoice.paid", time.Second); !strings.Contains(full.Data, "TRX-LIVE-1") {
		t.Errorf("the merchant's paid event lacks the payment: %s", full.Data)
	}
	full.Close()
	st.Close()

	// While the page is away: a mismatched notification raises an attention item.
	b.Notify(apitest.NotificationBody("INV-LIVE", "alfa", inv.Code(t), inv.Amount+1, "TRX-LIVE-2"), "req-live-2")
	again := apitest.OpenStream(t, s.URL+"/v1/invoices/INV-LIVE/stream", http.Header{"Last-Event-ID": {paid.ID},
		"Authorization": {"Bearer " + apitest.APIKey}})
	next(t, again, "invoice.snapshot", 5*time.Second)
	missed := next(t, again, "attention.raised", 5*time.Second)
	if err := json.Unmarshal([]byte(missed.Data), &ev); err != nil || ev.Data.Attention == nil || ev.Data.Attention.Reason != "amount_mismatch" {
		t.Errorf("missed event: %s", missed.Data)
	}
	if extra, ok := again.Next(300 * time.Millisecond); ok {
		t.Errorf("an event sent twice or out of nowhere after the reconnect: %v", extra)
	}

	// A Last-Event-ID of another invoice, or no event at all, is refused.
	s.Create(apitest.NewInvoice("INV-LIVE-2", "alfa"))
	other := s.AllEvents("invoice_number=INV-LIVE-2")[0].ID
	for _, last := range []string{other, "nope"} {
		r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices/INV-LIVE/stream", Header: http.Header{"Last-Event-ID": {last}}})
		if r.Status != http.StatusNotFound && r.Status != http.StatusUnprocessableEntity {
			t.Errorf("Last-Event-ID %s: HTTP %d %s", last, r.Status, r.Body)
		}
	}
}

// The token opens one invoice's stream and nothing else, and expires; the stream ends when its
// token does.
func TestStreamTokenIsScopedAndExpires(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Listen()
	s.Create(apitest.NewInvoice("INV-TOK-A", "alfa"))
	s.Create(apitest.NewInvoice("INV-TOK-B", "alfa"))
	tok := issueToken(t, s, "INV-TOK-A", `{"ttl_seconds": 1}`)

	noKey := func(path string) apitest.Response {
		return s.Send(apitest.Request{Method: http.MethodGet, Path: path, NoKey: true})
	}
	if r := noKey("/v1/invoices/INV-TOK-B/stream?token=" + tok.Token); r.Status != http.StatusForbidden {
		t.Errorf("a token for A opening B's stream: HTTP %d %s", r.Status, r.Body)
	}
	if r := noKey("/v1/invoices/INV-TOK-A/stream?token=st_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); r.Status != http.StatusUnauthorized {
		t.Errorf("a made-up token: HTTP %d", r.Status)
	}
	if r := noKey("/v1/invoices/INV-TOK-A/stream?token=" + apitest.APIKey); r.Status != http.StatusUnauthorized {
		t.Errorf("an API key as a token: HTTP %d", r.Status)
	}
	if r := noKey("/v1/invoices/INV-TOK-A/stream"); r.Status != http.StatusUnauthorized {
		t.Errorf("no key, no token: HTTP %d", r.Status)
	}
	if r := noKey("/v1/invoices/INV-TOK-A?token=" + tok.Token); r.Status != http.StatusUnauthorized {
		t.Errorf("a stream token opened the invoice API: HTTP %d", r.Status)
	}
	if r := s.POST("/v1/invoices/INV-NOPE/stream-token", nil); r.Status != http.StatusNotFound {
		t.Errorf("a token for an unknown invoice: HTTP %d", r.Status)
	}
	if r := s.POST("/v1/invoices/INV-TOK-A/stream-token", []byte(`{"ttl_seconds": -5}`)); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("a negative ttl: HTTP %d", r.Status)
	}

	st := apitest.OpenStream(t, s.URL+tok.StreamURL, nil)
	next(t, st, "invoice.snapshot", 5*time.Second)
	if !st.Ended(3 * time.Second) {
		t.Error("the stream outlived its token")
	}
	if r := noKey("/v1/invoices/INV-TOK-A/stream?token=" + tok.Token); r.Status != http.StatusUnauthorized {
		t.Errorf("an expired token: HTTP %d %s", r.Status, r.Body)
	}
	// An API key opens any invoice's stream.
	withKey := apitest.OpenStream(t, s.URL+"/v1/invoices/INV-TOK-B/stream", http.Header{"Authorization": {"Bearer " + apitest.APIKey}})
	next(t, withKey, "invoice.snapshot", 5*time.Second)
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices/INV-TOK-B/stream", Key: "wrong-key-0123456789"}); r.Status != http.StatusUnauthorized {
		t.Errorf("a wrong API key: HTTP %d", r.Status)
	}
}

// Streams are bounded per process, keep alive with heartbeats, and end when the replica shuts down.
func TestStreamLimitsHeartbeatsAndShutdown(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) {
		c.StreamMaxConnections, c.StreamHeartbeat = 1, 50*time.Millisecond
	}})
	s.Listen()
	s.Create(apitest.NewInvoice("INV-HB", "alfa"))
	auth := http.Header{"Authorization": {"Bearer " + apitest.APIKey}}
	st := apitest.OpenStream(t, s.URL+"/v1/invoices/INV-HB/stream", auth)
	next(t, st, "invoice.snapshot", 5*time.Second)
	if r := s.GET("/v1/invoices/INV-HB/stream"); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("a stream past STREAM_MAX_CONNECTIONS: HTTP %d %s", r.Status, r.Body)
	}
	time.Sleep(300 * time.Millisecond)
	if n := st.Heartbeats(); n < 2 {
		t.Errorf("%d heartbeats in 300ms at one per 50ms", n)
	}
	s.App.EndStreams()
	if !st.Ended(2 * time.Second) {
		t.Error("the stream did not end when the replica began to shut down")
	}
}

// A notification whose body cannot be read but names one of our invoices raises an attention item,
// published as an event of that invoice. It must be written under the invoice's row lock like every
// other change of it: a stream follows an invoice's events by sequence number, and an event numbered
// before one the stream has sent, but committed after it, was never sent — not by the open stream,
// not after a reconnect. The notification is held between its event and its commit (a row with its
// inbox key, uncommitted) while the invoice is cancelled.
func TestAStreamSeesAnAttentionEventOfAnUnreadableNotification(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.StreamHeartbeat = 100 * time.Millisecond }})
	s.Listen()
	s.Create(apitest.NewInvoice("INV-UNREAD-STREAM", "alfa"))
	st := apitest.OpenStream(t, s.URL+"/v1/invoices/INV-UNREAD-STREAM/stream", http.Header{"Authorization": {"Bearer " + apitest.APIKey}})
	next(t, st, "invoice.snapshot", 5*time.Second)

	body := []byte(`{"order":{"invoice_number":"INV-UNREAD-STREAM","amount":"oops"}}`)
	sum := sha256.Sum256(body)
	ctx := context.Background()
	blocker, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blocker.Rollback(context.Background()) })
	if _, err := blocker.Exec(ctx, `INSERT INTO notifications (doku_request_id, invoice_number, headers, body, body_sha256, outcome)
		VALUES ('req-unread-stream', '', '{}', $1, $2, 'malformed')`, body, sum[:]); err != nil {
		t.Fatal(err)
	}
	notified := make(chan apitest.Response, 1)
	go func() { notified <- s.Notify(body, "req-unread-stream", nil) }()
	s.DB.WaitForLockWait(t, "INSERT INTO notifications")
	cancelled := make(chan apitest.Response, 1)
	go func() {
		cancelled <- s.POST("/v1/invoices/INV-UNREAD-STREAM/cancel", []byte(`{"reason":"out of stock"}`))
	}()
	time.Sleep(300 * time.Millisecond) // the cancel commits now, unless it waits for the invoice's lock
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-notified; r.Status != http.StatusBadRequest {
		t.Errorf("the unreadable notification: HTTP %d %s", r.Status, r.Body)
	}
	if r := <-cancelled; r.Status != http.StatusOK {
		t.Fatalf("cancel: HTTP %d %s", r.Status, r.Body)
	}
	seen := map[string]bool{}
	for deadline := time.Now().Add(3 * time.Second); len(seen) < 2 && time.Now().Before(deadline); {
		if ev, ok := st.Next(time.Until(deadline)); ok && ev.Event != "heartbeat" && ev.Event != "" {
			seen[ev.Event] = true
		}
	}
	if !seen["attention.raised"] || !seen["invoice.cancelled"] {
		t.Errorf("the stream sent %v: want the attention.raised event and the cancellation", seen)
	}
}
