package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

type machine struct {
	Cores    int    `json:"cores"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
}

type report struct {
	When      time.Time    `json:"when"`
	Machine   machine      `json:"machine"`
	Duration  string       `json:"duration_per_scenario"`
	Ceiling   *ceiling     `json:"ceiling,omitempty"`
	Scenarios []result     `json:"scenarios"`
	OpenLoop  []openResult `json:"open_loop,omitempty"`
	// CostMethod says how the cost_per_request of every row was measured.
	CostMethod costMethod `json:"cost_method"`
	Memory     struct {
		IdleRSSMB  float64 `json:"service_idle_rss_mb"`
		PeakRSSMB  float64 `json:"service_peak_rss_mb"`
		FinalRSSMB float64 `json:"service_final_rss_mb"`
	} `json:"memory"`
	Targets []target `json:"targets"`
	// Volume is the -volume run: the rows again at volume, the claims and the purge.
	Volume *volumeReport `json:"volume,omitempty"`
}

type target struct {
	What   string `json:"what"`
	Target string `json:"target"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
}

func (r *report) add(res result) { r.Scenarios = append(r.Scenarios, res) }

// setRaw records the raw baseline beside the scenario whose name starts with prefix.
func (r *report) setRaw(prefix string, raw float64) {
	for i := range r.Scenarios {
		if strings.HasPrefix(r.Scenarios[i].Name, prefix) && raw > 0 {
			r.Scenarios[i].RawOpsPerSec = raw
			r.Scenarios[i].ServiceOverRaw = round(r.Scenarios[i].OpsPerSec/raw, 2)
		}
	}
}

// setCeiling reads every row that commits transactions against pgbench's rate.
func (r *report) setCeiling() {
	if r.Ceiling == nil || r.Ceiling.TPS <= 0 {
		return
	}
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		if s.TxPerOp > 0 {
			s.OverCeiling = round(s.OpsPerSec/r.Ceiling.TPS, 2)
			s.TxOverCeiling = round(s.OpsPerSec*float64(s.TxPerOp)/r.Ceiling.TPS, 2)
		}
	}
}

func (r *report) find(prefix string) *result {
	for i := range r.Scenarios {
		if strings.HasPrefix(r.Scenarios[i].Name, prefix) {
			return &r.Scenarios[i]
		}
	}
	return nil
}

func (r *report) findOpen(name string) *openResult {
	for i := range r.OpenLoop {
		if r.OpenLoop[i].Name == name {
			return &r.OpenLoop[i]
		}
	}
	return nil
}

// The cost targets are ratios to pgbench's own TPC-B transaction on the same server in the same run,
// so that they say what the service costs, not how fast the machine is: PostgreSQL's CPU per request
// against the server's per TPC-B transaction (a create commits two transactions, so it is held to
// two), and the service's CPU against pgbench's own client CPU per transaction — the least a client
// that sends a transaction's statements and reads the answers spends.
const (
	maxPgPerWebhook  = 1.5 // × PostgreSQL CPU per TPC-B transaction
	maxPgPerCreate   = 1.0 // × PostgreSQL CPU of two TPC-B transactions
	maxAppPerWebhook = 3.0 // × pgbench's CPU per transaction
	maxAppPerCreate  = 4.0
	minWebhookCeil   = 0.5 // ops/s ÷ pgbench tps
	minCreateCeil    = 0.35
	minServiceRaw    = 0.9
	maxVolumeRatio   = 1.2 // cost per request at volume ÷ on the empty database; purge p99 with ÷ without
)

