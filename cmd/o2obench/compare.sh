#!/usr/bin/env bash
# Two builds of the service, before and after a change, benched back to back: each revision is built
# into a directory of its own, then the bench runs before, after, before, after (-n pairs) and prints
# the pairs (o2obench -compare). Only runs made one after the other compare: this machine's speed
# swings from one hour to the next.
#
#   bash cmd/o2obench/compare.sh [-n PAIRS] BEFORE AFTER [o2obench flags…]
#
# BEFORE and AFTER are git revisions (HEAD~1, a branch, a commit), or "." for the checkout as it is,
# uncommitted changes included. Each revision is checked out with `git worktree add` into a temporary
# directory (the checkout itself is never switched) and removed afterwards. Both builds are benched by
# the same bench: this checkout's cmd/o2obench is built inside each revision, so that the raw rows,
# which run the service's code inside o2obench, run that revision's code; when it does not build
# there (the service's internals changed too much), the revision's own bench is used, with a warning.
# The other flags go to every run, e.g. -duration 20s, -only webhook,create, -throwaway-cluster (which
# fills the statements columns). Reports: bench-results/compare-<time>/{before,after}-<n>.json.
set -euo pipefail

pairs=2
if [ "${1:-}" = "-n" ]; then
  pairs=$2
  shift 2
fi
if [ "$#" -lt 2 ]; then
  sed -n '2,18p' "$0" >&2
  exit 2
fi
before=$1
after=$2
shift 2

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
GO=${GO:-go}
work=$(mktemp -d -t o2obench-compare.XXXXXX)
out=$root/bench-results/compare-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
worktrees=()

cleanup() {
  local rc=$?
  for wt in "${worktrees[@]}"; do
    git -C "$root" worktree remove --force "$wt" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# build NAME REV: the service, the simulator and the bench of REV into $work/NAME/bin.
build() {
  local name=$1 rev=$2 src bin=$work/$1/bin
  mkdir -p "$bin"
  if [ "$rev" = "." ]; then
    src=$root
  else
    src=$work/$name/src
    git -C "$root" worktree add --detach --quiet "$src" "$rev"
    worktrees+=("$src")
    # This checkout's bench, over the revision's service.
    rm -rf "$src/cmd/o2obench"
    cp -R "$root/cmd/o2obench" "$src/cmd/o2obench"
  fi
  echo "==> building $name ($rev)" >&2
  (cd "$src" && "$GO" build -trimpath -o "$bin/o2o" ./cmd/o2o && "$GO" build -trimpath -o "$bin/dokusim" ./cmd/dokusim)
  if ! (cd "$src" && "$GO" build -trimpath -o "$bin/o2obench" ./cmd/o2obench 2>"$work/$name/bench-build.log"); then
    echo "compare: this checkout's bench does not build against $rev; using $rev's own bench:" >&2
    sed 's/^/    /' "$work/$name/bench-build.log" >&2
    rm -rf "$src/cmd/o2obench"
    git -C "$src" checkout --quiet -- cmd/o2obench
    (cd "$src" && "$GO" build -trimpath -o "$bin/o2obench" ./cmd/o2obench)
  fi
}

build before "$before"
build after "$after"

reports=()
for i in $(seq 1 "$pairs"); do
  for name in before after; do
    echo "==> pair $i: $name" >&2
    "$work/$name/bin/o2obench" -bin "$work/$name/bin" -out "$out/$name-$i.json" "$@"
    reports+=("$out/$name-$i.json")
  done
done

list=$(IFS=,; echo "${reports[*]}")
"$work/after/bin/o2obench" -compare "$list" | tee "$out/pairs.txt"
echo "reports and pairs: $out" >&2
