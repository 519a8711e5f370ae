# Targets a newcomer guesses. Each does its own set-up (virtual environment, install).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
BUF    := .tools/node_modules/.bin/buf
PYTEST_ARGS ?=

.PHONY: install proto check-proto servers run test test-faults lint format bench watcher-deps clean

$(STAMP): pyproject.toml
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

proto: $(STAMP)
	PYTHON=$(abspath $(PY)) scripts/gen_protos.sh

check-proto: $(STAMP)
	PYTHON=$(abspath $(PY)) scripts/check_protos.sh

servers:
	scripts/ensure_servers.sh

## Run the whole platform (four services in one process, dev auth) on local PostgreSQL and RabbitMQ.
run: $(STAMP) servers
	SPEAKO_ENV=$${SPEAKO_ENV:-dev} $(VENV)/bin/speako serve all

## Run every test (unit, integration, e2e) against the real servers.
test: $(STAMP) servers check-proto watcher-deps
	$(VENV)/bin/pytest -m "not faults" $(PYTEST_ARGS)

## Fault injection (tests/faults): kills services, restarts PostgreSQL and RabbitMQ; writes docs/RELIABILITY.md.
test-faults: $(STAMP) servers
	$(VENV)/bin/pytest -m faults tests/faults $(PYTEST_ARGS)

$(BUF):
	mkdir -p .tools && cd .tools && npm install --silent --no-audit --no-fund @bufbuild/buf@1.75.0

lint: $(STAMP) $(BUF)
	$(BUF) lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chassis services speako/cli bench

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Benchmarks (bench/): prints the figures and writes docs/PERFORMANCE.md (5-7 minutes on 2 cores).
bench: $(STAMP) servers watcher-deps
	@# h2load (nghttp2, in C) drives the closed-loop RouteCall and echo runs; see bench/h2load.py.
	command -v h2load >/dev/null || apt-get install -y nghttp2-client || (apt-get update && apt-get install -y nghttp2-client)
	$(PY) -m bench

## The fan-out's C++ watcher (bench/cpp/watch.cc, built on first use) needs g++ and gRPC's C++ library.
WATCHER_DEPS = g++ pkg-config libgrpc++-dev
watcher-deps:
	(command -v g++ >/dev/null && pkg-config --exists grpc++ 2>/dev/null) || apt-get install -y $(WATCHER_DEPS) || (apt-get update && apt-get install -y $(WATCHER_DEPS))

clean:
	rm -rf $(VENV) .tools .run/bench-watch-*
