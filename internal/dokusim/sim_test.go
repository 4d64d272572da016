package dokusim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
)

const (
	clientID = "MCH-0001-10791114622547"
	secret   = "SK-TEST-0123456789abcdef"
)

func startSim(t *testing.T, notifyURL string, schedule []time.Duration) (*dokusim.Simulator, string) {
	t.Helper()
	return startSimWith(t, dokusim.Config{NotificationURL: notifyURL, RetrySchedule: schedule})
}

func startSimWith(t *testing.T, cfg dokusim.Config) (*dokusim.Simulator, string) {
	t.Helper()
	cfg.ClientID, cfg.SecretKey = clientID, secret
	if cfg.NotificationURL == "" {
		cfg.NotificationURL = "http://127.0.0.1:1/n"
	}
	sim, err := dokusim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return sim, srv.URL
}

var defaults = doku.BodyDefaults{Info: "Online purchase", CustomerEmail: "payments@merchant.example", ReceiptFooter: "Thank you"}

func body(number string) []byte {
	b, _ := doku.GenerateBody(&invoice.Invoice{Number: number, Channel: invoice.ChannelAlfa, Amount: 150000,
		ExpiresInMinutes: 60, Customer: invoice.Customer{Name: "Taufik"}}, defaults)
	return b
}

// signedPost sends body to path signed with key (a wrong key forges the signature).
func signedPost(t *testing.T, base, path, requestID string, body []byte, key string) (int, []byte) {
	t.Helper()
	return signedPostAt(t, base, path, requestID, body, key, time.Now())
}

