# Sixpotify top-tracks. `make run` does the main job offline on the embedded
# default; `make test` runs every test against real local emulators.
SHELL := /bin/bash
GO ?= go
GOFLAGS_BUILD := -trimpath -ldflags='-s -w'
NODE_STAMP := node_modules/.installed
# Fuzz budgets are counts of executions, about 4 s each here: a duration
# (-fuzztime 4s) races Go 1.26's fuzz coordinator at the deadline and fails
# now and then with "context deadline exceeded" and no crasher
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
FUZZ_PARSE ?= 200000x
FUZZ_DECODE ?= 100000x
FUZZ_TOPTRACKS ?= 25000x

.PHONY: all build run test test-go fuzz bench lint emulators clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/worker ./cmd/worker
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/producer ./cmd/producer
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/fakespotify ./cmd/fakespotify

# The local SQS and DynamoDB emulators, at the versions package-lock.json locks.
emulators: $(NODE_STAMP)
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: build
	$(GO) run ./cmd/demo

test: emulators lint test-go fuzz

# The three slowest packages are named first so that go test starts them
# first: ./... alone starts the worker's (about 3 minutes) last, and it then
# runs alone on one core for its whole length.
test-go:
	$(GO) test -race -count=1 -timeout 8m ./worker/ ./internal/gate/ ./internal/e2e/ ./...

# Each fuzz target for its budget; go test -fuzz takes one target at a time.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_PARSE) -fuzzminimizetime 100x ./internal/artistid
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_DECODE) -fuzzminimizetime 100x ./internal/message
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeTopTracks$$' -fuzztime $(FUZZ_TOPTRACKS) -fuzzminimizetime 100x ./internal/spotify

bench: emulators build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 150m ./internal/gate/ ./internal/bench/...
	$(GO) test -run '^$$' -bench '^BenchmarkChaos$$' -benchtime 1x -timeout 30m ./internal/gate/ -args -chaos.seeds 2000

# gofmt, go vet, and internal/deploy's checks of the Dockerfile (multi-stage,
# CGO_ENABLED=0, non-root, pinned bases, HEALTHCHECK via worker healthcheck)
# and of deploy/ against the code - no Docker engine or AWS needed.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 ./internal/deploy/
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin lake sixpotify.db sixpotify.db-wal sixpotify.db-shm
