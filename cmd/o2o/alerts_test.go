package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
)

// The monitoring files in deploy/ are held to the service: the alert rules pass promtool's own unit
// tests, every alert has a case that fires and one that stays quiet, links to its entry in the
// runbook, and every metric the rules and the dashboard query is one a running service exports.
// A misspelt metric in an alert is an alert that never fires, and nothing else would say so.

const (
	rulesFile     = "../../deploy/prometheus/o2o-alerts.yaml"
	rulesDir      = "../../deploy/prometheus"
	dashboardFile = "../../deploy/grafana/o2o.json"
	runbookFile   = "../../deploy/RUNBOOK.md"
	runbookURL    = "https://github.com/merchant/o2o/blob/main/deploy/RUNBOOK.md#"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (r rule) name() string {
	if r.Alert != "" {
		return "alert " + r.Alert
	}
	return "recording rule " + r.Record
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return out
}

// ruleTestFiles are promtool's unit tests of the rules: every *.test.yaml beside them.
func ruleTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(rulesDir, "*.test.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.yaml in %s (%v)", rulesDir, err)
	}
	return files
}

// promtool is Prometheus' own checker; CI installs it (Debian's package prometheus). Missing, the
// test fails rather than skips: a skipped check is one nobody notices is gone.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: apt-get install prometheus (Debian's package ships it; .ci/run installs it), " +
			"or put a promtool from a Prometheus release on PATH")
	}
	return path
}

// runPromtool runs promtool and reports whether it succeeded; its output is in the failure.
func runPromtool(t *testing.T, bin string, args ...string) bool {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		return false
	}
	return true
}

// The rule file is valid and its unit tests pass; the dashboard's queries parse as PromQL.
func TestAlertRulesPassPromtool(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	runPromtool(t, bin, "check", "rules", rulesFile)
	runPromtool(t, bin, append([]string{"test", "rules"}, ruleTestFiles(t)...)...)

	// promtool parses PromQL only in rule files: each dashboard query becomes a recording rule, with
	// Grafana's variables replaced by what they stand for.
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".+")
	var rules []map[string]string
	var panels []string
	for i, q := range dashboardQueries(t) {
		name := fmt.Sprintf("dashboard_query_%d", i)
		rules = append(rules, map[string]string{"record": name, "expr": grafanaVars.Replace(q.expr)})
		panels = append(panels, fmt.Sprintf("%s: panel %q", name, q.panel))
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if !runPromtool(t, bin, "check", "rules", tmp) {
		t.Errorf("the dashboard's queries, as promtool names them:\n%s", strings.Join(panels, "\n"))
	}
}

