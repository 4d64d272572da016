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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/postgres"
	"github.com/merchant/o2o/internal/service"
)

// Row names: report.judge finds rows by them.
const (
	rowCeiling    = "0 ceiling: pgbench TPC-B"
	rowCreate     = "1 create, DOKU 0 ms"
	rowLittle     = "2 create, DOKU 200 ms"
	rowWebhook    = "3 webhook, distinct invoices"
	rowRawCreate  = "4a raw: create's database work"
	rowRawWebhook = "4b raw: webhook's database work"
	rowStorm      = "5 duplicate storm, 10x each"
)

const (
	clients = ceilingClients // of the closed-loop scenarios: pgbench's, so that they compare
	// Database transactions one operation commits; the ceiling's per-transaction ratio counts them.
	createTx  = 2
	webhookTx = 1
	// Little's law where the database is not the bound: 128 in flight over DOKU's 200 ms allow
	// 640 creates/s, well below what the database takes.
	littleInFlight = 128
	littleLatency  = 200 * time.Millisecond
)

// bench is one pass of the rows: its steps share the stack, the meter and the report. -volume makes a
// second pass over the same database once the year is loaded; tag sets its invoice numbers and
// request ids apart from the first pass's.
type bench struct {
	ctx  context.Context
	st   *stack
	o    options
	m    *meter
	rep  *report
	want func(scenario string) bool
	tag  string
	// endpoint names the delivery rows' webhook endpoint (each pass registers its own).
	endpoint string
	// The closed-loop rows the open-loop rates are fractions of.
	create, webhook result
	seeds           map[string][]seeded
	raw             *service.Service // the raw baseline's service, built on first use
	closeRaw        func()
	delivered       bool   // the delivery rows ran: the service has their endpoint
	feedAfter       string // the feed page's cursor (claims.go), the same at every volume
	// openFrom, when set, is the pass whose closed-loop rates the open loop's are fractions of: the
	// second pass of -volume offers the first pass's load, so that each open-loop row's cost per
	// request is read at the same rate on both databases (a row's fixed background work weighs more
	// at a lower rate).
	openFrom *bench
}

func newBench(ctx context.Context, st *stack, o options, m *meter, tag, endpoint string, want func(string) bool) *bench {
	rep := &report{Machine: machine{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		Go: runtime.Version(), Postgres: st.pgVersion}, Duration: o.duration.String()}
	return &bench{ctx: ctx, st: st, o: o, m: m, rep: rep, want: want, tag: tag, endpoint: endpoint,
		seeds: map[string][]seeded{}, closeRaw: func() {}}
}

func runScenarios(ctx context.Context, st *stack, o options) (*report, error) {
	m, err := newMeter(ctx, st)
	if err != nil {
		return nil, err
	}
	defer m.close()
	b := newBench(ctx, st, o, m, "", "bench", wanted(o.only))
	defer func() { b.closeRaw() }()
	if err := b.pass(); err != nil {
		return nil, err
	}
	b.rep.judge()
	if o.volume > 0 {
		v, err := b.volumeRun()
		if v != nil {
			b.rep.Volume = v
			b.rep.judgeVolume()
		}
		if err != nil {
			return b.rep, err
		}
	}
	return b.rep, nil
}

// pass runs the selected rows once.
func (b *bench) pass() error {
	rep := b.rep
	rep.Memory.IdleRSSMB = round(b.st.rssMB("VmRSS"), 1)
	// The order matters: rows whose database counters are read (everything but the open loop) each
	// wait statsSettle after the bench database's last work, so the seeding is done once, after the
	// creates, and the open loop, whose counters are not read, comes last.
	for _, step := range []func() error{b.ceiling, b.creates, b.seed, b.webhooks, b.storm, b.openLoops} {
		if err := step(); err != nil {
			return err
		}
	}
	rep.Memory.PeakRSSMB = round(b.st.rssMB("VmHWM"), 1)
	rep.Memory.FinalRSSMB = round(b.st.rssMB("VmRSS"), 1)
	if err := b.deliveries(); err != nil { // restarts the service: after its memory is read
		return err
	}
	rep.CostMethod = b.m.method
	// Rows in the order of their names, not of the run (which the settling of counters decides).
	slices.SortStableFunc(rep.Scenarios, func(a, b result) int { return strings.Compare(a.Name, b.Name) })
	rep.setCeiling()
	return nil
}

