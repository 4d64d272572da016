package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/service"
)

// The purge row: webhooks at a fixed open-loop rate (half the webhook row's at volume) for a phase
// without the purge, then for a phase while the purge removes the loaded year's expired deliveries,
// attempts and events and thins its notifications' bodies; then the purge goes on alone until it is
// done (or -purge-max), and a last phase of webhooks runs without it. The webhook's p99 with the purge
// is read against the mean of its p99s before and after: on a shared machine one phase alone can land
// on a stall of the disk or of another tenant.
//
// The purge is the service's own (service.Purge through app.New, with the production retention
// windows and batch), run in this process on a pool of its own so that each of its statements can be
// timed: every purge statement is its own transaction, so its length is the longest any of its locks
// is held. The merchant's endpoint is enabled for the whole row, as in production: the webhooks queue
// their events for it, and the purge keeps what its retention windows keep.
//
// Lock waits are sampled from pg_locks every lockSampleEvery in every phase (the sampling costs the
// same in each): a backend of the bench database waiting for a lock, how long it has waited
// (pg_locks.waitstart) and who blocks it (pg_blocking_pids).

// purgeHolder holds the purge's lease for the whole -volume run (stack.go), and runs the purge.
const purgeHolder = "o2obench"

const (
	purgeAppName    = "o2obench-purge"
	lockSampleEvery = 5 * time.Millisecond
)

// purgeResult is the purge row.
type purgeResult struct {
	Rate         float64    `json:"webhooks_per_sec"`
	PhaseSeconds float64    `json:"phase_seconds"`
	Without      openResult `json:"without_purge"`
	With         openResult `json:"with_purge"`
	WithoutAfter openResult `json:"without_purge_after"`
	// P99Ratio is With's p99 ÷ the mean of Without's and WithoutAfter's.
	P99Ratio float64 `json:"p99_with_over_without"`
	// The purge: rows removed (or thinned) by table, and its statements by kind.
	Rows       map[string]int       `json:"rows"`
	Statements map[string]*stmtStat `json:"statements"`
	Seconds    float64              `json:"purge_seconds"`
	Done       bool                 `json:"done"`
	Error      string               `json:"error,omitempty"`
	// Longest purge statement while the webhooks ran, and over the whole purge.
	LongestDuringMs float64 `json:"longest_statement_during_load_ms"`
	LongestMs       float64 `json:"longest_statement_ms"`
	LongestKind     string  `json:"longest_statement_kind"`
	// Lock waits of the bench database's backends, by phase: without, with, the purge alone, without
	// after.
	Locks  [4]lockStats `json:"lock_waits_by_phase"`
	Method string       `json:"method"`
}

// stmtStat is one kind of purge statement. First and Last are the mean of its first and last
// stmtWindow statements: a batch that costs more the further the walk has gone shows there.
type stmtStat struct {
	Count   int       `json:"count"`
	TotalMs float64   `json:"total_ms"`
	MaxMs   float64   `json:"max_ms"`
	FirstMs float64   `json:"first_mean_ms"`
	LastMs  float64   `json:"last_mean_ms"`
	last    []float64 // the last stmtWindow, a ring
}

const stmtWindow = 50

// lockStats are the lock waits seen in one phase.
type lockStats struct {
	Samples int `json:"samples"`
	// Waits of anyone but the purge, the longest, and those on a lock the purge held.
	Waits         int     `json:"waits"`
	LongestMs     float64 `json:"longest_ms"`
	Longest       string  `json:"longest,omitempty"` // what the longest waited for
	OnPurge       int     `json:"waits_on_the_purge"`
	LongestOnPurg float64 `json:"longest_on_the_purge_ms"`
	PurgeWaited   int     `json:"purge_waits"` // waits of the purge itself
}

const purgeMethod = "p99 from the scheduled start of each webhook (open loop). Purge statements timed in the client (pgx tracer): " +
	"each is its own transaction, so its length bounds how long it held any lock. Lock waits sampled from pg_locks every 5 ms " +
	"(waitstart, pg_blocking_pids): a wait shorter than that may be missed, and each is seen up to 5 ms short of its length."

