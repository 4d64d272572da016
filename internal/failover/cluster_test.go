//go:build ha

package failover

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/postgres"
)

// pgHost runs PostgreSQL clusters of the test's own, from this machine's server binaries, in a
// directory of the test's that is removed at the end. Every cluster it makes is stopped when the
// test ends, also when it fails.
type pgHost struct {
	t      *testing.T
	bindir string
	root   string
	// as is the postgres user's, when the test runs as root: PostgreSQL refuses to run as root.
	as *syscall.Credential
}

// newPGHost finds the server binaries the way make test does (.dev/pg.sh's pg_server_bindir) and
// makes the test's directory. As root, PostgreSQL's programs run as the postgres user (as .dev/pg.sh's
// as_pg does), so the directory is given to that user and lives under the system's temporary
// directory, which that user can enter: the checkout may be closed to it.
func newPGHost(t *testing.T) *pgHost {
	t.Helper()
	cmd := exec.Command("bash", "-c", ". .dev/pg.sh && pg_server_bindir")
	cmd.Dir = apitest.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_server_bindir (.dev/pg.sh): %v", err)
	}
	h := &pgHost{t: t, bindir: strings.TrimSpace(string(out))}
	if h.bindir == "" {
		t.Fatal("no PostgreSQL server binaries here (Debian: apt-get install postgresql)")
	}
	for _, prog := range []string{"initdb", "pg_ctl", "pg_basebackup", "postgres"} {
		if _, err := os.Stat(filepath.Join(h.bindir, prog)); err != nil {
			t.Fatalf("%s is missing beside the server binaries in %s (Debian: apt-get install postgresql)", prog, h.bindir)
		}
	}
	if h.root, err = os.MkdirTemp("", "o2o-failover-"); err != nil {
		t.Fatal(err)
	}
	// Registered before any cluster is made, so it runs after every cluster has stopped.
	t.Cleanup(func() {
		if err := os.RemoveAll(h.root); err != nil {
			t.Logf("remove %s: %v", h.root, err)
		}
	})
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL runs as the postgres user, and there is none: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		h.as = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(h.root, uid, gid); err != nil {
			t.Fatal(err)
		}
		probe := exec.Command("test", "-w", h.root)
		probe.Dir, probe.SysProcAttr = "/", &syscall.SysProcAttr{Credential: h.as}
		if err := probe.Run(); err != nil {
			t.Fatalf("the postgres user cannot write in %s (a parent directory is closed to it); set TMPDIR to a directory it can enter", h.root)
		}
	}
	return h
}

// command is one of PostgreSQL's programs, to run as the user PostgreSQL runs as, from / (the
// checkout may be closed to that user), without the PG* variables of the test's environment, which
// would point the programs elsewhere.
func (h *pgHost) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(h.bindir, prog), args...)
	cmd.Dir = "/"
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.as}
	return cmd
}

// run runs one of PostgreSQL's programs to its end, and returns its output as the error when it
// fails.
func (h *pgHost) run(timeout time.Duration, prog string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := h.command(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// cluster is one PostgreSQL server of the test's.
type cluster struct {
	h    *pgHost
	name string
	dir  string
	log  string
	port int
	// postmaster is the server process, a child of the test's own (not pg_ctl's), started with a
	// parent-death signal: if the test process dies without its cleanups (a panic, a timeout,
	// Ctrl-C), the kernel kills the postmaster, and its processes end with it. exited is closed
	// once it has exited and been reaped.
	postmaster *exec.Cmd
	exited     chan struct{}
}

// commonConf is what every cluster of these tests runs with: loopback TCP only (no Unix socket, so
// nothing clashes with the system server's), and a real server's durability, since what survives
// a crash is the point. The primary sends WAL to a standby (replica level, senders).
const commonConf = `
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 5
fsync = on
synchronous_commit = on
log_min_messages = warning
`

// initdb makes a new cluster; it is stopped when the test ends.
func (h *pgHost) initdb(name string) *cluster {
	h.t.Helper()
	c := h.newCluster(name)
	if err := h.run(2*time.Minute, "initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		h.t.Fatal(err)
	}
	c.appendConf(commonConf)
	return c
}

// standbyOf makes a streaming standby of primary with pg_basebackup -R (which writes primary_conninfo
// and standby.signal), naming itself appName to the primary (what synchronous_standby_names lists).
// Its configuration is the primary's, copied.
func (h *pgHost) standbyOf(primary *cluster, name, appName string) *cluster {
	h.t.Helper()
	c := h.newCluster(name)
	conn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primary.port, appName)
	if err := h.run(2*time.Minute, "pg_basebackup", "-D", c.dir, "-R", "-X", "stream", "-c", "fast", "--no-sync", "-d", conn); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *pgHost) newCluster(name string) *cluster {
	c := &cluster{h: h, name: name, dir: filepath.Join(h.root, name), log: filepath.Join(h.root, name+".log")}
	h.t.Cleanup(func() {
		c.stop()
		if h.t.Failed() {
			c.logTail(40)
		}
	})
	return c
}

func (c *cluster) appendConf(conf string) {
	c.h.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n# o2o failover test\n" + conf + "\n"); err != nil {
		c.h.t.Fatal(err)
	}
}