// wanted reports whether -only selects a scenario: all when it is empty, else those whose name
// contains one of its comma-separated words.
func wanted(only string) func(string) bool {
	return func(scenario string) bool {
		if only == "" {
			return true
		}
		for _, w := range strings.Split(only, ",") {
			if w = strings.TrimSpace(w); w != "" && strings.Contains(scenario, w) {
				return true
			}
		}
		return false
	}
}

// closed runs a closed-loop scenario on the bench database, measuring its cost and, when profile is
// named, a CPU profile of the service.
func (b *bench) closed(name, profile string, concurrency, txPerOp int, op func(context.Context, int) error) (result, error) {
	var r result
	c, err := b.m.measure(b.ctx, b.st.dbName, true, func() int {
		profileDuring(b.ctx, b.st, b.o.profileDir, profile, int(b.o.duration.Seconds())-2, func() {
			r = load(b.ctx, name, concurrency, b.o.duration, op)
		})
		return r.Ops - r.Errors
	})
	r.Cost, r.TxPerOp = c, txPerOp
	r.RSSAfterMB = round(b.st.rssMB("VmRSS"), 1)
	return r, err
}

// rawRow runs the raw baseline of the service row of (what: "create" or "webhook"): the service's
// code runs inside o2obench, so o2obench's CPU is the application's, and the service process's memory
// says nothing about it. The service row gets its ratio to the baseline.
func (b *bench) rawRow(name, what string, of result, txPerOp int, op func(*service.Service) func(context.Context, int) error) error {
	svc, err := b.rawService()
	if err != nil {
		return err
	}
	r, err := b.closed(name, "", clients, txPerOp, op(svc))
	if err != nil {
		return err
	}
	r.RSSAfterMB = 0
	if r.Cost != nil {
		r.Cost.App, r.Cost.AppCPU = "o2obench", r.Cost.BenchCPU
	}
	if of.OpsPerSec > 0 {
		r.Note = fmt.Sprintf("service %s / raw = %.2f", what, of.OpsPerSec/r.OpsPerSec)
		b.rep.setRaw(of.Name, r.OpsPerSec)
	}
	b.rep.add(r)
	return nil
}

func (b *bench) rawService() (*service.Service, error) {
	if b.raw == nil {
		svc, closeRaw, err := rawService(b.ctx, b.st)
		if err != nil {
			return nil, err
		}
		b.raw, b.closeRaw = svc, closeRaw
	}
	return b.raw, nil
}

func (b *bench) ceiling() error {
	if !b.want("ceiling") {
		return nil
	}
	c := &ceiling{Pgbench: b.o.pgbench, Version: b.o.pgbenchVersion}
	b.rep.Ceiling = c
	if c.Pgbench == "" {
		c.Missing = "pgbench is not installed (-skip-missing-pgbench)"
		return nil
	}
	r, err := runCeiling(b.ctx, b.st, b.m, c, b.o.duration)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	b.rep.add(r)
	return nil
}

// creates runs the create scenarios: at DOKU 0 ms, at 200 ms with 128 in flight, and the raw baseline.
func (b *bench) creates() error {
	if b.want("create") || b.want("open") {
		r, err := b.closed(rowCreate, "create", clients, createTx, createOp(b.st, newClient(clients), b.tag+"C1"))
		if err != nil {
			return err
		}
		b.create = r
		b.rep.add(r)
	}
	if b.want("create") || b.want("little") {
		if err := b.little(); err != nil {
			return err
		}
	}
	if b.want("raw") || b.want("create") {
		return b.rawRow(rowRawCreate, "create", b.create, createTx, func(svc *service.Service) func(context.Context, int) error {
			return rawCreateOp(svc, b.tag+"RC")
		})
	}
	return nil
}

func (b *bench) little() error {
	if err := setLatency(b.ctx, b.st, int(littleLatency.Milliseconds())); err != nil {
		return err
	}
	before := poolStats(b.ctx, b.st)
	r, err := b.closed(rowLittle, "", littleInFlight, createTx, createOp(b.st, newClient(littleInFlight), b.tag+"C2"))
	if err != nil {
		return err
	}
	after := poolStats(b.ctx, b.st)
	r.LittleBound = littleInFlight / littleLatency.Seconds()
	r.LittleEfficiency = round(r.OpsPerSec/r.LittleBound, 3)
	r.Note = fmt.Sprintf("pool: max %.0f connections, %.0f acquires had to wait (%.3f s waiting in all)",
		after["o2o_db_pool_max_connections"], after["o2o_db_pool_empty_acquires_total"]-before["o2o_db_pool_empty_acquires_total"],
		after["o2o_db_pool_acquire_wait_seconds_total"]-before["o2o_db_pool_acquire_wait_seconds_total"])
	b.rep.add(r)
	return setLatency(b.ctx, b.st, 0)
}

