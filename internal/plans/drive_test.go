package plans_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
)

// endpointName is the webhook endpoint the drive delivers to (and the load's deliveries go to).
const endpointName = "erp"

// stackConfig is the drive's service: one webhook endpoint, delivered with short waits so that a
// failed attempt is due again at once.
func stackConfig(rc *apitest.Receiver) func(*config.Config) {
	return func(c *config.Config) {
		apitest.Endpoint(endpointName, rc)(c)
		c.EventsTimeout, c.EventsInterval = 2*time.Second, 10*time.Millisecond
		c.EventsBaseBackoff, c.EventsMaxBackoff = time.Millisecond, time.Millisecond
	}
}

// drive runs every operation of the request path and of the workers once (the filters of each list
// each once), so that the recorder sees every statement they send. A new operation that reaches the
// database is added here in the same change; a Store method nothing here calls fails the test
// (TestHotStatementsStayOnTheirIndexes, coverage).
func drive(t *testing.T, s *apitest.Stack, rc *apitest.Receiver) {
	t.Helper()
	ctx := context.Background()
	d := driver{t: t, s: s}

	// Create (DOKU issues the code), the same request again (the stored invoice is returned), get.
	a := d.create("PLAN-A", "alfa", http.StatusCreated)
	d.create("PLAN-A", "alfa", http.StatusOK)
	b := d.create("PLAN-B", "indomaret", http.StatusCreated)
	c := d.create("PLAN-C", "alfa", http.StatusCreated)
	d.create("PLAN-D", "alfa", http.StatusCreated)
	d.want(s.GET("/v1/invoices/PLAN-A"), http.StatusOK, "get")

	// A code DOKU does not answer for: the invoice stays creating; asked again, the request takes the
	// issue lease (ClaimIssue) and DOKU answers this time. Another is left to the resumer.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: http.StatusServiceUnavailable})
	d.create("PLAN-E", "alfa", http.StatusServiceUnavailable)
	d.create("PLAN-E", "alfa", http.StatusOK)
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: http.StatusServiceUnavailable})
	d.create("PLAN-F", "alfa", http.StatusServiceUnavailable)
	s.Sim.SetFaults(dokusim.Faults{})
	d.exec(`UPDATE invoices SET next_issue_at = now() WHERE invoice_number = 'PLAN-F'`)
	if _, err := s.Resumer().RunOnce(ctx); err != nil {
		t.Fatalf("resumer round: %v", err)
	}

	// Paid at the counter: the simulator's signed notification is applied by the webhook.
	s.Pay(a.Code(t), a.Amount)
	// DOKU's notifications sent by hand: applied, the same again (a duplicate delivery), a
	// mismatched amount (an attention item), an invoice we do not have, a body we cannot read.
	bBody := apitest.NotificationBody("PLAN-B", "indomaret", b.Code(t), b.Amount, "TRX-PLAN-B")
	d.want(s.Notify(bBody, "req-plan-b", nil), http.StatusOK, "notification applied")
	d.want(s.Notify(bBody, "req-plan-b", nil), http.StatusOK, "notification delivered again")
	d.want(s.Notify(apitest.NotificationBody("PLAN-C", "alfa", c.Code(t), c.Amount-1000, "TRX-PLAN-C"), "req-plan-c", nil),
		http.StatusOK, "notification of another amount")
	d.want(s.Notify(apitest.NotificationBody("PLAN-NOPE", "alfa", "8888000099999999", 150000, "TRX-PLAN-NOPE"), "req-plan-nope", nil),
		http.StatusNotFound, "notification for an unknown invoice")
	d.want(s.Notify([]byte(`{"order":{"invoice_number":42}}`), "req-plan-junk", nil), http.StatusBadRequest, "unreadable notification (kept, flagged)")

	// Sync: checked with DOKU; at once again (refused by the rate limit); with DOKU failing (the slot
	// is given back).
	d.want(s.Sync("PLAN-B"), http.StatusOK, "sync")
	d.want(s.Sync("PLAN-B"), http.StatusTooManyRequests, "sync again at once")
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: http.StatusServiceUnavailable})
	d.want(s.Sync("PLAN-C"), http.StatusServiceUnavailable, "sync while DOKU fails")
	s.Sim.SetFaults(dokusim.Faults{})

	d.want(s.POST("/v1/invoices/PLAN-D/cancel", []byte(`{"reason":"the customer left"}`)), http.StatusOK, "cancel")

	// The customer's payment page: opened (DOKU's instructions fetched and kept), opened again (the
	// kept ones read), its live stream, and a new address for it.
	if c.PaymentPageURL == nil {
		t.Fatal("drive: PLAN-C has no payment page")
	}
	page := *c.PaymentPageURL
	d.want(s.Send(apitest.Request{Method: http.MethodGet, Path: page, NoKey: true}), http.StatusOK, "payment page")
	d.want(s.Send(apitest.Request{Method: http.MethodGet, Path: page, NoKey: true}), http.StatusOK, "payment page again")
	d.stream(s.URL+page+"/events", nil)
	d.want(s.POST("/v1/invoices/PLAN-C/payment-page/revoke", nil), http.StatusOK, "new payment page address")

	// The reconciler's round: every open invoice's check made due first.
	s.MakeDue()
	if _, err := s.Reconciler().RunOnce(ctx); err != nil {
		t.Fatalf("reconciler round: %v", err)
	}

	// Lists, each filter once, and a second page through the cursor.
	d.pages("/v1/invoices", "", "status=pending", "status=paid", "channel=alfa", "status=paid&channel=indomaret")
	d.pages("/v1/notifications", "", "outcome=flagged", "outcome=applied", "invoice_number=PLAN-B")
	d.pages("/v1/attention", "", "state=open", "reason=amount_mismatch", "invoice_number=PLAN-C")
	d.want(s.GET("/v1/invoices/PLAN-A/events"), http.StatusOK, "invoice history")

	// Attention: resolve an item, and the same again (the first decision stands).
	open := s.Attention("state=open")
	if len(open) == 0 {
		t.Fatal("the drive raised no attention item")
	}
	resolve := fmt.Sprintf("/v1/attention/%d/resolve", open[0].ID)
	d.want(s.POST(resolve, []byte(`{"note":"refunded the difference"}`)), http.StatusOK, "resolve")
	d.want(s.POST(resolve, []byte(`{"note":"again"}`)), http.StatusConflict, "resolve again")

	// Deliveries: the deliverer's claim and the attempt's record — delivered, failed (retried, the
	// invoice's later events held back with it), and 410 Gone (the endpoint disabled, then enabled).
	ep := s.App.Deliverer.Endpoints[0]
	deliver := func(status int) {
		rc.Answer(func(*http.Request) int { return status })
		if _, err := s.App.Deliverer.RunOnce(ctx, ep); err != nil {
			t.Fatalf("deliverer round: %v", err)
		}
	}
	deliver(http.StatusInternalServerError)
	deliver(http.StatusGone)
	d.want(s.POST("/v1/webhook-endpoints/"+endpointName+"/enable", nil), http.StatusOK, "enable endpoint")
	for i := 0; i < 5; i++ {
		deliver(http.StatusNoContent)
	}
	// One delivery dead, as the retry period would leave it, for the dead filters and redelivery.
	d.exec(`UPDATE webhook_deliveries SET state = 'dead', finished_at = now()
		WHERE event_seq = (SELECT min(event_seq) FROM webhook_deliveries WHERE state = 'delivered')`)

	// The feed: plain, each filter, a second page. (A cursor of the feed's first version expires
	// without a statement of its own.)
	d.pages("/v1/events", "", "type=invoice.paid", "invoice_number=PLAN-A", "delivery_state=dead",
		"delivery_state=pending", "endpoint="+endpointName, "delivery_state=dead&endpoint="+endpointName)

	// One event; redelivered to every endpoint and to one; bulk redelivery of the dead and the
	// delivered.
	var eventID string
	d.scan(&eventID, `SELECT id FROM events WHERE invoice_number = 'PLAN-A' ORDER BY seq LIMIT 1`)
	eventPath := "/v1/events/" + eventID
	d.want(s.GET(eventPath), http.StatusOK, "one event")
	d.want(s.POST(eventPath+"/redeliver", nil), http.StatusAccepted, "redeliver")
	d.want(s.POST(eventPath+"/redeliver", []byte(`{"endpoint":"`+endpointName+`"}`)), http.StatusAccepted, "redeliver to one endpoint")
	d.want(s.POST("/v1/webhook-endpoints/"+endpointName+"/redeliver", nil), http.StatusAccepted, "bulk redelivery of the dead")
	d.want(s.POST("/v1/webhook-endpoints/"+endpointName+"/redeliver", []byte(`{"state":"delivered"}`)), http.StatusAccepted,
		"bulk redelivery of the delivered")

	// The endpoint registry: listed, removed, enabled again; the deliverer's check of it.
	d.want(s.GET("/v1/webhook-endpoints"), http.StatusOK, "endpoints")
	d.want(s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/webhook-endpoints/" + endpointName}), http.StatusOK, "remove endpoint")
	d.want(s.POST("/v1/webhook-endpoints/"+endpointName+"/enable", nil), http.StatusOK, "enable removed endpoint")
	if err := s.App.Deliverer.CheckRegistry(ctx); err != nil {
		t.Fatalf("registry check: %v", err)
	}

	// A customer's stream: a token issued, the stream opened with it (the token checked, the invoice
	// watched, its events and itself read), a merchant's stream resumed after an event
	// (Last-Event-ID), the tokens revoked.
	tok := d.want(s.POST("/v1/invoices/PLAN-B/stream-token", []byte(`{"ttl_seconds":600}`)), http.StatusCreated, "stream token")
	var issued struct {
		StreamURL string `json:"stream_url"`
	}
	decodeInto(t, tok.Body, &issued)
	d.stream(s.URL+issued.StreamURL, nil)
	history := s.AllEvents("invoice_number=PLAN-B")
	if len(history) == 0 {
		t.Fatal("PLAN-B has no events")
	}
	d.stream(s.URL+"/v1/invoices/PLAN-B/stream", http.Header{"Authorization": {"Bearer " + apitest.APIKey},
		"Last-Event-ID": {history[0].ID}})
	d.want(s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/invoices/PLAN-B/stream-tokens"}), http.StatusOK, "revoke tokens")

	// The purge's round: its lease, each table's first batch, its marks.
	if _, _, err := s.App.Purger.RunOnce(ctx); err != nil {
		t.Fatalf("purge round: %v", err)
	}

	// What a scrape and the probes read.
	d.want(s.GET("/metrics"), http.StatusOK, "metrics")
	d.want(s.Send(apitest.Request{Method: http.MethodGet, Path: "/readyz", NoKey: true}), http.StatusOK, "readyz")
}

// driver runs the drive's requests and fails the test at the first unexpected answer: a drive that
// went wrong would capture too little, and silently.
type driver struct {
	t *testing.T
	s *apitest.Stack
}

func (d driver) want(r apitest.Response, status int, what string) apitest.Response {
	d.t.Helper()
	if r.Status != status {
		d.t.Fatalf("drive: %s: HTTP %d, want %d:\n%s", what, r.Status, status, r.Body)
	}
	return r
}

func (d driver) create(number, channel string, status int) apitest.InvoiceView {
	d.t.Helper()
	r := d.want(d.s.Create(apitest.NewInvoice(number, channel)), status, "create "+number)
	if status >= 300 {
		return apitest.InvoiceView{}
	}
	return r.Invoice(d.t)
}

// pages lists path with each query, and then a second page through the cursor of a page of one.
func (d driver) pages(path string, queries ...string) {
	d.t.Helper()
	param := "cursor"
	if path == "/v1/events" {
		param = "after"
	}
	for _, q := range queries {
		d.want(d.s.GET(path+"?"+join("limit=100", q)), http.StatusOK, path+"?"+q)
		r := d.want(d.s.GET(path+"?"+join("limit=1", q)), http.StatusOK, path+"?limit=1&"+q)
		var page struct {
			NextCursor *string `json:"next_cursor"`
		}
		decodeInto(d.t, r.Body, &page)
		if page.NextCursor != nil {
			d.want(d.s.GET(path+"?"+join("limit=100", q, param+"="+url.QueryEscape(*page.NextCursor))), http.StatusOK, path+" second page")
		}
	}
}

func join(parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += "&"
		}
		out += p
	}
	return out
}

// stream opens a status stream, reads its first message and closes it.
func (d driver) stream(u string, header http.Header) {
	d.t.Helper()
	sse := apitest.OpenStream(d.t, u, header)
	if _, ok := sse.Next(10 * time.Second); !ok {
		d.t.Fatalf("drive: stream %s sent nothing", u)
	}
	sse.Close()
}

// exec and scan run the drive's own SQL on the untraced pool: setting a case up is not the service's.
func (d driver) exec(sql string) {
	d.t.Helper()
	if _, err := d.s.DB.Pool.Exec(context.Background(), sql); err != nil {
		d.t.Fatalf("drive: %s: %v", sql, err)
	}
}

func (d driver) scan(dst any, sql string) {
	d.t.Helper()
	if err := d.s.DB.Pool.QueryRow(context.Background(), sql).Scan(dst); err != nil {
		d.t.Fatalf("drive: %s: %v", sql, err)
	}
}
