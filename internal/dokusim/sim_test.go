package dokusim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
	sim := dokusim.New(dokusim.Config{ClientID: clientID, SecretKey: secret, NotificationURL: notifyURL, RetrySchedule: schedule})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	return sim, srv.URL
}

func body(number string) []byte {
	b, _ := doku.GenerateBody(&invoice.Invoice{Number: number, Channel: invoice.ChannelAlfa, Amount: 150000,
		ExpiresInMinutes: 60, Customer: invoice.Customer{Name: "Taufik"}})
	return b
}

// signedPost sends body to path signed with key (a wrong key forges the signature).
func signedPost(t *testing.T, base, path, requestID string, body []byte, key string) (int, []byte) {
	t.Helper()
	ts := time.Now().UTC().Format(doku.TimestampLayout)
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	req.Header.Set(doku.HeaderClientID, clientID)
	req.Header.Set(doku.HeaderRequestID, requestID)
	req.Header.Set(doku.HeaderRequestTimestamp, ts)
	req.Header.Set(doku.HeaderSignature, doku.Sign([]byte(key), doku.Components{ClientID: clientID, RequestID: requestID, Timestamp: ts, Target: path, Digest: doku.Digest(body)}))
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
		"no invoice number": `{"order":{"amount":1},"customer":{"name":"a"}}`,
		"decimal amount":    `{"order":{"invoice_number":"X","amount":1.5},"customer":{"name":"a"}}`,
		"13-digit amount":   `{"order":{"invoice_number":"X","amount":1000000000000},"customer":{"name":"a"}}`,
		"no customer name":  `{"order":{"invoice_number":"X","amount":1}}`,
		"zero expiry":       `{"order":{"invoice_number":"X","amount":1},"online_to_offline_info":{"expired_time":0},"customer":{"name":"a"}}`,
		"not json":          `nope`,
	} {
		if status, out := signedPost(t, base, doku.PathAlfaGenerate, "v-"+name, []byte(b), secret); status != 400 || !bytes.Contains(out, []byte(`"message"`)) {
			t.Errorf("%s: %d %s", name, status, out)
		}
	}
	if sim.GenerateCalls() != 10 {
		t.Fatalf("GenerateCalls = %d, want 10", sim.GenerateCalls())
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
	_, err = c.GeneratePaymentCode(ctx, invoice.ChannelAlfa, "req-2", []byte(`{"order":{"invoice_number":"X","amount":1}}`))
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
	sim := dokusim.New(dokusim.Config{ClientID: clientID, SecretKey: secret, NotificationURL: "http://127.0.0.1:1/n"})
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
