# bullflow -- run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEPS_STAMP := $(VENV)/.deps-installed
BUILD_STAMP := $(VENV)/.core-built
export PATH := $(HOME)/.cargo/bin:$(PATH)
RUST_SOURCES := Cargo.toml Cargo.lock $(shell find rust_core -name '*.rs' 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: browser help demo demo-inprocess test test-python test-rust bench loadtest loadtest-http soak lint wheel wheel-smoke redis toolchain deps build clean node-deps flowcraft-deps

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'

demo: build redis ## 1,000 content-moderation runs on 2 worker processes (own redis-server); prints throughput, latency, an output
	$(PY) -m examples.distributed_demo

demo-inprocess: build ## The content-moderation example once, in-process (no Redis), printing its final output
	$(PY) -m examples.content_moderation

test: build redis node-deps browser ## Install everything needed, then run pytest (slow-marked too), cargo test and the wheel smoke test
	$(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)
	cd $(CURDIR) && cargo test --quiet --no-default-features
	$(MAKE) --no-print-directory wheel-smoke

test-python: build redis ## Only the pytest suite
	$(PY) -m pytest $(PYTEST_ARGS)

test-rust: toolchain ## Only cargo test
	cargo test --no-default-features

bench: build redis flowcraft-deps ## Benchmarks with timing on (Flowcraft's Node adapter too); prints a comparison table
	$(PY) -m pytest bench --benchmark-enable --benchmark-only --benchmark-columns=min,median,mean,ops,rounds \
		--benchmark-sort=name --benchmark-autosave --benchmark-storage=.benchmarks --benchmark-json=.benchmarks/latest.json -p no:randomly $(PYTEST_ARGS)
	$(PY) -m bench.report .benchmarks/latest.json

loadtest: build redis ## Locust, headless: workflow runs on 2 worker processes (own redis-server) for 60 s; prints runs/s, failures, p50/p95/p99
	$(PY) -m loadtest.run $(LOADTEST_ARGS)

loadtest-http: build redis ## Locust, headless, through the HTTP API (own redis-server, 2 workers, bullflow serve) for 60 s; prints requests/s, failures, p50/p95/p99, lost runs
	$(PY) -m loadtest.http_run $(LOADTEST_ARGS)

soak: build redis ## Long-running tests (fuzzing, soaks) marked slow
	$(PY) -m pytest -m slow --timeout=1800 $(PYTEST_ARGS)

lint: build ## ruff, mypy (+ stubtest), cargo clippy and cargo fmt --check
	$(VENV)/bin/ruff check python tests bench examples loadtest
	$(VENV)/bin/ruff format --check python tests bench examples loadtest
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest bullflow._core
	cargo clippy --all-targets -- -D warnings
	cargo fmt --check

wheel: toolchain $(DEPS_STAMP) ## Build the abi3 wheel into target/wheels/
	$(VENV)/bin/maturin build --release --quiet

wheel-smoke: wheel ## Install the wheel into a clean venv and run a workflow with it
	rm -rf .wheel-smoke && $(PYTHON) -m venv .wheel-smoke
	.wheel-smoke/bin/pip install --quiet $$(ls -t target/wheels/bullflow-*.whl | head -n 1)
	cd /tmp && $(CURDIR)/.wheel-smoke/bin/python $(CURDIR)/examples/wheel_smoke.py

redis: ## Install redis-server when it is not on PATH (apt-get)
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }

browser: ## Install Debian's chromium when it is not on PATH (apt-get; the dashboard's browser tests drive it)
	@command -v chromium >/dev/null || { \
		echo "installing chromium"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

toolchain: ## Make sure cargo is available (Debian's packages when rustup's is absent)
	@command -v cargo >/dev/null || [ -x $(HOME)/.cargo/bin/cargo ] || { \
		echo "installing cargo"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq cargo rustc >/dev/null; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): pyproject.toml requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	$(PIP) install --quiet "redis[hiredis]==7.4.1" "bullmq==3.4.4" "orjson>=3.10,<4"
	touch $@

deps: $(DEPS_STAMP) ## Create .venv and install the Python packages

NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@

node-deps: ## Install the Node packages of the wire-compatibility tests (tests/node; skipped without npm)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_STAMP); \
	else echo "npm not found: the Node compatibility tests will be skipped"; fi

FLOWCRAFT_DIR := bench/flowcraft
FLOWCRAFT_STAMP := $(FLOWCRAFT_DIR)/node_modules/.installed

$(FLOWCRAFT_STAMP): $(FLOWCRAFT_DIR)/package.json $(FLOWCRAFT_DIR)/package-lock.json
	cd $(FLOWCRAFT_DIR) && npm ci --no-audit --no-fund
	touch $@

flowcraft-deps: ## Install Flowcraft's Node BullMQ adapter for its W3 benchmark (bench/flowcraft; skipped without npm)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(FLOWCRAFT_STAMP); \
	else echo "npm not found: the Flowcraft benchmark will be skipped"; fi

$(BUILD_STAMP): $(DEPS_STAMP) $(RUST_SOURCES) pyproject.toml
	$(MAKE) --no-print-directory toolchain
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --release --quiet
	touch $@

build: $(BUILD_STAMP) ## Build the Rust extension into .venv (editable install of bullflow)

clean: ## Remove build products and the venv
	rm -rf $(VENV) .wheel-smoke target .benchmarks .pytest_cache .hypothesis
