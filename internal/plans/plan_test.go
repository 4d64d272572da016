package plans_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The rule. A statement on the request path or in a worker must cost about the same with a year of
// data as with a day's, so its plan may not:
//
//  1. read a table that grows with traffic (growingTables) from end to end: a Seq Scan of one, or an
//     Index Scan or Index Only Scan of one with no Index Cond that no Limit stops — a walk of a whole
//     index costs what a Seq Scan does — unless the index is a partial one that holds a working set
//     (workingSetIndexes: the pending deliveries, the invoices still checked), which stays the size
//     of a few hours' or days' traffic however long the service runs. A Seq Scan of a table that
//     stays small (smallTables) or of a system catalog is fine. A table in neither list fails: a new
//     table is classified in the change that adds it (the test checks every table of the schema is).
//  2. sort more than boundedRows rows, by the planner's estimate. A Sort reads all of its input before
//     it returns a row, with or without a Limit above it, so what matters is how many rows go in: a
//     Sort of one invoice's rows, of the open attention items, of a page the Limit below it already
//     cut (Sort ← Limit ← Index Scan, or a Sort of a CTE that is a Limit's batch: limited) is bounded
//     and fine whatever its size; a Sort under a Limit whose input is a whole status of invoices
//     (Limit ← Sort ← Bitmap Heap Scan of every paid invoice) is not, however few rows the Limit
//     returns.
//  3. read more than boundedRows rows of a growing table to fill a Limit, and more than maxReadPerRow
//     for each row it returns, by the planner's estimate (rule.readForLimit): a page of 100 flagged
//     notifications found by walking the whole inbox newest first and filtering, or of dead
//     deliveries found by walking the whole feed and looking each event up, reads the table a page
//     at a time. (Both bounds, because a generic plan's Limit is estimated at a tenth of its input,
//     not at a page: what it reads per row returned is what tells a filter that keeps few rows.)
//
// Plans are judged by their shape and the planner's estimates (EXPLAIN without ANALYZE: nothing is
// executed, so the workers' claims and the purge's deletes can be explained like any read).
var growingTables = map[string]bool{
	"invoices": true, "payments": true, "invoice_events": true, "notifications": true, "attention_items": true,
	"events": true, "webhook_deliveries": true, "webhook_attempts": true, "payment_instructions": true,
}

// smallTables may be read whole: each stays small whatever the traffic, for the reason given.
var smallTables = map[string]string{
	"webhook_endpoints": "one row per endpoint the merchant ever registered: a handful",
	"worker_leases":     "one row per job that runs on one replica at a time (the purge)",
	"purge_marks":       "one row per purge walk",
	"stream_tokens": "only tokens still valid or expired less than a day ago (CreateStreamToken clears older ones as it " +
		"issues): about a day of checkout pages",
	"stream_watches":   "only the streams open now (WatchInvoice clears ended watches as it adds one)",
	"goose_db_version": "one row per migration (read by /readyz)",
}

// workingSetIndexes are partial indexes of growing tables that a plan may walk whole (rule 1): each
// holds only rows that leave it within hours or days, for the reason given.
var workingSetIndexes = map[string]string{
	"webhook_deliveries_due_idx":   "pending deliveries: delivered or dead within the retry period",
	"webhook_deliveries_order_idx": "pending deliveries: delivered or dead within the retry period",
	"invoices_check_due_idx": "invoices still checked: pending ones until their expiry, paid reusable codes until " +
		"RECONCILE_WINDOW after theirs",
	"invoices_env_check_due_idx": "invoices still checked: pending ones until their expiry, paid reusable codes until " +
		"RECONCILE_WINDOW after theirs",
	"invoices_creating_due_idx": "invoices being issued: they leave it when DOKU answers; the few DOKU never confirmed " +
		"wait there for a person (stuck_creating)",
	"invoices_env_creating_due_idx": "invoices being issued: they leave it when DOKU answers; the few DOKU never confirmed " +
		"wait there for a person (stuck_creating)",
}

// boundedRows is the most rows a Sort may take in (rule 2) and a Limit may read (rule 3) by the
// planner's estimate. The sets that stay bounded — an invoice's events, a page, the pending deliveries, the open attention items — are
// tens or hundreds of rows at a year's volume; a set that grows with traffic is thousands (1 % of a
// year of invoices is 2,000) to hundreds of thousands.
const boundedRows = 1000

