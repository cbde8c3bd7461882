# The project's vocabulary. `make run` and `make test` work on a fresh machine: they create
# .venv/ and install everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run demo test test-fast lint bench clean kafka-up kafka-down help

help:
	@echo "make run      set up and run the main job (replay bundled recordings, print the report)"
	@echo "make test     set up and run all tests (starts and stops the services they need)"
	@echo "make lint     ruff + mypy"
	@echo "make bench    benchmarks, results in bench/results/"

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev,bench]"
	touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/tootlake replay tests/fixtures/real/mastodonsocial.json tests/fixtures/real/malformed.json tests/fixtures/real/timelines.jsonl --lake ./lake --quiet
	$(BIN)/tootlake report --lake ./lake

test: $(INSTALLED)
	scripts/test.sh

lint: $(INSTALLED)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

bench: $(INSTALLED)
	$(BIN)/python bench/run.py

kafka-up:  ## a local single-node Kafka 4 broker (KRaft) on 127.0.0.1:$${KAFKA_PORT:-9092}
	scripts/kafka.sh up

kafka-down:  ## stop it (data kept; scripts/kafka.sh down --purge deletes it)
	scripts/kafka.sh down

clean:
	rm -rf lake test-artifacts .pytest_cache .mypy_cache .ruff_cache
