package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
)

// fastDelivery makes the deliverer's waits short enough for a test.
func fastDelivery(timeout, retryPeriod time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		c.EventsTimeout, c.EventsInterval = timeout, 10*time.Millisecond
		c.EventsBaseBackoff, c.EventsMaxBackoff, c.EventsRetryPeriod = 10*time.Millisecond, 80*time.Millisecond, retryPeriod
		c.EventsConcurrency = 4
	}
}

func configs(fns ...func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		for _, fn := range fns {
			fn(c)
		}
	}
}

// payInvoices creates and pays n invoices: 3 events each (pending, payment.recorded, paid).
func payInvoices(t *testing.T, s *apitest.Stack, prefix string, n int) []string {
	t.Helper()
	var numbers []string
	for i := 0; i < n; i++ {
		number := fmt.Sprintf("%s-%02d", prefix, i)
		inv := s.Create(apitest.NewInvoice(number, "alfa")).Invoice(t)
		s.Pay(inv.Code(t), inv.Amount)
		numbers = append(numbers, number)
	}
	return numbers
}

// waitDelivered waits until every event is delivered to every endpoint, and returns the events.
func waitDelivered(t *testing.T, s *apitest.Stack, within time.Duration) []apitest.PublishedView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pending := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'`)
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still not delivered after %s", pending, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Invoice by invoice: the whole feed waits for every older transaction in the cluster, and other
	// tests hold some open for seconds on purpose.
	rows, err := s.DB.Pool.Query(context.Background(), `SELECT DISTINCT invoice_number FROM events ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	numbers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var evs []apitest.PublishedView
	for _, n := range numbers {
		evs = append(evs, s.AllEvents("invoice_number="+n)...)
	}
	return evs
}

// A receiver that verifies with the Standard Webhooks library accepts every delivery; a tampered
// body or timestamp is refused by it.
func TestWebhooksVerifyWithTheStandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(2*time.Second, time.Minute))})
	s.Listen() // wake-ups instead of the interval
	s.Deliver()
	payInvoices(t, s, "INV-SW", 2)
	evs := waitDelivered(t, s, 10*time.Second)
	got := rc.Acknowledged()
	if len(got) != len(evs) || len(evs) != 4 || rc.Refused() != 0 { // per invoice: pending, paid
		t.Fatalf("%d events, %d deliveries verified and acknowledged, %d refused by the library", len(evs), len(got), rc.Refused())
	}
	for _, d := range got {
		if d.Header.Get("webhook-id") != d.Event.ID || d.Header.Get("Content-Type") != "application/json" {
			t.Errorf("delivery headers: %v", d.Header)
		}
		if err := apitest.CheckSchema("Event", d.Body); err != nil {
			t.Errorf("webhook body does not match the contract's Event: %v\n%s", err, d.Body)
		}
	}

	d := got[0]
	tampered := strings.Replace(string(d.Body), `"amount":150000`, `"amount":1`, 1)
	if tampered == string(d.Body) {
		t.Fatalf("the body has no amount to tamper with: %s", d.Body)
	}
	if err := rc.Verify([]byte(tampered), d.Header); err == nil {
		t.Error("the library accepted a tampered body")
	}
	h := d.Header.Clone()
	ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	h.Set("webhook-timestamp", strconv.FormatInt(ts+1, 10))
	if err := rc.Verify(d.Body, h); err == nil {
		t.Error("the library accepted a tampered timestamp")
	}
	if err := rc.Verify(d.Body, d.Header); err != nil {
		t.Errorf("the untampered delivery no longer verifies: %v", err)
	}
	// The feed shows each delivery and its attempt.
	for _, e := range evs {
		if len(e.Deliveries) != 1 || e.Deliveries[0].State != "delivered" || len(e.Deliveries[0].Attempts) != 1 ||
			e.Deliveries[0].Attempts[0].Status == nil || *e.Deliveries[0].Attempts[0].Status != http.StatusNoContent {
			t.Errorf("event %s deliveries: %v", e.ID, e.Deliveries)
		}
	}
}

// A receiver down for a while, then answering 500, then too slow, then up: every event is delivered,
// each invoice's in order, and a receiver that answered 2xx gets an event again only when its answer
// came after the sender's timeout — the sender never saw it, so at-least-once must send again.
func TestDeliveryRidesOutAReceiverOutage(t *testing.T) {
	t.Parallel()
	const timeout = 250 * time.Millisecond
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(timeout, time.Minute))})

	var mu sync.Mutex
	phase := "down"
	rc.Answer(func(*http.Request) int {
		mu.Lock()
		p := phase
		mu.Unlock()
		switch p {
		case "down": // the connection is cut without an answer
			panic(http.ErrAbortHandler)
		case "500":
			return http.StatusInternalServerError
		case "slow":
			time.Sleep(timeout + 150*time.Millisecond)
			return http.StatusOK
		}
		return http.StatusOK
	})
	numbers := payInvoices(t, s, "INV-OUT", 4)
	s.Deliver()
	for _, next := range []string{"500", "slow", "up"} {
		time.Sleep(600 * time.Millisecond)
		mu.Lock()
		phase = next
		mu.Unlock()
	}
	evs := waitDelivered(t, s, 20*time.Second)

	acked := map[string][]apitest.Delivery{}
	for _, d := range rc.Acknowledged() {
		acked[d.ID] = append(acked[d.ID], d)
	}
	for _, e := range evs {
		ds := acked[e.ID]
		if len(ds) == 0 {
			t.Errorf("event %s (%s) never acknowledged", e.ID, e.Type)
			continue
		}
		for _, d := range ds[:len(ds)-1] {
			if d.Took < timeout {
				t.Errorf("event %s delivered again although the receiver acknowledged it in %s (timeout %s)", e.ID, d.Took, timeout)
			}
		}
		if last := ds[len(ds)-1]; last.Took >= timeout {
			t.Errorf("event %s: its last delivery was one the sender cannot have seen acknowledged", e.ID)
		}
	}
	// Each invoice's events were first acknowledged in the order they happened.
	for _, number := range numbers {
		var want, got []string
		for _, e := range evs {
			if e.InvoiceNumber != nil && *e.InvoiceNumber == number {
				want = append(want, e.ID)
			}
		}
		seen := map[string]bool{}
		for _, d := range rc.Acknowledged() {
			if d.Event.InvoiceNumber != nil && *d.Event.InvoiceNumber == number && !seen[d.ID] {
				seen[d.ID] = true
				got = append(got, d.ID)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: events acknowledged in the order %v, they happened in the order %v", number, got, want)
		}
	}
	// The outage shows in the attempts: failures with their errors before the success.
	failed := s.Count(`SELECT count(*) FROM webhook_attempts WHERE status IS DISTINCT FROM 200`)
	if failed == 0 {
		t.Error("no failed attempt recorded through an outage")
	}
	if n := s.Count(`SELECT count(*) FROM webhook_attempts WHERE status IS NULL AND error = ''`); n != 0 {
		t.Errorf("%d failed attempts without an error", n)
	}
}

// 410 Gone disables the endpoint: nothing more is sent to it until a person enables it, and then what
// waited goes out.
func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(time.Second, time.Minute))})
	rc.Answer(func(*http.Request) int { return http.StatusGone })
	s.Deliver()
	payInvoices(t, s, "INV-GONE", 1)
	deadline := time.Now().Add(10 * time.Second)
	for s.Count(`SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a 410 did not disable the endpoint")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // many intervals
	if n := len(rc.Deliveries()); n != 1 {
		t.Errorf("%d deliveries to a gone endpoint, want the one that said so", n)
	}
	eps := s.GET("/v1/webhook-endpoints")
	if eps.Status != http.StatusOK || !strings.Contains(string(eps.Body), `"disabled_reason":"answered 410 Gone`) {
		t.Errorf("endpoints: HTTP %d %s", eps.Status, eps.Body)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'`); n != 2 {
		t.Errorf("%d deliveries waiting for the disabled endpoint, want 2 (pending, paid)", n)
	}

	rc.Answer(func(*http.Request) int { return http.StatusOK })
	if r := s.POST("/v1/webhook-endpoints/orders/enable", nil); r.Status != http.StatusOK {
		t.Fatalf("enable: HTTP %d %s", r.Status, r.Body)
	}
	waitDelivered(t, s, 10*time.Second)
	if r := s.POST("/v1/webhook-endpoints/nope/enable", nil); r.Status != http.StatusNotFound {
		t.Errorf("enable an unknown endpoint: HTTP %d", r.Status)
	}
	metrics := string(s.Send(apitest.Request{Method: http.MethodGet, Path: "/metrics"}).Body)
	if !strings.Contains(metrics, `o2o_webhook_deliveries_total{endpoint="orders",outcome="gone"} 1`) {
		t.Errorf("metrics do not count the 410:\n%s", grepLines(metrics, "o2o_webhook_deliveries_total"))
	}
}