// purgeRow runs the purge row on the loaded database; emptyWebhook is the first pass's webhook row,
// whose rate is used when this pass did not run one.
func (b *bench) purgeRow(emptyWebhook result) (*purgeResult, error) {
	ctx := b.ctx
	top := b.webhook.OpsPerSec
	if top <= 0 {
		top = emptyWebhook.OpsPerSec
	}
	if top <= 0 {
		return nil, errors.New("no webhook rate to run at (run the webhook row)")
	}
	p := &purgeResult{Rate: round(0.5*top, 0), PhaseSeconds: b.o.purgePhase.Seconds(), Rows: map[string]int{},
		Statements: map[string]*stmtStat{}, Method: purgeMethod}
	if _, err := b.store().EnableEndpoint(ctx, loadedEndpoint); err != nil {
		return nil, err
	}
	defer func() { _, _ = b.store().RemoveEndpoint(context.WithoutCancel(ctx), loadedEndpoint) }()
	n := int(p.Rate*b.o.purgePhase.Seconds()) + 1
	invs, err := seedInvoices(ctx, b.st, b.tag+"P", 3*n)
	if err != nil {
		return nil, err
	}
	if _, err := b.st.pool.Exec(ctx, "VACUUM (ANALYZE) invoices"); err != nil {
		return nil, err
	}

	tracer := &stmtTracer{stats: map[string]*stmtStat{}}
	svc, closePurge, err := purgeService(ctx, b.st, tracer)
	if err != nil {
		return nil, err
	}
	defer closePurge()

	var phase atomic.Int32 // 0 without the purge, 1 with it under load, 2 the purge alone, 3 without after
	sampler, err := startLockSampler(ctx, b.st, &phase)
	if err != nil {
		return nil, err
	}
	client := newClient(512)
	without, with, after := webhookOp(b.st, client, invs[:n], b.tag+"PW"), webhookOp(b.st, client, invs[n:2*n], b.tag+"PP"),
		webhookOp(b.st, client, invs[2*n:], b.tag+"PA")
	p.Without = openLoop(ctx, "webhook 50%, without purge", p.Rate, b.o.purgePhase,
		func(ctx context.Context) error { return without(ctx, 0) })

	phase.Store(1)
	tracer.phase.Store(1)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	purged := make(chan error, 1)
	started := time.Now()
	var mu sync.Mutex
	go func() {
		_, err := svc.Purge(pctx, purgeHolder, func(table string, step invoice.PurgeStep) {
			mu.Lock()
			p.Rows[table] += step.Deleted
			if step.Related > 0 {
				p.Rows["webhook_attempts"] += step.Related
			}
			mu.Unlock()
		})
		purged <- err
	}()
	p.With = openLoop(ctx, "webhook 50%, with purge", p.Rate, b.o.purgePhase,
		func(ctx context.Context) error { return with(ctx, 0) })
	phase.Store(2)
	tracer.phase.Store(2)
	var purgeErr error
	select {
	case purgeErr = <-purged:
		p.Done = purgeErr == nil
	case <-time.After(b.o.purgeMax):
		cancel()
		purgeErr = <-purged
		p.Error = fmt.Sprintf("stopped after -purge-max %s", b.o.purgeMax)
	case <-ctx.Done():
		cancel()
		purgeErr = <-purged
	}
	p.Seconds = round(time.Since(started).Seconds(), 1)
	if purgeErr != nil && p.Error == "" {
		p.Error = purgeErr.Error()
	}
	phase.Store(3)
	p.WithoutAfter = openLoop(ctx, "webhook 50%, without purge, after", p.Rate, b.o.purgePhase,
		func(ctx context.Context) error { return after(ctx, 0) })
	p.Locks = sampler.stop()
	mu.Lock()
	defer mu.Unlock()
	tracer.mu.Lock()
	defer tracer.mu.Unlock()
	for k, s := range tracer.stats {
		s.TotalMs, s.MaxMs, s.FirstMs = round(s.TotalMs, 1), round(s.MaxMs, 1), round(s.FirstMs/float64(min(s.Count, stmtWindow)), 1)
		var last float64
		for _, ms := range s.last {
			last += ms
		}
		s.LastMs = round(last/float64(max(len(s.last), 1)), 1)
		p.Statements[k] = s
		if s.MaxMs > p.LongestMs {
			p.LongestMs, p.LongestKind = s.MaxMs, k
		}
	}
	p.LongestDuringMs = round(tracer.maxDuring, 1)
	p.P99Ratio = ratio(p.With.P99, (p.Without.P99+p.WithoutAfter.P99)/2)
	b.m.busy()
	return p, ctx.Err()
}

