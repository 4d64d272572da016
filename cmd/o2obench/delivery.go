package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"
)

// Row names of the delivery step.
const (
	rowDeliveryOn = "6 webhook, delivery on"
	rowEvents     = "7 events delivered to a receiver"
)

// benchWebhookKey is the receiver's signing key; benchWebhookSecret the same as a whsec_ secret.
var (
	benchWebhookKey    = []byte("o2obench-webhook-signing-key-32b")
	benchWebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString(benchWebhookKey)
)

// receiver is the merchant's webhook endpoint: it checks each delivery's signature as a receiver
// must (a forged one would be a bench bug), and notes when each came.
type receiver struct {
	url   string
	srv   *http.Server
	mu    sync.Mutex
	n     int
	bad   int
	first time.Time
	last  time.Time
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &receiver{url: "http://" + ln.Addr().String() + "/events"}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, benchWebhookKey)
	mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
	mac.Write(body)
	ok := hmac.Equal([]byte(r.Header.Get("webhook-signature")), []byte("v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil))))
	now := time.Now()
	rc.mu.Lock()
	if !ok {
		rc.bad++
	}
	if rc.n == 0 {
		rc.first = now
	}
	rc.n++
	rc.last = now
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) stats() (n, bad int, first, last time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n, rc.bad, rc.first, rc.last
}

// deliveries measures the events path: the service restarted with a webhook endpoint, the webhook
// row again (each payment announces one event, invoice.paid with the payment, queued for the endpoint
// and then POSTed, signed, by the deliverer), and how fast the deliverer empties the queue. It runs
// last: the restart ends the service process whose memory the other rows report.
func (b *bench) deliveries() error {
	if !b.want("deliver") {
		return nil
	}
	rc, err := startReceiver()
	if err != nil {
		return err
	}
	defer rc.srv.Close()
	if err := b.st.restartService("EVENTS_ENDPOINTS="+b.endpoint+"="+rc.url, "EVENTS_SECRETS="+b.endpoint+"="+benchWebhookSecret,
		"EVENTS_CONCURRENCY=8"); err != nil {
		return err
	}
	b.delivered = true
	b.m.svcPID = b.st.svc.Process.Pid
	invs, err := seedInvoices(b.ctx, b.st, b.tag+"D", int(4000*1.5*b.o.duration.Seconds())+1000)
	if err != nil {
		return err
	}
	if _, err := b.st.pool.Exec(b.ctx, "VACUUM (ANALYZE) invoices"); err != nil {
		return err
	}
	b.m.busy()
	r, err := b.closed(rowDeliveryOn, "", clients, webhookTx, webhookOp(b.st, newClient(clients), invs, b.tag+"D"))
	if err != nil {
		return err
	}
	if b.webhook.OpsPerSec > 0 {
		r.Note = fmt.Sprintf("delivery off (row 3): %.0f/s; on ÷ off = %.2f", b.webhook.OpsPerSec, r.OpsPerSec/b.webhook.OpsPerSec)
	}
	b.rep.add(r)
	ev, err := b.drained(rc)
	if err != nil {
		return err
	}
	b.rep.add(ev)
	return nil
}

// drained waits until every event of the bench database has reached the receiver, and reports the
// rate from the first delivery to the last.
func (b *bench) drained(rc *receiver) (result, error) {
	var events int // the events queued for the receiver: those since the restart
	if err := b.st.pool.QueryRow(b.ctx, `SELECT count(*) FROM webhook_deliveries WHERE endpoint = $1`, b.endpoint).Scan(&events); err != nil {
		return result{}, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, _, _, _ := rc.stats()
		if n >= events {
			break
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			return result{}, fmt.Errorf("only %d of %d events reached the receiver; service log: %s", n, events,
				tail(filepath.Join(b.st.workDir, "o2o.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	n, bad, first, last := rc.stats()
	secs := last.Sub(first).Seconds()
	r := result{Name: rowEvents, Concurrency: 8, Ops: n, Seconds: round(secs, 2), OpsPerSec: round(float64(n)/secs, 1),
		Note: fmt.Sprintf("%d events, %d deliveries (at least once), %d with a bad signature; POSTs from the first to the last, EVENTS_CONCURRENCY=8",
			events, n, bad)}
	if bad > 0 {
		return r, fmt.Errorf("%d deliveries had a bad signature", bad)
	}
	b.m.busy()
	return r, nil
}