// judge compares the run with the performance targets, each for the rows this run has. Throughput
// and cost are read against the ceiling, so that the targets hold on any machine.
func (r *report) judge() {
	c, w := r.find(rowCreate), r.find(rowWebhook)
	ceil := r.find(rowCeiling)
	for _, t := range []struct {
		what string
		row  *result
		min  float64
	}{{"webhook ÷ ceiling", w, minWebhookCeil}, {"create ÷ ceiling", c, minCreateCeil}} {
		switch {
		case t.row == nil || r.Ceiling == nil:
		case r.Ceiling.TPS <= 0:
			r.Targets = append(r.Targets, target{t.what, fmt.Sprintf(">= %.2f", t.min), "no ceiling: " + r.Ceiling.Missing, false})
		default:
			r.Targets = append(r.Targets, target{t.what, fmt.Sprintf(">= %.2f", t.min),
				fmt.Sprintf("%.2f (%.0f/s ÷ %.0f tps; per transaction %.2f)", t.row.OverCeiling, t.row.OpsPerSec, r.Ceiling.TPS, t.row.TxOverCeiling),
				t.row.OverCeiling >= t.min && t.row.Errors == 0})
		}
	}
	r.Targets = append(r.Targets, costTargets(ceil, w, c)...)
	for _, row := range []*result{c, w} {
		if row != nil && row.ServiceOverRaw > 0 {
			r.Targets = append(r.Targets, target{strings.Fields(row.Name)[1] + " service ÷ raw", fmt.Sprintf(">= %.2f", minServiceRaw),
				fmt.Sprintf("%.2f (%.0f/s ÷ %.0f/s)", row.ServiceOverRaw, row.OpsPerSec, row.RawOpsPerSec), row.ServiceOverRaw >= minServiceRaw})
		}
	}
	for _, name := range []string{"create 50%", "webhook 50%"} {
		if o := r.findOpen(name); o != nil {
			r.Targets = append(r.Targets, target{name + " of max, p99", "< 25 ms",
				fmt.Sprintf("%.1f ms at %.0f/s (%d failed)", o.P99, o.Achieved, o.Failed), o.P99 < 25 && o.Failed == 0})
		}
	}
	if l := r.find(rowLittle); l != nil {
		r.Targets = append(r.Targets, target{"create, DOKU 200 ms, 128 in flight", fmt.Sprintf(">= 90%% of %.0f/s", l.LittleBound),
			fmt.Sprintf("%.0f/s (%.0f%%)", l.OpsPerSec, l.LittleEfficiency*100), l.LittleEfficiency >= 0.9 && l.Errors == 0})
	}
	if s := r.find(rowStorm); s != nil {
		r.Targets = append(r.Targets, target{"duplicate storm", "exactly once", s.Note, !strings.HasPrefix(s.Note, "NOT")})
	}
	r.Targets = append(r.Targets,
		target{"service RSS idle", "< 50 MB", fmt.Sprintf("%.1f MB", r.Memory.IdleRSSMB), r.Memory.IdleRSSMB < 50},
		target{"service RSS peak under load", "< 150 MB", fmt.Sprintf("%.1f MB", r.Memory.PeakRSSMB), r.Memory.PeakRSSMB < 150})
}

// costTargets judges the CPU per request of the webhook and create rows against the ceiling's, when
// both were measured in this run.
func costTargets(ceil, w, c *result) []target {
	if ceil == nil || ceil.Cost == nil {
		return nil
	}
	var out []target
	if pg := ceil.Cost.PostgresCPU; pg != nil && *pg > 0 {
		for _, t := range []struct {
			what string
			row  *result
			tx   float64 // TPC-B transactions the op is allowed
			max  float64
		}{{"PostgreSQL CPU per webhook", w, 1, maxPgPerWebhook}, {"PostgreSQL CPU per create", c, 2, maxPgPerCreate}} {
			if t.row == nil || t.row.Cost == nil || t.row.Cost.PostgresCPU == nil {
				continue
			}
			ratio := *t.row.Cost.PostgresCPU / (t.tx * *pg)
			want := fmt.Sprintf("<= %.1f × TPC-B's", t.max)
			if t.tx == 2 {
				want = fmt.Sprintf("<= %.1f × 2 TPC-B's", t.max)
			}
			out = append(out, target{t.what, want, fmt.Sprintf("%.2f (%.0f µs ÷ %.0f µs × %.0f)", ratio, *t.row.Cost.PostgresCPU, *pg, t.tx),
				ratio <= t.max})
		}
	}
	if app := ceil.Cost.AppCPU; ceil.Cost.App == "pgbench" && app > 0 {
		for _, t := range []struct {
			what string
			row  *result
			max  float64
		}{{"service CPU per webhook", w, maxAppPerWebhook}, {"service CPU per create", c, maxAppPerCreate}} {
			if t.row == nil || t.row.Cost == nil {
				continue
			}
			ratio := t.row.Cost.ServiceCPU / app
			out = append(out, target{t.what, fmt.Sprintf("<= %.0f × pgbench's", t.max),
				fmt.Sprintf("%.2f (%.0f µs ÷ %.0f µs per transaction)", ratio, t.row.Cost.ServiceCPU, app), ratio <= t.max})
		}
	}
	return out
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\no2obench — %d cores, %s/%s, %s, PostgreSQL %s, %s per scenario\n",
		r.Machine.Cores, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.Go, r.Machine.Postgres, r.Duration)
	r.printClosed(w)
	r.printOpen(w)
	r.printCosts(w)
	r.printStatements(w)
	fmt.Fprintf(w, "\nservice RSS: idle %.1f MB, peak %.1f MB\n", r.Memory.IdleRSSMB, r.Memory.PeakRSSMB)
	if r.Volume != nil {
		r.Volume.print(w)
	}
	fmt.Fprintf(w, "\ntargets:\n")
	for _, t := range r.Targets {
		mark := "MET "
		if !t.Met {
			mark = "MISS"
		}
		fmt.Fprintf(w, "  [%s] %-36s %-16s got %s\n", mark, t.What, t.Target, t.Got)
	}
}