// start starts the cluster on a free port and waits until it accepts connections. A port taken
// between choosing it and binding it is simply another try.
func (c *cluster) start() {
	c.h.t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		port := apitest.FreePort(c.h.t)
		logf, err := os.Create(c.log)
		if err != nil {
			c.h.t.Fatal(err)
		}
		cmd := c.h.command(context.Background(), "postgres", "-D", c.dir, "-p", strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		err = cmd.Start()
		logf.Close() // the server has its own descriptor
		if err != nil {
			c.h.t.Fatalf("%s: %v", c.name, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		c.postmaster, c.exited, c.port = cmd, exited, port
		if c.waitAccepting(60 * time.Second) {
			return
		}
		text, _ := os.ReadFile(c.log)
		if !bytes.Contains(text, []byte("could not bind")) && !bytes.Contains(text, []byte("Address already in use")) {
			c.logTail(40)
			c.h.t.Fatalf("%s did not start", c.name)
		}
	}
	c.h.t.Fatalf("%s: no free port after five tries", c.name)
}

// waitAccepting waits until the server accepts connections (a standby: read-only ones), and reports
// false if it exits or does not within d.
func (c *cluster) waitAccepting(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return false
		default:
		}
		if err := c.query(`SELECT 1`, nil, []any{new(int)}); err == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.stop()
	return false
}

// URL is the cluster's database db.
func (c *cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", c.port, db)
}

// exec runs sql on the cluster's postgres database.
func (c *cluster) exec(sql string, args ...any) {
	c.h.t.Helper()
	if err := c.query(sql, args, nil); err != nil {
		c.h.t.Fatalf("%s: %s: %v", c.name, sql, err)
	}
}

// query runs sql on the cluster's postgres database and scans its one row into dest (none: no row is
// read).
func (c *cluster) query(sql string, args []any, dest []any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if dest == nil {
		_, err = conn.Exec(ctx, sql, args...)
		return err
	}
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// migrate creates database db and brings it to the latest schema, as `o2o migrate up` does.
func (c *cluster) migrate(db string) {
	c.h.t.Helper()
	c.exec("CREATE DATABASE " + db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Open(ctx, c.URL(db), postgres.PoolOptions{})
	if err != nil {
		c.h.t.Fatal(err)
	}
	defer pool.Close()
	m, err := postgres.NewMigrator(pool)
	if err != nil {
		c.h.t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		c.h.t.Fatalf("migrate: %v", err)
	}
}

// waitStreaming waits until the primary sends its WAL to the standby named appName, with
// pg_stat_replication's sync_state want ("sync" or "async").
func (c *cluster) waitStreaming(appName, want string) {
	c.h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var state, syncState string
	for time.Now().Before(deadline) {
		err := c.query(`SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1`, []any{appName}, []any{&state, &syncState})
		if err == nil && state == "streaming" && syncState == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.h.t.Fatalf("%s: standby %s is not streaming as %s (state %q, sync_state %q)", c.name, appName, want, state, syncState)
}

// promote ends the standby's recovery and waits until it accepts writes.
func (c *cluster) promote() {
	c.h.t.Helper()
	if err := c.h.run(2*time.Minute, "pg_ctl", "-D", c.dir, "-w", "-t", "60", "promote"); err != nil {
		c.h.t.Fatal(err)
	}
	var recovering bool
	if err := c.query(`SELECT pg_is_in_recovery()`, nil, []any{&recovering}); err != nil || recovering {
		c.h.t.Fatalf("%s after promotion: in recovery %v, %v", c.name, recovering, err)
	}
}

// kill loses the server as a machine is lost: the postmaster and every process of the cluster get
// SIGKILL at once, so nothing shuts down, flushes or answers. The postmaster is stopped first, so
// that it forks no new backend while its processes are listed. It returns once all are gone.
func (c *cluster) kill() {
	c.h.t.Helper()
	pid := c.postmaster.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		c.h.t.Fatalf("%s: stop postmaster %d: %v", c.name, pid, err)
	}
	children := childrenOf(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, p := range children {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.h.t.Fatalf("%s: the postmaster survived SIGKILL", c.name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range children {
		for alive(p) {
			if time.Now().After(deadline) {
				c.h.t.Fatalf("%s: process %d survived SIGKILL", c.name, p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// stop stops the cluster if it runs: SIGQUIT, PostgreSQL's immediate shutdown (its data goes with the
// test), then SIGKILL if it has not ended within 20 s. Only this cluster's postmaster and its
// children are signalled.
func (c *cluster) stop() {
	if c.postmaster == nil {
		return
	}
	select {
	case <-c.exited:
		return
	default:
	}
	pid := c.postmaster.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	select {
	case <-c.exited:
		return
	case <-time.After(20 * time.Second):
	}
	c.h.t.Logf("%s: still running 20 s after SIGQUIT; killing it", c.name)
	for _, p := range append([]int{pid}, childrenOf(pid)...) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	<-c.exited
}

func (c *cluster) logTail(n int) {
	raw, err := os.ReadFile(c.log)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	c.h.t.Logf("---- last lines of %s's server log ----\n%s", c.name, strings.Join(lines, "\n"))
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procStat(p); ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether process pid exists and is not a zombie (a killed process whose parent, not
// us, has not reaped it yet holds no socket and no file any more).
func alive(pid int) bool {
	_, state := procStat(pid)
	return state != "" && state != "Z" && state != "X"
}

// procStat reads a process's parent and state from /proc/<pid>/stat ("" when there is no such
// process). The command name in parentheses may hold spaces, so the fields are read after its end.
func procStat(pid int) (ppid int, state string) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, ""
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, ""
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 2 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, fields[0]
}

// asRoot runs a command that needs root (network devices and routes): directly as root, else through
// sudo without a password prompt.
func asRoot(args ...string) error {
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n"}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
