# ToffeePay: `make run` starts the server with a sandbox game; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The TypeScript SDK's packages (npm ci from its package-lock.json).
NODE_STAMP := sdk/typescript/node_modules/.installed

.PHONY: run test install lint check-generated generate services browser go sdk-deps bench screenshots clean

$(STAMP): pyproject.toml sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==25.3
	$(BIN)/python -m pip install -q -e sdk/python -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): sdk/typescript/package.json sdk/typescript/package-lock.json
	cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

## Go for the Go SDK, from Debian's packages (standard library only: no module downloads).
go:
	@command -v go >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null)

## The toolchains and packages of the TypeScript and Go SDKs.
sdk-deps: $(NODE_STAMP) go

## The server on its embedded SQLite default, with the sandbox game `space_shooter`; sandbox
## webhooks may go to a game server on localhost or the local network.
run: $(STAMP)
	TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS=$${TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS:-sandbox} $(BIN)/toffeepay serve --sandbox-game space_shooter

## Everything the tests need (PostgreSQL and Redis running, Chromium, the SDK toolchains), then all tests on
## both engines, the TypeScript and Go SDKs' suites included (tests/e2e/test_sdk_languages.py).
test: $(STAMP) services browser sdk-deps lint check-generated
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

services:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes >/dev/null
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL is not running" >&2; exit 1

browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

lint: $(STAMP) go
	$(BIN)/ruff check src tests bench sdk/python sdk/go/generate.py
	$(BIN)/ruff format --check src tests bench sdk/python sdk/go/generate.py
	@test -z "$$(gofmt -l sdk/go)" || (gofmt -l sdk/go; echo "Go files need gofmt -w" >&2; exit 1)
	cd sdk/go && GOPROXY=off GOFLAGS=-mod=readonly go vet ./...
	$(BIN)/buf lint
	$(BIN)/lint-imports
	$(BIN)/mypy src/toffeepay_server
	$(BIN)/mypy --strict --no-warn-unused-configs sdk/python/src/toffeepay sdk/python/examples/game_server.py

## Regenerate the code made from proto/ (Python and TypeScript by buf, Go by sdk/go/generate.py)
## and the shared verification vectors; all of it is committed.
generate: $(STAMP) $(NODE_STAMP) go
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/buf generate
	$(BIN)/buf build -o '-#format=json' | $(BIN)/python sdk/go/generate.py
	node sdk/testdata/generate.mjs

## Fails when the committed generated code differs from what buf generates now.
GENERATED := sdk/python/src/toffeepay/_proto sdk/typescript/src/gen sdk/go/types_gen.go sdk/go/services_gen.go sdk/testdata
check-generated: generate
	@git diff --exit-code --stat -- $(GENERATED) || (echo "generated code is stale: run make generate and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || (echo "generated code has untracked files: run make generate and commit" >&2; exit 1)

## Benchmarks (docs/benchmarks.md); wrk is the load generator for the API.
bench: $(STAMP) services
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/api.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/lists.py

## Refresh the pictures in docs/ (payment page, dashboard) from the browser tests.
screenshots: $(STAMP) services browser
	TOFFEEPAY_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_checkout.py tests/e2e/test_dashboard.py -k "sqlite and (screenshot or every_page)"

clean:
	rm -rf $(VENV) toffeepay.db toffeepay.db-wal toffeepay.db-shm sdk/typescript/node_modules sdk/typescript/dist
