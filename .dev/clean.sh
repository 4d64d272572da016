#!/usr/bin/env bash
# Part of `make clean`: stop what `make run` / `make test` may have left running in this checkout's
# PostgreSQL clusters, and remove the cluster `make run` keeps outside the checkout when the postgres
# user cannot enter it (see .dev/run.sh). The Makefile then removes .devdata/ and bin/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=.dev/pg.sh
. .dev/pg.sh

outside=$(dev_cluster_home "$root")
bindir=$(pg_server_bindir)
for pgdata in "$root/.devdata/pg" "$root/.devdata/testpg" "$outside/pg"; do
  if [ -n "$bindir" ] && [ -f "$pgdata/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  fi
done
if [ -d "$outside" ]; then
  echo "rm -rf $outside"
  rm -rf "$outside"
fi
