package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// -throwaway-cluster: the bench on a PostgreSQL cluster of its own, created in a temporary directory
// and removed afterwards, with pg_stat_statements loaded — which fills the cost table's stmts column
// and each row's statements — and never a change to a server the bench did not start. Its settings
// are initdb's defaults (fsync on, as the development server), except what the bench needs and
// -cluster-conf adds.

// cluster is a running throwaway cluster.
type cluster struct {
	bindir, dir, data, log string
	url, version           string
	// asPostgres: the server runs as the postgres user, since PostgreSQL refuses to run as root.
	asPostgres bool
}

// clusterSettings are what the bench needs of its cluster: loopback TCP only (no Unix socket to
// clash with a system server's), and pg_stat_statements.
var clusterSettings = []string{
	"listen_addresses = '127.0.0.1'",
	"unix_socket_directories = ''",
	"shared_preload_libraries = 'pg_stat_statements'",
	"pg_stat_statements.track = 'top'",
	"pg_stat_statements.max = 10000",
	// Each statement's time waiting for reads (blk_read_time): a statement slow at a few blocks per
	// call is waiting for the disk, not computing.
	"track_io_timing = on",
}

// startCluster initialises and starts a cluster with clusterSettings and the comma-separated
// key=value settings of extra.
func startCluster(ctx context.Context, extra string) (*cluster, error) {
	bindir, err := serverBindir()
	if err != nil {
		return nil, err
	}
	c := &cluster{bindir: bindir, asPostgres: os.Geteuid() == 0}
	if c.dir, err = os.MkdirTemp("", "o2obench-pg-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.stop()
		}
	}()
	c.data, c.log = filepath.Join(c.dir, "data"), filepath.Join(c.dir, "server.log")
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root, and there is no postgres user to run PostgreSQL as (PostgreSQL refuses root)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, tailOf(out))
	}
	addrs, err := freeAddrs(1)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	more, err := clusterConf(extra)
	if err != nil {
		return nil, err
	}
	conf := append(append(slices.Clone(clusterSettings), "port = "+port), more...)
	// Appended to the file initdb wrote, as the user that owns it: later lines win.
	if err := c.appendConf(ctx, strings.Join(conf, "\n")+"\n"); err != nil {
		return nil, err
	}
	if out, err := c.run(ctx, "pg_ctl", "-D", c.data, "-l", c.log, "-w", "-t", "60", "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %w: %s; server log: %s", err, tailOf(out), c.logTail())
	}
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", port)
	out, _ := exec.Command(filepath.Join(bindir, "postgres"), "--version").Output()
	c.version = strings.TrimSpace(string(out))
	ok = true
	return c, nil
}

// clusterConf reads -cluster-conf, key=value pairs separated by commas, as postgresql.conf lines.
func clusterConf(extra string) ([]string, error) {
	var out []string
	for _, kv := range strings.Split(extra, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, found := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !found || k == "" || strings.ContainsAny(k, " '\n") {
			return nil, fmt.Errorf("-cluster-conf: %q is not key=value", kv)
		}
		out = append(out, k+" = '"+strings.ReplaceAll(v, "'", "''")+"'")
	}
	return out, nil
}

// appendConf appends text to the cluster's postgresql.conf, as the user that owns it.
func (c *cluster) appendConf(ctx context.Context, text string) error {
	cmd := c.command(ctx, "sh", "-c", `cat >> "$1"`, "sh", filepath.Join(c.data, "postgresql.conf"))
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("write postgresql.conf: %w: %s", err, out)
	}
	return nil
}

// stop stops the server (fast shutdown, then immediate) and removes the cluster's directory.
func (c *cluster) stop() {
	if c.data != "" {
		if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			if _, err := c.run(ctx, "pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
				_, _ = c.run(ctx, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")
			}
			cancel()
		}
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// run runs one of the server's programs (or sh) as the cluster's user, from /, and returns its output.
func (c *cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return c.command(ctx, name, args...).CombinedOutput()
}

func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if name != "sh" {
		name = filepath.Join(c.bindir, name)
	}
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	// From /: the checkout may be closed to the postgres user.
	cmd.Dir = "/"
	return cmd
}

func (c *cluster) logTail() string {
	raw, _ := os.ReadFile(c.log)
	return tailOf(raw)
}

// serverBindir is the directory holding initdb, pg_ctl and postgres: pg_config's, else the newest of
// Debian's /usr/lib/postgresql/<version>/bin, else PATH's (as .dev/pg.sh finds them).
func serverBindir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(p)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Compare(major(b), major(a)) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("-throwaway-cluster needs PostgreSQL's server programs (initdb, pg_ctl, postgres): " +
		"Debian/Ubuntu: apt-get install postgresql")
}