func (r *report) printClosed(w io.Writer) {
	fmt.Fprintln(w, "\nClosed loop: each client sends its next request when its last is answered (the maximum).")
	fmt.Fprintln(w, "÷ceil = ops/s ÷ pgbench tps; tx÷ceil counts the transactions an op commits (create 2, webhook 1).")
	if r.Ceiling != nil && r.Ceiling.Missing != "" {
		fmt.Fprintf(w, "ceiling: MISSING — %s\n", r.Ceiling.Missing)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconc\tops/s\tp50 ms\tp99 ms\terrors\tsvc÷raw\t÷ceil\ttx÷ceil\tLittle\t")
	for _, s := range r.Scenarios {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", s.Name, s.Concurrency, s.OpsPerSec,
			opt(s.P50, "%.2f"), opt(s.P99, "%.2f"), s.Errors, opt(s.ServiceOverRaw, "%.2f"), opt(s.OverCeiling, "%.2f"),
			opt(s.TxOverCeiling, "%.2f"), opt(s.LittleEfficiency*100, "%.0f%%"))
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		if s.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Note)
		}
		if s.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", s.Name, s.FirstError)
		}
	}
}

func (r *report) printOpen(w io.Writer) {
	if len(r.OpenLoop) == 0 {
		return
	}
	fmt.Fprintln(w, "\nOpen loop: requests started on a fixed schedule at a share of the closed-loop rate, whatever")
	fmt.Fprintln(w, "the answers; latency from each request's scheduled start (late = the generator's own worst lag).")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trate/s\tsched\tdone\tfailed\tgot/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tlate ms\t")
	for _, o := range r.OpenLoop {
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t\n", o.Name, o.Rate, o.Scheduled,
			o.Completed, o.Failed, o.Achieved, o.P50, o.P99, o.P999, o.Max, o.MaxLate)
	}
	tw.Flush()
	for _, o := range r.OpenLoop {
		if o.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", o.Name, o.FirstError)
		}
	}
}

func (r *report) printCosts(w io.Writer) {
	fmt.Fprintln(w, "\nCost per completed request: CPU µs of the app (the service; o2obench running its code for raw;")
	fmt.Fprintln(w, "pgbench for the ceiling) and of PostgreSQL; xacts (ids assigned: transactions that wrote) and")
	fmt.Fprintln(w, "WAL bytes are server-wide; commits and rows written are the database's pg_stat_database.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tapp\tapp µs\tpg µs\txacts\tcommits\trows\tstmts\tWAL B\tRSS MB\t")
	row := func(name string, c *cost, rss float64) {
		if c == nil {
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.2f\t%s\t%s\t%s\t%.0f\t%s\t\n", name, c.App, c.AppCPU, optp(c.PostgresCPU, "%.0f"),
			c.WriteXacts, optp(c.Commits, "%.2f"), optp(c.RowsWritten, "%.2f"), optp(c.Statements, "%.2f"), c.WALBytes, opt(rss, "%.1f"))
	}
	for _, s := range r.Scenarios {
		row(s.Name, s.Cost, s.RSSAfterMB)
	}
	for _, o := range r.OpenLoop {
		row("open "+o.Name, o.Cost, 0)
	}
	tw.Flush()
	m := r.CostMethod
	fmt.Fprintf(w, "  pg µs: %s\n  stmts: %s\n  open-loop rows: counters not read (they need %s of quiet each)\n",
		m.PostgresCPU, m.Statements, statsSettle)
	if m.OtherBackends > 0 {
		fmt.Fprintf(w, "  WARNING: up to %d connections to other databases were open during the run: pg µs, xacts and\n"+
			"  WAL B include whatever they did.\n", m.OtherBackends)
	}
}

// printStatements prints, when pg_stat_statements measured them, each row's most time-consuming
// statements per request.
func (r *report) printStatements(w io.Writer) {
	type named struct {
		name string
		c    *cost
	}
	var rows []named
	for _, s := range r.Scenarios {
		if s.Cost != nil && len(s.Cost.TopStatements) > 0 {
			rows = append(rows, named{s.Name, s.Cost})
		}
	}
	for _, o := range r.OpenLoop {
		if o.Cost != nil && len(o.Cost.TopStatements) > 0 {
			rows = append(rows, named{"open " + o.Name, o.Cost})
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nStatements per completed request (pg_stat_statements, top-level, the most execution time first;")
	fmt.Fprintln(w, "read ms: time waiting for reads, with track_io_timing; blocks: shared buffers hit or read, read/call: read):")
	for _, row := range rows {
		fmt.Fprintf(w, "  %s: %.2f statements per request\n", row.name, optv(row.c.Statements))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "    calls/req\trows/req\tmean ms\tread ms\tblocks/call\tread/call\ttime %\t\tstatement")
		for _, st := range row.c.TopStatements {
			fmt.Fprintf(tw, "    %.2f\t%.2f\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t\t%s\n", st.CallsPerReq, st.RowsPerReq, st.MeanMs, st.ReadMsPerCall,
				st.BlocksPerCall, st.ReadsPerCall, st.TotalPct, truncate(st.Query, 100))
		}
		tw.Flush()
	}
}

func optv(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// opt formats v, or "-" when it was not measured (zero).
func opt(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func optp(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func (r *report) write(path string) error {
	r.When = time.Now().UTC()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
