# twofa — the targets a newcomer can guess.
#   make run          run the service on embedded SQLite
#   make test         everything CI runs: installs test tools, gofmt, vet, race tests
#   make bench        benchmarks
#   make bench-http   twofa serve under twofa-bench for a short run, over HTTP
#   make fuzz         every fuzz target for FUZZTIME each
#   make lint         gofmt, vet, staticcheck, govulncheck, no fmt.Print outside cmd/
#   make prove        replicas on PostgreSQL and kill -9 under load, with figures
#   make screenshots  PNGs of the hosted pages under docs/screenshots, from headless Chromium

GO       ?= go
FUZZTIME ?= 30s
# The PostgreSQL tests read TWOFA_TEST_POSTGRES_DSN, which this sets: to
# the DSN you give (make test TWOFA_TEST_POSTGRES_DSN=...), else to the
# server at 127.0.0.1:5432, else to a throwaway cluster it starts for the
# run and stops after it (see the script).
WITH_POSTGRES = bash scripts/with-postgres.sh

.PHONY: run test test-deps check-fmt vet bench bench-http fuzz lint screenshots prove

run:
	$(GO) run ./cmd/twofa serve

test: test-deps check-fmt vet
	TWOFA_TEST_REQUIRE_ALL=1 $(WITH_POSTGRES) $(GO) test -race -count=1 ./...
	FUZZTIME=3s bash scripts/fuzz.sh

test-deps:
	bash scripts/install-test-deps.sh

check-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: run gofmt -w on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

bench:
	$(WITH_POSTGRES) $(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

# BENCH_DURATION, BENCH_USERS, BENCH_FLAGS and SERVE_FLAGS tune it (see the script).
bench-http:
	GO=$(GO) bash scripts/bench-http.sh

fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

lint: check-fmt vet
	bash scripts/lint.sh

# The browser tests (cmd/twofa/browser_test.go) save a PNG of each page they
# see; make test-deps installs Chromium.
screenshots:
	TWOFA_TEST_REQUIRE_ALL=1 TWOFA_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -run '^TestBrowser' -count=1 ./cmd/twofa

# Three replicas on one PostgreSQL, and kill -9 under load on SQLite and
# PostgreSQL, for TOTP, backup codes and email (codes and notices through
# the outbox into Mailpit), in full (make test runs the short version).
prove: test-deps
	@out=$$(mktemp -d); \
	TWOFA_PROVE_FULL=1 TWOFA_TEST_REQUIRE_ALL=1 TWOFA_PROVE_OUT=$$out $(WITH_POSTGRES) $(GO) test -count=1 -v -timeout 60m ./prove; status=$$?; \
	echo; echo "== make prove: figures =="; cat $$out/results.txt 2>/dev/null; rm -rf $$out; exit $$status
