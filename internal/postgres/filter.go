package postgres

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// filter is the WHERE clause of a list, with only the conditions that apply. Each combination of
// filters is then a statement text of its own, prepared on its own, with a plan that uses its index: a
// single text with optional conditions ("@x IS NULL OR col = @x") gets, after five executions, one
// generic plan for every combination, which walks the primary key and filters whatever was asked
// (internal/plans holds every list to its index).
type filter struct {
	conds []string
	args  pgx.NamedArgs
}

func newFilter(args pgx.NamedArgs) *filter { return &filter{args: args} }

// when adds cond, which names the parameter name, with value v, if ok.
func (f *filter) when(ok bool, cond, name string, v any) *filter {
	if ok {
		f.conds = append(f.conds, cond)
		f.args[name] = v
	}
	return f
}

// where is the clause: "WHERE …", or "" when nothing filters.
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(f.conds, " AND ")
}
