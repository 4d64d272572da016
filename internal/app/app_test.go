package app_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
)

// When DB_STARTUP_TIMEOUT ends during an attempt to connect, the start-up error names what the
// attempts before it were told — here a pooler's refusal of a startup parameter — not only "context
// deadline exceeded", which is all the attempt cut short knows. (make test's PgBouncer test failed on
// this on a busy machine, and an operator would have been left without the reason.)
func TestStartupErrorNamesTheLastRefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for first := true; ; first = false {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if !first {
				// Later attempts: a server that never answers, until the deadline cuts them short.
				t.Cleanup(func() { conn.Close() })
				continue
			}
			be := pgproto3.NewBackend(conn, conn)
			if _, err := be.ReceiveStartupMessage(); err == nil {
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "unsupported startup parameter: statement_timeout"})
				_ = be.Flush()
			}
			conn.Close()
		}
	}()
	db := config.Database{DatabaseURL: config.Secret("postgres://o2o@" + ln.Addr().String() + "/o2o?sslmode=disable"),
		DBStartupTimeout: 1500 * time.Millisecond, DBConnectTimeout: 10 * time.Second, DBStatementTimeout: 10 * time.Second,
		DBLockTimeout: 5 * time.Second, DBIdleInTxTimeout: 30 * time.Second}
	_, err = app.OpenDatabase(context.Background(), db, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "DB_STARTUP_TIMEOUT") || !strings.Contains(err.Error(), "unsupported startup parameter") {
		t.Fatalf("start-up error: %v — want DB_STARTUP_TIMEOUT and the refusal before it", err)
	}
}
