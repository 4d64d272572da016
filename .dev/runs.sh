# shellcheck shell=bash disable=SC2034,SC2154 # o_*: set for the caller; root, bindir: the caller's
# Sourced by .dev/run.sh (`make run`) and .dev/clean.sh (`make clean`), after .dev/pg.sh: which
# `make run` owns which run directory, and stopping what a run that is gone left running. Defines
# functions only; they use $root (the checkout), $bindir (PostgreSQL's, may be empty) and the caller's
# say and show.
#
# Every make run has a directory of its own, named after the port of its HTTP_ADDR:
# .devdata/run-<port>/ holds its logs and `owner`; its PostgreSQL cluster (pg/) and the simulator's
# state live there too, or in $(dev_cluster_home)/run-<port>/ when the postgres user cannot enter the
# checkout. `owner` says which process the run is and which ports it uses; the run removes it once it
# has stopped everything. A run killed outright leaves it behind: the next make run or make clean
# finds that process gone, stops what it left running and removes the file. `owner` holds lines of
# key=value:
#
#   pid, start, boot   the run's own process (bash .dev/run.sh), when it started (/proc/<pid>/stat's
#                      starttime, or ps's lstart) and the boot it started in (boot_id): a pid the
#                      kernel has since given to another process is not taken for the run
#   ports              the TCP ports it uses, space-separated: the service's, the simulator's (when it
#                      runs one) and its cluster's (when it starts one)
#   desc               how messages name it
#   piece              "NAME PID START" for each program it started (o2o, dokusim)

# proc_start PID prints when process PID started, as a word; nothing when there is no such process.
proc_start() {
  local stat
  if stat=$(cat "/proc/$1/stat" 2>/dev/null) && [ -n "$stat" ]; then
    # After the command name (in parentheses, and free to hold spaces), starttime is the 20th field.
    stat=${stat##*) }
    local -a f
    read -r -a f <<<"$stat"
    echo "${f[19]}"
  else
    ps -o lstart= -p "$1" 2>/dev/null | tr -s ' ' '_' || true
  fi
}

# proc_cmdline PID prints the command line of process PID.
proc_cmdline() {
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else
    ps -o args= -p "$1" 2>/dev/null || true
  fi
}

# boot_id prints an id of this boot of the machine (empty where there is none).
boot_id() { cat /proc/sys/kernel/random/boot_id 2>/dev/null || true; }

# is_process PID START WHAT: whether PID is still the process that started at START, running a
# command line that contains WHAT.
is_process() {
  local pid=$1 start=$2 what=$3 now
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  now=$(proc_start "$pid")
  [ -n "$now" ] || return 1
  # Without a recorded start time (no /proc and no ps where it started) the command line decides.
  if [ -n "$start" ] && [ "$now" != "$start" ]; then return 1; fi
  [[ "$(proc_cmdline "$pid")" == *"$what"* ]]
}

# owner_read FILE sets o_pid, o_start, o_boot, o_ports, o_desc and o_pieces from an owner file.
owner_read() {
  local kv
  o_pid="" o_start="" o_boot="" o_ports="" o_desc="" o_pieces=()
  while IFS= read -r kv || [ -n "$kv" ]; do
    case ${kv%%=*} in
      pid) o_pid=${kv#*=} ;;
      start) o_start=${kv#*=} ;;
      boot) o_boot=${kv#*=} ;;
      ports) o_ports=${kv#*=} ;;
      desc) o_desc=${kv#*=} ;;
      piece) o_pieces+=("${kv#*=}") ;;
    esac
  done <"$1"
  o_desc=${o_desc:-pid $o_pid}
}

# owner_alive: whether the run owner_read last read is still running.
owner_alive() {
  local boot
  boot=$(boot_id)
  if [ -n "$o_boot" ] && [ -n "$boot" ] && [ "$o_boot" != "$boot" ]; then return 1; fi
  is_process "$o_pid" "$o_start" .dev/run.sh
}

# run_pgdatas NAME prints where run NAME's cluster may be, one per line.
run_pgdatas() {
  echo "$root/.devdata/$1/pg"
  echo "$(dev_cluster_home "$root")/$1/pg"
}

# cluster_running PGDATA: whether a PostgreSQL server runs on that data directory.
cluster_running() {
  [ -n "${bindir:-}" ] && [ -f "$1/postmaster.pid" ] &&
    as_pg "$bindir/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# stop_leftovers NAME: stop what run NAME — gone, read by owner_read — left running: the programs it
# started, if they outlived it (when only the script itself was killed), and its cluster. Returns 1
# when the cluster would not stop.
stop_leftovers() {
  local name=$1 piece pname ppid pstart pgdata rc=0
  for piece in "${o_pieces[@]}"; do
    read -r pname ppid pstart <<<"$piece"
    if is_process "$ppid" "$pstart" "bin/$pname"; then
      say "stopping $pname (pid $ppid), left running by make run $o_desc, which is gone"
      kill -TERM "$ppid" 2>/dev/null || true
      for _ in $(seq 1 100); do
        is_process "$ppid" "$pstart" "bin/$pname" || break
        sleep 0.2
      done
      if is_process "$ppid" "$pstart" "bin/$pname"; then kill -KILL "$ppid" 2>/dev/null || true; fi
    fi
  done
  while IFS= read -r pgdata; do
    if cluster_running "$pgdata"; then
      say "stopping the PostgreSQL that make run $o_desc left running in $(show "$pgdata"): that run is gone"
      as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || rc=1
    fi
  done < <(run_pgdatas "$name")
  return "$rc"
}

# runs_lock / runs_unlock: one make run or make clean at a time reads and claims run directories
# (.devdata/.runs.lock; without flock, no lock). Nothing started while it is held may outlive the
# holder's claim, or it would keep holding it: runs_unlock before starting servers.
runs_lock_fd=""
runs_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec {runs_lock_fd}>"$root/.devdata/.runs.lock"
  if ! flock -w 120 "$runs_lock_fd"; then
    echo "waited 2 minutes for $(show "$root/.devdata/.runs.lock"), held by another make run or make clean" >&2
    return 1
  fi
}
runs_unlock() {
  if [ -n "$runs_lock_fd" ]; then
    exec {runs_lock_fd}>&-
    runs_lock_fd=""
  fi
}
