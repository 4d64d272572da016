package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// What a scenario costs per completed request: CPU of the program doing the work and of PostgreSQL,
// and the database work. Each is a difference between a sample just before the scenario and one just
// after it, divided by the requests that completed.
//
// Most of it can be read at once: CPU from /proc, transaction ids and WAL position from the server.
// PostgreSQL's per-database counters (pg_stat_database) cannot: since PostgreSQL 15 a backend
// publishes its counters at most once a second and, once idle, only 10 s after its last transaction
// (PGSTAT_IDLE_INTERVAL). pg_stat_force_next_flush() flushes only the backend that calls it, never the
// service's; pg_stat_clear_snapshot() only drops the reader's cache. So those counters are read only
// after the bench database has been quiet for statsSettle, before and after the scenario.
const statsSettle = 11 * time.Second

// cost is per completed request. Nil pointers were not measured (see costMethod).
type cost struct {
	Requests int `json:"requests"` // the divisor: requests that completed without error
	// App names whose CPU AppCPU is: the process that ran the application's code — the service for
	// the HTTP scenarios, o2obench itself for the raw baseline (it runs the service's code in
	// process), pgbench for the ceiling.
	App         string   `json:"app"`
	AppCPU      float64  `json:"app_cpu_us"`
	ServiceCPU  float64  `json:"service_cpu_us"`
	BenchCPU    float64  `json:"o2obench_cpu_us"` // the load generator (and the raw baseline's service)
	PostgresCPU *float64 `json:"postgres_cpu_us,omitempty"`
	// Server-wide, read at once: transaction ids assigned (transactions that wrote) and WAL bytes.
	WriteXacts float64 `json:"write_transactions"`
	WALBytes   float64 `json:"wal_bytes"`
	// The scenario's database, after statsSettle: commits (read-only ones too) and rows inserted,
	// updated or deleted; statements when pg_stat_statements is loaded.
	Commits     *float64 `json:"commits,omitempty"`
	RowsWritten *float64 `json:"rows_written,omitempty"`
	Statements  *float64 `json:"statements,omitempty"`
	// TopStatements are, with pg_stat_statements, the statements that took the most of the server's
	// execution time during the row, per completed request.
	TopStatements []stmtCost `json:"top_statements,omitempty"`
}

// stmtCost is one statement's share of a row, from pg_stat_statements.
type stmtCost struct {
	Query         string  `json:"query"`
	CallsPerReq   float64 `json:"calls_per_request"`
	RowsPerReq    float64 `json:"rows_per_request"`
	MeanMs        float64 `json:"mean_ms"`
	BlocksPerCall float64 `json:"shared_blocks_per_call"` // hit or read
	ReadsPerCall  float64 `json:"shared_blocks_read_per_call"`
	// ReadMsPerCall is the time spent waiting for reads, with track_io_timing on (else 0).
	ReadMsPerCall float64 `json:"read_ms_per_call"`
	TotalPct      float64 `json:"share_of_execution_time_pct"`
}

// stmtCounters are pg_stat_statements' running totals of one statement.
type stmtCounters struct {
	query         string
	calls, rows   int64
	blocks, reads int64
	totalExecMs   float64
	readMs        float64
}

// topStatements is how many statements of each row the report keeps.
const topStatements = 8

// costMethod says how costs were measured on this run, and what may have inflated them.
type costMethod struct {
	ClockTicks  float64 `json:"clock_ticks_per_sec"`
	PostgresCPU string  `json:"postgres_cpu"`
	Statements  string  `json:"statements"`
	// OtherBackends is the most client backends of other databases seen connected at any sample:
	// PostgreSQL's CPU, WAL and transaction ids are the whole server's, theirs included.
	OtherBackends int `json:"other_backends_seen"`
}

// meter takes the samples.
type meter struct {
	admin      *pgx.Conn // on the admin database, so that reading adds nothing to the bench database's counters
	pss        *pgx.Conn // on the bench database when pg_stat_statements is loaded, else nil
	benchDB    string
	svcPID     int
	postmaster int // 0 when the server's processes are not visible from here
	quietSince time.Time
	method     costMethod
}

func newMeter(ctx context.Context, st *stack) (*meter, error) {
	m := &meter{benchDB: st.dbName, svcPID: st.svc.Process.Pid, quietSince: time.Now()}
	m.method.ClockTicks = clockTicks()
	var err error
	if m.admin, err = pgx.Connect(ctx, st.adminURL); err != nil {
		return nil, err
	}
	m.postmaster, m.method.PostgresCPU = findPostmaster(ctx, m.admin)
	var libs string
	if err := m.admin.QueryRow(ctx, "SHOW shared_preload_libraries").Scan(&libs); err != nil {
		m.close()
		return nil, err
	}
	m.method.Statements = "not measured: pg_stat_statements is not in shared_preload_libraries"
	if strings.Contains(libs, "pg_stat_statements") {
		if _, err := st.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			m.close()
			return nil, err
		}
		if m.pss, err = pgx.Connect(ctx, st.dbURL); err != nil {
			m.close()
			return nil, err
		}
		m.method.Statements = "pg_stat_statements: calls (BEGIN and COMMIT count when pg_stat_statements.track_utility is on)"
	}
	return m, nil
}

