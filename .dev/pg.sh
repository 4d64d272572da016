# shellcheck shell=bash
# Sourced by .dev/run.sh (`make run`) and .dev/test.sh (`make test`): finding PostgreSQL's server
# binaries, running them as a user PostgreSQL accepts, and checking ports. Defines functions only.

# pg_server_bindir prints the directory holding initdb and pg_ctl, newest version first:
# pg_config's answer, then Debian's /usr/lib/postgresql/<version>/bin, then whatever is on PATH.
# It prints nothing when there are none.
pg_server_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return
    fi
  fi
  # Newest version first: sort -V orders 9.6 before 15.
  while IFS= read -r dir; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

# PostgreSQL refuses to run as root, so as root its programs run as the postgres user (which the
# Debian packages create), from / since the checkout may be closed to that user: pass absolute paths.
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# pg_can_enter DIR: whether the user as_pg runs as can reach DIR, i.e. search every directory above
# it. A checkout under /root (mode 700) is the usual case where it cannot.
pg_can_enter() {
  if [ "$(id -u)" != 0 ]; then return 0; fi
  runuser -u postgres -- test -x "$1" 2>/dev/null
}

# port_user PORT prints who listens on TCP PORT (any address; binding our own address would
# collide with it too), or nothing when the port is free. ss names the process when it can.
port_user() {
  local port=$1 line who
  if command -v ss >/dev/null 2>&1; then
    line=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1 || true)
    if [ -n "$line" ]; then
      who=$(sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1, pid \2/p' <<<"$line" | tr -d '"')
      echo "${who:-another process}"
      return
    fi
  fi
  # Without ss (or to catch what it did not show): does anything answer on loopback?
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "another process"
  fi
}

# pg_log_tail FILE: the end of a PostgreSQL server log, for when the server did not start.
pg_log_tail() {
  echo "---- last lines of $1 ----" >&2
  tail -n 20 "$1" >&2 2>/dev/null || as_pg tail -n 20 "$1" >&2 || true
  echo "----" >&2
}

# dev_cluster_home ROOT prints where `make run` keeps its PostgreSQL cluster and the simulator's state
# when the postgres user cannot enter ROOT/.devdata: a directory named after the checkout's path, so
# that every run of that checkout finds the same cluster again.
dev_cluster_home() {
  echo "/var/tmp/o2o-devdata-$(printf '%s' "$1" | sha256sum | cut -c1-12)"
}
