# The two commands a newcomer needs: `make run` (a working local stack) and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build run test test-short fmt vet lint bench clean

all: build

build: ## Build the service and the DOKU simulator into ./bin
	$(GO) build -trimpath -o $(BIN)/o2o ./cmd/o2o
	$(GO) build -trimpath -o $(BIN)/dokusim ./cmd/dokusim

run: build ## Postgres (throwaway cluster unless DATABASE_URL is set) + simulator + service
	bash .dev/run.sh

test: ## Every test, with the race detector, against real PostgreSQL (TEST_DATABASE_URL)
	$(GO) test -race -count=1 $(PKGS)

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

vet: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

lint: vet

clean: ## Remove build output and the local Postgres cluster of `make run`
	rm -rf $(BIN) .devdata
