package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
)

// rawStream opens url and collects its raw bytes until the stream has sent want "event:" lines or
// within passes; it returns what arrived.
func rawStream(t *testing.T, url string, header http.Header, want int, within time.Duration) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: HTTP %d %s", resp.StatusCode, body)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var raw strings.Builder
	deadline := time.After(within)
	// An event counts once it is whole (the blank line that ends it): its data is what is checked.
	for events, open := 0, false; events < want; {
		select {
		case l, ok := <-lines:
			if !ok {
				return raw.String()
			}
			raw.WriteString(l + "\n")
			switch {
			case strings.HasPrefix(l, "event: "):
				open = true
			case l == "" && open:
				events, open = events+1, false
			}
		case <-deadline:
			return raw.String()
		}
	}
	return raw.String()
}

// A stream opened with a token lives in a customer's browser: it carries the customer's view of the
// invoice's status and nothing internal — not the merchant's metadata, not the customer's details, not
// payment identifiers, not attention items and their evidence. The bytes are what is tested.
func TestTokenStreamCarriesNothingInternal(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Listen()
	body := apitest.NewInvoice("INV-SAFE", "alfa")
	body.Metadata = json.RawMessage(`{"fraud_score":0.93,"segment":"vip-internal"}`)
	inv := s.Create(body).Invoice(t)
	tok := issueToken(t, s, "INV-SAFE", "")

	// What happens while the page watches: a mismatched notification (an attention item with its
	// evidence), then the payment.
	done := make(chan string)
	go func() { done <- rawStream(t, s.URL+tok.StreamURL, nil, 2, 10*time.Second) }()
	time.Sleep(200 * time.Millisecond)
	s.Notify(apitest.NotificationBody("INV-SAFE", "alfa", inv.Code(t), inv.Amount+1, "TRX-SAFE-WRONG"), "req-safe-1", nil)
	pay := s.Pay(inv.Code(t), inv.Amount)
	live := <-done
	// And a page that reconnects from the start gets the same events again.
	replayed := rawStream(t, s.URL+tok.StreamURL, http.Header{"Last-Event-ID": {firstEventID(t, s, "INV-SAFE")}}, 2, 10*time.Second)

	for name, raw := range map[string]string{"live": live, "replayed": replayed} {
		if !strings.Contains(raw, "event: invoice.paid") {
			t.Errorf("%s: the customer's stream never said paid:\n%s", name, raw)
		}
		for _, secret := range []string{"fraud_score", "vip-internal", "metadata", "Taufik", "taufik@example.com", "customer",
			"attention", "amount_mismatch", "evidence", "TRX-SAFE-WRONG", pay.TransactionID, "identifiers", "payment.recorded",
			"req-safe-1", "receipt_footer", "Call Center", "info"} {
			if strings.Contains(raw, secret) {
				t.Errorf("%s: the customer's stream carries %q:\n%s", name, secret, raw)
			}
		}
	}
	// The merchant's own stream (an API key) still has everything.
	full := rawStream(t, s.URL+"/v1/invoices/INV-SAFE/stream", http.Header{"Authorization": {"Bearer " + apitest.APIKey},
		"Last-Event-ID": {firstEventID(t, s, "INV-SAFE")}}, 3, 10*time.Second)
	for _, want := range []string{"fraud_score", "attention.raised", `"payment":{`, pay.TransactionID} {
		if !strings.Contains(full, want) {
			t.Errorf("the merchant's stream lacks %q:\n%s", want, full)
		}
	}
}

func firstEventID(t *testing.T, s *apitest.Stack, number string) string {
	t.Helper()
	evs := s.AllEvents("invoice_number=" + number)
	if len(evs) == 0 {
		t.Fatalf("%s has no events", number)
	}
	return evs[0].ID
}

