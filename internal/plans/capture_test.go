package plans_test

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/postgres"
)

// recorder is a pgx tracer that keeps every distinct SQL text the service sends, single statements
// and the statements of batches alike, with a few samples of their arguments and the postgres.Store
// method that sent them. It is what makes the list of statements the test explains the service's own:
// nothing is copied out of the code by hand, so a statement added to the store is explained as soon
// as the drive calls the method that sends it, and a store method the drive never calls fails the
// test (coverage).
type recorder struct {
	mu      sync.Mutex
	frozen  bool
	byText  map[string]*statement
	order   []*statement
	methods map[string]bool // every exported Store method seen on the stack of a statement
}

// statement is one distinct SQL text as the server received it ($n placeholders).
type statement struct {
	SQL string
	// Method is the innermost exported postgres.Store method on the stack when it was sent (the one
	// that wrote it); "" when none was (a query from outside the store).
	Method  string
	Samples [][]any
	keys    map[string]bool
}

// maxSamples bounds the argument samples kept per statement. Distinct samples are what tell the
// filters of one statement apart (List with and without a status, say), each planned on its own.
const maxSamples = 16

func newRecorder() *recorder {
	return &recorder{byText: map[string]*statement{}, methods: map[string]bool{}}
}

// freeze stops recording: what the test sends afterwards (the load, the EXPLAINs) is not the service's.
func (r *recorder) freeze() {
	r.mu.Lock()
	r.frozen = true
	r.mu.Unlock()
}

// statements are the captured statements in the order first seen.
func (r *recorder) statements() []*statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*statement(nil), r.order...)
}

// seen are the exported Store methods that sent at least one statement (or called one that did).
func (r *recorder) seen() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.methods))
	for m := range r.methods {
		out[m] = true
	}
	return out
}

func (r *recorder) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	sql, args := data.SQL, data.Args
	// pgx hands the tracer the call as made: its options lead the arguments, and named arguments are
	// rewritten into $n only after it. Doing the same here gives the text and arguments the server
	// receives.
options:
	for len(args) > 0 {
		switch opt := args[0].(type) {
		case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
			args = args[1:]
		case pgx.QueryRewriter:
			var err error
			if sql, args, err = opt.RewriteQuery(ctx, conn, sql, args[1:]); err != nil {
				return ctx
			}
			break options
		default:
			break options
		}
	}
	r.record(sql, args)
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery sees each statement of a batch (already rewritten) as its result is read.
func (r *recorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	r.record(data.SQL, data.Args)
}

func (r *recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// storeFrame is how the runtime names a method of *postgres.Store: "<pkg path>.(*Store).<Method>".
var storeFrame = reflect.TypeOf(postgres.Store{}).PkgPath() + ".(*Store)."

func (r *recorder) record(sql string, args []any) {
	methods := storeMethods()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return
	}
	for _, m := range methods {
		r.methods[m] = true
	}
	st := r.byText[sql]
	if st == nil {
		st = &statement{SQL: sql, keys: map[string]bool{}}
		if len(methods) > 0 {
			st.Method = methods[0]
		}
		r.byText[sql] = st
		r.order = append(r.order, st)
	}
	key := sampleKey(args)
	if !st.keys[key] && len(st.Samples) < maxSamples {
		st.keys[key] = true
		st.Samples = append(st.Samples, append([]any(nil), args...))
	}
}

// storeMethods are the exported Store methods on the caller's stack, innermost first.
func storeMethods() []string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var out []string
	for {
		f, more := frames.Next()
		if rest, ok := strings.CutPrefix(f.Function, storeFrame); ok {
			name, _, _ := strings.Cut(rest, ".") // "Update.func1" is Update's closure
			if name != "" && name[0] >= 'A' && name[0] <= 'Z' {
				out = append(out, name)
			}
		}
		if !more {
			return out
		}
	}
}

// sampleKey tells argument samples apart by what can change a plan: the filter values, and whether
// an optional one is there. Times, byte strings and ids that differ on every call would make every
// call a sample of its own, so they count by kind only.
func sampleKey(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = keyOf(a)
	}
	return strings.Join(parts, "|")
}

func keyOf(a any) string {
	switch v := a.(type) {
	case nil:
		return "nil"
	case time.Time, *time.Time:
		if p, ok := v.(*time.Time); ok && p == nil {
			return "nil"
		}
		return "time"
	case []byte:
		if v == nil {
			return "nil"
		}
		return "bytes"
	case []time.Time:
		return "times"
	case []string:
		s := append([]string(nil), v...)
		sort.Strings(s)
		return fmt.Sprintf("%q", s)
	}
	rv := reflect.ValueOf(a)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "nil"
		}
		return "&" + keyOf(rv.Elem().Interface())
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		// Ids, sequence numbers and durations: only zero (no cursor, "from the start") is a filter value.
		if rv.IsZero() {
			return "0"
		}
		return "n"
	case reflect.Slice, reflect.Map:
		return fmt.Sprintf("%T[%d]", a, rv.Len())
	}
	return fmt.Sprintf("%v", a)
}
