package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ptr(v float64) *float64 { return &v }

// costRow is a row with a cost per request.
func costRow(name string, ops, app, pg float64) result {
	return result{Name: name, OpsPerSec: ops, Cost: &cost{Requests: 1000, App: "o2o", AppCPU: app, ServiceCPU: app, PostgresCPU: ptr(pg)}}
}

func findTarget(t *testing.T, r *report, what string) target {
	t.Helper()
	for _, tg := range r.Targets {
		if tg.What == what {
			return tg
		}
	}
	t.Fatalf("no target %q among %v", what, r.Targets)
	return target{}
}

func TestCostTargetsAreRatiosToTheCeiling(t *testing.T) {
	ceil := result{Name: rowCeiling, OpsPerSec: 1000, Cost: &cost{Requests: 1000, App: "pgbench", AppCPU: 150, PostgresCPU: ptr(1000)}}
	r := &report{Ceiling: &ceiling{TPS: 1000}, Scenarios: []result{ceil,
		costRow(rowCreate, 400, 601, 1999),  // create: 400/s is 0.40 of the ceiling; 1999 µs < 2 × 1000
		costRow(rowWebhook, 450, 451, 1501), // webhook: 0.45 < 0.5; 1501 µs > 1.5 × 1000; 451 µs > 3 × 150
	}}
	for i := range r.Scenarios {
		r.Scenarios[i].TxPerOp = 1
	}
	r.setCeiling()
	r.judge()
	for what, met := range map[string]bool{
		"webhook ÷ ceiling":          false,
		"create ÷ ceiling":           true,
		"PostgreSQL CPU per webhook": false,
		"PostgreSQL CPU per create":  true,
		"service CPU per webhook":    false,
		"service CPU per create":     false, // 601 > 4 × 150
	} {
		if got := findTarget(t, r, what); got.Met != met {
			t.Errorf("%s: met %v, want %v (%s)", what, got.Met, met, got.Got)
		}
	}
}

func TestNoCostTargetsWithoutTheCeilingsCost(t *testing.T) {
	if got := costTargets(nil, &result{Cost: &cost{}}, nil); got != nil {
		t.Errorf("targets without a ceiling: %v", got)
	}
	remote := &result{Name: rowCeiling, Cost: &cost{App: "pgbench", AppCPU: 100}} // PostgreSQL's CPU not measured
	got := costTargets(remote, &result{Cost: &cost{ServiceCPU: 250}}, nil)
	if len(got) != 1 || got[0].What != "service CPU per webhook" || !got[0].Met {
		t.Errorf("with pgbench's CPU alone: %v", got)
	}
}

func TestVolumeComparesRowByRowAndJudgesAt1Point2(t *testing.T) {
	empty := &report{Scenarios: []result{costRow(rowCeiling, 1000, 100, 1000), costRow(rowWebhook, 700, 600, 1800), costRow(rowCreate, 500, 900, 2000)},
		OpenLoop: []openResult{{Name: "webhook 50%", Achieved: 350, Cost: &cost{Requests: 10, AppCPU: 700, PostgresCPU: ptr(2000)}}}}
	volume := &report{Scenarios: []result{costRow(rowWebhook, 650, 650, 2200), costRow(rowCreate, 480, 1200, 2100)},
		OpenLoop: []openResult{{Name: "webhook 50%", Achieved: 350, Cost: &cost{Requests: 10, AppCPU: 700, PostgresCPU: ptr(2100)}}}}
	cmp := compareCosts(empty, volume)
	if len(cmp) != 3 {
		t.Fatalf("%d rows compared, want webhook, create and the open loop: %+v", len(cmp), cmp)
	}
	byRow := map[string]volumeCost{}
	for _, c := range cmp {
		byRow[c.Row] = c
	}
	if c := byRow[rowWebhook]; c.PgRatio != 1.22 || c.AppRatio != 1.08 || c.Met {
		t.Errorf("webhook: %+v (pg 2200/1800 = 1.22 misses)", c)
	}
	if c := byRow[rowCreate]; c.AppRatio != 1.33 || c.Met {
		t.Errorf("create: %+v (app 1200/900 = 1.33 misses)", c)
	}
	if c := byRow["open webhook 50%"]; !c.Met {
		t.Errorf("open loop: %+v", c)
	}
	r := &report{Volume: &volumeReport{Invoices: 100, Compare: cmp,
		Claims: []claimCost{{What: "delivery claim, 10 due", Invoices: 0, PgCPU: 500}, {What: "delivery claim, 10 due", Invoices: 10, PgCPU: 520},
			{What: "delivery claim, 10 due", Invoices: 100, PgCPU: 590}},
		Purge: &purgeResult{Rate: 300, Without: openResult{P99: 20}, With: openResult{P99: 23}, P99Ratio: 1.15}}}
	r.judgeVolume()
	if got := findTarget(t, r, "at volume: 3 webhook"); got.Met {
		t.Errorf("%+v", got)
	}
	if got := findTarget(t, r, "delivery claim, 10 due"); !got.Met || !strings.Contains(got.Got, "1.18") {
		t.Errorf("claim at the full volume against the empty database: %+v", got)
	}
	if got := findTarget(t, r, "webhook p99 under the purge"); !got.Met {
		t.Errorf("%+v", got)
	}
}

