package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
)

func runScenarios(ctx context.Context, st *stack, o options) (*report, error) {
	rep := &report{Machine: machine{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		Go: runtime.Version(), Postgres: st.pgVersion}, Duration: o.duration.String()}
	rep.Memory.IdleRSSMB = round(st.rssMB("VmRSS"), 1)
	want := func(name string) bool { return o.only == "" || strings.Contains(name, o.only) }
	d := o.duration

	const webhookConc = 32
	// Seeded invoices for the webhook scenarios: more than the targets could use in the time given.
	seed := int(4000*1.5*d.Seconds()) + 1000

	var createRes, webhookRes result
	if want("create") {
		if err := setLatency(ctx, st, 0); err != nil {
			return nil, err
		}
		profileDuring(ctx, st, o.profileDir, "create", int(d.Seconds())-2, func() {
			createRes = load(ctx, "1 create, 32 clients, DOKU 0 ms", 32, d, createOp(st, newClient(32), "C1"))
		})
		createRes.RSSAfterMB = round(st.rssMB("VmRSS"), 1)
		rep.add(createRes)

		if err := setLatency(ctx, st, 200); err != nil {
			return nil, err
		}
		before := poolStats(ctx, st)
		r := load(ctx, "2 create, 512 in flight, DOKU 200 ms", 512, d, createOp(st, newClient(512), "C2"))
		after := poolStats(ctx, st)
		r.LittleBound = 512 / 0.2
		r.LittleEfficiency = round(r.OpsPerSec/r.LittleBound, 3)
		r.RSSAfterMB = round(st.rssMB("VmRSS"), 1)
		r.Note = fmt.Sprintf("pool: max %.0f connections, %.0f acquires had to wait (%.3f s waiting in all)",
			after["o2o_db_pool_max_connections"], after["o2o_db_pool_empty_acquires_total"]-before["o2o_db_pool_empty_acquires_total"],
			after["o2o_db_pool_acquire_wait_seconds_total"]-before["o2o_db_pool_acquire_wait_seconds_total"])
		rep.add(r)
		if err := setLatency(ctx, st, 0); err != nil {
			return nil, err
		}
	}
	if want("webhook") {
		numbers, err := seedInvoices(ctx, st, "W", seed)
		if err != nil {
			return nil, err
		}
		profileDuring(ctx, st, o.profileDir, "webhook", int(d.Seconds())-2, func() {
			webhookRes = load(ctx, "3 webhook, distinct invoices, 32 clients", webhookConc, d, webhookOp(st, newClient(webhookConc), numbers, "W"))
		})
		webhookRes.RSSAfterMB = round(st.rssMB("VmRSS"), 1)
		rep.add(webhookRes)
	}
	if want("storm") {
		numbers, err := seedInvoices(ctx, st, "S", seed/10+100)
		if err != nil {
			return nil, err
		}
		r := load(ctx, "4 duplicate storm, each 10x at once", webhookConc, d, stormOp(st, newClient(webhookConc), numbers))
		var notified, payments, deliveries int
		_ = st.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(deliveries), 0) FROM notifications WHERE invoice_number LIKE 'S-%'`).Scan(&notified, &deliveries)
		_ = st.pool.QueryRow(ctx, `SELECT count(*) FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE i.invoice_number LIKE 'S-%'`).Scan(&payments)
		r.Note = fmt.Sprintf("exactly once: %d payments for %d notified invoices, %d deliveries stored", payments, notified, deliveries)
		if payments != notified {
			r.Note = "NOT EXACTLY ONCE: " + r.Note
		}
		r.RSSAfterMB = round(st.rssMB("VmRSS"), 1)
		rep.add(r)
	}
	svc, closeRaw, err := rawService(ctx, st)
	if err != nil {
		return nil, err
	}
	defer closeRaw()
	if want("raw") || want("create") {
		raw := load(ctx, "5a raw: the create's database work, 32 clients", 32, d, rawCreateOp(svc))
		if createRes.OpsPerSec > 0 {
			raw.Note = fmt.Sprintf("service create / raw = %.2f", createRes.OpsPerSec/raw.OpsPerSec)
			rep.setRaw("1 create", raw.OpsPerSec)
		}
		rep.add(raw)
	}
	if want("raw") || want("webhook") {
		numbers, err := seedInvoices(ctx, st, "R", seed)
		if err != nil {
			return nil, err
		}
		raw := load(ctx, "5b raw: the webhook's database work, 32 clients", webhookConc, d, rawWebhookOp(svc, numbers))
		if webhookRes.OpsPerSec > 0 {
			raw.Note = fmt.Sprintf("service webhook / raw = %.2f", webhookRes.OpsPerSec/raw.OpsPerSec)
			rep.setRaw("3 webhook", raw.OpsPerSec)
		}
		rep.add(raw)
	}
	rep.Memory.PeakRSSMB = round(st.rssMB("VmHWM"), 1)
	rep.Memory.FinalRSSMB = round(st.rssMB("VmRSS"), 1)
	rep.judge()
	return rep, nil
}

// setLatency sets the simulator's answer latency.
func setLatency(ctx context.Context, st *stack, ms int) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, st.simURL+"/simulator/faults",
		strings.NewReader(fmt.Sprintf(`{"latency_ms":%d}`, ms)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("set simulator latency: HTTP %d", resp.StatusCode)
	}
	return nil
}

var sample = regexp.MustCompile(`(?m)^(o2o_db_pool_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$`)

// poolStats scrapes the service's database pool metrics.
func poolStats(ctx context.Context, st *stack) map[string]float64 {
	out := map[string]float64{}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.adminURL2+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, m := range sample.FindAllStringSubmatch(string(raw), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] += v
	}
	return out
}

func createOp(st *stack, client *http.Client, prefix string) func(context.Context, int) error {
	var seq atomic.Int64
	return func(ctx context.Context, _ int) error {
		n := seq.Add(1)
		ch := "alfa"
		if n%2 == 0 {
			ch = "indomaret"
		}
		body := fmt.Sprintf(`{"invoice_number":"%s-%d","channel":"%s","amount":150000,"customer":{"name":"Bench Customer","email":"bench@example.com"},"expires_in_minutes":60,"info":"bench"}`, prefix, n, ch)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.svcURL+"/v1/invoices", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+benchAPIKey)
		req.Header.Set("Content-Type", "application/json")
		return expect(client.Do(req))(http.StatusCreated)
	}
}

func expect(resp *http.Response, err error) func(int) error {
	return func(status int) error {
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
		}
		return nil
	}
}

// seedInvoices inserts n pending invoices with payment codes straight into the database, the state
// the webhook scenarios start from.
func seedInvoices(ctx context.Context, st *stack, prefix string, n int) ([]seeded, error) {
	_, err := st.pool.Exec(ctx, `
		INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes,
			doku_request_id, doku_request_body, payment_code, expires_at)
		SELECT $1 || '-' || g, CASE WHEN g % 2 = 0 THEN 'alfa' ELSE 'indomaret' END, 150000, 'pending',
			'Bench Customer', 60, $1 || '-req-' || g, '\x7b7d', '9999' || lpad(g::text, 12, '0'), now() + interval '1 hour'
		FROM generate_series(1, $2::int) g`, prefix, n)
	if err != nil {
		return nil, fmt.Errorf("seed invoices: %w", err)
	}
	out := make([]seeded, n)
	for i := range out {
		g := i + 1
		ch := invoice.ChannelIndomaret
		if g%2 == 0 {
			ch = invoice.ChannelAlfa
		}
		out[i] = seeded{number: fmt.Sprintf("%s-%d", prefix, g), channel: ch, code: fmt.Sprintf("9999%012d", g)}
	}
	return out, nil
}

type seeded struct {
	number, code string
	channel      invoice.Channel
}

// notify posts a correctly signed notification of a payment of s.
func notify(ctx context.Context, st *stack, client *http.Client, s seeded, requestID string) error {
	body := dokusim.NotificationBody(dokusim.Payment{InvoiceNumber: s.number, Channel: s.channel, PaymentCode: s.code,
		Amount: 150000, At: time.Now(), TransactionID: "TRX-" + s.number, OriginalRequestID: s.number + "-req"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.svcURL+benchNotifyPath, bytes.NewReader(body))
	req.Header = doku.SignedHeaders([]byte(benchSecret), doku.Components{ClientID: benchClientID, RequestID: requestID,
		Timestamp: time.Now().UTC().Format(doku.TimestampLayout), Target: benchNotifyPath, Digest: doku.Digest(body)}, true)
	return expect(client.Do(req))(http.StatusOK)
}

func webhookOp(st *stack, client *http.Client, invs []seeded, prefix string) func(context.Context, int) error {
	var next atomic.Int64
	return func(ctx context.Context, _ int) error {
		i := int(next.Add(1)) - 1
		if i >= len(invs) {
			return errExhausted
		}
		return notify(ctx, st, client, invs[i], prefix+"-notify-"+strconv.Itoa(i))
	}
}

// stormOp delivers each notification 10 times: the ten copies are consecutive tasks, so with 32
// workers they are in flight together.
func stormOp(st *stack, client *http.Client, invs []seeded) func(context.Context, int) error {
	var next atomic.Int64
	return func(ctx context.Context, _ int) error {
		t := int(next.Add(1)) - 1
		i := t / 10
		if i >= len(invs) {
			return errExhausted
		}
		return notify(ctx, st, client, invs[i], "storm-"+strconv.Itoa(i))
	}
}

// profileDuring saves a CPU profile of the service, taken while fn runs, to dir/name.pprof.
func profileDuring(ctx context.Context, st *stack, dir, name string, seconds int, fn func()) {
	if dir == "" {
		fn()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second) // past the ramp-up
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", st.adminURL2, seconds), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, name+".pprof"), raw, 0o644)
	}()
	fn()
	<-done
}