// A delivery not acknowledged within the retry period is dead; redelivery offers it again.
func TestDeadAfterTheRetryPeriod(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(time.Second, 300*time.Millisecond))})
	rc.Answer(func(*http.Request) int { return http.StatusServiceUnavailable })
	s.Create(apitest.NewInvoice("INV-DEAD", "alfa"))
	s.Deliver()
	deadline := time.Now().Add(10 * time.Second)
	for s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'dead'`) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no dead delivery after the retry period; attempts: %d", s.Count(`SELECT count(*) FROM webhook_attempts`))
		}
		time.Sleep(20 * time.Millisecond)
	}
	attempts := s.Count(`SELECT count(*) FROM webhook_attempts`)
	if attempts < 3 {
		t.Errorf("only %d attempts within the retry period", attempts)
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.Count(`SELECT count(*) FROM webhook_attempts`); n != attempts {
		t.Errorf("a dead delivery was attempted again (%d attempts, then %d)", attempts, n)
	}
	ev := s.AllEvents("invoice_number=INV-DEAD")[0]
	if ev.Deliveries[0].State != "dead" || ev.Deliveries[0].FinishedAt == nil || len(ev.Deliveries[0].Attempts) != attempts {
		t.Errorf("the feed shows %v", ev.Deliveries)
	}

	rc.Answer(func(*http.Request) int { return http.StatusOK })
	if r := s.POST("/v1/events/"+ev.ID+"/redeliver", []byte(`{"endpoint":"orders"}`)); r.Status != http.StatusAccepted {
		t.Fatalf("redeliver: HTTP %d %s", r.Status, r.Body)
	}
	waitDelivered(t, s, 10*time.Second)
	if r := s.POST("/v1/events/"+ev.ID+"/redeliver", []byte(`{"endpoint":"nope"}`)); r.Status != http.StatusNotFound {
		t.Errorf("redeliver to an unknown endpoint: HTTP %d", r.Status)
	}
}

// Two replicas deliver from one outbox: each event reaches the endpoint once.
func TestTwoReplicasDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	cfgFn := configs(apitest.Endpoint("orders", rc), fastDelivery(5*time.Second, time.Minute))
	s := apitest.New(t, apitest.Options{Config: cfgFn})
	b := s.Replica(cfgFn)
	numbers := payInvoices(t, s, "INV-TWO", 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.App.Deliverer.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s.Deliver()
	evs := waitDelivered(t, s, 20*time.Second)
	if len(evs) != 2*len(numbers) { // pending, paid
		t.Fatalf("%d events for %d paid invoices", len(evs), len(numbers))
	}
	count := map[string]int{}
	for _, d := range rc.Deliveries() {
		count[d.ID]++
	}
	for _, e := range evs {
		if count[e.ID] != 1 {
			t.Errorf("event %s delivered %d times", e.ID, count[e.ID])
		}
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A delivery can still be pending for an event the purge has since thinned (a redelivery that
// committed while the purge's statement ran, after its snapshot): the event has no payload any more.
// It is not sent — a signed "data": null would reach the merchant as a real event — but finished at
// once as dead, with the reason.
func TestADeliveryOfAPurgedEventIsNotSent(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(time.Minute, 300*time.Millisecond))})
	s.Create(apitest.NewInvoice("INV-PURGED-DELIVERY", "alfa"))
	s.Deliver()
	waitDelivered(t, s, 10*time.Second)
	sent := len(rc.Deliveries())
	// What the race leaves: the event thinned as the purge thins it, its delivery pending and due.
	ctx := context.Background()
	var seq int64
	if err := s.DB.Pool.QueryRow(ctx, `UPDATE events SET data = NULL, xid = NULL
		WHERE seq = (SELECT min(event_seq) FROM webhook_deliveries) RETURNING seq`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Pool.Exec(ctx, `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(), finished_at = NULL
		WHERE event_seq = $1`, seq); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Count(`SELECT count(*) FROM webhook_deliveries WHERE event_seq = $1 AND state = 'pending'`, seq) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the delivery of the purged event is still pending")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(rc.Deliveries()); n != sent {
		t.Errorf("the receiver got %d more deliveries: %s", n-sent, rc.Deliveries()[n-1].Body)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries d JOIN webhook_attempts a USING (event_seq, endpoint)
		WHERE d.event_seq = $1 AND d.state = 'dead' AND a.error LIKE '%purged%'`, seq); n != 1 {
		t.Errorf("the delivery is not dead with the reason (%d)", n)
	}
}

