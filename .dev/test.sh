#!/usr/bin/env bash
# `make test`: run `go test -race -count=1 ./...` against a real PostgreSQL server.
#
# The server is TEST_DATABASE_URL's (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
# when it answers. When TEST_DATABASE_URL is unset and nothing answers at the default, a throwaway
# cluster is created in .devdata/testpg from this machine's PostgreSQL server binaries, on a free
# port from 54330 up, used for this run and stopped afterwards (also on failure and Ctrl-C).
#
# Arguments are passed to `go test` in place of ./... (the Makefile passes $(TESTFLAGS) $(PKGS)),
# e.g. `make test TESTFLAGS='-run TestWebhook -v' PKGS=./internal/httpapi`; a pattern with | needs
# quotes of its own: TESTFLAGS="-run 'TestA|TestB'".
#
# Reads: TEST_DATABASE_URL, GO (the go command, default go).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=.dev/pg.sh
. .dev/pg.sh

default_url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
GO=${GO:-go}
if [ "$#" -eq 0 ]; then set -- ./...; fi
bindir=$(pg_server_bindir)

# Show a URL without its password.
redact() { sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

# Whether a server answers at URL: psql from PATH, else the one beside the server binaries.
answers() {
  local psql
  psql=$(command -v psql || true)
  if [ -z "$psql" ] && [ -n "$bindir" ]; then psql=$bindir/psql; fi
  [ -n "$psql" ] && PGCONNECT_TIMEOUT=3 "$psql" "$1" -tAc 'SELECT 1' >/dev/null 2>&1
}

run_tests() {
  echo "==> $GO test -race -count=1 $*" >&2
  "$GO" test -race -count=1 "$@"
}

url=${TEST_DATABASE_URL:-$default_url}
if answers "$url"; then
  echo "==> make test: PostgreSQL answers at $(redact "$url")" >&2
  export TEST_DATABASE_URL=$url
  run_tests "$@"
  exit
fi
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  # A server that was asked for by name is not silently replaced by another.
  echo "make test: nothing answers at TEST_DATABASE_URL=$(redact "$url")." >&2
  echo "           Start that server, or unset TEST_DATABASE_URL to use a throwaway cluster." >&2
  exit 1
fi
if [ -z "$bindir" ]; then
  echo "make test: no PostgreSQL answers at $(redact "$url") and no PostgreSQL server binaries are installed." >&2
  echo "           Install PostgreSQL (Debian: apt-get install postgresql) or set TEST_DATABASE_URL." >&2
  exit 1
fi

# --- a throwaway cluster for this run -----------------------------------------------------------
mkdir -p .devdata
# One run at a time per checkout: a second would wipe the first one's cluster.
exec 9>.devdata/testpg.lock
if ! flock -n 9; then
  echo "make test: another make test in this checkout is using .devdata/testpg; wait for it." >&2
  exit 1
fi

pgdata=$root/.devdata/testpg
scratch="" # a directory of our own outside the checkout, when the postgres user cannot enter it
if ! pg_can_enter "$root/.devdata"; then
  scratch=$(mktemp -d /tmp/o2o-testpg.XXXXXX)
  chown postgres "$scratch"
  pgdata=$scratch/testpg
  echo "==> make test: the postgres user cannot enter $root (a parent directory is closed to it)," >&2
  echo "    so this run's cluster lives in $pgdata (removed afterwards)." >&2
fi
log=$pgdata.log
started=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$started" ]; then
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  # The data goes; the server log stays (until the next run) in case something needs explaining.
  rm -rf "$pgdata"
  if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A run killed outright (SIGKILL, OOM) ran no cleanup: its server may still be up on this data
# directory. Stop it before the directory goes, or it would later take the new server's lock file
# with it and stop that one mid-run.
if [ -f "$pgdata/postmaster.pid" ]; then
  as_pg "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$pgdata" "$log"
mkdir -p "$pgdata"
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pgdata"
  touch "$log" && chown postgres "$log"
fi
as_pg "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --no-sync >"$log" 2>&1 || {
  echo "make test: initdb failed" >&2
  pg_log_tail "$log"
  exit 1
}
# Loopback TCP only (no Unix socket, so no clash with a system server's), and no durability: the
# cluster dies with this run.
cat >>"$pgdata/postgresql.conf" <<'CONF'
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

port=54330
while :; do
  if [ -z "$(port_user "$port")" ]; then
    : >"$log"
    # 9>&-: the server must not inherit (and so keep holding) the lock.
    if as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$log" -w -t 60 -o "-p $port" start >/dev/null 2>&1 9>&-; then
      started=1
      break
    fi
    # Taken in the meantime, or a real failure: the log tells which.
    if ! grep -q 'could not bind\|Address already in use' "$log" 2>/dev/null; then
      echo "make test: the throwaway PostgreSQL did not start" >&2
      pg_log_tail "$log"
      exit 1
    fi
  fi
  port=$((port + 1))
  if [ "$port" -gt 54349 ]; then
    echo "make test: ports 54330-54349 are all in use; set TEST_DATABASE_URL to a server of yours" >&2
    exit 1
  fi
done

export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "==> make test: nothing answers at $(redact "$url"); using a throwaway PostgreSQL" \
  "$("$bindir/postgres" --version | awk '{print $3}') at 127.0.0.1:$port (data: $pgdata, removed afterwards; log: $log)" >&2
run_tests "$@"