func TestShortRowKeepsNumberAndFirstWord(t *testing.T) {
	for name, want := range map[string]string{
		rowWebhook: "3 webhook", rowRawCreate: "4a raw", rowLittle: "2 create", "open webhook 50%": "open webhook 50%", "x": "x",
	} {
		if got := shortRow(name); got != want {
			t.Errorf("shortRow(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestStatementDeltasArePerRequestMergedByText(t *testing.T) {
	before := map[int64]stmtCounters{1: {query: "SELECT a", calls: 10, rows: 10, totalExecMs: 5}, 3: {query: "UPDATE c", calls: 5, totalExecMs: 1}}
	after := map[int64]stmtCounters{
		1: {query: "SELECT a", calls: 110, rows: 210, blocks: 400, totalExecMs: 25},
		2: {query: "SELECT a", calls: 100, rows: 0, blocks: 0, totalExecMs: 20}, // the same text, prepared with other types
		3: {query: "UPDATE c", calls: 5, totalExecMs: 1},                        // not called during the row
		4: {query: "INSERT b", calls: 100, rows: 100, blocks: 100, totalExecMs: 60},
	}
	got := statementDeltas(before, after, 100)
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	if got[0].Query != "INSERT b" || got[0].TotalPct != 60 || got[0].CallsPerReq != 1 || got[0].MeanMs != 0.6 {
		t.Errorf("first: %+v", got[0])
	}
	if s := got[1]; s.Query != "SELECT a" || s.CallsPerReq != 2 || s.RowsPerReq != 2 || s.BlocksPerCall != 2 || s.TotalPct != 40 {
		t.Errorf("merged: %+v", s)
	}
}

func TestClusterConfReadsKeyValuePairs(t *testing.T) {
	got, err := clusterConf(" autovacuum=off, shared_buffers = 256MB ,,search_path=a'b")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"autovacuum = 'off'", "shared_buffers = '256MB'", "search_path = 'a''b'"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{"autovacuum", "=x", "a b=1"} {
		if _, err := clusterConf(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestPurgeStatementsAreNamedByWhatTheyWrite(t *testing.T) {
	for sql, want := range map[string]string{
		"WITH scan AS (…), attempts AS (DELETE FROM webhook_attempts a USING scan …)": "deliveries and attempts",
		"WITH scan AS (…), del AS (DELETE FROM events e USING scan …)":                "events",
		"… thin AS (UPDATE notifications n SET body = ''::bytea …)":                   "notification bodies",
		"INSERT INTO worker_leases AS l …":                                            "lease",
	} {
		if got := purgeStatementKind(sql); got != want {
			t.Errorf("%s: %q, want %q", sql, got, want)
		}
	}
}

func TestComparisonPrintsPairs(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, ops := range []float64{500, 600, 510, 620} {
		r := &report{Ceiling: &ceiling{TPS: 1000}, Scenarios: []result{costRow(rowWebhook, ops, 600, 1800)}}
		r.Scenarios[0].OverCeiling = ops / 1000
		raw, _ := json.Marshal(r)
		f := filepath.Join(dir, []string{"b1", "a1", "b2", "a2"}[i]+".json")
		if err := os.WriteFile(f, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	var out bytes.Buffer
	if err := printComparison(&out, files); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 webhook ops/s", "500 → 600", "510 → 620", "0.50 → 0.60", "pair 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	if err := printComparison(&out, files[:3]); err == nil {
		t.Error("an odd number of reports: want an error")
	}
}

func TestRunBoundGrowsWithTheVolume(t *testing.T) {
	o := options{duration: 10 * time.Second, purgePhase: 20 * time.Second, purgeMax: 30 * time.Minute}
	plain := runBound(o)
	if plain != 2*time.Minute+250*time.Second {
		t.Errorf("plain bound %v", plain)
	}
	o.volume = 2_000_000
	if v := runBound(o); v < plain+time.Hour {
		t.Errorf("a 2 M volume run is bounded at %v", v)
	}
}
