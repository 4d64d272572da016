# The two commands a newcomer needs: `make run` (a working local stack) and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...
# Extra `go test` flags for `make test`, e.g. make test TESTFLAGS='-run TestWebhook -v' (a pattern
# with | needs its own quotes: TESTFLAGS="-run 'TestA|TestB'"); PKGS narrows the packages.
TESTFLAGS ?=

# staticcheck, pinned; installed from the Go module proxy into bin/tools on first use. The directory
# names the Go version too, so a new Go (or a new pin) gets a staticcheck built for it.
STATICCHECK_VERSION := v0.8.2
STATICCHECK_DIR     := $(BIN)/tools/staticcheck-$(STATICCHECK_VERSION)-$(shell $(GO) env GOVERSION)
STATICCHECK         := $(STATICCHECK_DIR)/staticcheck

.PHONY: all build run test test-ha k8s-check contract-generators squawk fmt vet staticcheck compose-check lint bench fuzz clean

# deploy/kubernetes/check is a Go module of its own (Kubernetes' and kustomize's dependencies stay out
# of go.mod), so ./... does not reach it. It needs no cluster and no database.
K8S_CHECK := deploy/kubernetes/check

all: build

build: ## Build the service and the DOKU simulator into ./bin
	$(GO) build -trimpath -o $(BIN)/o2o ./cmd/o2o
	$(GO) build -trimpath -o $(BIN)/dokusim ./cmd/dokusim

run: build ## Postgres (throwaway cluster unless DATABASE_URL is set) + simulator + service
	bash .dev/run.sh

test: k8s-check ## Every test, with the race detector, against real PostgreSQL (TEST_DATABASE_URL, else a throwaway cluster)
	GO=$(GO) bash .dev/test.sh $(TESTFLAGS) $(PKGS)

test-ha: ## PostgreSQL failover proven: its own primary and streaming standby, SIGKILL, promotion, both standby modes, a packet-dropping host (needs PostgreSQL's server binaries, iproute2, root or password-less sudo; about 1.5 min)
	$(GO) test -tags ha -race -count=1 -v ./internal/failover/

k8s-check: ## The Kubernetes manifests build, decode strictly into the API types and agree with the code (offline)
	cd $(K8S_CHECK) && $(GO) test -count=1 ./...

# make bench VOLUME=2000000: then a year of that many invoices in the same database and the rows again;
# make bench PGSS=1: on a throwaway cluster with pg_stat_statements (cmd/o2obench/README.md).
VOLUME ?=
PGSS ?=
bench: build ## Throughput, latency and cost of create and webhook against pgbench's ceiling and the raw database (needs make test's Postgres and pgbench)
	$(GO) build -trimpath -o $(BIN)/o2obench ./cmd/o2obench
	./$(BIN)/o2obench -bin $(BIN) -out bench-results/latest.json $(if $(VOLUME),-volume $(VOLUME)) $(if $(PGSS),-throwaway-cluster)

FUZZTIME ?= 60s
fuzz: ## Run every fuzz target for FUZZTIME each (their seed corpora run in every make test)
	$(GO) test ./internal/doku -run '^$$' -fuzz '^FuzzNotification$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/doku -run '^$$' -fuzz '^FuzzDokuResponses$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzCreateRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzEventRoutes$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/strictjson -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)

# Go files: tracked ones and new ones not yet added (but not git-ignored ones).
GOFILES = $$(git ls-files --cached --others --exclude-standard '*.go')

fmt: ## Format the code
	gofmt -w $(GOFILES)

vet: ## gofmt check and go vet
	@files=$(GOFILES); [ -n "$$files" ] || { echo "vet: git lists no Go file (not a git checkout?): nothing would be checked"; exit 1; }; \
	out=$$(gofmt -l $$files </dev/null); if [ -n "$$out" ]; then echo "gofmt needed (make fmt):"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags ha ./internal/failover/
	cd $(K8S_CHECK) && $(GO) vet ./...

staticcheck: $(STATICCHECK) ## staticcheck (pinned version, installed into bin/tools)
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags ha ./internal/failover/
	cd $(K8S_CHECK) && $(CURDIR)/$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(STATICCHECK_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# There is no Docker engine in CI: the compose file is validated offline by Debian's docker-compose
# (.ci/run installs it), and the Dockerfile by TestDockerfileCopiesWhatTheBuildNeeds.
compose-check: ## docker-compose.yml is a valid compose file
	@if command -v docker-compose >/dev/null; then docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; \
	elif [ -n "$$CI" ]; then echo "compose-check: docker-compose is not installed" >&2; exit 1; \
	else echo "compose-check: skipped here, docker-compose is not installed (Debian: apt-get install docker-compose)"; fi

contract-generators: ## api/openapi.yaml survives oapi-codegen (Go client) and openapi-typescript (TS types): generated code compiles (pinned, installed into bin/tools)
	GO=$(GO) bash .dev/contract-generators.sh

squawk: ## squawk over the migrations from 00012 on (pinned, installed into bin/tools with npm)
	bash .dev/squawk.sh

lint: vet staticcheck compose-check contract-generators squawk ## What CI checks before the tests: gofmt, go vet, staticcheck, the compose file, the contract's generated clients, the migrations (squawk)

clean: ## Remove build output (bin/, tools included) and what `make run` and `make test` left in .devdata/ (a running one's stays)
	rm -rf $(BIN)
	bash .dev/clean.sh
