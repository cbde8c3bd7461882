#!/usr/bin/env bash
# Runs the whole test suite: starts the services the tests need, runs pytest, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

cleanup() {
  :
}
trap cleanup EXIT

# Tests must not depend on the developer's shell.
unset $(env | grep -oE '^(TOOTLAKE|AWS)_[A-Z0-9_]*' || true) 2>/dev/null || true

"$BIN/python" -m pytest "$@"
