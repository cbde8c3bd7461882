#!/usr/bin/env bash
# A local S3 server (moto, in memory) on 127.0.0.1 for trying a lake on S3 and for tests.
# Each port gets its own run folder .cache/s3/run-$S3_PORT with the pid file and the log.
#
#   scripts/s3.sh up        start in the background, wait until it answers
#   scripts/s3.sh down [--purge]   stop (SIGTERM, then SIGKILL after $S3_STOP_TIMEOUT s);
#                           --purge also deletes the run folder (its log)
#   scripts/s3.sh status    print running/stopped (exit 0 if running, 3 if stopped)
#   scripts/s3.sh env       print the export lines that point tootlake (and boto3) at it
#
# Environment:
#   S3_PORT             port on 127.0.0.1 (default 9000)
#   S3_PYTHON           python with moto[server] (default .venv/bin/python, then python3)
#   S3_START_TIMEOUT    seconds to wait for it to answer in `up` (default 30)
#   S3_STOP_TIMEOUT     seconds to wait after SIGTERM in `down` (default 10)
#   S3_WATCH_PID        stop the server when this process ends (the test runner sets it,
#                       so a killed test run leaves no server behind)
#
# The data lives in the server's memory: `down` loses it. Any access key works; use
#   eval "$(scripts/s3.sh env)"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S3_PORT="${S3_PORT:-9000}"
S3_START_TIMEOUT="${S3_START_TIMEOUT:-30}"
S3_STOP_TIMEOUT="${S3_STOP_TIMEOUT:-10}"
RUN="$ROOT/.cache/s3/run-$S3_PORT"
PIDFILE="$RUN/moto.pid"
LOG="$RUN/moto.log"
ENDPOINT="http://127.0.0.1:$S3_PORT"

say() { echo "s3.sh: $*"; }
die() { echo "s3.sh: ERROR: $*" >&2; exit 1; }

[[ "$S3_PORT" =~ ^[0-9]+$ ]] && ((S3_PORT > 0 && S3_PORT < 65536)) || die "invalid S3_PORT '$S3_PORT'"

python_bin() {
    local py
    for py in "${S3_PYTHON:-}" "$ROOT/.venv/bin/python" python3; do
        [[ -n "$py" ]] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -c 'import moto.server, flask' >/dev/null 2>&1 && { echo "$py"; return 0; }
    done
    die "no python with moto's server found: install it with .venv/bin/pip install \"moto[server]\" (or set S3_PYTHON)"
}

alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st="$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' 2>/dev/null </proc/"$1"/stat || true)"
    [[ "$st" != Z && "$st" != X ]]
}

# The server of this port: a moto.server process with our port in its command line.
is_ours() {
    local cmd
    alive "$1" || return 1
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true)"
    [[ "$cmd" == *"moto.server -H 127.0.0.1 -p $S3_PORT "* ]]
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && is_ours "$pid" || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Answers like S3: ListBuckets over HTTP.
answers() {
    "$PY" - "$ENDPOINT" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/", timeout=2) as r:
    sys.exit(0 if r.status == 200 and b"ListAllMyBucketsResult" in r.read() else 1)
PY
}

stop_pid() {
    local pid="$1" waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if ((waited >= S3_STOP_TIMEOUT * 5)); then
            say "still running after $S3_STOP_TIMEOUT s, sending SIGKILL to $pid"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
}

cmd_up() {
    PY="$(python_bin)"
    mkdir -p "$RUN"
    local pid
    if pid="$(running_pid)"; then
        say "S3 (moto) is already running on $ENDPOINT (pid $pid)"
        return 0
    fi
    rm -f "$PIDFILE"
    if port_open "$S3_PORT"; then
        die "port $S3_PORT on 127.0.0.1 is in use by another process; use another one, e.g. S3_PORT=$((S3_PORT + 10)) $0 up"
    fi
    : >"$LOG"
    # setsid: its own session, so a Ctrl-C in the calling terminal does not reach it.
    setsid "$PY" -m moto.server -H 127.0.0.1 -p "$S3_PORT" </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    if [[ -n "${S3_WATCH_PID:-}" ]]; then
        [[ "$S3_WATCH_PID" =~ ^[0-9]+$ ]] || die "invalid S3_WATCH_PID '$S3_WATCH_PID'"
        # A detached watcher: stops the server when the watched process is gone.
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
                        kill -TERM "$2" 2>/dev/null; rm -f "$3"' _ "$S3_WATCH_PID" "$pid" "$PIDFILE" \
            </dev/null >/dev/null 2>&1 &
    fi
    local start=$SECONDS
    until answers; do
        if ! alive "$pid"; then
            rm -f "$PIDFILE"
            tail -n 30 "$LOG" >&2 || true
            die "moto exited during startup; log in $LOG"
        fi
        if ((SECONDS - start >= S3_START_TIMEOUT)); then
            stop_pid "$pid"
            rm -f "$PIDFILE"
            tail -n 30 "$LOG" >&2 || true
            die "S3 on $ENDPOINT did not answer within $S3_START_TIMEOUT s (S3_START_TIMEOUT); stopped it. Log in $LOG"
        fi
        sleep 0.2
    done
    say "S3 (moto) is ready on $ENDPOINT after $((SECONDS - start)) s (pid $pid; log $LOG)"
}

cmd_down() {
    local pid purge=0 a
    for a in "$@"; do
        case "$a" in
            --purge) purge=1 ;;
            *) die "unknown option for down: $a" ;;
        esac
    done
    if pid="$(running_pid)"; then
        say "stopping S3 (moto) on $ENDPOINT (pid $pid)"
        stop_pid "$pid"
        say "stopped"
    else
        say "S3 (moto) on port $S3_PORT is not running"
    fi
    rm -f "$PIDFILE"
    if ((purge)); then
        rm -rf "$RUN"
    fi
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running (pid $pid, $ENDPOINT, log $LOG)"
        return 0
    fi
    echo "stopped"
    return 3
}

cmd_env() {
    cat <<EOF
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=\${AWS_REGION:-us-east-1}
EOF
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
