package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
)

// Answers that say exactly what is wrong: one message per field, the lists named from the domain's
// own lists, the cursor's parameter named as the client sent it.
func TestAnswersSayExactlyWhatIsWrong(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, amount := range []any{"150000", 150000.5, json.Number("1e5")} {
		r := s.POST("/v1/invoices", validWith(t, map[string]any{"amount": amount}))
		p := r.Problem(t)
		if r.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != "amount" ||
			!strings.Contains(p.Errors[0].Message, "integer number of rupiah") {
			t.Errorf("amount %v: HTTP %d %s — want one error, for amount, that says it must be an integer", amount, r.Status, r.Body)
		}
	}
	for path, want := range map[string][]string{
		"/v1/invoices?status=bogus":       {`"cancelled"`, `"creating"`},
		"/v1/events?type=nope":            {`"invoice.paid"`, `"attention.raised"`},
		"/v1/attention?reason=nope":       {`"paid_after_cancel"`},
		"/v1/events?delivery_state=later": {`"dead"`},
	} {
		r := s.GET(path)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: HTTP %d", path, r.Status)
			continue
		}
		for _, w := range want {
			if !strings.Contains(r.Problem(t).Errors[0].Message, w) {
				t.Errorf("%s: %q does not name %s", path, r.Problem(t).Errors[0].Message, w)
			}
		}
	}
	if r := s.GET("/v1/events?after=zzz"); r.Status != http.StatusUnprocessableEntity || !r.Problem(t).HasField("after") {
		t.Errorf("a bad feed cursor must be named as the parameter it came in: HTTP %d %s", r.Status, r.Body)
	}

	// The Bearer scheme is case-insensitive (RFC 9110 §11.1).
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices", NoKey: true,
			Header: http.Header{"Authorization": {scheme + " " + apitest.APIKey}}})
		if r.Status != http.StatusOK {
			t.Errorf("Authorization: %s <key>: HTTP %d", scheme, r.Status)
		}
	}
	// A 405 says what the route allows.
	r := s.Send(apitest.Request{Method: http.MethodPut, Path: "/v1/invoices"})
	if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, POST" {
		t.Errorf("PUT /v1/invoices: HTTP %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
	r = s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/invoices/INV-1"})
	if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET" {
		t.Errorf("DELETE /v1/invoices/INV-1: HTTP %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
}

// A body announced larger than the limit is refused at once, not after waiting for bytes that would
// be refused anyway.
func TestAnnouncedOversizedBodyIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /v1/invoices HTTP/1.1\r\nHost: o2o\r\nAuthorization: Bearer "+apitest.APIKey+
		"\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body was still to come: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("HTTP %d, want 413", resp.StatusCode)
	}
}