func (m *meter) close() {
	for _, c := range []*pgx.Conn{m.admin, m.pss} {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// busy records that the bench database has just been worked on (a scenario, seeding): its counters
// need statsSettle from now.
func (m *meter) busy() { m.quietSince = time.Now() }

// measure runs fn, a scenario on database db that returns how many requests completed, and returns
// what each cost. Without counters, only what can be read at once is measured (no waiting).
func (m *meter) measure(ctx context.Context, db string, counters bool, fn func() int) (*cost, error) {
	if counters {
		if err := m.settle(ctx, db); err != nil {
			return nil, err
		}
	}
	before, err := m.sample(ctx, db, counters)
	if err != nil {
		return nil, err
	}
	done := fn()
	if db != m.benchDB {
		// Its clients have gone: wait for their backends to exit, which publishes their counters and
		// hands their CPU to the postmaster.
		if err := m.settle(ctx, db); err != nil {
			return nil, err
		}
	}
	after, err := m.sample(ctx, db, false)
	if err != nil {
		return nil, err
	}
	if db == m.benchDB {
		m.busy()
	}
	if counters {
		if err := m.settle(ctx, db); err != nil {
			return nil, err
		}
		if after.commits, after.rows, err = m.dbCounters(ctx, db); err != nil {
			return nil, err
		}
	}
	return m.cost(before, after, done, counters), nil
}

// settle waits until db's counters are complete: statsSettle after the last work on the bench
// database, or, for another database, until none of its backends is left.
func (m *meter) settle(ctx context.Context, db string) error {
	if db == m.benchDB {
		return sleep(ctx, time.Until(m.quietSince.Add(statsSettle)))
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		var n int
		if err := m.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n); err != nil || n == 0 {
			return err
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// snapshot is the running totals at one instant; CPU in clock ticks.
type snapshot struct {
	svcCPU, benchCPU, pgCPU int64
	xid, wal                int64
	commits, rows           int64 // with counters only
	statements              int64 // with pg_stat_statements only
	perStatement            map[int64]stmtCounters
}

func (m *meter) sample(ctx context.Context, db string, counters bool) (snapshot, error) {
	var s snapshot
	s.svcCPU = readStat(m.svcPID).cpu()
	s.benchCPU = readStat(os.Getpid()).own() // not what it reaped: pgbench is measured on its own
	if m.postmaster > 0 {
		s.pgCPU = serverCPU(m.postmaster)
	}
	// pg_snapshot_xmax of the current snapshot is the next transaction id to be assigned (reading it
	// assigns none); the insert position is every WAL byte written so far.
	var others int
	err := m.admin.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
			pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,
			(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
				AND pid <> pg_backend_pid() AND datname <> ALL($1::text[]))`,
		[]string{m.benchDB, db}).Scan(&s.xid, &s.wal, &others)
	if err != nil {
		return s, fmt.Errorf("sample the server's counters: %w", err)
	}
	m.method.OtherBackends = max(m.method.OtherBackends, others)
	if m.pss != nil {
		// The sampling statements themselves are left out; their transactions still count commits.
		rows, err := m.pss.Query(ctx, `SELECT queryid, left(regexp_replace(query, '\s+', ' ', 'g'), 200), calls, rows,
				shared_blks_hit + shared_blks_read, shared_blks_read, total_exec_time, blk_read_time
			FROM pg_stat_statements
			WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND queryid IS NOT NULL AND toplevel
			  AND query NOT LIKE '%pg_stat_statements%'`, db)
		if err != nil {
			return s, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		s.perStatement = map[int64]stmtCounters{}
		var id int64
		var c stmtCounters
		if _, err := pgx.ForEachRow(rows, []any{&id, &c.query, &c.calls, &c.rows, &c.blocks, &c.reads, &c.totalExecMs, &c.readMs}, func() error {
			s.perStatement[id] = c
			s.statements += c.calls
			return nil
		}); err != nil {
			return s, fmt.Errorf("read pg_stat_statements: %w", err)
		}
	}
	if counters {
		if s.commits, s.rows, err = m.dbCounters(ctx, db); err != nil {
			return s, err
		}
	}
	return s, nil
}

// dbCounters reads db's commits and rows written. Each query is its own transaction, so with
// stats_fetch_consistency = cache (the default) it sees what the backends have published by now.
func (m *meter) dbCounters(ctx context.Context, db string) (commits, rows int64, err error) {
	err = m.admin.QueryRow(ctx, `SELECT xact_commit, tup_inserted + tup_updated + tup_deleted
		FROM pg_stat_database WHERE datname = $1`, db).Scan(&commits, &rows)
	if err != nil {
		err = fmt.Errorf("read pg_stat_database: %w", err)
	}
	return commits, rows, err
}

func (m *meter) cost(a, b snapshot, done int, counters bool) *cost {
	c := &cost{Requests: done, App: "o2o"}
	if done <= 0 {
		return c
	}
	n := float64(done)
	us := func(ticks int64) float64 { return round(float64(ticks)/m.method.ClockTicks*1e6/n, 0) }
	per := func(v int64) float64 { return round(float64(v)/n, 2) }
	ptr := func(v float64) *float64 { return &v }
	c.ServiceCPU, c.BenchCPU = us(b.svcCPU-a.svcCPU), us(b.benchCPU-a.benchCPU)
	c.AppCPU = c.ServiceCPU
	if m.postmaster > 0 {
		c.PostgresCPU = ptr(us(b.pgCPU - a.pgCPU))
	}
	c.WriteXacts, c.WALBytes = per(b.xid-a.xid), round(float64(b.wal-a.wal)/n, 0)
	if counters {
		c.Commits, c.RowsWritten = ptr(per(b.commits-a.commits)), ptr(per(b.rows-a.rows))
	}
	if m.pss != nil {
		c.Statements = ptr(per(b.statements - a.statements))
		c.TopStatements = statementDeltas(a.perStatement, b.perStatement, n)
	}
	return c
}

// statementDeltas is what each statement did between two samples, per request, the most
// time-consuming first (topStatements of them). Entries of the same text are one statement (the same
// statement prepared with other parameter types has an id of its own).
func statementDeltas(before, after map[int64]stmtCounters, requests float64) []stmtCost {
	type sum struct {
		calls, rows, blocks, reads int64
		ms, readMs                 float64
	}
	byText := map[string]*sum{}
	var texts []string
	var total float64
	for id, b := range after {
		a := before[id]
		if b.calls-a.calls <= 0 {
			continue
		}
		s := byText[b.query]
		if s == nil {
			s = &sum{}
			byText[b.query] = s
			texts = append(texts, b.query)
		}
		s.calls += b.calls - a.calls
		s.rows += b.rows - a.rows
		s.blocks += b.blocks - a.blocks
		s.reads += b.reads - a.reads
		s.ms += b.totalExecMs - a.totalExecMs
		s.readMs += b.readMs - a.readMs
		total += b.totalExecMs - a.totalExecMs
	}
	out := make([]stmtCost, 0, len(texts))
	for _, q := range texts {
		s := byText[q]
		c := stmtCost{Query: q, CallsPerReq: round(float64(s.calls)/requests, 2), RowsPerReq: round(float64(s.rows)/requests, 2),
			MeanMs: round(s.ms/float64(s.calls), 3), BlocksPerCall: round(float64(s.blocks)/float64(s.calls), 1),
			ReadsPerCall: round(float64(s.reads)/float64(s.calls), 1), ReadMsPerCall: round(s.readMs/float64(s.calls), 3)}
		if total > 0 {
			c.TotalPct = 100 * s.ms / total
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y stmtCost) int { return cmp.Compare(y.TotalPct, x.TotalPct) })
	out = out[:min(len(out), topStatements)]
	for i := range out {
		out[i].TotalPct = round(out[i].TotalPct, 1)
	}
	return out
}

// findPostmaster finds the server's postmaster — the parent of this connection's backend — when the
// server runs on this machine where /proc shows it, and says how PostgreSQL's CPU is measured.
func findPostmaster(ctx context.Context, admin *pgx.Conn) (int, string) {
	var backend int
	if err := admin.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, "not measured: " + err.Error()
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", backend))
	if !strings.HasPrefix(string(comm), "postgres") {
		return 0, "not measured: the server's processes are not visible here (another host or container)"
	}
	pm := readStat(backend).ppid
	return pm, fmt.Sprintf("the whole server: postmaster %d, its live children and those that exited; other databases' too", pm)
}

// serverCPU is the CPU used so far by the postmaster's whole tree. A child that exits is reaped by the
// postmaster, whose cutime/cstime then hold its time, so the sum never loses an exited backend.
func serverCPU(postmaster int) int64 {
	total := readStat(postmaster).cpu()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s := readStat(pid); s.ppid == postmaster {
			total += s.cpu()
		}
	}
	return total
}

// procStat is the part of /proc/<pid>/stat the meter uses; times in clock ticks.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func (s procStat) own() int64 { return s.utime + s.stime }
func (s procStat) cpu() int64 { return s.utime + s.stime + s.cutime + s.cstime }

// readStat reads a process's stat; a zero procStat when it is gone.
func readStat(pid int) procStat {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(raw, ')') // the command name may hold spaces and parentheses
	if err != nil || i < 0 {
		return procStat{}
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3, state
	if len(f) < 15 {
		return procStat{}
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return procStat{ppid: int(n(4)), utime: n(14), stime: n(15), cutime: n(16), cstime: n(17)}
}

// clockTicks is the unit of /proc's times, sysconf(_SC_CLK_TCK); 100 (every Linux port's USER_HZ)
// when getconf cannot say.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if v, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && perr == nil && v > 0 {
		return v
	}
	return 100
}
