package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/postgres"
)

const (
	benchAPIKey     = "bench-api-key-0123456789abcdef"
	benchClientID   = "MCH-BENCH-0001"
	benchSecret     = "SK-BENCH-not-a-real-secret"
	benchNotifyPath = "/v1/notifications/doku"
)

// stack is the service, the simulator and a database made for one bench run.
type stack struct {
	adminURL, dbURL, dbName string
	otherDBs                []string // more databases of this run (the ceiling's), dropped by stop
	pool                    *pgxpool.Pool
	sim, svc                *exec.Cmd
	simURL, svcURL          string
	adminURL2               string // the service's admin address: /metrics and /debug/pprof
	workDir                 string
	pgVersion               string
	// What startService needs to (re)start the service.
	binDir, svcAddr, adminAddr string
	// reconcileAfter is the service's wait before an invoice's first status check: past the end of
	// the run, so that no check falls due during it.
	reconcileAfter time.Duration
	// With -volume: when the stack started (the loaded year ends there), and the first transaction id
	// of the bench database's own work (the year's events take xids below it).
	started time.Time
	xidHi   uint64
}

// freeAddrs finds n distinct free loopback addresses, holding them all open while it looks so that it
// cannot hand out one port twice.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

func startStack(ctx context.Context, o options) (*stack, error) {
	st := &stack{adminURL: o.adminURL, reconcileAfter: time.Hour, started: time.Now()}
	if runBound(o) > 50*time.Minute {
		st.reconcileAfter = 24 * time.Hour
	}
	for _, b := range []string{"o2o", "dokusim"} {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			return nil, fmt.Errorf("%s/%s is missing: run make build first (make bench does)", o.binDir, b)
		}
	}
	admin, err := pgx.Connect(ctx, o.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w (is PostgreSQL running? see README)", redact(o.adminURL), err)
	}
	defer admin.Close(ctx)
	var b [4]byte
	_, _ = rand.Read(b[:])
	st.dbName = "o2o_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+st.dbName); err != nil {
		return nil, err
	}
	if err := admin.QueryRow(ctx, "SHOW server_version").Scan(&st.pgVersion); err != nil {
		return nil, err
	}
	st.dbURL = st.urlOf(st.dbName)

	ok := false
	defer func() {
		if !ok {
			st.stop()
		}
	}()
	// The bench's own pool: seeding and the raw baseline. Big enough for 512 waiting clients never
	// to be the limit of the baseline.
	if st.pool, err = postgres.Open(ctx, st.dbURL, postgres.PoolOptions{MaxConns: 64}); err != nil {
		return nil, err
	}
	m, err := postgres.NewMigrator(st.pool)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		return nil, err
	}
	if o.volume > 0 {
		if st.xidHi, err = reserveYear(ctx, st.pool, o.volume); err != nil {
			return nil, err
		}
		// The purge is the purge row's to run: the service's purge worker, which starts a round at
		// once and then every PURGE_INTERVAL, finds its lease taken for the whole run.
		if _, err := st.pool.Exec(ctx, `INSERT INTO worker_leases (name, holder, until) VALUES ('purge', $1, now() + interval '7 days')
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until`, purgeHolder); err != nil {
			return nil, err
		}
	}

	if st.workDir, err = os.MkdirTemp("", "o2obench-"); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	simAddr, svcAddr, adminAddr := addrs[0], addrs[1], addrs[2]
	st.adminURL2 = "http://" + adminAddr
	st.simURL, st.svcURL = "http://"+simAddr, "http://"+svcAddr

	st.sim, err = startProcess(filepath.Join(o.binDir, "dokusim"), filepath.Join(st.workDir, "dokusim.log"),
		"DOKUSIM_ADDR="+simAddr, "DOKU_CLIENT_ID="+benchClientID, "DOKU_SECRET_KEY="+benchSecret,
		"DOKUSIM_NOTIFICATION_URL="+st.svcURL+benchNotifyPath)
	if err != nil {
		return nil, err
	}
	st.binDir, st.svcAddr, st.adminAddr = o.binDir, svcAddr, adminAddr
	if err := st.startService(); err != nil {
		return nil, err
	}
	ok = true
	return st, nil
}

// startService starts the service as in production (info logs, one line per request, to a file),
// except that the reconciler's first check is pushed past the bench so that it measures what it
// says (an hour, or a day for a run that may last longer); env adds settings (the delivery rows'
// webhook endpoint).
func (st *stack) startService(env ...string) error {
	var err error
	st.svc, err = startProcess(filepath.Join(st.binDir, "o2o"), filepath.Join(st.workDir, "o2o.log"), append([]string{
		"DATABASE_URL=" + st.dbURL, "HTTP_ADDR=" + st.svcAddr, "API_KEYS=" + benchAPIKey, "DOKU_BASE_URL=" + st.simURL,
		"DOKU_CLIENT_ID=" + benchClientID, "DOKU_SECRET_KEY=" + benchSecret, "DOKU_DEFAULT_CUSTOMER_EMAIL=bench@example.com",
		"LOG_LEVEL=" + envOr("BENCH_LOG_LEVEL", "info"), "RECONCILE_SCHEDULE=" + st.reconcileAfter.String(),
		"METRICS_ADDR=" + st.adminAddr, "PPROF=true"}, env...)...)
	if err != nil {
		return err
	}
	if err := waitReady(context.Background(), st.svcURL+"/readyz", st.simURL+"/healthz", st.adminURL2+"/metrics"); err != nil {
		return fmt.Errorf("%w; service log: %s", err, tail(filepath.Join(st.workDir, "o2o.log")))
	}
	return nil
}

// restartService stops the service gracefully and starts it again with env.
func (st *stack) restartService(env ...string) error {
	stopProcess(st.svc)
	return st.startService(env...)
}

func startProcess(bin, logFile string, env ...string) (*exec.Cmd, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return cmd, nil
}

func waitReady(ctx context.Context, urls ...string) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range urls {
		for {
			resp, err := http.Get(u)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s did not become ready", u)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// stop ends both processes gracefully and removes the database and the working files.
func (st *stack) stop() {
	for _, c := range []*exec.Cmd{st.svc, st.sim} {
		stopProcess(c)
	}
	if st.pool != nil {
		st.pool.Close()
	}
	if st.dbName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, st.adminURL); err == nil {
			for _, db := range append([]string{st.dbName}, st.otherDBs...) {
				_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
			}
			conn.Close(ctx)
		}
	}
	if st.workDir != "" {
		_ = os.RemoveAll(st.workDir)
	}
}

// stopProcess ends c with SIGTERM, or SIGKILL when it does not end in 25 s.
func stopProcess(c *exec.Cmd) {
	if c == nil || c.Process == nil {
		return
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		_ = c.Process.Kill()
	}
}

// rssMB reads the service's resident memory (VmRSS) or its peak (VmHWM) from /proc, in MiB.
func (st *stack) rssMB(field string) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.svc.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// urlOf is the admin URL pointed at database db.
func (st *stack) urlOf(db string) string {
	u, _ := url.Parse(st.adminURL)
	u.Path = "/" + db
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database URL"
	}
	return u.Redacted()
}

func tail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tailOf(raw)
}

// tailOf is the end of a log or a program's output, enough to see why it failed.
func tailOf(raw []byte) string {
	if len(raw) > 2000 {
		raw = raw[len(raw)-2000:]
	}
	return strings.TrimSpace(string(raw))
}

var errExhausted = errors.New("no more prepared work")