// The simulator's control answers end with a newline (curl's output does not run into the prompt).
func TestSimulatorControlAnswersEndWithANewline(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := s.Create(apitest.NewInvoice("INV-NL", "alfa")).Invoice(t)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/simulator/payments", `{"payment_code":"` + inv.Code(t) + `"}`},
		{http.MethodPost, "/simulator/notifications", `{"invoice_number":"INV-NL","amount":140000}`},
		{http.MethodPut, "/simulator/faults", `{}`},
		{http.MethodPost, "/simulator/clock", `{"advance":"1m"}`},
		{http.MethodPost, "/simulator/clock", `{"reset":true}`},
	} {
		req, _ := http.NewRequest(c.method, s.SimURL+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasSuffix(string(body), "}\n") {
			t.Errorf("%s %s: HTTP %d %q", c.method, c.path, resp.StatusCode, body)
		}
	}
	// The clock moves back as far as it went forward, and says why not further.
	clock := func(body string) (int, string) {
		resp, err := http.Post(s.SimURL+"/simulator/clock", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if status, body := clock(`{"advance":"-2h"}`); status != http.StatusBadRequest || !strings.Contains(body, "cannot go back further") ||
		!strings.Contains(body, "reset") {
		t.Errorf("moving the clock before the real time: HTTP %d %s", status, body)
	}
	if status, _ := clock(`{"advance":"3h"}`); status != http.StatusOK {
		t.Errorf("advance 3h: HTTP %d", status)
	}
	if status, body := clock(`{"advance":"-2h"}`); status != http.StatusOK {
		t.Errorf("back 2h of the 3: HTTP %d %s", status, body)
	}
}

// After DOKU answers 503 with Retry-After, the invoice is tried again when DOKU asked — not after
// the resumer's own, longer wait — and the client is told the same.
func TestResumerHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: http.StatusServiceUnavailable, FailRetryAfter: 2})
	r := s.Create(apitest.NewInvoice("INV-RA", "alfa"))
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("create with DOKU unavailable: HTTP %d, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	if n := s.Count(`SELECT count(*) FROM invoices WHERE invoice_number = 'INV-RA'
		AND next_issue_at BETWEEN now() + interval '1 second' AND now() + interval '3 seconds'`); n != 1 {
		t.Errorf("the next attempt is not planned for when DOKU asked (2 s)")
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Get("INV-RA").Status == "creating" {
		if _, err := s.Resumer().RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the invoice stayed creating")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A create whose invoice the database lost after it was acknowledged — a primary that failed over to
// a standby it had not yet sent it to — is made again by the client's retry of the same request, with
// the same Request-Id and bytes: DOKU answers with the code it issued, not "invoice number already
// used", and the customer's code stays the invoice's.
func TestRetryAfterALostCreateGetsTheSameCode(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	first := s.Create(apitest.NewInvoice("INV-LOST", "indomaret")).Invoice(t)
	sqlExec(t, s, `DELETE FROM events`)
	sqlExec(t, s, `DELETE FROM invoices WHERE invoice_number = 'INV-LOST'`)

	again := s.Create(apitest.NewInvoice("INV-LOST", "indomaret"))
	if again.Status != http.StatusCreated {
		t.Fatalf("the retry: HTTP %d %s", again.Status, again.Body)
	}
	if v := again.Invoice(t); v.Status != "pending" || v.Code(t) != first.Code(t) {
		t.Fatalf("the retry got %s with code %v, want pending with the customer's code %s", v.Status, v.PaymentCode, first.Code(t))
	}
	if n := s.Sim.Issued(); n != 1 {
		t.Errorf("DOKU issued %d codes for one order", n)
	}
}

// Invoices remember the DOKU that issued them. A service pointed at another DOKU on the same database
// never asks it about them — not in the reconciler, not in a sync — says so at start and in /readyz,
// and leaves them alone until a setting acknowledges a deliberate move.
func TestInvoicesRememberTheirDoku(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, n := range []string{"INV-ENV-1", "INV-ENV-2"} {
		s.Create(apitest.NewInvoice(n, "alfa"))
	}
	// An invoice from before invoices recorded their DOKU: the first service to start takes it.
	sqlExec(t, s, `UPDATE invoices SET doku_env = NULL WHERE invoice_number = 'INV-ENV-2'`)
	s.App.Prepare(context.Background())
	mine := doku.EnvironmentID(s.SimURL, apitest.ClientID)
	if n := s.Count(`SELECT count(*) FROM invoices WHERE doku_env = $1`, mine); n != 2 {
		t.Fatalf("%d invoices of this service's DOKU, want 2", n)
	}

	// The same database, another DOKU (the sandbox after the simulator).
	other, err := dokusim.New(dokusim.Config{ClientID: apitest.ClientID, SecretKey: apitest.SecretKey, NotificationURL: s.URL + apitest.NotificationPath})
	if err != nil {
		t.Fatal(err)
	}
	otherSrv := httptest.NewServer(other)
	t.Cleanup(func() { otherSrv.Close(); other.Close() })
	b := s.Replica(func(c *config.Config) { c.DokuBaseURL = otherSrv.URL })
	b.App.Prepare(context.Background())
	if !strings.Contains(s.Logs.String(), "left alone") || !strings.Contains(s.Logs.String(), mine) {
		t.Errorf("no start-up line says another DOKU's invoices are left alone:\n%s", s.Logs.String())
	}
	ready := b.Send(apitest.Request{Method: http.MethodGet, Path: "/readyz", NoKey: true})
	if ready.Status != http.StatusOK || !strings.Contains(string(ready.Body), "2 of "+mine) {
		t.Errorf("/readyz: HTTP %d %s", ready.Status, ready.Body)
	}
	s.MakeDue()
	if _, err := b.App.Reconciler.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := other.StatusCalls(); n != 0 {
		t.Errorf("the other DOKU was asked %d times about invoices it never issued", n)
	}
	if r := b.Send(apitest.Request{Method: http.MethodPost, Path: "/v1/invoices/INV-ENV-1/sync"}); r.Status != http.StatusConflict ||
		r.Problem(t).Code != "doku_environment_mismatch" || other.StatusCalls() != 0 {
		t.Errorf("sync of another DOKU's invoice: HTTP %d %s", r.Status, r.Body)
	}

	// A deliberate move: the setting that names the old environment.
	moved := s.Replica(func(c *config.Config) { c.DokuBaseURL, c.DokuAdoptEnvironments = otherSrv.URL, []string{mine} })
	moved.App.Prepare(context.Background())
	s.MakeDue()
	if _, err := moved.App.Reconciler.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := other.StatusCalls(); n != 2 {
		t.Errorf("after the move the new DOKU was asked %d times, want once per invoice", n)
	}
}

// The service needs no more of its database than rows: run as a role with exactly the grants of
// deploy/postgres/roles.sql (the database migrated by its owner), every path works — create, pay,
// the feed (its horizon reads pg_stat_activity), streams and tokens, cancel, sync, the attention
// queue, the endpoint registry, deliveries, the reconciler and the purge, metrics and readiness.
func TestServiceRunsWithTheLeastPrivileges(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{LeastPrivileges: true, Config: apitest.Endpoint("orders", rc)})
	s.Listen()
	var user string
	if err := s.App.Pool.QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil || !strings.HasPrefix(user, "o2o_app_") {
		t.Fatalf("the service runs as %q (%v), not the least-privileged role", user, err)
	}
	inv := s.Create(apitest.NewInvoice("INV-LP-1", "alfa")).Invoice(t)
	tok := issueToken(t, s, "INV-LP-1", "")
	next(t, apitest.OpenStream(t, s.URL+tok.StreamURL, nil), "invoice.snapshot", 5*time.Second)
	s.Pay(inv.Code(t), inv.Amount)
	s.Notify(apitest.NotificationBody("INV-LP-1", "alfa", inv.Code(t), inv.Amount+1, "TRX-LP-2"), "req-lp-2", nil)
	s.Create(apitest.NewInvoice("INV-LP-2", "indomaret"))
	for _, r := range []apitest.Request{
		{Method: http.MethodGet, Path: "/v1/invoices/INV-LP-1"},
		{Method: http.MethodGet, Path: "/v1/invoices?status=paid"},
		{Method: http.MethodGet, Path: "/v1/invoices/INV-LP-1/events"},
		{Method: http.MethodPost, Path: "/v1/invoices/INV-LP-2/sync"},
		{Method: http.MethodPost, Path: "/v1/invoices/INV-LP-2/cancel", Body: []byte(`{"reason":"test"}`)},
		{Method: http.MethodDelete, Path: "/v1/invoices/INV-LP-1/stream-tokens"},
		{Method: http.MethodGet, Path: "/v1/events?limit=100"},
		{Method: http.MethodGet, Path: "/v1/events?delivery_state=pending&endpoint=orders"},
		{Method: http.MethodGet, Path: "/v1/notifications?outcome=flagged"},
		{Method: http.MethodGet, Path: "/v1/attention?state=open"},
		{Method: http.MethodGet, Path: "/v1/webhook-endpoints"},
		{Method: http.MethodPost, Path: "/v1/webhook-endpoints/orders/enable"},
		{Method: http.MethodPost, Path: "/v1/webhook-endpoints/orders/redeliver"},
		{Method: http.MethodGet, Path: "/metrics"},
		{Method: http.MethodGet, Path: "/readyz", NoKey: true},
	} {
		if resp := s.Send(r); resp.Status >= 400 {
			t.Errorf("%s %s as the least-privileged role: HTTP %d %s", r.Method, r.Path, resp.Status, resp.Body)
		}
	}
	if items := s.Attention("state=open"); len(items) == 0 {
		t.Error("the mismatch raised no attention item")
	} else if r := s.POST("/v1/attention/"+itoa(items[0].ID)+"/resolve", []byte(`{"note":"checked"}`)); r.Status != http.StatusOK {
		t.Errorf("resolve: HTTP %d %s", r.Status, r.Body)
	}
	s.Deliver()
	s.Reconcile(1)
	if _, _, err := s.App.Purger.RunOnce(context.Background()); err != nil {
		t.Errorf("the purge as the least-privileged role: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(rc.Acknowledged()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no event delivered")
		}
	}
	for _, bad := range []string{"permission denied", "must be owner"} {
		if strings.Contains(s.Logs.String(), bad) {
			t.Errorf("the logs say %q:\n%s", bad, s.Logs.String())
		}
	}
	if page := s.GET("/v1/events?limit=100").EventPage(t); len(page.Items) == 0 {
		t.Error("the feed shows nothing to the least-privileged role")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
