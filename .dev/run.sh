#!/usr/bin/env bash
# `make run`: PostgreSQL, the DOKU simulator and the service, wired together on this machine, and
# "up" printed only once each of them answers. Ctrl-C (or SIGTERM) stops all of them.
#
# Settings: the environment, then .env if present (a value in .env wins; see .env.example), then the
# defaults below. Every other setting of the service (README.md, "Configuration") passes through.
# What this script reads, with its defaults:
#
#   HTTP_ADDR                 127.0.0.1:8080  the service's address; its port is where readiness is
#                                             checked and where the simulator sends notifications
#   DOKUSIM_ADDR              127.0.0.1:8081  the simulator's address
#   DEV_PG_PORT               54329           port of the throwaway PostgreSQL cluster
#   DATABASE_URL              (unset)         an existing database instead of the throwaway cluster
#   DOKU_BASE_URL             http://127.0.0.1:<DOKUSIM_ADDR's port>  anything else is taken for a
#                                             real DOKU: the simulator is not started
#   DOKU_CLIENT_ID            MCH-LOCAL-0001              (the simulator's; a real DOKU needs yours)
#   DOKU_SECRET_KEY           SK-LOCAL-not-a-real-secret  (likewise)
#   DOKU_NOTIFICATION_PATH    /v1/notifications/doku
#   DOKU_DEFAULT_CUSTOMER_EMAIL  payments@merchant.example
#   API_KEYS                  dev-api-key-change-me-0001  (only when API_KEY_HASHES is unset too)
#   API_KEY_HASHES            (unset)
#   LOG_FORMAT                console
#   DOKUSIM_RETRY_SCHEDULE    30s,1m,2m
#   DOKUSIM_NOTIFICATION_URL  http://127.0.0.1:<HTTP_ADDR's port><DOKU_NOTIFICATION_PATH>
#   DOKUSIM_PUBLIC_URL        http://127.0.0.1:<DOKUSIM_ADDR's port>  base of the how-to-pay links
#   DOKUSIM_STATE_FILE        <data>/dokusim-state.json   codes the simulator issued, kept across runs
#
# <data> is .devdata/ (git-ignored; `make clean` removes it): the cluster in .devdata/pg, logs in
# .devdata/o2o.log, .devdata/dokusim.log and .devdata/pg/server.log. When running as root in a
# checkout the postgres user cannot enter (e.g. under /root, mode 700), the cluster and the
# simulator's state live in /var/tmp/o2o-devdata-<hash of the checkout's path> instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=.dev/pg.sh
. .dev/pg.sh

if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./.env
  set +a
fi

say() { echo "==> $*"; }
die() {
  echo "make run: $*" >&2
  exit 1
}
# A path for messages: relative inside the checkout.
show() { echo "${1#"$root"/}"; }

for old in O2O_PORT DOKUSIM_PORT; do
  if [ -n "${!old:-}" ]; then die "$old is no longer read; set HTTP_ADDR / DOKUSIM_ADDR instead (see .dev/run.sh)"; fi
done

# addr_port / addr_host: the port of host:port (or :port, [v6]:port), and the host to reach it at —
# loopback when the address listens on every interface.
addr_port() { echo "${1##*:}"; }
addr_host() {
  case "${1%:*}" in
    "" | 0.0.0.0 | "[::]") echo 127.0.0.1 ;;
    *) echo "${1%:*}" ;;
  esac
}

export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
DOKUSIM_ADDR=${DOKUSIM_ADDR:-127.0.0.1:8081}
DEV_PG_PORT=${DEV_PG_PORT:-54329}
http_port=$(addr_port "$HTTP_ADDR")
sim_port=$(addr_port "$DOKUSIM_ADDR")
for setting in "HTTP_ADDR=$http_port" "DOKUSIM_ADDR=$sim_port" "DEV_PG_PORT=$DEV_PG_PORT"; do
  name=${setting%%=*}
  [[ "${setting#*=}" =~ ^[0-9]+$ ]] || die "$name needs a port number: it is \"${!name}\""
done
o2o_url=http://$(addr_host "$HTTP_ADDR"):$http_port
sim_url=http://$(addr_host "$DOKUSIM_ADDR"):$sim_port

export DOKU_NOTIFICATION_PATH=${DOKU_NOTIFICATION_PATH:-/v1/notifications/doku}
export DOKU_BASE_URL=${DOKU_BASE_URL:-$sim_url}
# The simulator runs only when it is the DOKU the service talks to.
with_sim=""
case "${DOKU_BASE_URL%/}" in
  "$sim_url" | "http://127.0.0.1:$sim_port" | "http://localhost:$sim_port") with_sim=1 ;;
esac
if [ -n "$with_sim" ]; then
  # The simulator's credentials; the service and the simulator must share them.
  export DOKU_CLIENT_ID=${DOKU_CLIENT_ID:-MCH-LOCAL-0001}
  export DOKU_SECRET_KEY=${DOKU_SECRET_KEY:-SK-LOCAL-not-a-real-secret}
