#!/usr/bin/env bash
# Part of `make clean`: stop and delete what `make run` and `make test` left in this checkout, except
# what a live one is using. Every run directory of make run (.devdata/run-<port>/, and its twin in
# /var/tmp/o2o-devdata-… when the postgres user cannot enter the checkout; see .dev/run.sh and
# .dev/runs.sh) whose run is gone goes, after its cluster and any program it left running are
# stopped; so do the cluster of an older make run (.devdata/pg) and make test's (.devdata/testpg,
# unless a make test holds it). A live run's directory stays, and this says so and exits 1 — so that
# a Makefile that removes .devdata/ after this stops there instead of pulling it from under the run.
set -euo pipefail
shopt -s nullglob dotglob
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=.dev/pg.sh
. .dev/pg.sh
# shellcheck source=.dev/runs.sh
. .dev/runs.sh

say() { echo "$*"; }
show() { echo "${1#"$root"/}"; }

devdata=$root/.devdata
outside=$(dev_cluster_home "$root")
bindir=$(pg_server_bindir)
if [ ! -d "$devdata" ] && [ ! -d "$outside" ]; then exit 0; fi
mkdir -p "$devdata"
runs_lock

# Every run directory, inside the checkout or outside it.
declare -A names=()
for dir in "$devdata"/run-*/ "$outside"/run-*/; do
  dir=${dir%/}
  names[${dir##*/}]=1
done

declare -A keep=() # entries of .devdata/ that stay
for name in "${!names[@]}"; do
  file=$devdata/$name/owner
  o_desc="(of which nothing is recorded)" o_pieces=()
  if [ -f "$file" ]; then
    owner_read "$file"
    if owner_alive; then
      keep[$name]=1
      echo "make clean: keeping $(show "$devdata/$name"): make run $o_desc is still running." >&2
      continue
    fi
  fi
  if ! stop_leftovers "$name"; then
    echo "make clean: the PostgreSQL cluster of $(show "$devdata/$name") would not stop; keeping it" >&2
    keep[$name]=1
    continue
  fi
  for dir in "$devdata/$name" "$outside/$name"; do
    if [ -d "$dir" ]; then
      echo "rm -rf $(show "$dir")"
      rm -rf "$dir"
    fi
  done
done

# An older make run's cluster (before each run had its own directory), and make test's unless a
# make test is running (it holds .devdata/testpg.lock meanwhile).
if cluster_running "$devdata/pg"; then
  echo "stopping the PostgreSQL in $(show "$devdata/pg") (an older make run's)"
  as_pg "$bindir/pg_ctl" -D "$devdata/pg" -m fast -w stop >/dev/null 2>&1 || true
fi
if [ -f "$devdata/testpg.lock" ] && command -v flock >/dev/null 2>&1 && ! flock -n "$devdata/testpg.lock" true; then
  echo "make clean: keeping .devdata/testpg*: a make test is running." >&2
  keep[testpg]=1 keep[testpg.log]=1 keep[testpg.lock]=1
elif [ -f "$devdata/testpg/postmaster.pid" ] && [ -n "$bindir" ]; then
  as_pg "$bindir/pg_ctl" -D "$devdata/testpg" -m immediate -w stop >/dev/null 2>&1 || true
fi

if [ "${#keep[@]}" -eq 0 ]; then
  for dir in "$devdata" "$outside"; do
    if [ -d "$dir" ]; then
      echo "rm -rf $(show "$dir")"
      rm -rf "$dir"
    fi
  done
  exit 0
fi

keep[.runs.lock]=1
for entry in "$devdata"/*; do
  if [ -z "${keep[${entry##*/}]:-}" ]; then
    echo "rm -rf $(show "$entry")"
    rm -rf "$entry"
  fi
done
echo "make clean: removed everything else; stop what is still running (Ctrl-C in its terminal) and" >&2
echo "            make clean again to remove the rest." >&2
exit 1
