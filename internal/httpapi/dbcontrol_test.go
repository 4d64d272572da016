package httpapi_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/pgtest"
)

func adminExec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// killAll terminates every connection to the test database, as a crashed or restarted server would.
func killAll(t *testing.T, db string) {
	adminExec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db)
}

func allowConnections(t *testing.T, db string) {
	adminExec(t, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true")
}