// maxReadPerRow is how many rows a Limit's input may read for each row the Limit returns (rule 3): a
// filter that keeps one row in three (a feed page of one event type) reads three a row, fine; one that
// keeps one row in a hundred reads the table a hundred rows at a time.
const maxReadPerRow = 10

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType    string     `json:"Node Type"`
	Strategy    string     `json:"Strategy"`
	Operation   string     `json:"Operation"`
	Relation    string     `json:"Relation Name"`
	Index       string     `json:"Index Name"`
	IndexCond   string     `json:"Index Cond"`
	RecheckCond string     `json:"Recheck Cond"`
	Filter      string     `json:"Filter"`
	SortKey     []string   `json:"Sort Key"`
	CTEName     string     `json:"CTE Name"`
	Function    string     `json:"Function Name"`
	SubplanName string     `json:"Subplan Name"`
	Parent      string     `json:"Parent Relationship"`
	Rows        float64    `json:"Plan Rows"`
	TotalCost   float64    `json:"Total Cost"`
	Plans       []planNode `json:"Plans"`
}

// rule is the rule with what it needs to know of the database: the planner's count of the rows of
// each table and the entries of each index (pg_class.reltuples), for rule 3.
type rule struct {
	entries map[string]float64
}

// check applies the rule to a plan and returns what breaks it, one line each.
func (r rule) check(root planNode) []string {
	var problems []string
	ctes := map[string]planNode{}
	var collect func(n planNode)
	collect = func(n planNode) {
		if name, ok := strings.CutPrefix(n.SubplanName, "CTE "); ok && n.Parent == "InitPlan" {
			ctes[name] = n
		}
		for _, c := range n.Plans {
			collect(c)
		}
	}
	collect(root)
	var walk func(n planNode, bounded bool)
	walk = func(n planNode, bounded bool) {
		switch n.NodeType {
		case "Seq Scan":
			switch {
			case growingTables[n.Relation]:
				problems = append(problems, fmt.Sprintf("Seq Scan on %s (grows with traffic)", n.Relation))
			case smallTables[n.Relation] != "", strings.HasPrefix(n.Relation, "pg_"):
			default:
				problems = append(problems, fmt.Sprintf("Seq Scan on %s, a table neither growingTables nor smallTables classifies", n.Relation))
			}
		case "Index Scan", "Index Only Scan":
			if growingTables[n.Relation] && n.IndexCond == "" && !bounded && workingSetIndexes[n.Index] == "" {
				problems = append(problems, fmt.Sprintf("%s using %s on %s with no Index Cond and no Limit: the whole index",
					n.NodeType, n.Index, n.Relation))
			}
		case "Sort", "Incremental Sort":
			if input, ok := onlyChild(n); ok && limited(input, ctes) {
				break
			}
			if n.Rows > boundedRows {
				problems = append(problems, fmt.Sprintf("%s of ~%.0f rows by %s (more than %d: a set that grows with traffic)",
					n.NodeType, n.Rows, strings.Join(n.SortKey, ", "), boundedRows))
			}
		case "Limit":
			if scan, read := r.readForLimit(n); read > boundedRows && read > maxReadPerRow*n.Rows {
				problems = append(problems, fmt.Sprintf("Limit of ~%.0f rows reads ~%.0f rows of %s (%s) to find them: the rest are "+
					"filtered out", n.Rows, read, scan.Relation, scanName(scan)))
			}
		}
		for _, c := range n.Plans {
			walk(c, childBounded(n, c, bounded))
		}
	}
	walk(root, false)
	return problems
}

// readForLimit is rule 3: how many rows of a growing table the planner expects a Limit to read to
// find the rows it returns, through the scan that drives its input. A Limit needs fraction
// Limit.rows/input.rows of its input, so it reads that fraction of what the driving scan fetches: of
// every entry of the index, for a walk with no Index Cond that filters; of the entries its bitmap
// finds, for a Bitmap Heap Scan that filters; of the rows it returns, otherwise (a walk with an Index
// Cond and a Filter is counted low: EXPLAIN does not tell how many rows the condition alone finds).
// Rows read and filtered out, by a Filter or by a join above the scan, are what the rule counts.
func (r rule) readForLimit(limit planNode) (planNode, float64) {
	input, ok := onlyChild(limit)
	if !ok || input.Rows <= 0 || limit.Rows <= 0 {
		return planNode{}, 0
	}
	scan, ok := drivingScan(input)
	if !ok || !growingTables[scan.Relation] {
		return planNode{}, 0
	}
	fetched := scan.Rows
	switch {
	case scan.Filter == "":
	case (scan.NodeType == "Index Scan" || scan.NodeType == "Index Only Scan") && scan.IndexCond == "":
		fetched = max(fetched, r.entries[scan.Index])
	case scan.NodeType == "Bitmap Heap Scan":
		if bitmap, ok := onlyChild(scan); ok {
			fetched = max(fetched, bitmap.Rows)
		}
	case scan.NodeType == "Seq Scan":
		fetched = max(fetched, r.entries[scan.Relation])
	}
	return scan, min(1, limit.Rows/input.Rows) * fetched
}

