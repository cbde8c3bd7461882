# The project's vocabulary. `make run` and `make test` work on a fresh machine: they create
# .venv/ and install everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run replay-real test lint bench clean kafka-up kafka-down s3-up s3-down help

help:
	@echo "make run      set up and run the main job (replay bundled recordings, print the report)"
	@echo "make test     set up and run all tests (starts and stops the services they need)"
	@echo "make lint     ruff + mypy + the layering contract (import-linter)"
	@echo "make bench    benchmarks, results in bench/results/"

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev,bench]"
	touch $(INSTALLED)

install: $(INSTALLED)

# The main job on a machine without internet: a simulated fediverse on loopback, collected
# into ./lake (streaming with tokens, polling, a token-less instance), then the report.
run: $(INSTALLED)
	$(BIN)/tootlake demo --lake ./lake

# Replay the bundled real recordings (tests/fixtures/real) into ./lake and print the report.
replay-real: $(INSTALLED)
	$(BIN)/tootlake replay tests/fixtures/real/mastodonsocial.json tests/fixtures/real/malformed.json tests/fixtures/real/timelines.jsonl --lake ./lake --quiet
	$(BIN)/tootlake report --lake ./lake

test: $(INSTALLED)
	scripts/test.sh

lint: $(INSTALLED)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(INSTALLED)
	$(BIN)/python bench/vendor.py
	$(BIN)/python bench/run.py
	$(BIN)/python bench/report_bench.py
	$(BIN)/python bench/layout_bench.py
	$(BIN)/python bench/kafka_bench.py
	$(BIN)/python bench/collect_bench.py

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