// purgeService is the service over a pool of its own whose statements tracer times.
func purgeService(ctx context.Context, st *stack, tracer pgx.QueryTracer) (*service.Service, func(), error) {
	pcfg, err := pgxpool.ParseConfig(st.dbURL)
	if err != nil {
		return nil, nil, err
	}
	pcfg.MaxConns = 2
	pcfg.ConnConfig.Tracer = tracer
	pcfg.ConnConfig.RuntimeParams["application_name"] = purgeAppName
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, err
	}
	cfg := config.Defaults() // the production retention windows and batch
	cfg.DatabaseURL, cfg.APIKeys = config.Secret(st.dbURL), []config.Secret{benchAPIKey}
	cfg.DokuBaseURL, cfg.DokuClientID, cfg.DokuSecretKey = "http://127.0.0.1:1", benchClientID, benchSecret
	cfg.DokuDefaultCustomerEmail = "bench@example.com"
	if err := cfg.Validate(); err != nil {
		pool.Close()
		return nil, nil, err
	}
	a, err := app.New(ctx, cfg, zerolog.Nop(), app.Options{Pool: pool, Gateway: &instantDoku{}})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return a.Service, func() { a.Close(); pool.Close() }, nil
}

// stmtTracer times every statement of the purge's pool, by kind.
type stmtTracer struct {
	mu        sync.Mutex
	stats     map[string]*stmtStat
	phase     atomic.Int32
	maxDuring float64 // the longest statement that ended while the webhooks ran
}

type traceStart struct {
	at   time.Time
	kind string
}

type traceKey struct{}

func (t *stmtTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{at: time.Now(), kind: purgeStatementKind(data.SQL)})
}

func (t *stmtTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	s, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	ms := float64(time.Since(s.at).Microseconds()) / 1000
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats[s.kind]
	if st == nil {
		st = &stmtStat{}
		t.stats[s.kind] = st
	}
	st.Count++
	st.TotalMs += ms
	st.MaxMs = max(st.MaxMs, ms)
	if st.Count <= stmtWindow {
		st.FirstMs += ms // divided by the count at the end
	}
	if len(st.last) < stmtWindow {
		st.last = append(st.last, ms)
	} else {
		st.last[st.Count%stmtWindow] = ms
	}
	if t.phase.Load() == 1 {
		t.maxDuring = max(t.maxDuring, ms)
	}
}

// purgeStatementKind names a purge statement by what it writes.
func purgeStatementKind(sql string) string {
	switch {
	case strings.Contains(sql, "DELETE FROM webhook_attempts"):
		return "deliveries and attempts"
	case strings.Contains(sql, "DELETE FROM events"):
		return "events"
	case strings.Contains(sql, "UPDATE notifications"):
		return "notification bodies"
	case strings.Contains(sql, "worker_leases"):
		return "lease"
	}
	return "other"
}

// lockSampler samples the bench database's lock waits until stopped.
type lockSampler struct {
	stopc chan struct{}
	done  chan [4]lockStats
}

