# The two commands a newcomer needs: `make run` (a working local stack) and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build run test fmt vet lint bench fuzz clean

all: build

build: ## Build the service and the DOKU simulator into ./bin
	$(GO) build -trimpath -o $(BIN)/o2o ./cmd/o2o
	$(GO) build -trimpath -o $(BIN)/dokusim ./cmd/dokusim

run: build ## Postgres (throwaway cluster unless DATABASE_URL is set) + simulator + service
	bash .dev/run.sh

test: ## Every test, with the race detector, against real PostgreSQL (TEST_DATABASE_URL)
	$(GO) test -race -count=1 $(PKGS)

bench: build ## Throughput and latency of create and webhook beside the raw database (needs make test's Postgres)
	$(GO) build -trimpath -o $(BIN)/o2obench ./cmd/o2obench
	./$(BIN)/o2obench -bin $(BIN) -out bench-results/latest.json

FUZZTIME ?= 60s
fuzz: ## Run every fuzz target for FUZZTIME each (their seed corpora run in every make test)
	$(GO) test ./internal/doku -run '^$$' -fuzz '^FuzzNotification$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/doku -run '^$$' -fuzz '^FuzzDokuResponses$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzCreateRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/strictjson -run '^$$' -fuzz '^FuzzCheckDuplicateKeys$$' -fuzztime $(FUZZTIME)

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

vet: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

lint: vet

clean: ## Remove build output and the local Postgres cluster of `make run`
	rm -rf $(BIN) .devdata
