#!/usr/bin/env bash
# Runs the whole test suite with the real services it needs:
#   - headless Chromium (Debian's package) for the browser tests;
#   - a Kafka 4 broker (scripts/kafka.sh) and an S3 server (moto, scripts/s3.sh), started once
#     here on free loopback ports, stopped and purged when the run ends, however it ends.
# Extra arguments go to pytest (e.g. scripts/test.sh -k replay).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

free_port() {
  "$BIN/python" - <<'PY'
import socket
for _ in range(50):
    with socket.socket() as a:
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
    try:
        with socket.socket() as b:  # Kafka's controller takes port + 1
            b.bind(("127.0.0.1", port + 1))
    except OSError:
        continue
    print(port)
    break
PY
}

# Tests must not depend on the developer's shell.
for name in $(env | grep -oE '^(TOOTLAKE|AWS)_[A-Z0-9_]*' || true); do unset "$name"; done

export KAFKA_PORT KAFKA_SASL_PORT S3_PORT
KAFKA_PORT="$(free_port)"
KAFKA_SASL_PORT="$(free_port)"  # the broker's SASL/PLAIN listener
S3_PORT="$(free_port)"

cleanup() {
  KAFKA_STOP_TIMEOUT=10 scripts/kafka.sh down --purge >/dev/null 2>&1 || true
  scripts/s3.sh down --purge >/dev/null 2>&1 || true
}
trap cleanup EXIT

PYTHON="$BIN/python" bash scripts/install-chromium.sh
KAFKA_NUM_PARTITIONS=4 scripts/kafka.sh up
S3_WATCH_PID=$$ scripts/s3.sh up
export TEST_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export TEST_KAFKA_SASL_BOOTSTRAP="127.0.0.1:$KAFKA_SASL_PORT"
export TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

"$BIN/python" -m pytest "$@"
