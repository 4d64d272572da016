#!/usr/bin/env bash
# `make run`: PostgreSQL, the DOKU simulator and the service, wired together on this machine, and
# "up" printed only once each of them answers. Ctrl-C (or SIGTERM) stops all of them.
#
# Settings: the environment, then .env if present (a value in .env wins; see .env.example), then the
# defaults below. Every other setting of the service (deploy/CONFIGURATION.md) passes through.
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
# Each run has a directory of its own, .devdata/run-<port of HTTP_ADDR>/ (git-ignored; `make clean`
# removes those of runs that have stopped): its logs o2o.log and dokusim.log, <data> — the
# simulator's state and the PostgreSQL cluster, pg/, with its log pg/server.log — and `owner`, the
# record of which process runs there on which ports (.dev/runs.sh). So runs on other ports, side by
# side in one checkout, share nothing; a run asked for ports a live run of this checkout uses refuses
# and names it; and what a run killed outright left running is stopped by the next make run (or make
# clean). When running as root in a checkout the postgres user cannot enter (e.g. under /root, mode
# 700), <data> is /var/tmp/o2o-devdata-<hash of the checkout's path>/run-<port> instead.
set -euo pipefail
shopt -s extglob
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=.dev/pg.sh
. .dev/pg.sh
# shellcheck source=.dev/runs.sh
. .dev/runs.sh

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

# --- this run's directory, and no live make run of this checkout on our ports ---------------------
[ "$http_port" != "$sim_port" ] || [ -z "$with_sim" ] || die "HTTP_ADDR and DOKUSIM_ADDR share port $http_port"
cluster="" # set: this run starts its own PostgreSQL cluster
if [ -z "${DATABASE_URL:-}" ]; then cluster=1; fi
ours=("$http_port") # the ports this run uses
declare -A port_setting=(["$http_port"]=HTTP_ADDR)
settings="HTTP_ADDR=$HTTP_ADDR"
if [ -n "$with_sim" ]; then
  ours+=("$sim_port")
  port_setting[$sim_port]=DOKUSIM_ADDR
  settings+=" DOKUSIM_ADDR=$DOKUSIM_ADDR"
fi
if [ -n "$cluster" ]; then
  ours+=("$DEV_PG_PORT")
  port_setting[$DEV_PG_PORT]=DEV_PG_PORT
  settings+=" DEV_PG_PORT=$DEV_PG_PORT"
else
  settings+=" DATABASE_URL=(yours)"
fi
run_name=run-$http_port
logs=$root/.devdata/$run_name # this run's directory: logs, owner, and (usually) its data
owner=$logs/owner
bindir=$(pg_server_bindir) # also for stopping clusters that runs which are gone left running
if [ -n "$cluster" ] && [ -z "$bindir" ]; then
  die "no PostgreSQL server binaries found. Install them (Debian: apt-get install postgresql)
          or set DATABASE_URL to an existing database."
fi

# --- stopping everything, however the script ends ------------------------------------------------
declare -A pids=() # piece name -> pid
pg_started=""
claimed="" # set once owner is ours: then it is removed when this run has stopped everything
cleanup() {
  trap - EXIT INT TERM HUP
  set +e # stop all of it, even when a message cannot be written (the terminal has gone)
  local name pid stopped=1
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
  if [ -n "$pg_started" ] && cluster_running "$pgdata"; then
    say "stopping PostgreSQL"
    as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || stopped=""
  fi
  # The record goes once everything is stopped; if the cluster would not stop, the next run stops it.
  if [ -n "$claimed" ] && [ -n "$stopped" ]; then
    rm -f "$owner"
    rmdir "$logs" 2>/dev/null # when it stopped before writing anything there
  fi
  return 0
}
trap cleanup EXIT
trap 'exit 0' INT # Ctrl-C is how make run is meant to end
trap 'exit 0' TERM
trap 'exit 0' HUP

# suggest_ports prints settings of free ports for this run, e.g. HTTP_ADDR=127.0.0.1:18080
# DOKUSIM_ADDR=127.0.0.1:18081 DEV_PG_PORT=54339; nothing when it finds none. $busy: ports live runs
# of this checkout use.
busy=" "
suggest_ports() {
  local k h p port ok
  for k in $(seq 0 19); do
    h=$((18080 + 10 * k)) p=$((54339 + 10 * k))
    ok=1
    for port in "$h" "$((h + 1))" "$p"; do
      if [[ "$busy" == *" $port "* ]] || [ -n "$(port_user "$port")" ]; then ok=""; fi
    done
    [ -n "$ok" ] || continue
    printf '%s' "HTTP_ADDR=${HTTP_ADDR%:*}:$h"
    if [ -n "$with_sim" ]; then printf ' %s' "DOKUSIM_ADDR=${DOKUSIM_ADDR%:*}:$((h + 1))"; fi
    if [ -n "$cluster" ]; then printf ' %s' "DEV_PG_PORT=$p"; fi
    echo
    return
  done
}
other_ports() { # how to run on other ports, for a message
  local s
  s=$(suggest_ports)
  if [ -n "$s" ]; then
    echo "run this one on other ports, e.g.
            $s make run
          (or set them in .env)"
  else
    echo "set other ports in HTTP_ADDR, DOKUSIM_ADDR and DEV_PG_PORT"
  fi
}

