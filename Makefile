# The project's vocabulary. `make run` and `make test` work on a fresh machine: they create
# .venv/ and install everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What each target needs, one stamp each: `make run` the runtime extras (the demo collects,
# the report and dashboard draw charts), `make test` everything. A venv made by `make run`
# still gets the dev and bench tools when `make test` runs; either redoes its install when
# pyproject.toml changes.
RUN_EXTRAS := collect,report
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
NATIVE_STAMP := $(VENV)/.installed-native
# rustup's cargo, also where a shell's profile did not put it on PATH
export PATH := $(PATH):$(HOME)/.cargo/bin

.PHONY: install run replay-real native-note test lint bench clean kafka-up kafka-down s3-up s3-down help

help:
	@echo "make run      set up and run the demo (collect a simulated fediverse into ./demo-lake, print the report)"
	@echo "make replay-real  replay the bundled real recordings into ./real-lake, print the report"
	@echo "make test     set up and run all tests (starts and stops the services they need)"
	@echo "make lint     ruff + mypy + the layering contract (import-linter)"
	@echo "make bench    benchmarks, results in bench/results/"
	@echo "make install  set up .venv with every extra and the development tools"
	@echo "make kafka-up / kafka-down  an Apache Kafka broker on 127.0.0.1 (docs/kafka.md)"
	@echo "make s3-up / s3-down        moto's S3 server on 127.0.0.1 (docs/s3.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` builds the native helpers where cargo is installed, and runs without them (the
# same results, in Python, slower) where it is not; `make test` needs them.
# (`cargo --version`, not `command -v`: a rustup shim without a toolchain cannot build)
HAVE_CARGO := $(shell PATH="$(PATH)" cargo --version 2>/dev/null)
RUN_NATIVE := $(if $(HAVE_CARGO),$(NATIVE_STAMP))
# Without cargo, a module built before from sources changed since would not match them
STALE_NATIVE := $(if $(HAVE_CARGO),,$(if $(wildcard $(NATIVE_STAMP)),$(shell find native/src native/Cargo.toml native/Cargo.lock -newer $(NATIVE_STAMP) 2>/dev/null | head -1)))

$(RUN_STAMP): pyproject.toml $(RUN_NATIVE) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(RUN_EXTRAS)]"
	touch $@

# The per-post helpers in Rust (native/, docs/native.md): built with cargo from crates.io,
# rebuilt when their sources change. Without them tootlake runs its Python code.
$(NATIVE_STAMP): native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs) native/tootlake_native.pyi | $(BIN)/python
	@command -v cargo >/dev/null || { echo "Building tootlake's native helpers needs Rust's cargo (https://rustup.rs): make test, make install, make lint and make bench need them; make run and make replay-real work without (in Python alone: docs/native.md)"; exit 1; }
	$(BIN)/python -m pip install --quiet ./native
	touch $@

# dev and bench include [all], a superset of the run extras: the run stamp is made too.
$(DEV_STAMP): pyproject.toml $(NATIVE_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@ $(RUN_STAMP)

install: $(DEV_STAMP)

# The main job on a machine without internet: a simulated fediverse on loopback, collected
# into ./demo-lake, the demo's own (streaming with tokens, polling, a token-less instance),
# then the report. Each run starts that lake afresh.
run: $(RUN_STAMP) native-note
	$(BIN)/tootlake demo

# What `make run` and `make replay-real` say when they run without the native helpers.
native-note: $(RUN_STAMP)
	@$(if $(STALE_NATIVE),$(BIN)/python -m pip uninstall --quiet -y tootlake-native && rm -f $(NATIVE_STAMP) && echo "Note: native/ changed since its module was built and cargo is not installed to build it again: the old module is removed")
	@$(BIN)/python -c "import tootlake_native" 2>/dev/null || echo "Note: tootlake runs without its native helpers (Rust's cargo is not installed to build them): the same results, more slowly. Install cargo (https://rustup.rs) and run make again to build them (docs/native.md)."

# Replay the bundled real recordings (tests/fixtures/real) into ./real-lake, a lake of their
# own (made afresh, never mixed with the demo's simulated posts), and print the report.
replay-real: $(RUN_STAMP) native-note
	rm -rf ./real-lake
	$(BIN)/tootlake replay tests/fixtures/real/mastodonsocial.json tests/fixtures/real/malformed.json tests/fixtures/real/timelines.jsonl --lake ./real-lake --quiet
	$(BIN)/tootlake report --lake ./real-lake

test: $(DEV_STAMP)
	scripts/spark.sh
	scripts/test.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(DEV_STAMP)
	$(BIN)/python bench/vendor.py
	$(BIN)/python bench/run.py
	$(BIN)/python bench/report_bench.py
	$(BIN)/python bench/kafka_bench.py
	$(BIN)/python bench/collect_bench.py
	$(BIN)/python bench/ws_bench.py
	$(BIN)/python bench/stages_bench.py
	$(BIN)/python bench/redact_bench.py
	$(BIN)/python bench/lake_bench.py

kafka-up:  ## a local single-node Kafka 4 broker (KRaft) on 127.0.0.1:$${KAFKA_PORT:-9092}
	scripts/kafka.sh up

kafka-down:  ## stop it (data kept; scripts/kafka.sh down --purge deletes it)
	scripts/kafka.sh down

s3-up:  ## a local S3 server (moto) on 127.0.0.1:$${S3_PORT:-9000}
	scripts/s3.sh up

s3-down:  ## stop it (its data is in memory: gone)
	scripts/s3.sh down

clean:
	rm -rf lake test-artifacts .pytest_cache .mypy_cache .ruff_cache