// seed inserts the pending invoices the webhook scenarios mark paid, all at once: more than the old
// 4,000/s target could use in the time given.
func (b *bench) seed() error {
	n := int(4000*1.5*b.o.duration.Seconds()) + 1000
	need := map[string]int{}
	if b.want("webhook") || b.want("open") || b.want("purge") {
		need["W"] = n
	}
	if b.want("raw") || b.want("webhook") {
		need["R"] = n
	}
	if b.want("storm") {
		need["S"] = n/10 + 100
	}
	for prefix, count := range need {
		invs, err := seedInvoices(b.ctx, b.st, b.tag+prefix, count)
		if err != nil {
			return err
		}
		b.seeds[prefix] = invs
	}
	// Vacuum what was just inserted in bulk now, or autovacuum does it during the next scenario: a
	// cost of the seeding, not of a webhook.
	if len(need) > 0 {
		if _, err := b.st.pool.Exec(b.ctx, "VACUUM (ANALYZE) invoices"); err != nil {
			return err
		}
	}
	b.m.busy()
	return nil
}

func (b *bench) webhooks() error {
	if b.want("webhook") || b.want("open") || b.want("purge") {
		r, err := b.closed(rowWebhook, "webhook", clients, webhookTx, webhookOp(b.st, newClient(clients), b.seeds["W"], b.tag+"W"))
		if err != nil {
			return err
		}
		b.webhook = r
		b.rep.add(r)
	}
	if b.want("raw") || b.want("webhook") {
		return b.rawRow(rowRawWebhook, "webhook", b.webhook, webhookTx, func(svc *service.Service) func(context.Context, int) error {
			return rawWebhookOp(svc, b.seeds["R"])
		})
	}
	return nil
}

// storm delivers each notification ten times at once, then checks that each was applied once.
func (b *bench) storm() error {
	if !b.want("storm") {
		return nil
	}
	invs := b.seeds["S"]
	acked := make([]atomic.Bool, len(invs))
	r, err := b.closed(rowStorm, "", clients, webhookTx, stormOp(b.st, newClient(clients), invs, acked, b.tag))
	if err != nil {
		return err
	}
	r.Note, err = exactlyOnce(b.ctx, b.st, invs, acked, b.tag+"S-")
	b.m.busy()
	if err != nil {
		return err
	}
	b.rep.add(r)
	return nil
}