elif [ -z "${DOKU_CLIENT_ID:-}" ] || [ -z "${DOKU_SECRET_KEY:-}" ] ||
  [ "$DOKU_CLIENT_ID" = MCH-LOCAL-0001 ] || [ "$DOKU_SECRET_KEY" = SK-LOCAL-not-a-real-secret ]; then
  die "DOKU_BASE_URL is $DOKU_BASE_URL, not the local simulator ($sim_url): set DOKU_CLIENT_ID and
          DOKU_SECRET_KEY in .env to the ones in DOKU's back office (the simulator's will not do)."
fi
if [ -z "${API_KEYS:-}" ] && [ -z "${API_KEY_HASHES:-}" ]; then export API_KEYS=dev-api-key-change-me-0001; fi
export DOKU_DEFAULT_CUSTOMER_EMAIL=${DOKU_DEFAULT_CUSTOMER_EMAIL:-payments@merchant.example}
export LOG_FORMAT=${LOG_FORMAT:-console}

# --- nothing may already hold our ports --------------------------------------------------------
[ "$http_port" != "$sim_port" ] || [ -z "$with_sim" ] || die "HTTP_ADDR and DOKUSIM_ADDR share port $http_port"
port_free() { # PORT SETTING
  local who
  who=$(port_user "$1")
  if [ -n "$who" ]; then
    die "port $1 ($2) is in use (by $who); set HTTP_ADDR / DOKUSIM_ADDR / DEV_PG_PORT in .env"
  fi
}
port_free "$http_port" HTTP_ADDR
if [ -n "$with_sim" ]; then port_free "$sim_port" DOKUSIM_ADDR; fi

# --- where things live ---------------------------------------------------------------------------
logs=$root/.devdata
mkdir -p "$logs"
data=$logs # the cluster and the simulator's state
if [ -z "${DATABASE_URL:-}" ] && ! pg_can_enter "$logs"; then
  data=$(dev_cluster_home "$root")
  mkdir -p "$data"
  chown postgres "$data"
  chmod 700 "$data"
  say "the postgres user cannot enter $root (a parent directory is closed to it), so the"
  say "PostgreSQL cluster and the simulator's state live in $data (make clean removes it)"
fi
pgdata=$data/pg
pglog=$pgdata/server.log
o2o_log=$logs/o2o.log
sim_log=$logs/dokusim.log

