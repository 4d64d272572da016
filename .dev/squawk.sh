#!/usr/bin/env bash
# `make squawk` (part of `make lint`): lint every migration from 00012 on with squawk
# (https://squawkhq.com), the PostgreSQL migration linter, against the rules of
# .github/CONTRIBUTING.md ("Migrations") and the settings of .squawk.toml. It fails (exit 1) on any
# finding. 00001–00011 are not linted: they predate the rules, are committed and may never be edited
# (migrations/sums.txt), so their findings can never be fixed.
#
# goose runs a migration in one transaction unless the file says `-- +goose NO TRANSACTION`, and
# squawk must know which: inside a transaction a lock is held until the commit and CREATE INDEX
# CONCURRENTLY is impossible; outside one, every statement commits on its own, so a migration that
# fails part way must be safe to run again. The transactional migrations are linted with
# --assume-in-transaction, the others with --no-assume-in-transaction.
#
# squawk is pinned and installed once with npm into bin/tools, like the other tools of make lint.
# Without node and npm the check is skipped with a message, except in CI (CI set), where it fails.
#
# Usage: .dev/squawk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SQUAWK_VERSION=2.66.0
# The first migration written to the rules.
FIRST_LINTED=12

tools=bin/tools
squawk_dir=$tools/squawk-cli-$SQUAWK_VERSION
squawk=$root/$squawk_dir/node_modules/.bin/squawk

log() { printf 'squawk: %s\n' "$*"; }
die() { printf 'squawk: %s\n' "$*" >&2; exit 1; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  [ -z "${CI:-}" ] || die "node and npm are not installed (Debian: apt-get install nodejs npm)"
  log "skipped here, node and npm are not installed (Debian: apt-get install nodejs npm)"
  exit 0
fi

if [ ! -x "$squawk" ]; then
  log "installing squawk-cli $SQUAWK_VERSION into $squawk_dir"
  rm -rf "$squawk_dir.partial"
  mkdir -p "$squawk_dir.partial"
  # squawk-cli has no install scripts: its binary comes in a platform package it depends on.
  npm install --prefix "$squawk_dir.partial" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "squawk-cli@$SQUAWK_VERSION" || die "npm install squawk-cli@$SQUAWK_VERSION failed"
  rm -rf "$squawk_dir"
  mv "$squawk_dir.partial" "$squawk_dir"
fi
version=$("$squawk" --version) || die "$squawk_dir does not run; delete it to install it again"
[ "$version" = "squawk $SQUAWK_VERSION" ] ||
  die "$squawk_dir holds '$version', not squawk $SQUAWK_VERSION; delete it to install it again"

# Whether goose runs FILE outside a transaction. goose reads an annotation on any line of the file
# that starts with "--" and holds "+goose": what is left without the "--"s and "+goose", trimmed, is
# the annotation, compared without regard to case.
no_transaction() {
  grep -Eiq '^(--)+[[:space:]]*\+goose[[:space:]]+no transaction[[:space:]]*$' "$1"
}

in_tx=()
no_tx=()
for f in migrations/*.sql; do
  name=${f##*/}
  v=${name%%_*}
  [[ $v =~ ^[0-9]+$ ]] || die "$f: not a goose migration name (<version>_<description>.sql)"
  if ((10#$v < FIRST_LINTED)); then
    continue
  fi
  if no_transaction "$f"; then
    no_tx+=("$f")
  else
    in_tx+=("$f")
  fi
done

# squawk colours its report whatever its output is; a log file gets it plain.
plain() {
  if [ -t 1 ]; then
    cat
  else
    sed -E $'s/\x1b\\[[0-9;]*m//g; s/\x1b\\]8;;[^\x1b]*\x1b\\\\//g'
  fi
}

failed=0
# lint WHAT FLAG FILE...: squawk over FILEs with FLAG, which tells it how goose runs them (WHAT).
lint() {
  local what=$1 flag=$2 out rc=0
  shift 2
  [ "$#" -gt 0 ] || return 0
  log "$what ($flag): ${*#migrations/}"
  out=$("$squawk" --config .squawk.toml "$flag" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | plain
  [ "$rc" -eq 0 ] || failed=1
}
lint "in a transaction" --assume-in-transaction "${in_tx[@]}"
lint "-- +goose NO TRANSACTION" --no-assume-in-transaction "${no_tx[@]}"

if [ "$failed" -ne 0 ]; then
  {
    printf '\nsquawk: FAIL: a migration breaks the rules of .github/CONTRIBUTING.md ("Migrations"); see above.\n'
    printf 'Fix the migration. A statement that must break a rule (a drop in Down) says so on the line\n'
    printf 'before it, with "-- squawk-ignore <rule>"; .squawk.toml leaves out only rules that do not\n'
    printf 'apply under goose, each with the reason.\n'
  } >&2
  exit 1
fi
log "ok: ${#in_tx[@]} migration(s) in a transaction and ${#no_tx[@]} without, from $(printf '%05d' "$FIRST_LINTED") on (squawk $SQUAWK_VERSION)"
