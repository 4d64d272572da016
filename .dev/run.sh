#!/usr/bin/env bash
# `make run`: PostgreSQL, the DOKU simulator and the service, wired together on this machine.
# With DATABASE_URL unset, a throwaway PostgreSQL cluster lives in .devdata/ (git-ignored; `make clean`
# removes it). Settings come from .env if present (see .env.example), else the defaults below.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data="$root/.devdata"
mkdir -p "$data"

if [ -f .env ]; then
  set -a; . ./.env; set +a
fi

O2O_PORT=${O2O_PORT:-8080}
DOKUSIM_PORT=${DOKUSIM_PORT:-8081}
DEV_PG_PORT=${DEV_PG_PORT:-54329}

pids=()
pg_started=""
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$pg_started" ]; then as_pg "$pg_bin/pg_ctl" -D "$data/pg" -m fast stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

# PostgreSQL refuses to run as root; when we are root, run it as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -z "${DATABASE_URL:-}" ]; then
  pg_bin=""
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_bin=$(pg_config --bindir); fi
  if [ -z "$pg_bin" ]; then pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true); fi
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "make run: no PostgreSQL server binaries found. Install them (Debian: apt-get install postgresql)" >&2
    echo "          or set DATABASE_URL to an existing database." >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then chown postgres "$data"; fi
  if [ ! -f "$data/pg/PG_VERSION" ]; then
    echo "==> creating a throwaway PostgreSQL cluster in .devdata/pg"
    as_pg "$pg_bin/initdb" -D "$data/pg" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  echo "==> starting PostgreSQL on 127.0.0.1:$DEV_PG_PORT"
  as_pg "$pg_bin/pg_ctl" -D "$data/pg" -l "$data/pg/server.log" -w \
    -o "-p $DEV_PG_PORT -k $data/pg -c listen_addresses=127.0.0.1" start >/dev/null
  pg_started=1
  as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'o2o'" | grep -q 1 ||
    as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres o2o
  export DATABASE_URL="postgres://postgres@127.0.0.1:$DEV_PG_PORT/o2o?sslmode=disable"
fi

# Local defaults: the simulator is DOKU, so no credentials are needed.
export API_KEYS=${API_KEYS:-dev-api-key-change-me-0001}
export DOKU_CLIENT_ID=${DOKU_CLIENT_ID:-MCH-LOCAL-0001}
export DOKU_SECRET_KEY=${DOKU_SECRET_KEY:-SK-LOCAL-not-a-real-secret}
export DOKU_BASE_URL=${DOKU_BASE_URL:-http://127.0.0.1:$DOKUSIM_PORT}
export DOKU_NOTIFICATION_PATH=${DOKU_NOTIFICATION_PATH:-/v1/notifications/doku}
export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:$O2O_PORT}
export LOG_FORMAT=${LOG_FORMAT:-console}

if [[ "$DOKU_BASE_URL" == "http://127.0.0.1:$DOKUSIM_PORT" ]]; then
  echo "==> starting the DOKU simulator on 127.0.0.1:$DOKUSIM_PORT"
  DOKUSIM_ADDR=127.0.0.1:$DOKUSIM_PORT \
  DOKUSIM_NOTIFICATION_URL=http://127.0.0.1:$O2O_PORT$DOKU_NOTIFICATION_PATH \
  DOKUSIM_RETRY_SCHEDULE=${DOKUSIM_RETRY_SCHEDULE:-30s,1m,2m} \
    ./bin/dokusim &
  pids+=($!)
fi

echo "==> starting o2o on $HTTP_ADDR"
./bin/o2o &
pids+=($!)

for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:$O2O_PORT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "make run: o2o exited; see its log above" >&2; exit 1; fi
  sleep 0.5
done

cat <<MSG

  o2o is up on http://127.0.0.1:$O2O_PORT  (DOKU: $DOKU_BASE_URL)
  Try it (README.md, "Walk-through"):

    curl -s -X POST http://127.0.0.1:$O2O_PORT/v1/invoices \\
      -H 'Authorization: Bearer $API_KEYS' -H 'Content-Type: application/json' \\
      -d '{"invoice_number":"INV-1001","channel":"alfa","amount":150000,"customer":{"name":"Taufik Ismail"}}'

  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
