#!/usr/bin/env bash
# Does api/openapi.yaml survive the generators its consumers use? `make contract-generators` (part of
# `make lint`) generates, from the contract:
#   - a Go client with oapi-codegen (with api/generators/oapi-codegen.yaml), and builds, vets and runs
#     api/generators/go, a program that creates an invoice, reads it back and decodes an Event with it;
#   - TypeScript types with openapi-typescript, and compiles api/generators/ts/check.ts (create, get,
#     the webhook's Event) against them with tsc --noEmit --strict.
# It fails (exit 1) when either does not compile. Everything is generated in a temporary directory;
# the generators are pinned and installed once into bin/tools (oapi-codegen from the Go module proxy,
# like staticcheck; openapi-typescript and typescript with npm ci from api/generators/ts's lock file).
#
# Usage: .dev/contract-generators.sh [SPEC]   SPEC defaults to api/openapi.yaml; any other copy of
# the contract can be checked the same way. OAPI_CODEGEN_CONFIG overrides the oapi-codegen config.
# Without node and npm the TypeScript half is skipped with a message, except in CI (CI set), where it
# fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}

OAPI_CODEGEN_VERSION=v2.8.2
# openapi-typescript's defaults make a field with a default (reusable) required in the request and
# an object without properties (metadata) Record<string, never>, which nothing can be written into.
OPENAPI_TS_FLAGS=(--default-non-nullable false --empty-objects-unknown)

gen=api/generators
tools=bin/tools
config=${OAPI_CODEGEN_CONFIG:-$gen/oapi-codegen.yaml}

log() { printf 'contract-generators: %s\n' "$*"; }
die() { printf 'contract-generators: %s\n' "$*" >&2; exit 1; }

spec=${1:-api/openapi.yaml}
[ -f "$spec" ] || die "no such file: $spec"
spec=$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")
[ -f "$config" ] || die "no such file: $config"
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")

work=$(mktemp -d -t contract-generators.XXXXXX)
trap 'rm -rf "$work"' EXIT

failures=()
# step NAME CMD...: runs CMD with its output kept aside; on failure prints the output and records NAME.
step() {
  local name=$1 out="$work/step.log"
  shift
  if "$@" >"$out" 2>&1; then
    return 0
  fi
  printf '\n---- %s failed:\n' "$name" >&2
  sed 's/^/    /' "$out" >&2
  failures+=("$name")
  return 1
}

in_dir() { (cd "$1" && shift && "$@"); }

start=$SECONDS

# ---- Go: oapi-codegen -------------------------------------------------------------------------
oapi_dir=$tools/oapi-codegen-$OAPI_CODEGEN_VERSION-$($GO env GOVERSION)
oapi=$root/$oapi_dir/oapi-codegen
if [ ! -x "$oapi" ]; then
  log "installing oapi-codegen $OAPI_CODEGEN_VERSION into $oapi_dir"
  GOBIN=$root/$oapi_dir $GO install "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$OAPI_CODEGEN_VERSION" ||
    die "could not install oapi-codegen $OAPI_CODEGEN_VERSION"
fi

go_check() {
  cp -R "$gen/go" "$work/go"
  mkdir -p "$work/go/o2oclient"
  step "oapi-codegen $OAPI_CODEGEN_VERSION: generating the Go client" \
    "$oapi" -config "$config" -o "$work/go/o2oclient/o2o.gen.go" "$spec" || return 1
  # A throwaway module: its go.mod pins the runtime; -mod=mod lets go add what the client imports.
  local goenv=(env GOWORK=off "GOFLAGS=${GOFLAGS:+$GOFLAGS }-mod=mod")
  step "go build: the generated Go client and api/generators/go" \
    in_dir "$work/go" "${goenv[@]}" "$GO" build -o contractcheck . || return 1
  step "go vet: the generated Go client and api/generators/go" \
    in_dir "$work/go" "${goenv[@]}" "$GO" vet ./... || return 1
  step "api/generators/go: using the generated Go client" "$work/go/contractcheck" || return 1
  log "Go client (oapi-codegen $OAPI_CODEGEN_VERSION): compiles, vets and works: $(cat "$work/step.log")"
}
go_check || true

# ---- TypeScript: openapi-typescript + tsc -----------------------------------------------------
ts_check() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 18 ]; then
    failures+=("node $(node --version) is too old: openapi-typescript needs node 18.17 or newer")
    return 1
  fi
  # The install is keyed on the lock file: a new pin installs anew beside the old one.
  local key ts_dir
  key=$(node -e 'const c=require("crypto").createHash("sha256");for(const f of process.argv.slice(1))c.update(require("fs").readFileSync(f));console.log(c.digest("hex").slice(0,12))' \
    "$gen/ts/package.json" "$gen/ts/package-lock.json")
  ts_dir=$tools/openapi-typescript-$key
  if [ ! -x "$ts_dir/node_modules/.bin/tsc" ] || [ ! -x "$ts_dir/node_modules/.bin/openapi-typescript" ]; then
    log "installing openapi-typescript and typescript (api/generators/ts/package-lock.json) into $ts_dir"
    rm -rf "$ts_dir.partial"
    mkdir -p "$ts_dir.partial"
    cp "$gen/ts/package.json" "$gen/ts/package-lock.json" "$ts_dir.partial/"
    (cd "$ts_dir.partial" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
      die "npm ci failed for api/generators/ts/package-lock.json"
    rm -rf "$ts_dir"
    mv "$ts_dir.partial" "$ts_dir"
  fi
  local versions
  versions="openapi-typescript $(node -p 'require(process.argv[1]).version' "$root/$ts_dir/node_modules/openapi-typescript/package.json"), typescript $(node -p 'require(process.argv[1]).version' "$root/$ts_dir/node_modules/typescript/package.json")"

  mkdir -p "$work/ts"
  cp "$gen/ts/check.ts" "$gen/ts/tsconfig.json" "$work/ts/"
  step "openapi-typescript: generating the TypeScript types" \
    env NO_COLOR=1 FORCE_COLOR=0 "$root/$ts_dir/node_modules/.bin/openapi-typescript" "$spec" -o "$work/ts/o2o.ts" "${OPENAPI_TS_FLAGS[@]}" || return 1
  step "tsc --noEmit --strict: the generated types and api/generators/ts/check.ts" \
    in_dir "$work/ts" "$root/$ts_dir/node_modules/.bin/tsc" --noEmit --strict -p tsconfig.json || return 1
  log "TypeScript types ($versions): check.ts compiles with tsc --noEmit --strict"
}
if command -v node >/dev/null && command -v npm >/dev/null; then
  ts_check || true
elif [ -n "${CI:-}" ]; then
  failures+=("node and npm are not installed (Debian: apt-get install nodejs npm)")
else
  log "TypeScript: skipped here, node and npm are not installed (Debian: apt-get install nodejs npm)"
fi

if [ ${#failures[@]} -gt 0 ]; then
  {
    printf '\ncontract-generators: FAIL: %s does not survive its generators:\n' "${spec#"$root"/}"
    printf '  - %s\n' "${failures[@]}"
    printf 'Generators turn names in the contract (schemas, operationIds, webhook keys) into identifiers:\n'
    printf 'rename what collides there, never the JSON on the wire. A generator limitation that no name\n'
    printf 'fixes belongs in its settings (api/generators/oapi-codegen.yaml, OPENAPI_TS_FLAGS above).\n'
  } >&2
  exit 1
fi
log "ok: ${spec#"$root"/} survives oapi-codegen and openapi-typescript ($((SECONDS - start))s)"
