//go:build ha

package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
)

// workload is what the merchant's checkouts and DOKU do to the service while its database fails
// over: creates (retried by the client until answered, as a checkout does), counter payments whose
// notifications DOKU sends to the webhook, a prober that creates a fresh invoice every 100 ms to time
// the recovery, and a poller of /readyz. It records every answer with its time, so that afterwards
// what was acknowledged can be held against what the database kept. Nothing in its goroutines
// fails the test outright (t.Fatal is for the test's goroutine): anomalies are t.Errorf.
type workload struct {
	t      *testing.T
	s      *apitest.Stack
	prefix string
	seq    atomic.Int64

	mu      sync.Mutex
	creates []*createRec
	pays    []*payRec
	probes  []probe // the prober's creates
	readyz  []probe
	// statuses counts every answer the service gave, by route kind and status, to catch any answer
	// outside the contract's failure modes (a 500 during failover would be a classification gap).
	statuses map[string]int
}

// createRec is one order's create request and every answer to it.
type createRec struct {
	body    apitest.CreateBody
	answers []int // statuses, 0 for no answer (the connection failed)
	acked   bool  // answered 201 or 200 with a code
	code    string
	// ackStart is when the request that was acknowledged was sent: an acknowledgement counts as the
	// new primary's only if it was asked for after the kill.
	ackStart time.Time
}

// payRec is one payment at the simulated counter and what became of its notification's first
// delivery (DOKU retries the others on its schedule, RetrySchedule here).
type payRec struct {
	number, code, trx string
	start, end        time.Time
	firstStatus       int  // the webhook's answer to the first delivery, 0 for none
	acked             bool // the first delivery was answered 2xx: DOKU will never send it again
}

type probe struct {
	start, end time.Time
	status     int
}

func newWorkload(t *testing.T, s *apitest.Stack, prefix string) *workload {
	return &workload{t: t, s: s, prefix: prefix, statuses: map[string]int{}}
}

// newOrder is a new create request, alternating the channels; kind (w: a worker's, p: the prober's,
// held, last) goes into its invoice number.
func (w *workload) newOrder(kind string) *createRec {
	n := w.seq.Add(1)
	channel := "alfa"
	if n%2 == 0 {
		channel = "indomaret"
	}
	c := &createRec{body: apitest.NewInvoice(fmt.Sprintf("%s-%s-%05d", w.prefix, kind, n), channel)}
	w.mu.Lock()
	w.creates = append(w.creates, c)
	w.mu.Unlock()
	return c
}

func (w *workload) count(kind string, status int) {
	w.mu.Lock()
	w.statuses[fmt.Sprintf("%s %d", kind, status)]++
	w.mu.Unlock()
}

// createOnce sends c's request once and records the answer; it returns the status, the code answered
// (with 201 or 200) and how long the service asked the client to wait.
func (w *workload) createOnce(c *createRec) (int, string, time.Duration) {
	start := time.Now()
	status, header, body, err := send(w.s.Client, http.MethodPost, w.s.URL+"/v1/invoices", apitest.JSON(w.t, c.body))
	w.count("create", status)
	w.mu.Lock()
	defer w.mu.Unlock()
	c.answers = append(c.answers, status)
	if err != nil {
		return 0, "", 0
	}
	var code string
	switch status {
	case http.StatusCreated, http.StatusOK:
		var v apitest.InvoiceView
		if err := json.Unmarshal(body, &v); err != nil || v.PaymentCode == nil {
			w.t.Errorf("create %s: HTTP %d without a code: %s", c.body.InvoiceNumber, status, body)
			return status, "", 0
		}
		code = *v.PaymentCode
		if c.acked && c.code != *v.PaymentCode {
			w.t.Errorf("create %s: answered code %s, earlier %s", c.body.InvoiceNumber, *v.PaymentCode, c.code)
		}
		if !c.acked {
			c.acked, c.code, c.ackStart = true, *v.PaymentCode, start
		}
	case http.StatusServiceUnavailable, http.StatusConflict:
	default:
		w.t.Errorf("create %s: HTTP %d, not an answer a failover should give: %s", c.body.InvoiceNumber, status, body)
	}
	after, _ := strconv.Atoi(header.Get("Retry-After"))
	return status, code, time.Duration(after) * time.Second
}