# --- stopping everything, however the script ends ------------------------------------------------
declare -A pids=() # piece name -> pid
pg_started=""
bindir=""
cleanup() {
  trap - EXIT INT TERM
  local name pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # The service finishes in-flight requests first; give the pieces a while, then insist.
  for _ in $(seq 1 100); do
    local alive=""
    for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
    [ -n "$alive" ] || break
    sleep 0.2
  done
  for name in "${!pids[@]}"; do
    if kill -0 "${pids[$name]}" 2>/dev/null; then
      echo "make run: $name did not stop within 20 s; killing it" >&2
      kill -KILL "${pids[$name]}" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  if [ -n "$pg_started" ]; then
    say "stopping PostgreSQL"
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 0' INT # Ctrl-C is how make run is meant to end
trap 'exit 0' TERM

# --- PostgreSQL ----------------------------------------------------------------------------------
if [ -z "${DATABASE_URL:-}" ]; then
  bindir=$(pg_server_bindir)
  if [ -z "$bindir" ]; then
    die "no PostgreSQL server binaries found. Install them (Debian: apt-get install postgresql)
          or set DATABASE_URL to an existing database."
  fi
  # A cluster left running by a run that was killed outright: stop it, then start it as usual.
  if [ -f "$pgdata/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    say "stopping the PostgreSQL an earlier make run left running in $(show "$pgdata")"
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null
  fi
  port_free "$DEV_PG_PORT" DEV_PG_PORT
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $(show "$pgdata")"
    mkdir -p "$pgdata"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pgdata"; fi
    as_pg "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  say "starting PostgreSQL on 127.0.0.1:$DEV_PG_PORT (log: $(show "$pglog"))"
  # TCP on loopback only: no Unix socket, so nothing clashes with a system server's.
  if ! as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$pglog" -w -t 30 \
    -o "-p $DEV_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null 2>&1; then
    echo "make run: PostgreSQL did not start; its log is $(show "$pglog")" >&2
    pg_log_tail "$pglog"
    exit 1
  fi
  pg_started=1
  if ! "$bindir/psql" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'o2o'" | grep -q 1; then
    "$bindir/createdb" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres o2o
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$DEV_PG_PORT/o2o?sslmode=disable"
fi

# --- the simulator and the service -----------------------------------------------------------------
# start NAME LOG COMMAND...: runs COMMAND in the background, its output both on this terminal and
# in LOG (written afresh each run).
start() {
  local name=$1 log=$2
  shift 2
  : >"$log"
  "$@" > >(tee -a "$log") 2>&1 &
  pids[$name]=$!
}

if [ -n "$with_sim" ]; then
  say "starting the DOKU simulator on $DOKUSIM_ADDR (log: $(show "$sim_log"))"
  start dokusim "$sim_log" env \
    DOKUSIM_ADDR="$DOKUSIM_ADDR" \
    DOKUSIM_NOTIFICATION_URL="${DOKUSIM_NOTIFICATION_URL:-http://127.0.0.1:$http_port$DOKU_NOTIFICATION_PATH}" \
    DOKUSIM_RETRY_SCHEDULE="${DOKUSIM_RETRY_SCHEDULE:-30s,1m,2m}" \
    DOKUSIM_PUBLIC_URL="${DOKUSIM_PUBLIC_URL:-$sim_url}" \
    DOKUSIM_STATE_FILE="${DOKUSIM_STATE_FILE:-$data/dokusim-state.json}" \
    ./bin/dokusim
fi
say "starting o2o on $HTTP_ADDR (log: $(show "$o2o_log"))"
start o2o "$o2o_log" ./bin/o2o

# --- up only when every piece answers ----------------------------------------------------------
log_of() { if [ "$1" = o2o ]; then show "$o2o_log"; else show "$sim_log"; fi; }
deadline=$((SECONDS + 30))
while :; do
  for name in "${!pids[@]}"; do
    if ! kill -0 "${pids[$name]}" 2>/dev/null; then
      die "$name exited while starting; its log: $(log_of "$name")"
    fi
  done
  waiting=()
  curl -fsS -m 2 "$o2o_url/readyz" >/dev/null 2>&1 || waiting+=("o2o at $o2o_url/readyz (log: $(log_of o2o))")
  if [ -n "$with_sim" ]; then
    curl -fsS -m 2 "$sim_url/healthz" >/dev/null 2>&1 || waiting+=("dokusim at $sim_url/healthz (log: $(log_of dokusim))")
  fi
  [ "${#waiting[@]}" -gt 0 ] || break
  if [ "$SECONDS" -ge "$deadline" ]; then
    die "no answer within 30 s from $(printf '%s; ' "${waiting[@]}" | sed 's/; $//')"
  fi
  sleep 0.5
done

key=${API_KEYS%%,*}
key=${key:-<your API key>}
echo
echo "  o2o is up."
row() { printf '    %-11s %-48s %s\n' "$@"; }
row service "$o2o_url (HTTP_ADDR)" "log: $(show "$o2o_log")"
if [ -n "$with_sim" ]; then
  row simulator "$sim_url (DOKUSIM_ADDR), the DOKU" "log: $(show "$sim_log")"
else
  row DOKU "$DOKU_BASE_URL (DOKU_BASE_URL)" "no simulator"
fi
if [ -n "$pg_started" ]; then
  row PostgreSQL "127.0.0.1:$DEV_PG_PORT (DEV_PG_PORT), database o2o" "log: $(show "$pglog")"
else
  row PostgreSQL "the database at DATABASE_URL (yours)"
fi
echo
# The walk-through README.md shows too. A fresh invoice number each time: a number once used with
# other fields answers 409.
create="curl -s -X POST $o2o_url/v1/invoices -H 'Authorization: Bearer $key' -H 'Content-Type: application/json' -d '{\"invoice_number\":\"'\$INV'\",\"channel\":\"alfa\",\"amount\":150000,\"customer\":{\"name\":\"Taufik Ismail\",\"email\":\"taufik@example.com\"},\"expires_in_minutes\":60,\"receipt_footer\":\"Thank you for shopping\"}'"
get="curl -s $o2o_url/v1/invoices/\$INV -H 'Authorization: Bearer $key'"
if [ -n "$with_sim" ]; then
  echo "  Try it: create an invoice, pay it at the simulated counter, see it paid:"
  echo
  echo "    INV=INV-\$(date +%s)"
  echo "    $create"
  echo "    curl -s -X POST $sim_url/simulator/payments -H 'Content-Type: application/json' -d '{\"invoice_number\":\"'\$INV'\"}'"
  echo "    $get"
  echo
  echo "  More in README.md, Walk-through."
else
  echo "  With a real DOKU (README.md, \"Going live with DOKU\"):"
  echo "    1. Give the service a public HTTPS URL (a reverse proxy or tunnel to $HTTP_ADDR)."
  echo "    2. In DOKU's dashboard (Settings > Payment Settings > Convenience Store), set the Notification"
  echo "       URL of each channel, Alfa Group and Indomaret, to that URL + $DOKU_NOTIFICATION_PATH"
  echo "       (DOKU_NOTIFICATION_PATH: DOKU signs the path, so the two must match)."
  echo "    3. DOKU_CLIENT_ID and DOKU_SECRET_KEY (in .env) are the ones from that back office."
  echo "    4. Create an invoice, pay its code (DOKU's sandbox simulator, or a store), see it paid:"
  echo
  echo "    INV=INV-\$(date +%s)"
  echo "    $create"
  echo "    $get"
fi
echo
echo "  Ctrl-C stops everything."
echo

# Until Ctrl-C, or until a piece stops by itself.
wait -n "${pids[@]}" || true
for name in "${!pids[@]}"; do
  if ! kill -0 "${pids[$name]}" 2>/dev/null; then
    die "$name stopped; its log: $(log_of "$name"). Stopping the rest."
  fi
done
