package httpapi_test

import (
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