// createUntilAnswered retries c's request, as a checkout does, until it is answered with a code (which
// it returns) or ctx ends; it waits what the service asked, at most 250 ms (the test times the
// recovery with it).
func (w *workload) createUntilAnswered(ctx context.Context, c *createRec) (string, bool) {
	for {
		status, code, retryAfter := w.createOnce(c)
		if status == http.StatusCreated || status == http.StatusOK {
			return code, true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(min(max(retryAfter, 50*time.Millisecond), 250*time.Millisecond)):
		}
	}
}

// pay pays c's code at the simulated counter: DOKU records the payment and sends its notification to
// the webhook once, now.
func (w *workload) pay(c *createRec) *payRec {
	p := &payRec{number: c.body.InvoiceNumber, code: c.code, start: time.Now()}
	status, _, body, err := send(http.DefaultClient, http.MethodPost, w.s.SimURL+"/simulator/payments",
		apitest.JSON(w.t, map[string]any{"payment_code": c.code, "amount": c.body.Amount}))
	p.end = time.Now()
	var cp apitest.CounterPayment
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &cp) != nil || cp.TransactionID == "" {
		w.t.Errorf("pay %s at the counter: HTTP %d %v %s", c.code, status, err, body)
		return nil
	}
	p.trx, p.firstStatus = cp.TransactionID, cp.Notification.LastStatus
	p.acked = cp.Notification.Delivered
	w.count("webhook", p.firstStatus)
	// 503: no database; 0: no answer at all. 404 (the invoice is not there) and 409 (it has no
	// confirmed code) only when an asynchronous standby lost the invoice, or its code, that the
	// create acknowledged just before the kill.
	switch p.firstStatus {
	case http.StatusOK, http.StatusServiceUnavailable, 0, http.StatusNotFound, http.StatusConflict:
	default:
		w.t.Errorf("webhook for %s: HTTP %d, not an answer a failover should give: %s", p.number, p.firstStatus, cp.Notification.Answer)
	}
	w.mu.Lock()
	w.pays = append(w.pays, p)
	w.mu.Unlock()
	return p
}

// worker creates orders and pays each as soon as it has a code, until ctx ends.
func (w *workload) worker(ctx context.Context) {
	for ctx.Err() == nil {
		c := w.newOrder("w")
		if _, ok := w.createUntilAnswered(ctx, c); ok {
			w.pay(c)
		}
	}
}

// prober creates a fresh order every 100 ms without retrying it (the end of the test does, as a
// client would), to time when creates are answered again.
func (w *workload) prober(ctx context.Context) {
	for ctx.Err() == nil {
		c := w.newOrder("p")
		start := time.Now()
		status, _, _ := w.createOnce(c)
		w.mu.Lock()
		w.probes = append(w.probes, probe{start: start, end: time.Now(), status: status})
		w.mu.Unlock()
		sleep(ctx, 100*time.Millisecond)
	}
}

// readyzPoller asks /readyz every 50 ms, as a load balancer does.
func (w *workload) readyzPoller(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		status, _, body, _ := send(w.s.Client, http.MethodGet, w.s.URL+"/readyz", nil)
		w.count("readyz", status)
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			w.t.Errorf("/readyz: HTTP %d: %s", status, body)
		}
		w.mu.Lock()
		w.readyz = append(w.readyz, probe{start: start, end: time.Now(), status: status})
		w.mu.Unlock()
		sleep(ctx, 50*time.Millisecond)
	}
}

// run starts n workers, the prober and the /readyz poller; stop ends them and waits.
func (w *workload) run(n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.worker(ctx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); w.prober(ctx) }()
	go func() { defer wg.Done(); w.readyzPoller(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	w.t.Cleanup(stop)
	return stop
}

// firstAfter is the end of the first probe that started at or after from with status want.
func firstAfter(probes []probe, from time.Time, want int) (time.Time, bool) {
	for _, p := range probes {
		if !p.start.Before(from) && p.status == want {
			return p.end, true
		}
	}
	return time.Time{}, false
}

func (w *workload) snapshotProbes() (probes, readyz []probe) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]probe(nil), w.probes...), append([]probe(nil), w.readyz...)
}

// send is one HTTP exchange that never fails the test: err is the transport's.
func send(client *http.Client, method, url string, body []byte) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, http.Header{}, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apitest.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, http.Header{}, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