// exactlyOnce checks the storm's invoices: none paid twice, and every one of which some delivery was
// answered 200 paid. The invoices being delivered when the scenario's deadline cut their requests
// off, none of them answered, may be stored and left for DOKU's redelivery: they are counted apart.
func exactlyOnce(ctx context.Context, st *stack, invs []seeded, acked []atomic.Bool, prefix string) (string, error) {
	rows, err := st.pool.Query(ctx, `
		SELECT i.invoice_number, (SELECT count(*) FROM payments p WHERE p.invoice_id = i.id),
			coalesce(sum(n.deliveries), 0), coalesce(string_agg(DISTINCT n.outcome::text, ','), '')
		FROM invoices i LEFT JOIN notifications n ON n.invoice_number = i.invoice_number
		WHERE i.invoice_number LIKE $1 || '%' GROUP BY i.id, i.invoice_number`, prefix)
	if err != nil {
		return "", fmt.Errorf("storm check: %w", err)
	}
	defer rows.Close()
	type state struct {
		payments, deliveries int
		outcomes             string
	}
	got := map[string]state{}
	for rows.Next() {
		var n string
		var s state
		if err := rows.Scan(&n, &s.payments, &s.deliveries, &s.outcomes); err != nil {
			return "", err
		}
		got[n] = s
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	var answered, paid, twice, unpaid, cutOff int
	var deliveries int
	var unpaidOutcomes, cutOffUnpaid []string // "number: outcomes stored" of the unpaid ones
	for i, inv := range invs {
		s := got[inv.number]
		deliveries += s.deliveries
		paid += min(s.payments, 1)
		if acked[i].Load() {
			answered++
		}
		switch {
		case s.payments > 1:
			twice++
		case acked[i].Load():
			if s.payments == 0 {
				unpaid++
				unpaidOutcomes = append(unpaidOutcomes, inv.number+": "+s.outcomes)
			}
		case s.deliveries > 0:
			cutOff++
			if s.payments == 0 {
				cutOffUnpaid = append(cutOffUnpaid, inv.number+": "+s.outcomes)
			}
		}
	}
	note := fmt.Sprintf("exactly once: %d invoices answered, %d paid, %d twice, %d answered but unpaid, "+
		"%d cut off; %d deliveries", answered, paid, twice, unpaid, cutOff, deliveries)
	if len(cutOffUnpaid) > 0 {
		note += fmt.Sprintf(", %d of them unpaid (%s)", len(cutOffUnpaid), firstFew(cutOffUnpaid))
	}
	if twice > 0 || unpaid > 0 {
		note = "NOT EXACTLY ONCE: " + note + "; answered but unpaid: " + firstFew(unpaidOutcomes)
	}
	return note, nil
}

// openLoops runs create and webhook at fixed fractions of their closed-loop throughput.
func (b *bench) openLoops() error {
	if !b.want("open") {
		return nil
	}
	rates := b
	if b.openFrom != nil {
		rates = b.openFrom
	}
	if top := rates.create.OpsPerSec; top > 0 {
		client := newClient(512)
		for _, f := range openFractions {
			op := createOp(b.st, client, fmt.Sprintf("%sOC%.0f", b.tag, f*100))
			if err := b.open(fmt.Sprintf("create %.0f%%", f*100), f, top, op); err != nil {
				return err
			}
		}
	}
	if top := rates.webhook.OpsPerSec; top > 0 {
		counts, total := make([]int, len(openFractions)), 0
		for i, f := range openFractions {
			counts[i] = int(f*top*b.o.duration.Seconds()) + 1
			total += counts[i]
		}
		invs, err := seedInvoices(b.ctx, b.st, b.tag+"O", total)
		if err != nil {
			return err
		}
		b.m.busy()
		client := newClient(512)
		for i, f := range openFractions {
			op := webhookOp(b.st, client, invs[:counts[i]], fmt.Sprintf("%sO%.0f", b.tag, f*100))
			invs = invs[counts[i]:]
			if err := b.open(fmt.Sprintf("webhook %.0f%%", f*100), f, top, op); err != nil {
				return err
			}
		}
	}
	return nil
}

// open runs one open-loop scenario at fraction f of the closed-loop rate top. Its database counters
// are not read (no waiting for them to settle); its CPU, write transactions and WAL are.
func (b *bench) open(name string, f, top float64, op func(context.Context, int) error) error {
	var r openResult
	c, err := b.m.measure(b.ctx, b.st.dbName, false, func() int {
		r = openLoop(b.ctx, name, f*top, b.o.duration, func(ctx context.Context) error { return op(ctx, 0) })
		return r.Completed
	})
	if err != nil {
		return err
	}
	r.Fraction, r.MaxPerSec, r.Cost = f, top, c
	b.rep.OpenLoop = append(b.rep.OpenLoop, r)
	return nil
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
		return notify(ctx, st, client, invs[i], requestID(prefix+"-notify", i))
	}
}

// requestID is the Request-Id of the bench's i-th notification of a kind: a UUID, as DOKU's are
// (the inbox's unique index is on it, and random keys touch its pages as DOKU's do), fixed by kind
// and i so that a redelivery repeats it.
func requestID(kind string, i int) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("o2obench:"+kind+":"+strconv.Itoa(i))).String()
}

func firstFew(items []string) string {
	return strings.Join(items[:min(len(items), 3)], "; ")
}

// stormOp delivers each notification 10 times: the ten copies are consecutive tasks, so with 32
// workers they are in flight together. It marks in acked the invoices of which a delivery was answered.
func stormOp(st *stack, client *http.Client, invs []seeded, acked []atomic.Bool, tag string) func(context.Context, int) error {
	var next atomic.Int64
	return func(ctx context.Context, _ int) error {
		t := int(next.Add(1)) - 1
		i := t / 10
		if i >= len(invs) {
			return errExhausted
		}
		err := notify(ctx, st, client, invs[i], requestID(tag+"storm", i))
		if err == nil {
			acked[i].Store(true)
		}
		return err
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

// store is the service's store over the bench's pool: what the bench changes in the service's
// tables outside a row (an endpoint removed, enabled) it changes with the service's own statements.
func (b *bench) store() *postgres.Store { return postgres.NewStore(b.st.pool) }