mkdir -p "$root/.devdata"
runs_lock || die "cannot tell which ports other make runs use"
gone=() # run directories whose make run is gone
for file in "$root"/.devdata/run-*/owner; do
  [ -f "$file" ] || continue
  owner_read "$file"
  if ! owner_alive; then
    gone+=("$(basename "$(dirname "$file")")")
    continue
  fi
  busy+="$o_ports "
  clash=()
  for port in "${ours[@]}"; do
    if [[ " $o_ports " == *" $port "* ]]; then clash+=("$port (${port_setting[$port]})"); fi
  done
  if [ "${#clash[@]}" -gt 0 ]; then
    runs_unlock
    die "another make run of this checkout is using $(if [ "${#clash[@]}" -gt 1 ]; then echo ports; else echo port; fi) $(printf '%s, ' "${clash[@]}" | sed 's/, $//'):
          make run $o_desc.
          Stop that one first (Ctrl-C in its terminal), or $(other_ports)"
  fi
done
for name in "${gone[@]}"; do
  file=$root/.devdata/$name/owner
  owner_read "$file"
  # Its owner file stays when its cluster would not stop, for the next run to try again.
  if stop_leftovers "$name"; then rm -f "$file"; fi
done
mkdir -p "$logs"
{
  echo "pid=$$"
  echo "start=$(proc_start $$)"
  echo "boot=$(boot_id)"
  echo "ports=${ours[*]}"
  echo "desc=pid $$ ($settings, since $(date '+%F %T'); its files: $(show "$logs"))"
} >"$owner.new"
mv "$owner.new" "$owner"
claimed=1
runs_unlock

# --- nothing else may hold our ports ---------------------------------------------------------------
port_free() { # PORT SETTING
  local who
  who=$(port_user "$1")
  if [ -n "$who" ]; then
    die "port $1 ($2) is in use (by $who); $(other_ports)"
  fi
}
port_free "$http_port" HTTP_ADDR
if [ -n "$with_sim" ]; then port_free "$sim_port" DOKUSIM_ADDR; fi

# --- where things live ---------------------------------------------------------------------------
data=$logs # the cluster and the simulator's state
if [ -n "$cluster" ] && ! pg_can_enter "$logs"; then
  home=$(dev_cluster_home "$root")
  mkdir -p "$home"
  chown postgres "$home"
  chmod 700 "$home"
  data=$home/$run_name
  mkdir -p "$data"
  say "the postgres user cannot enter $root (a parent directory is closed to it), so the"
  say "PostgreSQL cluster and the simulator's state live in $data (make clean removes it)"
fi
if [ -d "$root/.devdata/pg" ] || [ -f "$root/.devdata/dokusim-state.json" ]; then
  say "note: .devdata/pg and .devdata/dokusim-state.json are an older make run's, before each run had"
  say "its own directory; this run does not use them. make clean removes them."
  if cluster_running "$root/.devdata/pg"; then
    say "That cluster is still running (nothing records whose it is, so it is left alone): make clean stops it."
  fi
fi
pgdata=$data/pg
pglog=$pgdata/server.log
o2o_log=$logs/o2o.log
sim_log=$logs/dokusim.log

# --- PostgreSQL ----------------------------------------------------------------------------------
if [ -n "$cluster" ]; then
  # A cluster still running here belongs to no live run (none owns these ports): one killed outright
  # before it wrote its record. Stop it, then start it as usual.
  if cluster_running "$pgdata"; then
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
    pg_started=1 # pg_ctl may have stopped waiting for a server that came up later: stop that too
    exit 1
  fi
  pg_started=1
  if ! "$bindir/psql" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'o2o'" | grep -q 1; then
    "$bindir/createdb" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres o2o
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$DEV_PG_PORT/o2o?sslmode=disable"
fi

# --- the simulator and the service -----------------------------------------------------------------
# Colours (LOG_FORMAT=console) go to the terminal only, and only when it is one and NO_COLOR is unset.
colour=""
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then colour=1; fi

# log_copy LOG: copies its input to this terminal and, as plain text — without the ANSI escape
# sequences console logs colour with —, to LOG. It outlives Ctrl-C (which the whole terminal gets)
# so that a piece's last lines, written while it stops, still reach both.
log_copy() {
  trap '' INT TERM HUP
  local line plain
  while IFS= read -r line || [ -n "$line" ]; do
    plain=${line//$'\e'\[*([0-9;?])[A-Za-z]/}
    plain=${plain//$'\e'/}
    if [ -n "$colour" ]; then printf '%s\n' "$line"; else printf '%s\n' "$plain"; fi
    printf '%s\n' "$plain" >&3
  done 3>>"$1"
}

# start NAME LOG COMMAND...: runs COMMAND in the background, its output both on this terminal and
# in LOG (written afresh each run), and records it in this run's owner file.
start() {
  local name=$1 log=$2
  shift 2
  : >"$log"
  "$@" > >(log_copy "$log") 2>&1 &
  pids[$name]=$!
  echo "piece=$name ${pids[$name]} $(proc_start "${pids[$name]}")" >>"$owner"
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
      rc=0
      wait "${pids[$name]}" || rc=$?
      if [ "$rc" -eq 0 ]; then exit 0; fi # told to stop (Ctrl-C): see the end
      die "$name exited while starting (exit status $rc); its log: $(log_of "$name")"
    fi
  done
  waiting=()
  # o2o healthcheck URL asks any URL and fails unless it answers 200 (curl may not be installed).
  ./bin/o2o healthcheck "$o2o_url/readyz" >/dev/null 2>&1 || waiting+=("o2o at $o2o_url/readyz (log: $(log_of o2o))")
  if [ -n "$with_sim" ]; then
    ./bin/o2o healthcheck "$sim_url/healthz" >/dev/null 2>&1 || waiting+=("dokusim at $sim_url/healthz (log: $(log_of dokusim))")
  fi
  [ "${#waiting[@]}" -gt 0 ] || break
  if [ "$SECONDS" -ge "$deadline" ]; then
    die "no answer within 30 s from $(printf '%s; ' "${waiting[@]}" | sed 's/; $//')"
  fi
  sleep 0.5
done

key=${API_KEYS%%,*}
key=${key#*:} # name:key → key
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
echo "  This run's files: $(show "$logs")$(if [ "$data" != "$logs" ]; then echo ", $data"; fi)"
echo "  Another make run beside it needs other ports: HTTP_ADDR, DOKUSIM_ADDR, DEV_PG_PORT."
echo
# The walk-through README.md shows too. A fresh invoice number each time: a number once used with
# other fields answers 409.
create="curl -s -X POST $o2o_url/v1/invoices -H 'Authorization: Bearer $key' -H 'Content-Type: application/json' -d '{\"invoice_number\":\"'\$INV'\",\"channel\":\"alfa\",\"amount\":150000,\"customer\":{\"name\":\"Taufik Ismail\",\"email\":\"taufik@example.com\"},\"expires_in_minutes\":60,\"receipt_footer\":\"Thank you for shopping\"}'"
get="curl -s $o2o_url/v1/invoices/\$INV -H 'Authorization: Bearer $key'"
# The customer's payment page: the invoice's payment_page_url, a path unless PUBLIC_BASE_URL makes it
# absolute; this prints it as a link to open.
page_prefix=$o2o_url
if [ -n "${PUBLIC_BASE_URL:-}" ]; then page_prefix=""; fi
page="$get | sed -n 's|.*\"payment_page_url\":\"\\([^\"]*\\)\".*|$page_prefix\\1|p'"
if [ -n "$with_sim" ]; then
  echo "  Try it: create an invoice, open its payment page, pay it at the simulated counter:"
  echo
  echo "    INV=INV-\$(date +%s)"
  echo "    $create"
  echo "    $page"
  echo
  echo "  The last command prints the payment page's link ($page_prefix + the answer's payment_page_url,"
  echo "  $page_prefix/pay/INV-…/…): open it in a browser. Then pay its code at the cashier page,"
  echo "  $sim_url/simulator, and the payment page turns to \"Pembayaran diterima\" by itself."
  echo "  Or pay from here, and see the invoice paid:"
  echo
  echo "    curl -s -X POST $sim_url/simulator/payments -H 'Content-Type: application/json' -d '{\"invoice_number\":\"'\$INV'\"}'"
  echo "    $get"
  echo
  echo "  More in README.md, Walk-through."
else
  echo "  With a real DOKU (deploy/GOING-LIVE.md):"
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
rc=0
wait -n "${pids[@]}" || rc=$?
# A piece that ended with status 0 was told to stop. Ctrl-C reaches every piece, and since they
# handle it and end normally, bash runs no INT trap of its own (it leaves SIGINT to commands that
# handle it): so that is how Ctrl-C shows here. The pieces still running are stopped on the way out.
if [ "$rc" -eq 0 ]; then exit 0; fi
for name in "${!pids[@]}"; do
  if ! kill -0 "${pids[$name]}" 2>/dev/null; then
    die "$name stopped (exit status $rc); its log: $(log_of "$name"). Stopping the rest."
  fi
done