// One token cannot take every stream slot of a replica: past STREAM_MAX_PER_TOKEN it gets 429, and
// another customer's token still opens.
func TestStreamsPerTokenAreCapped(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.StreamMaxPerToken = 2 }})
	s.Create(apitest.NewInvoice("INV-CAP-A", "alfa"))
	s.Create(apitest.NewInvoice("INV-CAP-B", "alfa"))
	a, b := issueToken(t, s, "INV-CAP-A", ""), issueToken(t, s, "INV-CAP-A", "")
	for i := 0; i < 2; i++ {
		next(t, apitest.OpenStream(t, s.URL+a.StreamURL, nil), "invoice.snapshot", 5*time.Second)
	}
	r := s.Send(apitest.Request{Method: http.MethodGet, Path: a.StreamURL, NoKey: true})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("a third stream with one token: HTTP %d %s", r.Status, r.Body)
	}
	// Another token of the same invoice (another tab's page load), and another customer's.
	next(t, apitest.OpenStream(t, s.URL+b.StreamURL, nil), "invoice.snapshot", 5*time.Second)
	other := issueToken(t, s, "INV-CAP-B", "")
	next(t, apitest.OpenStream(t, s.URL+other.StreamURL, nil), "invoice.snapshot", 5*time.Second)
}

// A revoked token opens nothing, and a stream open with it ends at its next heartbeat; a token stops
// working CUSTOMER_ACCESS_GRACE after its invoice became final.
func TestStreamTokensRevokeAndEndWithTheInvoice(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) {
		c.StreamHeartbeat, c.CustomerAccessGrace = 100*time.Millisecond, 300*time.Millisecond
	}})
	s.Listen()
	s.Create(apitest.NewInvoice("INV-REV", "alfa"))
	tok := issueToken(t, s, "INV-REV", "")
	open := apitest.OpenStream(t, s.URL+tok.StreamURL, nil)
	next(t, open, "invoice.snapshot", 5*time.Second)
	r := s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/invoices/INV-REV/stream-tokens"})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"revoked":1`) {
		t.Fatalf("revoke: HTTP %d %s", r.Status, r.Body)
	}
	if !open.Ended(3 * time.Second) {
		t.Error("a stream opened with a revoked token went on")
	}
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: tok.StreamURL, NoKey: true}); r.Status != http.StatusUnauthorized {
		t.Errorf("a revoked token: HTTP %d %s", r.Status, r.Body)
	}
	if r := s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/invoices/INV-NOPE/stream-tokens"}); r.Status != http.StatusNotFound {
		t.Errorf("revoking an unknown invoice's tokens: HTTP %d", r.Status)
	}

	// Cancelled (final): the page may still see that for the grace, then the token ends.
	fresh := issueToken(t, s, "INV-REV", "")
	if r := s.POST("/v1/invoices/INV-REV/cancel", []byte(`{"reason":"customer left"}`)); r.Status != http.StatusOK {
		t.Fatalf("cancel: HTTP %d %s", r.Status, r.Body)
	}
	st := apitest.OpenStream(t, s.URL+fresh.StreamURL, nil)
	var snap apitest.PublishedView
	if err := json.Unmarshal([]byte(next(t, st, "invoice.snapshot", 5*time.Second).Data), &snap); err != nil || snap.Data.Invoice.Status != "cancelled" {
		t.Errorf("within the grace the page sees the end: %v %v", snap, err)
	}
	if !st.Ended(3 * time.Second) {
		t.Error("the stream outlived the grace after its invoice became final")
	}
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: fresh.StreamURL, NoKey: true}); r.Status != http.StatusUnauthorized {
		t.Errorf("a token past the grace after its invoice ended: HTTP %d %s", r.Status, r.Body)
	}
}

// A checkout page on an allowed origin may open the stream from the browser (CORS); a page on any
// other origin may not.
func TestStreamCORS(t *testing.T) {
	t.Parallel()
	const shop = "https://shop.example"
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.StreamAllowedOrigins = []string{shop} }})
	s.Create(apitest.NewInvoice("INV-CORS", "alfa"))
	tok := issueToken(t, s, "INV-CORS", "")
	preflight := func(origin string) apitest.Response {
		return s.Send(apitest.Request{Method: http.MethodOptions, Path: "/v1/invoices/INV-CORS/stream", NoKey: true, Header: http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"last-event-id"}}})
	}
	if r := preflight(shop); r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != shop ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
		t.Errorf("preflight from %s: HTTP %d %v", shop, r.Status, r.Header)
	}
	if r := preflight("https://evil.example"); r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: HTTP %d %v", r.Status, r.Header)
	}
	st := apitest.OpenStream(t, s.URL+tok.StreamURL, http.Header{"Origin": {shop}})
	next(t, st, "invoice.snapshot", 5*time.Second)
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: tok.StreamURL, NoKey: true, Header: http.Header{"Origin": {"https://evil.example"}}}); r.Status != http.StatusForbidden {
		t.Errorf("a stream from another origin: HTTP %d", r.Status)
	}
}
