package plans_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/postgres"
)

// TestHotStatementsStayOnTheirIndexes runs every operation of the request path and the workers once
// on a service whose pool records each statement it sends (drive, recorder), loads a year of traffic
// into the same database (yearOfTraffic), and explains every recorded statement with the arguments
// it was sent with: it fails on a plan that reads a table that grows with traffic from end to end,
// sorts a set that grows with it, or reads such a table a page at a time to fill a Limit (rule.check).
//
// Each statement is planned twice, because a long-running service meets both plans (explainCustom,
// explainGeneric). The custom plan, made for the recorded arguments, is what PostgreSQL runs for a
// prepared statement's first five executions (pgx prepares every statement on each connection). The
// generic plan, made without the values, is what it switches to for the connection's life when its
// estimated cost is below the average of the custom plans' (plancache.c, choose_custom_plan): a
// statement whose filters are optional (a filter that applies only when its parameter is set) can
// have good custom plans and a generic plan that reads everything. Every custom plan must pass; a
// generic plan must pass when PostgreSQL would choose it over the drive's custom plans
// (genericChosen). A generic plan that breaks the rule but costs more than the custom plans is logged
// as latent, not failed: PostgreSQL keeps planning that statement afresh, so it is not what runs —
// but it is a change of statistics away from running.
//
// PLANS_DROP_INDEX=name[,name] drops those indexes (in the transaction the plans are made in, rolled
// back after) to see which statements rely on them; PLANS_SHOW=1 logs every plan.
func TestHotStatementsStayOnTheirIndexes(t *testing.T) {
	rec := newRecorder()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Tracer: rec, Config: stackConfig(rc)})
	tablesClassified(t, s.DB.Pool)

	start := time.Now()
	drive(t, s, rc)
	rec.freeze()
	t.Logf("drive: %d distinct statements in %s", len(rec.statements()), time.Since(start).Round(time.Millisecond))
	covered(t, rec)

	load(t, s.DB.Pool, s.Service.Environment())

	var stmts []*statement
	var unplanned []string
	for _, st := range rec.statements() {
		if plannable(st.SQL) {
			stmts = append(stmts, st)
		} else {
			unplanned = append(unplanned, shorten(st.SQL, 40))
		}
	}
	t.Logf("sent but without a plan to check: %s", strings.Join(unplanned, ", "))
	var drop []string
	if v := os.Getenv("PLANS_DROP_INDEX"); v != "" {
		drop = strings.Split(v, ",")
	}
	start = time.Now()
	verdicts := explainAll(t, s.DB.Pool, stmts, drop)
	t.Logf("explained %d statements (%d plans) in %s", len(stmts), len(verdicts), time.Since(start).Round(time.Millisecond))
	judge(t, verdicts)

	// The rule must see what it is for: with an index a hot statement relies on gone, a plan of that
	// statement that passed breaks it. Each index is dropped in a transaction of its own, rolled back
	// after.
	t.Run("DroppedIndexIsCaught", func(t *testing.T) {
		if len(drop) > 0 {
			t.Skip("PLANS_DROP_INDEX is set: the plans above are not the schema's, so nothing here would be compared with them")
		}
		passed := map[string]bool{}
		for _, v := range verdicts {
			if len(v.problems) == 0 {
				passed[v.key()] = true
			}
		}
		for _, c := range []struct{ index, method string }{
			{"events_xid_seq_idx", "ListEvents"},
			{"invoice_events_invoice_id_idx", "Events"},
			{"webhook_attempts_delivery_idx", "GetEvent"},
			{"invoices_status_id_idx", "List"},
		} {
			caught := false
			for _, v := range explainAll(t, s.DB.Pool, stmts, []string{c.index}) {
				if v.stmt.Method == c.method && v.plan == "custom" && len(v.problems) > 0 && passed[v.key()] {
					caught = true
					t.Logf("without %s: %s (custom plan #%d): %s", c.index, label(v.stmt), v.sample, strings.Join(v.problems, "; "))
				}
			}
			if !caught {
				t.Errorf("with %s dropped, every plan of %s still passes: the rule no longer sees what it is for", c.index, c.method)
			}
		}
	})
}