// drivingScan is the scan whose rows, handed on one by one, make n's output: down the outer side of
// joins and through the nodes that pass rows on as they come. None when a node in between reads all
// of its input first (a Sort, an Aggregate, a Hash: rule 2's and rule 1's business) or merges several.
func drivingScan(n planNode) (planNode, bool) {
	for {
		switch n.NodeType {
		case "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan":
			return n, true
		case "Nested Loop", "Merge Join", "Hash Join":
			outer, ok := childAs(n, "Outer")
			if !ok {
				return planNode{}, false
			}
			n = outer
		case "Result", "LockRows", "Subquery Scan", "Materialize", "Memoize", "Unique", "Gather", "Gather Merge", "Limit":
			c, ok := onlyChild(n)
			if !ok {
				return planNode{}, false
			}
			n = c
		default:
			return planNode{}, false
		}
	}
}

// limited reports whether n's rows come from a Limit — directly, through nodes that pass rows on (a
// join's outer side, a DELETE … RETURNING of them), or from a CTE whose rows do: a batch of at most
// PURGE_BATCH rows, sorted to find its last, is bounded by the Limit however large the batch is set.
func limited(n planNode, ctes map[string]planNode) bool {
	for range 64 { // a plan is a tree: this bounds a CTE that would refer to itself
		switch n.NodeType {
		case "Limit":
			return true
		case "CTE Scan":
			cte, ok := ctes[n.CTEName]
			if !ok {
				return false
			}
			n = cte
		case "Nested Loop", "Merge Join", "Hash Join":
			outer, ok := childAs(n, "Outer")
			if !ok {
				return false
			}
			n = outer
		case "Result", "LockRows", "Subquery Scan", "Materialize", "Memoize", "Unique", "Gather", "Gather Merge", "ModifyTable":
			c, ok := onlyChild(n)
			if !ok {
				return false
			}
			n = c
		default:
			return false
		}
	}
	return false
}

// onlyChild is n's one input, InitPlans and SubPlans aside.
func onlyChild(n planNode) (planNode, bool) {
	var out []planNode
	for _, c := range n.Plans {
		if c.Parent != "InitPlan" && c.Parent != "SubPlan" {
			out = append(out, c)
		}
	}
	if len(out) != 1 {
		return planNode{}, false
	}
	return out[0], true
}

func childAs(n planNode, relationship string) (planNode, bool) {
	for _, c := range n.Plans {
		if c.Parent == relationship {
			return c, true
		}
	}
	return planNode{}, false
}

func scanName(n planNode) string {
	if n.Index != "" {
		return n.NodeType + " using " + n.Index
	}
	return n.NodeType
}

// childBounded says whether a Limit above stops child c of n early: a Limit bounds what it reads, and
// that bound reaches down through nodes that hand rows on as they get them, but not through those that
// read all of their input first (Sort, Hash, a plain or hashed Aggregate, a ModifyTable), nor into the
// inner side of a Nested Loop (scanned again for every outer row), nor into an InitPlan or SubPlan (run
// on its own).
func childBounded(n planNode, c planNode, bounded bool) bool {
	if c.Parent == "InitPlan" || c.Parent == "SubPlan" {
		return false
	}
	switch n.NodeType {
	case "Limit":
		return true
	case "Sort", "Incremental Sort", "Hash", "SetOp", "ModifyTable", "WindowAgg":
		return false
	case "Aggregate":
		return bounded && n.Strategy == "Sorted"
	case "Nested Loop":
		return bounded && c.Parent == "Outer"
	}
	return bounded
}