// Each alert says how bad it is, what it means and where its runbook entry is; the runbook's Alerts
// section has exactly the rule file's alerts; each alert's unit tests include a case that fires and
// one that stays quiet.
func TestAlertRulesAreDocumentedAndTested(t *testing.T) {
	t.Parallel()
	rules := loadRules(t)
	raw, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	runbook := string(raw)
	headings := anchors(runbook)

	var alerts []string
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if slices.Contains(alerts, r.Alert) {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		alerts = append(alerts, r.Alert)
		if s := r.Labels["severity"]; s != "page" && s != "ticket" {
			t.Errorf("alert %s: severity %q, want page or ticket", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s", r.Alert, a)
			}
		}
		u := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(u, runbookURL)
		switch {
		case !ok:
			t.Errorf("alert %s: runbook_url %q does not start with %s", r.Alert, u, runbookURL)
		case !slices.Contains(headings, anchor):
			t.Errorf("alert %s: runbook_url %s: deploy/RUNBOOK.md has no heading with the anchor %q", r.Alert, u, anchor)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("alert %s: runbook_url %s leads to #%s, not to its own entry #%s", r.Alert, u, anchor, strings.ToLower(r.Alert))
		}
	}

	documented := runbookAlerts(t, runbook)
	for _, a := range alerts {
		if !slices.Contains(documented, a) {
			t.Errorf("deploy/RUNBOOK.md's Alerts section has no ### %s", a)
		}
	}
	for _, a := range documented {
		if !slices.Contains(alerts, a) {
			t.Errorf("deploy/RUNBOOK.md's Alerts section documents %s, which %s does not define", a, rulesFile)
		}
	}

	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, file := range ruleTestFiles(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(raw, &tf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, g := range tf.Tests {
			for _, c := range g.AlertRuleTest {
				if !slices.Contains(alerts, c.Alertname) {
					// promtool passes a quiet case of an alert that does not exist.
					t.Errorf("%s tests %s, which %s does not define", file, c.Alertname, rulesFile)
				}
				if len(c.ExpAlerts) > 0 {
					fires[c.Alertname] = true
				} else {
					quiet[c.Alertname] = true
				}
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("alert %s has no unit test in which it fires", a)
		}
		if !quiet[a] {
			t.Errorf("alert %s has no unit test in which it stays quiet", a)
		}
	}
}

// runbookAlerts are the ### headings of the runbook's "## Alerts" section.
func runbookAlerts(t *testing.T, runbook string) []string {
	t.Helper()
	start := strings.Index(runbook, "\n## Alerts\n")
	if start < 0 {
		t.Fatal("deploy/RUNBOOK.md has no \"## Alerts\" section")
	}
	section := runbook[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var out []string
	for _, line := range strings.Split(stripCodeBlocks(section), "\n") {
		if name, ok := strings.CutPrefix(line, "### "); ok {
			out = append(out, strings.TrimSpace(name))
		}
	}
	return out
}

type dashboardQuery struct {
	panel, expr string
}

// dashboardPanel is a panel of the dashboard; a collapsed row holds its panels inside it.
type dashboardPanel struct {
	Title      string            `json:"title"`
	Type       string            `json:"type"`
	Datasource *dashboardSource  `json:"datasource"`
	Panels     []dashboardPanel  `json:"panels"`
	Targets    []dashboardTarget `json:"targets"`
}

type dashboardTarget struct {
	Expr       string           `json:"expr"`
	Datasource *dashboardSource `json:"datasource"`
}

type dashboardSource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashboardQueries are the PromQL expressions of the dashboard's panels, and checks that each panel
// and query uses the dashboard's data source variable.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	want := dashboardSource{Type: "prometheus", UID: "${DS_PROMETHEUS}"}
	var out []dashboardQuery
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || *p.Datasource != want {
				t.Errorf("dashboard panel %q: data source %v, want %v", p.Title, p.Datasource, want)
			}
			if len(p.Targets) == 0 {
				t.Errorf("dashboard panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				if q.Datasource == nil || *q.Datasource != want {
					t.Errorf("dashboard panel %q: a query's data source is %v, want %v", p.Title, q.Datasource, want)
				}
				out = append(out, dashboardQuery{panel: p.Title, expr: q.Expr})
			}
		}
	}
	walk(d.Panels)
	if len(out) < 20 {
		t.Fatalf("only %d dashboard queries found: is the dashboard's shape still what this test reads?", len(out))
	}
	return out
}

// dashboardVariableQueries are the queries of the dashboard's query variables (label_values(…)).
func dashboardVariableQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

var (
	// PromQL's string literals, where label values are: a value may look like a name.
	promqlStrings = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	// A whole identifier: a metric, a recorded rule's level:metric:operation name, a label, a
	// function or a keyword. \b keeps the h:5m of a subquery's [1h:5m] out.
	promqlIdent = regexp.MustCompile(`\b[a-zA-Z_][a-zA-Z0-9_:]*`)
)