// verdict is one plan of one statement and what in it breaks the rule.
type verdict struct {
	stmt     *statement
	plan     string // "custom" (with sample n of the arguments) or "generic"
	sample   int
	root     planNode
	problems []string
}

// key names the plan among the plans of a pass: its statement, its kind and its sample.
func (v verdict) key() string { return fmt.Sprintf("%p/%s/%d", v.stmt, v.plan, v.sample) }

// cost is the planner's estimate of the plan's total cost.
func (v verdict) cost() float64 { return v.root.TotalCost }

// explainAll plans every statement, custom with each sample of its arguments and generic, in one
// transaction that drops the indexes named in drop first and is rolled back after.
func explainAll(t *testing.T, pool *pgxpool.Pool, stmts []*statement, drop []string) []verdict {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, idx := range drop {
		if _, err := tx.Exec(ctx, "DROP INDEX "+pgx.Identifier{strings.TrimSpace(idx)}.Sanitize()); err != nil {
			t.Fatalf("drop index %s: %v", idx, err)
		}
		t.Logf("dropped index %s for this pass", idx)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	r := rule{entries: map[string]float64{}}
	rows, err := tx.Query(ctx, `SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'i') AND n.nspname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var entries float64
	if _, err := pgx.ForEachRow(rows, []any{&name, &entries}, func() error { r.entries[name] = entries; return nil }); err != nil {
		t.Fatal(err)
	}
	var out []verdict
	// Each plan in a savepoint: a statement that cannot be explained is reported, and the others
	// still are.
	try := func(st *statement, what string, fn func() (planNode, error)) (planNode, bool) {
		if _, err := tx.Exec(ctx, "SAVEPOINT plan"); err != nil {
			t.Fatal(err)
		}
		root, err := fn()
		if err != nil {
			t.Errorf("%s: cannot explain the %s plan: %v\n    %s", label(st), what, err, shorten(st.SQL, 300))
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT plan"); err != nil {
				t.Fatal(err)
			}
			return planNode{}, false
		}
		if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT plan"); err != nil {
			t.Fatal(err)
		}
		return root, true
	}
	for _, st := range stmts {
		for i, args := range st.Samples {
			if root, ok := try(st, "custom", func() (planNode, error) { return explainCustom(ctx, tx, st.SQL, args) }); ok {
				out = append(out, verdict{stmt: st, plan: "custom", sample: i + 1, root: root, problems: r.check(root)})
			}
		}
		if root, ok := try(st, "generic", func() (planNode, error) { return explainGeneric(ctx, tx, st.SQL) }); ok {
			out = append(out, verdict{stmt: st, plan: "generic", root: root, problems: r.check(root)})
		}
	}
	return out
}

// label names a statement in messages: the Store method that sent it.
func label(st *statement) string {
	if st.Method == "" {
		return "(outside postgres.Store)"
	}
	return "Store." + st.Method
}

// judge fails the test on every plan that breaks the rule and is not a known finding, and on a known
// finding that no longer occurs (fixed: remove it from the list). A generic plan that breaks the rule
// fails only when PostgreSQL would switch to it (genericChosen); one it would not is logged as latent:
// it costs more than the custom plans now, but it is what a change of statistics or arguments could
// bring. It logs every statement's verdicts — the list of what was checked — and, with PLANS_SHOW=1,
// every plan.
func judge(t *testing.T, verdicts []verdict) {
	t.Helper()
	show := os.Getenv("PLANS_SHOW") != ""
	used := map[*knownFinding]bool{}
	byStmt := map[*statement][]verdict{}
	var order []*statement
	for _, v := range verdicts {
		if byStmt[v.stmt] == nil {
			order = append(order, v.stmt)
		}
		byStmt[v.stmt] = append(byStmt[v.stmt], v)
	}
	var lines []string
	for _, st := range order {
		vs := byStmt[st]
		var marks []string
		for _, v := range vs {
			name := v.plan
			if v.plan == "custom" {
				name = fmt.Sprintf("custom#%d", v.sample)
			}
			mark := "ok"
			k := known(v)
			switch {
			case len(v.problems) == 0:
			case v.plan == "generic" && !genericChosen(v, vs):
				mark = "latent"
				t.Logf("latent: %s (generic plan, which PostgreSQL would not choose over the custom plans now) %s\n    %s\n%s",
					label(st), strings.Join(v.problems, "; "), shorten(st.SQL, 400), render(v.root))
			case k != nil:
				used[k] = true
				mark = "KNOWN"
				t.Logf("known finding, %s (%s plan): %s\n    why: %s\n    fix: %s\n    %s\n    arguments: %s\n%s", label(st), name,
					strings.Join(v.problems, "; "), k.why, k.fix, shorten(st.SQL, 400), argsText(v), render(v.root))
			default:
				mark = "FAIL"
				t.Errorf("%s (%s plan) breaks the rule: %s\n    %s\n    arguments: %s\n    plan:\n%s", label(st), name,
					strings.Join(v.problems, "; "), shorten(st.SQL, 400), argsText(v), render(v.root))
			}
			if show {
				t.Logf("%s (%s plan, %s):\n    %s\n    arguments: %s\n%s", label(st), name, mark, shorten(st.SQL, 300), argsText(v), render(v.root))
			}
			marks = append(marks, fmt.Sprintf("%s %s %.0f", name, mark, v.cost()))
		}
		lines = append(lines, fmt.Sprintf("%-26s %-60s %s", label(st), shorten(st.SQL, 60), strings.Join(marks, ", ")))
	}
	t.Logf("statements explained (plan, verdict, estimated cost):\n%s", strings.Join(lines, "\n"))
	groupUsed := map[string]bool{}
	for i := range knownFindings {
		if k := &knownFindings[i]; used[k] && k.group != "" {
			groupUsed[k.group] = true
		}
	}
	for i := range knownFindings {
		if k := &knownFindings[i]; !used[k] && (k.group == "" || !groupUsed[k.group]) {
			t.Errorf("known finding no longer occurs (fixed? remove it from knownFindings): %s %q %s plan: %s", k.method, k.sql, k.plan, k.problem)
		}
	}
}

// genericChosen reports whether PostgreSQL would run the statement with its generic plan g, once a
// prepared statement has had its five custom plans: when g's cost is below the custom plans' average,
// each counted with the cost of planning it again (plancache.c, choose_custom_plan), the custom plans
// made for the drive's arguments standing for production's. A statement without parameters only ever
// has the generic plan.
func genericChosen(g verdict, all []verdict) bool {
	if len(g.stmt.Samples) == 0 || len(g.stmt.Samples[0]) == 0 {
		return true
	}
	var sum float64
	var n int
	for _, v := range all {
		if v.plan == "custom" {
			sum += v.cost() + planningCost(v.root)
			n++
		}
	}
	return n == 0 || g.cost() < sum/float64(n)
}

// planningCost is what PostgreSQL counts for planning a statement again (plancache.c,
// cached_plan_cost): 1000 × cpu_operator_cost (0.0025 unless configured) per relation, plus one.
func planningCost(root planNode) float64 {
	relations := 1
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Relation != "" {
			relations++
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(root)
	return 1000 * 0.0025 * float64(relations)
}

func argsText(v verdict) string {
	if v.plan != "custom" {
		return "(none: a generic plan)"
	}
	if len(v.stmt.Samples[v.sample-1]) == 0 {
		return "(none)"
	}
	raw, err := json.Marshal(v.stmt.Samples[v.sample-1])
	if err != nil {
		return fmt.Sprint(v.stmt.Samples[v.sample-1])
	}
	return shorten(string(raw), 300)
}

// knownFinding is a plan that breaks the rule today and needs a change to the service's SQL or
// schema, listed so that the test passes meanwhile; each says why and what would fix it. It matches a
// failing plan of a statement sent by method whose SQL contains sql, of kind plan ("custom",
// "generic" or "" for both), with a problem containing problem.
type knownFinding struct {
	method, sql, plan, problem string
	why, fix                   string
	// group names findings that are one problem planned in different ways: the planner may choose
	// either, so the group, not each, must still occur.
	group string
}

var knownFindings = []knownFinding{
	{
		method: "ListEvents", sql: "d.state = $", plan: "custom", problem: "rows of events (Index Scan using events_xid_seq_idx)", group: "dead listing",
		why: "GET /v1/events?delivery_state=dead[&endpoint=] walks the whole feed in (xid, seq) order and looks every " +
			"event up in webhook_deliveries: with one event in a hundred dead, a page of 100 reads ~27,000 events. " +
			"webhook_deliveries_dead_idx finds the dead ones, but not in the feed's order, so the planner walks the feed",
		fix: "keep the event's xid on its delivery (webhook_deliveries.event_xid, written with it) and index the dead ones " +
			"in feed order: CREATE INDEX CONCURRENTLY webhook_deliveries_dead_feed_idx ON webhook_deliveries (endpoint, " +
			"event_xid, event_seq) WHERE state = 'dead', the statement walking that index and joining events by seq; " +
			"or, since dead deliveries are kept only EVENTS_DEAD_RETENTION, read them from webhook_deliveries_dead_idx " +
			"and sort them (a bounded set only while that window and the failure rate are small)",
	},
	{
		method: "ListEvents", sql: "d.state = $", plan: "custom", problem: "webhook_deliveries_dead_idx on webhook_deliveries with no Index Cond", group: "dead listing",
		why: "the same listing, planned the other way round (the planner picks either, by the statistics of the load): every " +
			"dead delivery read from webhook_deliveries_dead_idx and the events sorted into feed order — bounded by " +
			"EVENTS_DEAD_RETENTION and the failure rate, not by the page",
		fix: "the same: the event's xid on its delivery, and the dead ones indexed in feed order",
	},
}

func known(v verdict) *knownFinding {
	for i := range knownFindings {
		k := &knownFindings[i]
		if k.method != v.stmt.Method || (k.plan != "" && k.plan != v.plan) || !strings.Contains(v.stmt.SQL, k.sql) {
			continue
		}
		for _, p := range v.problems {
			if strings.Contains(p, k.problem) {
				return k
			}
		}
	}
	return nil
}

// sendsNoStatement are the exported Store methods that send nothing to the database themselves.
var sendsNoStatement = map[string]string{
	"OnPublished": "sets the callback run after a commit",
}

// covered fails the test for every exported postgres.Store method the drive never had send a
// statement: its statements would go unexplained. The fix is to drive the operation that calls it.
func covered(t *testing.T, rec *recorder) {
	t.Helper()
	seen := rec.seen()
	typ := reflect.TypeOf(&postgres.Store{})
	for i := 0; i < typ.NumMethod(); i++ {
		m := typ.Method(i).Name
		if sendsNoStatement[m] == "" && !seen[m] {
			t.Errorf("postgres.Store.%s sent no statement during the drive: drive the operation that calls it (drive_test.go), "+
				"so that its statements are explained", m)
		}
	}
}

// tablesClassified fails the test for a table of the schema that neither growingTables nor
// smallTables lists: the rule cannot judge a scan of it.
func tablesClassified(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if !growingTables[table] && smallTables[table] == "" {
			t.Errorf("table %s is in neither growingTables nor smallTables (plan_test.go): say whether it grows with traffic", table)
		}
	}
}

func decodeInto(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", shorten(string(body), 200), err)
	}
}