// SIGTERM stops the workers first (App.Run cancels their context), but a webhook POST already in
// flight finishes within EVENTS_TIMEOUT and is recorded as what it was: cut short, the receiver
// had the event and acknowledged it, while we recorded a failure — a duplicate later, or a dead
// delivery when it was the last attempt of the retry period.
func TestShutdownLetsAWebhookInFlightFinish(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	arrived := make(chan struct{}, 10)
	rc.Answer(func(*http.Request) int {
		arrived <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		return http.StatusNoContent
	})
	s := apitest.New(t, apitest.Options{Config: configs(fastDelivery(5*time.Second, 300*time.Millisecond), apitest.Endpoint("shop", rc))})
	s.Create(apitest.NewInvoice("INV-SHUTDOWN-POST", "alfa"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = s.App.Deliverer.RunOnce(ctx, s.App.Deliverer.Endpoints[0]) }()
	<-arrived
	time.Sleep(250 * time.Millisecond) // the retry period is nearly over: this is its last attempt
	cancel()
	<-done
	var state, errText string
	if err := s.DB.Pool.QueryRow(context.Background(), `SELECT d.state, coalesce(a.error, '') FROM webhook_deliveries d
		JOIN webhook_attempts a USING (event_seq, endpoint)`).Scan(&state, &errText); err != nil {
		t.Fatal(err)
	}
	if state != "delivered" {
		t.Errorf("a webhook POST in flight at shutdown was recorded %s (%q), want delivered", state, errText)
	}
}