// render is a plan as indented lines, for a failure's message.
func render(root planNode) string {
	var b strings.Builder
	var walk func(n planNode, depth int)
	walk = func(n planNode, depth int) {
		b.WriteString(strings.Repeat("  ", depth))
		if n.Parent == "InitPlan" || n.Parent == "SubPlan" {
			b.WriteString("[" + n.SubplanName + "] ")
		}
		b.WriteString(n.NodeType)
		if n.Strategy != "" && n.Strategy != "Plain" {
			b.WriteString(" (" + n.Strategy + ")")
		}
		if n.Operation != "" && n.NodeType == "ModifyTable" {
			b.WriteString(" " + n.Operation)
		}
		if n.Index != "" {
			b.WriteString(" using " + n.Index)
		}
		if n.Relation != "" {
			b.WriteString(" on " + n.Relation)
		}
		if n.CTEName != "" {
			b.WriteString(" on CTE " + n.CTEName)
		}
		if n.Function != "" {
			b.WriteString(" of " + n.Function + "()")
		}
		fmt.Fprintf(&b, " rows=%.0f cost=%.0f", n.Rows, n.TotalCost)
		for _, c := range []struct{ name, v string }{{"cond", n.IndexCond}, {"recheck", n.RecheckCond}, {"filter", n.Filter}} {
			if c.v != "" {
				fmt.Fprintf(&b, " %s: %s", c.name, shorten(c.v, 100))
			}
		}
		if len(n.SortKey) > 0 {
			b.WriteString(" key: " + strings.Join(n.SortKey, ", "))
		}
		b.WriteString("\n")
		for _, c := range n.Plans {
			walk(c, depth+1)
		}
	}
	walk(root, 2)
	return b.String()
}

var spaces = regexp.MustCompile(`\s+`)

// shorten is s on one line, cut to n characters.
func shorten(s string, n int) string {
	s = strings.TrimSpace(spaces.ReplaceAllString(s, " "))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// plannable reports whether a statement has a plan to check: EXPLAIN takes SELECT, INSERT, UPDATE,
// DELETE and WITH; the rest (BEGIN, COMMIT, LISTEN, SET, pgx's "-- ping") has none.
func plannable(sql string) bool {
	s := strings.TrimSpace(sql)
	for strings.HasPrefix(s, "--") || strings.HasPrefix(s, "/*") {
		if strings.HasPrefix(s, "--") {
			_, s, _ = strings.Cut(s, "\n")
		} else {
			_, s, _ = strings.Cut(s, "*/")
		}
		s = strings.TrimSpace(s)
	}
	switch strings.ToUpper(firstWord.FindString(s)) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "WITH":
		return true
	}
	return false
}

var firstWord = regexp.MustCompile(`^[A-Za-z]+`)

// explainCustom is the plan of sql with args: what PostgreSQL plans for the statement's first
// executions on a connection (a custom plan, made for the values given). The statement is sent
// unnamed (describe-exec), so nothing is cached between the plans this test makes.
func explainCustom(ctx context.Context, tx pgx.Tx, sql string, args []any) (planNode, error) {
	var raw string
	err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, append([]any{pgx.QueryExecModeDescribeExec}, args...)...).Scan(&raw)
	if err != nil {
		return planNode{}, err
	}
	return decodePlan(raw)
}

// explainGeneric is the generic plan of sql: the one made without the values, which a prepared
// statement (pgx prepares every statement it sends) may switch to after its fifth execution and keep
// for the connection's life. The statement is prepared as pgx prepares it (its parameter types
// inferred), and EXPLAIN EXECUTE with plan_cache_mode = force_generic_plan shows that plan; its
// arguments are NULLs, which a generic plan does not look at.
func explainGeneric(ctx context.Context, tx pgx.Tx, sql string) (planNode, error) {
	const name = "plans_generic"
	simple := pgx.QueryExecModeSimpleProtocol
	if _, err := tx.Exec(ctx, "PREPARE "+name+" AS "+sql, simple); err != nil {
		return planNode{}, err
	}
	defer func() { _, _ = tx.Exec(ctx, "DEALLOCATE "+name, simple) }()
	var params int
	if err := tx.QueryRow(ctx, `SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1`, name).Scan(&params); err != nil {
		return planNode{}, err
	}
	call := name
	if params > 0 {
		call += "(" + strings.TrimSuffix(strings.Repeat("NULL, ", params), ", ") + ")"
	}
	var raw string
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE "+call, simple).Scan(&raw); err != nil {
		return planNode{}, err
	}
	return decodePlan(raw)
}

func decodePlan(raw string) (planNode, error) {
	var out []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return planNode{}, err
	}
	if len(out) != 1 {
		return planNode{}, errors.New("EXPLAIN returned no plan")
	}
	return out[0].Plan, nil
}
