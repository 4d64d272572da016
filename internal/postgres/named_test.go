package postgres

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestCompileNamed(t *testing.T) {
	n := compile(`SELECT @b::int, @a, @b, x::text FROM t WHERE y = @a_2`)
	if n.sql != `SELECT $1::int, $2, $1, x::text FROM t WHERE y = $3` {
		t.Errorf("sql %q", n.sql)
	}
	st := n.with(pgx.NamedArgs{"a": 1, "b": "two", "a_2": 3.0})
	if !slices.Equal(st.args, []any{"two", 1, 3.0}) {
		t.Errorf("args %v", st.args)
	}
}