func startLockSampler(ctx context.Context, st *stack, phase *atomic.Int32) (*lockSampler, error) {
	conn, err := pgx.Connect(ctx, st.adminURL)
	if err != nil {
		return nil, err
	}
	s := &lockSampler{stopc: make(chan struct{}), done: make(chan [4]lockStats, 1)}
	go func() {
		defer conn.Close(context.WithoutCancel(ctx))
		var out [4]lockStats
		type waitKey struct {
			pid   int
			since time.Time
		}
		type wait struct {
			ms            float64
			what          string
			rel           uint32
			purge, onPurg bool
			phase         int32
		}
		waits := map[waitKey]*wait{}
		t := time.NewTicker(lockSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
			case <-ctx.Done():
			case <-t.C:
				ph := phase.Load()
				out[ph].Samples++
				rows, err := conn.Query(ctx, `
					SELECT l.pid, l.waitstart, extract(epoch FROM clock_timestamp() - l.waitstart) * 1000,
						l.locktype || ' ' || l.mode, coalesce(l.relation, 0),
						a.application_name = $2,
						EXISTS (SELECT 1 FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(l.pid)) AND b.application_name = $2)
					FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
					WHERE NOT l.granted AND l.waitstart IS NOT NULL AND a.datname = $1`, st.dbName, purgeAppName)
				if err != nil {
					continue
				}
				var k waitKey
				var w wait
				_, _ = pgx.ForEachRow(rows, []any{&k.pid, &k.since, &w.ms, &w.what, &w.rel, &w.purge, &w.onPurg}, func() error {
					if old, ok := waits[k]; ok {
						old.ms, old.onPurg = max(old.ms, w.ms), old.onPurg || w.onPurg
					} else {
						nw := w
						nw.phase = ph
						waits[k] = &nw
					}
					return nil
				})
				continue
			}
			// Relations are named in the bench database (pg_locks shows their oids).
			names := map[uint32]string{}
			if rows, err := st.pool.Query(context.WithoutCancel(ctx), `SELECT oid, relname::text FROM pg_class WHERE relkind IN ('r', 'i')`); err == nil {
				var oid uint32
				var name string
				_, _ = pgx.ForEachRow(rows, []any{&oid, &name}, func() error { names[oid] = name; return nil })
			}
			for _, w := range waits {
				if w.rel != 0 {
					w.what += " on " + cmp.Or(names[w.rel], fmt.Sprint(w.rel))
				}
				o := &out[w.phase]
				if w.purge {
					o.PurgeWaited++
					continue
				}
				o.Waits++
				if w.ms > o.LongestMs {
					o.LongestMs, o.Longest = round(w.ms, 1), w.what
				}
				if w.onPurg {
					o.OnPurge++
					o.LongestOnPurg = max(o.LongestOnPurg, round(w.ms, 1))
				}
			}
			s.done <- out
			return
		}
	}()
	return s, nil
}

func (s *lockSampler) stop() [4]lockStats {
	close(s.stopc)
	return <-s.done
}

func (p *purgeResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nPurge of the year under webhooks at %.0f/s (half the webhook row's rate at volume), %.0f s a phase:\n", p.Rate, p.PhaseSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tdone\tfailed\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tlock waits\tlongest wait ms\twaits on the purge\t")
	for _, r := range []struct {
		o openResult
		l lockStats
	}{{p.Without, p.Locks[0]}, {p.With, p.Locks[1]}, {p.WithoutAfter, p.Locks[3]}} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.1f\t%d\t\n", r.o.Name, r.o.Completed, r.o.Failed, r.o.P50, r.o.P99,
			r.o.P999, r.o.Max, r.l.Waits, r.l.LongestMs, r.l.OnPurge)
	}
	tw.Flush()
	fmt.Fprintf(w, "  p99 with ÷ mean of the two without: %.2f (target <= %.1f)\n", p.P99Ratio, maxVolumeRatio)
	state := "done"
	if !p.Done {
		state = "not done: " + p.Error
	}
	fmt.Fprintf(w, "  the purge: %.0f s in all (%s);", p.Seconds, state)
	tables := make([]string, 0, len(p.Rows))
	for t := range p.Rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		fmt.Fprintf(w, " %s %d;", t, p.Rows[t])
	}
	fmt.Fprintln(w)
	kinds := make([]string, 0, len(p.Statements))
	for k := range p.Statements {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		s := p.Statements[k]
		growth := ""
		if s.Count >= 2*stmtWindow {
			growth = fmt.Sprintf(" (first %d: %.1f, last %d: %.1f)", stmtWindow, s.FirstMs, stmtWindow, s.LastMs)
		}
		fmt.Fprintf(w, "  statements %-24s %6d, mean %.1f ms%s, longest %.1f ms\n", k+":", s.Count,
			s.TotalMs/float64(max(s.Count, 1)), growth, s.MaxMs)
	}
	fmt.Fprintf(w, "  longest purge statement (= longest lock hold): %.1f ms (%s); %.1f ms while the webhooks ran\n",
		p.LongestMs, p.LongestKind, p.LongestDuringMs)
	fmt.Fprintf(w, "  lock waits while the purge ran alone: %d (longest %.1f ms, %d on the purge); the purge itself waited %d times\n",
		p.Locks[2].Waits, p.Locks[2].LongestMs, p.Locks[2].OnPurge, p.Locks[0].PurgeWaited+p.Locks[1].PurgeWaited+p.Locks[2].PurgeWaited+p.Locks[3].PurgeWaited)
	if p.Locks[1].Longest != "" {
		fmt.Fprintf(w, "  the longest wait under the purge was for %s\n", p.Locks[1].Longest)
	}
	fmt.Fprintf(w, "  method: %s\n", p.Method)
}