// queriedNames are the series names an expression reads: the service's metrics (o2o_, and the
// Go and process collectors' go_ and process_), and names recorded by rules (they have a colon).
func queriedNames(expr string) (metrics, recorded []string) {
	for _, id := range promqlIdent.FindAllString(promqlStrings.ReplaceAllString(expr, `""`), -1) {
		switch {
		case strings.Contains(id, ":"):
			recorded = append(recorded, id)
		case strings.HasPrefix(id, "o2o_"), strings.HasPrefix(id, "process_"), strings.HasPrefix(id, "go_"):
			metrics = append(metrics, id)
		}
	}
	return metrics, recorded
}

// scrapedNames are the names of the samples of a /metrics answer: a histogram's are its _bucket,
// _sum and _count, never its bare family name, which no query can read.
func scrapedNames(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

// Every metric the alerts and the dashboard read is one the service exports. The scrape is of a
// real stack after the traffic that makes every family appear: an invoice created (DOKU's latency,
// a transition) and paid through DOKU's notification, its events delivered to an endpoint, a status
// check, and a second replica whose configuration disagrees with the endpoint registry (that gauge
// exists only while a disagreement lasts).
func TestMonitoringQueriesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) {
		apitest.Endpoint("orders", rc)(c)
		c.EventsInterval = 10 * time.Millisecond
	}})
	s.Deliver()
	paid := s.Create(apitest.NewInvoice("INV-MON-1", "alfa"))
	if paid.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", paid.Status, paid.Body)
	}
	inv := paid.Invoice(t)
	s.Pay(inv.Code(t), inv.Amount)
	if r := s.Create(apitest.NewInvoice("INV-MON-2", "indomaret")); r.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", r.Status, r.Body)
	}
	s.Reconcile(1)

	scrape := func(send func(apitest.Request) apitest.Response) string {
		r := send(apitest.Request{Method: http.MethodGet, Path: "/metrics"})
		if r.Status != http.StatusOK {
			t.Fatalf("GET /metrics: HTTP %d %s", r.Status, r.Body)
		}
		return string(r.Body)
	}
	var delivered string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		delivered = scrape(s.Send)
		if strings.Contains(delivered, `o2o_webhook_delivery_duration_seconds_count{endpoint="orders"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no webhook delivery to orders within 10s")
		}
	}
	other := s.Replica(func(c *config.Config) { c.EventsEndpoints, c.EventsSecrets = nil, nil })
	if err := other.App.Deliverer.CheckRegistry(context.Background()); err != nil {
		t.Fatal(err)
	}
	exported := scrapedNames(delivered)
	for name := range scrapedNames(scrape(other.Send)) {
		exported[name] = true
	}

	rules := loadRules(t)
	recorded := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	checked := 0
	check := func(where, expr string) {
		metrics, names := queriedNames(expr)
		for _, m := range metrics {
			checked++
			if !exported[m] {
				t.Errorf("%s queries %s, which the service does not export (exported names like it: %v)", where, m, similar(exported, m))
			}
		}
		for _, n := range names {
			if !recorded[n] {
				t.Errorf("%s queries %s, which no rule of %s records", where, n, rulesFile)
			}
		}
	}
	for _, r := range rules {
		check(rulesFile+": "+r.name(), r.Expr)
	}
	for _, q := range dashboardQueries(t) {
		check(fmt.Sprintf("%s: panel %q", dashboardFile, q.panel), q.expr)
	}
	for _, q := range dashboardVariableQueries(t) {
		check(dashboardFile+": variable query", q)
	}
	if checked < 50 {
		t.Errorf("only %d metric names found in the rules and the dashboard: is the name pattern still right?", checked)
	}
	t.Logf("%d metric names of the rules and the dashboard checked against the %d names the service exported", checked, len(exported))
}

// similar are the exported names sharing name's first two words, to make a misspelling plain.
func similar(exported map[string]bool, name string) []string {
	words := strings.SplitN(name, "_", 3)
	prefix := strings.Join(words[:min(2, len(words))], "_")
	var out []string
	for n := range exported {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
