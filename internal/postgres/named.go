package postgres

import (
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// named is a statement written with @name parameters, rewritten once into $n placeholders. The hot
// paths' statements are compiled at start: pgx.NamedArgs rewrites the SQL text on every call, which
// cost a tenth of the service's CPU per webhook.
type named struct {
	sql   string
	names []string // the parameter of each placeholder, $1 first
}

var namedParam = regexp.MustCompile(`@([A-Za-z_][A-Za-z0-9_]*)`)

// compile rewrites sql's @names (none of which may sit inside a string literal) into placeholders,
// one per distinct name.
func compile(sql string) named {
	var n named
	index := map[string]int{}
	n.sql = namedParam.ReplaceAllStringFunc(sql, func(m string) string {
		name := m[1:]
		i, ok := index[name]
		if !ok {
			n.names = append(n.names, name)
			i = len(n.names)
			index[name] = i
		}
		return "$" + strconv.Itoa(i)
	})
	return n
}

// with is the statement with its arguments taken from args by name; a name args lacks is NULL, as
// with pgx.NamedArgs.
func (n named) with(args pgx.NamedArgs) stmt {
	vals := make([]any, len(n.names))
	for i, name := range n.names {
		vals[i] = args[name]
	}
	return stmt{sql: n.sql, args: vals}
}