// signedPostAt signs with a Request-Timestamp of at.
func signedPostAt(t *testing.T, base, path, requestID string, body []byte, key string, at time.Time) (int, []byte) {
	t.Helper()
	ts := at.UTC().Format(doku.TimestampLayout)
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	req.Header.Set(doku.HeaderClientID, clientID)
	req.Header.Set(doku.HeaderRequestID, requestID)
	req.Header.Set(doku.HeaderRequestTimestamp, ts)
	req.Header.Set(doku.HeaderSignature, doku.Sign([]byte(key), doku.Components{ClientID: clientID, RequestID: requestID, Timestamp: ts, Target: path, Digest: doku.Digest(body)}))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestSimulatorVerifiesSignatures(t *testing.T) {
	_, base := startSim(t, "http://127.0.0.1:1/n", nil)
	if status, out := signedPost(t, base, doku.PathAlfaGenerate, "r1", body("INV-1"), "wrong-secret"); status != 401 || !strings.Contains(string(out), "Signature") {
		t.Fatalf("bad signature: %d %s", status, out)
	}
	// Signed for one endpoint, sent to another: the target is part of the signature.
	ts := time.Now().UTC().Format(doku.TimestampLayout)
	req, _ := http.NewRequest(http.MethodPost, base+doku.PathIndomaretGenerate, bytes.NewReader(body("INV-1")))
	req.Header.Set(doku.HeaderClientID, clientID)
	req.Header.Set(doku.HeaderRequestID, "r2")
	req.Header.Set(doku.HeaderRequestTimestamp, ts)
	req.Header.Set(doku.HeaderSignature, doku.Sign([]byte(secret), doku.Components{ClientID: clientID, RequestID: "r2", Timestamp: ts, Target: doku.PathAlfaGenerate, Digest: doku.Digest(body("INV-1"))}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("signature for another target accepted: %d", resp.StatusCode)
	}
}

func TestSimulatorIdempotencyAndValidation(t *testing.T) {
	sim, base := startSim(t, "http://127.0.0.1:1/n", nil)
	status, first := signedPost(t, base, doku.PathAlfaGenerate, "r1", body("INV-1"), secret)
	if status != 200 || !bytes.Contains(first, []byte(`"payment_code":"8888`)) {
		t.Fatalf("generate: %d %s", status, first)
	}
	status, replay := signedPost(t, base, doku.PathAlfaGenerate, "r1", body("INV-1"), secret)
	if status != 409 || !bytes.Equal(replay, first) {
		t.Fatalf("replay: %d %s, want 409 with the original body", status, replay)
	}
	if status, _ := signedPost(t, base, doku.PathAlfaGenerate, "r1", body("INV-2"), secret); status != 400 {
		t.Fatalf("same Request-Id, other body: %d, want 400", status)
	}
	if status, _ := signedPost(t, base, doku.PathAlfaGenerate, "r3", body("INV-1"), secret); status != 400 {
		t.Fatalf("same invoice, new Request-Id: %d, want 400", status)
	}
	for name, b := range map[string]string{
		"decimal amount":  strings.Replace(string(body("X")), `"amount":150000`, `"amount":1.5`, 1),
		"amount string":   strings.Replace(string(body("X")), `"amount":150000`, `"amount":"150000"`, 1),
		"13-digit amount": strings.Replace(string(body("X")), `"amount":150000`, `"amount":1000000000000`, 1),
		"zero expiry":     strings.Replace(string(body("X")), `"expired_time":60`, `"expired_time":0`, 1),
		"reusable string": strings.Replace(string(body("X")), `"reusable_status":false`, `"reusable_status":"false"`, 1),
		"case variant":    strings.Replace(string(body("X")), `"order":{`, `"ORDER":{"amount":1},"order":{`, 1),
		"not json":        `nope`,
	} {
		if status, out := signedPost(t, base, doku.PathAlfaGenerate, "v-"+name, []byte(b), secret); status != 400 || !bytes.Contains(out, []byte(`"message"`)) {
			t.Errorf("%s: %d %s", name, status, out)
		}
	}
	if sim.GenerateCalls() != 11 {
		t.Fatalf("GenerateCalls = %d, want 11", sim.GenerateCalls())
	}
}

// drop removes the field at a dotted path from a JSON document.
func drop(t *testing.T, doc []byte, path string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(path, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		cur = cur[p].(map[string]any)
	}
	delete(cur, parts[len(parts)-1])
	out, _ := json.Marshal(m)
	return out
}

// The simulator refuses a generate request that lacks any field DOKU marks required, one case per
// field, on both channels — and with a named knob, and only then, lets a test leave one out.
func TestSimulatorRequiresEveryDocumentedField(t *testing.T) {
	_, base := startSim(t, "", nil)
	for _, ch := range []invoice.Channel{invoice.ChannelAlfa, invoice.ChannelIndomaret} {
		full, _ := doku.GenerateBody(&invoice.Invoice{Number: "INV-FULL-" + string(ch), Channel: ch, Amount: 150000, ExpiresInMinutes: 60,
			Customer: invoice.Customer{Name: "Taufik"}}, defaults)
		for _, field := range doku.RequiredGenerateFields {
			t.Run(string(ch)+"/"+field, func(t *testing.T) {
				status, out := signedPost(t, base, doku.GeneratePath(ch), "miss-"+string(ch)+field, drop(t, full, field), secret)
				if status != 400 || !strings.Contains(string(out), field+" is mandatory") {
					t.Fatalf("without %s: %d %s", field, status, out)
				}
			})
		}
		blank := strings.Replace(string(full), `"email":"payments@merchant.example"`, `"email":""`, 1)
		if status, out := signedPost(t, base, doku.GeneratePath(ch), "blank-"+string(ch), []byte(blank), secret); status != 400 {
			t.Fatalf("an empty customer.email: %d %s", status, out)
		}
		if status, out := signedPost(t, base, doku.GeneratePath(ch), "full-"+string(ch), full, secret); status != 200 {
			t.Fatalf("the complete body: %d %s", status, out)
		}
	}
	_, lenient := startSimWith(t, dokusim.Config{OptionalFields: []string{"customer.email"}})
	if status, out := signedPost(t, lenient, doku.PathAlfaGenerate, "lenient", drop(t, body("INV-L"), "customer.email"), secret); status != 200 {
		t.Fatalf("with the knob on: %d %s", status, out)
	}
}

// A Request-Timestamp far from DOKU's clock is refused, unless a test turns the check off by name.
func TestSimulatorChecksTheClock(t *testing.T) {
	_, base := startSim(t, "", nil)
	for _, off := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		if status, out := signedPostAt(t, base, doku.PathAlfaGenerate, "skew", body("INV-SKEW"), secret, time.Now().Add(off)); status != 401 || !strings.Contains(string(out), "away from DOKU's clock") {
			t.Fatalf("timestamp %v off: %d %s", off, status, out)
		}
	}
	if status, _ := signedPostAt(t, base, doku.PathAlfaGenerate, "near", body("INV-NEAR"), secret, time.Now().Add(-time.Minute)); status != 200 {
		t.Fatalf("a minute off: %d", status)
	}
	_, lax := startSimWith(t, dokusim.Config{IgnoreClockSkew: true})
	if status, _ := signedPostAt(t, lax, doku.PathAlfaGenerate, "skew", body("INV-SKEW"), secret, time.Now().Add(-time.Hour)); status != 200 {
		t.Fatalf("with the check off: %d", status)
	}
}

// Check status answers in exactly DOKU's documented shape: no payment code, the creation time as the
// transaction date, AGENT_ID alone.
func TestCheckStatusHasDokusShapeOnly(t *testing.T) {
	sim, base := startSim(t, "", nil)
	c := doku.New(doku.Config{BaseURL: base, ClientID: clientID, SecretKey: secret, Timeout: 2 * time.Second})
	if _, err := c.GeneratePaymentCode(context.Background(), invoice.ChannelAlfa, "r1", body("INV-ST")); err != nil {
		t.Fatal(err)
	}
	sim.Advance(10 * time.Minute)
	pay, _ := json.Marshal(map[string]any{"invoice_number": "INV-ST"})
	resp, err := http.Post(base+"/simulator/payments", "application/json", bytes.NewReader(pay))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pay: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, base+doku.StatusPath("INV-ST"), nil)
	ts := time.Now().UTC().Format(doku.TimestampLayout)
	req.Header = doku.SignedHeaders([]byte(secret), doku.Components{ClientID: clientID, RequestID: "s1", Timestamp: ts, Target: doku.StatusPath("INV-ST")}, false)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	keys := func(v any) []string {
		var out []string
		for k := range v.(map[string]any) {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	if k := keys(got); !slices.Equal(k, []string{"acquirer", "channel", "online_to_offline_info", "online_to_offline_payment", "order", "service", "transaction"}) {
		t.Fatalf("top-level keys %v", k)
	}
	if k := keys(got["online_to_offline_info"]); !slices.Equal(k, []string{"created_date", "expired_date", "reusable_status"}) {
		t.Fatalf("online_to_offline_info keys %v (no payment_code)", k)
	}
	tx := got["transaction"].(map[string]any)
	created, _ := doku.ParseWIB(got["online_to_offline_info"].(map[string]any)["created_date"].(string))
	if tx["status"] != "SUCCESS" || tx["date"] != created.UTC().Format(doku.TimestampLayout) {
		t.Fatalf("transaction %v: the date must be the code's creation time %v", tx, created)
	}
	ids := got["online_to_offline_payment"].(map[string]any)["identifier"].([]any)
	if len(ids) != 1 || ids[0].(map[string]any)["name"] != "AGENT_ID" {
		t.Fatalf("identifiers %v, want AGENT_ID alone", ids)
	}
}

// An error can come as HTTP 200 with DOKU's error body: never a code, never a payment.
func TestErrorsWithStatus200(t *testing.T) {
	sim, base := startSim(t, "", nil)
	c := doku.New(doku.Config{BaseURL: base, ClientID: clientID, SecretKey: secret, Timeout: 2 * time.Second})
	sim.SetFaults(dokusim.Faults{FailNext: 2, FailWith200: true, FailMessage: "Order not found"})
	if _, err := c.GeneratePaymentCode(context.Background(), invoice.ChannelAlfa, "r1", body("INV-200")); !errors.Is(err, doku.ErrUnavailable) {
		t.Fatalf("generate answered 200 with an error: %v, want an unknown outcome", err)
	}
	if _, err := c.CheckStatus(context.Background(), "INV-200"); err == nil {
		t.Fatal("check status answered 200 with an error body was read as a status")
	}
}

// With a state file, a restarted simulator remembers its orders and never issues a code twice.
func TestSimulatorStateSurvivesRestarts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	codes := map[string]bool{}
	for run := 0; run < 3; run++ {
		sim, base := startSimWith(t, dokusim.Config{StateFile: file})
		number := fmt.Sprintf("INV-RUN-%d", run)
		status, out := signedPost(t, base, doku.PathAlfaGenerate, "r-"+number, body(number), secret)
		if status != 200 {
			t.Fatalf("run %d: %d %s", run, status, out)
		}
		code := sim.PaymentCode(number)
		if codes[code] {
			t.Fatalf("run %d reissued code %s", run, code)
		}
		codes[code] = true
		for prev := 0; prev < run; prev++ {
			if sim.PaymentCode(fmt.Sprintf("INV-RUN-%d", prev)) == "" {
				t.Fatalf("run %d forgot the order of run %d", run, prev)
			}
		}
		if status, _ := signedPost(t, base, doku.PathAlfaGenerate, "r-"+number, body(number), secret); status != 409 {
			t.Fatalf("run %d: replay %d", run, status)
		}
		sim.Close()
	}
}

func TestClientAgainstSimulator(t *testing.T) {
	_, base := startSim(t, "http://127.0.0.1:1/n", nil)
	c := doku.New(doku.Config{BaseURL: base, ClientID: clientID, SecretKey: secret, Timeout: 2 * time.Second})
	ctx := context.Background()
	is, err := c.GeneratePaymentCode(ctx, invoice.ChannelIndomaret, "req-1", body("INV-1"))
	if err != nil || !strings.HasPrefix(is.PaymentCode, "7777") || is.HowToPayPage == "" || is.ExpiresAt.IsZero() {
		t.Fatalf("generate: %+v %v", is, err)
	}
	if d := time.Until(is.ExpiresAt); d < 58*time.Minute || d > 61*time.Minute {
		t.Fatalf("expiry read from WIB is %v away, want about 60m", d)
	}
	// A retry with the same Request-Id and bytes gets DOKU's 409 replay: the same code, as success.
	again, err := c.GeneratePaymentCode(ctx, invoice.ChannelIndomaret, "req-1", body("INV-1"))
	if err != nil || again.PaymentCode != is.PaymentCode {
		t.Fatalf("replay: %+v %v", again, err)
	}
	// A definite refusal keeps DOKU's message.
	_, err = c.GeneratePaymentCode(ctx, invoice.ChannelAlfa, "req-2", drop(t, body("X"), "customer.name"))
	var ae *doku.APIError
	if !doku.IsRejection(err) || !errors.As(err, &ae) || ae.Message != "customer.name is mandatory" {
		t.Fatalf("rejection: %v", err)
	}
}

func TestClientTimeoutAndServerErrorsAreUnavailable(t *testing.T) {
	sim, base := startSim(t, "http://127.0.0.1:1/n", nil)
	c := doku.New(doku.Config{BaseURL: base, ClientID: clientID, SecretKey: secret, Timeout: 200 * time.Millisecond})
	sim.SetFaults(dokusim.Faults{HangNext: 1})
	_, err := c.GeneratePaymentCode(context.Background(), invoice.ChannelAlfa, "req-1", body("INV-1"))
	if !errors.Is(err, doku.ErrUnavailable) || doku.IsRejection(err) {
		t.Fatalf("timeout: %v, want ErrUnavailable", err)
	}
	sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 502})
	if _, err = c.GeneratePaymentCode(context.Background(), invoice.ChannelAlfa, "req-1", body("INV-1")); !errors.Is(err, doku.ErrUnavailable) {
		t.Fatalf("502: %v, want ErrUnavailable", err)
	}
	down := doku.New(doku.Config{BaseURL: "http://127.0.0.1:1", ClientID: clientID, SecretKey: secret, Timeout: time.Second})
	if _, err = down.GeneratePaymentCode(context.Background(), invoice.ChannelAlfa, "req-1", body("INV-1")); !errors.Is(err, doku.ErrUnavailable) {
		t.Fatalf("connection refused: %v, want ErrUnavailable", err)
	}
}

func TestClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	sim, err := dokusim.New(dokusim.Config{ClientID: clientID, SecretKey: secret, NotificationURL: "http://127.0.0.1:1/n"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer func() { srv.Close(); sim.Close() }()
	c := doku.New(doku.Config{BaseURL: srv.URL, ClientID: clientID, SecretKey: secret})
	for i := 0; i < 20; i++ {
		if _, err := c.GeneratePaymentCode(context.Background(), invoice.ChannelAlfa, "r"+string(rune('a'+i)), body("INV-"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential calls opened %d connections, want 1 (keep-alive)", n)
	}
}

func TestNotificationRetriesUntilAcknowledged(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	var bodies [][]byte
	verifier := doku.Verifier{ClientID: clientID, Secret: []byte(secret), Target: "/hook"}
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(r.Header, b); err != nil {
			t.Errorf("simulator sent a notification that does not verify: %v", err)
		}
		mu.Lock()
		got = append(got, r.Header.Clone())
		bodies = append(bodies, b)
		n := len(got)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer merchant.Close()
	sim, base := startSim(t, merchant.URL+"/hook", []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond})

	_, out := signedPost(t, base, doku.PathAlfaGenerate, "r1", body("INV-1"), secret)
	var gen doku.GenerateResponse
	_ = json.Unmarshal(out, &gen)
	pay, _ := json.Marshal(map[string]any{"payment_code": string(gen.O2OInfo.PaymentCode), "amount": 150000})
	resp, err := http.Post(base+"/simulator/payments", "application/json", bytes.NewReader(pay))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sim.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("deliveries = %d, want 3 (two failures, then acknowledged, then no more)", len(got))
	}
	for i := range got {
		if got[i].Get(doku.HeaderRequestID) != got[0].Get(doku.HeaderRequestID) || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatal("a retry changed the Request-Id or the body")
		}
	}
	r, err := doku.ParseNotification(bodies[0])
	if err != nil || r.InvoiceNumber != "INV-1" || r.Amount != 150000 || r.Channel != invoice.ChannelAlfa || r.OriginalRequestID != "r1" {
		t.Fatalf("notification: %+v %v", r, err)
	}
	// Paying a single-use code twice is refused at the counter.
	resp, _ = http.Post(base+"/simulator/payments", "application/json", bytes.NewReader(pay))
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second payment: %d", resp.StatusCode)
	}
	resp.Body.Close()
}
