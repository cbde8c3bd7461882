#!/usr/bin/env bash
# Single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) for
# trying tootlake locally and for tests. Jars come from Maven Central via Maven
# (scripts/kafka-pom.xml) and are cached in .cache/kafka/libs; each port gets
# its own run folder .cache/kafka/run-$KAFKA_PORT with config, data and logs.
#
#   scripts/kafka.sh fetch            download the jars (idempotent)
#   scripts/kafka.sh up               fetch if needed, format storage once, start, wait until ready
#   scripts/kafka.sh down [--purge]   stop (SIGTERM, then SIGKILL after $KAFKA_STOP_TIMEOUT s);
#                                     --purge also deletes the run folder (data + logs)
#   scripts/kafka.sh restart          down + up, keeping the data
#   scripts/kafka.sh status           print running/stopped (exit 0 if running, 3 if stopped)
#   scripts/kafka.sh logs             print the path of the broker log and its last lines
#
# Environment:
#   KAFKA_PORT              PLAINTEXT listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller listener (default KAFKA_PORT+1)
#   KAFKA_SASL_PORT         SASL_PLAINTEXT listener (SASL/PLAIN) on 127.0.0.1 (default
#                           KAFKA_PORT+2; "none": no such listener)
#   KAFKA_SASL_USER         its user (default tootlake)
#   KAFKA_SASL_PASSWORD     and password (default tootlake-secret; a test broker on loopback)
#   KAFKA_VERSION           Kafka version to fetch (default: the one in scripts/kafka-pom.xml)
#   KAFKA_HEAP_OPTS         JVM heap flags (default "-Xms256m -Xmx512m")
#   KAFKA_START_TIMEOUT     seconds to wait for readiness in `up` (default 120)
#   KAFKA_STOP_TIMEOUT      seconds to wait after SIGTERM in `down` (default 30)
#   KAFKA_NUM_PARTITIONS    num.partitions for auto-created topics (default 4)
#   KAFKA_PYTHON            python with confluent_kafka for the readiness check
#                           (default: .venv/bin/python, then python3; if none has it, or
#                           KAFKA_PYTHON=none, Kafka's own TopicCommand is used instead)
#   JAVA_HOME / KAFKA_JAVA  Java 17+ to run the broker (default: java on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/scripts/kafka-pom.xml"
CACHE="$ROOT/.cache/kafka"
LIBS="$CACHE/libs"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_SASL_USER="${KAFKA_SASL_USER:-tootlake}"
KAFKA_SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-tootlake-secret}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-4}"

RUN="$CACHE/run-$KAFKA_PORT"
PIDFILE="$RUN/kafka.pid"
CONF="$RUN/server.properties"
LOG4J="$RUN/log4j2.properties"
DATA="$RUN/data"
LOGDIR="$RUN/logs"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }

SASL=1
[[ "$KAFKA_SASL_PORT" == none ]] && SASL=0
PORTS=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
((SASL)) && PORTS+=("$KAFKA_SASL_PORT")
for p in "${PORTS[@]}"; do
    [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "invalid port '$p' (KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_SASL_PORT)"
done
[[ "$(printf '%s\n' "${PORTS[@]}" | sort -u | wc -l)" == "${#PORTS[@]}" ]] || die "KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_SASL_PORT must differ (${PORTS[*]})"
if ((SASL)); then
    # They go into a JAAS line in double quotes: keep them to characters that need no escaping.
    [[ "$KAFKA_SASL_USER" =~ ^[A-Za-z0-9._-]+$ ]] || die "KAFKA_SASL_USER may only hold letters, digits, '.', '_' and '-'"
    [[ "$KAFKA_SASL_PASSWORD" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "KAFKA_SASL_PASSWORD may only hold letters, digits and ._~+/=-"
fi

# ---------------------------------------------------------------- helpers ---

pom_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1; }
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_version)}"

# Take an exclusive lock (fd 9) on a file under .cache/kafka; serialises
# concurrent fetch/up/down calls for the same thing. No-op without flock.
lock() {
    mkdir -p "$CACHE/locks"
    exec 9>"$CACHE/locks/$1.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 300 9 || die "could not get lock $CACHE/locks/$1.lock within 300 s (another kafka.sh still running?)"
    fi
}

java_bin() {
    if [[ -n "${KAFKA_JAVA:-}" ]]; then echo "$KAFKA_JAVA"
    elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then command -v java
    else die "no Java found: Kafka 4 needs Java 17 or newer (apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
    fi
}

check_java() {
    JAVA="$(java_bin)"
    local v major
    v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${v%%.*}"
    [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
    [[ "$major" =~ ^[0-9]+$ ]] || die "could not read the version of $JAVA ($v)"
    ((major >= 17)) || die "$JAVA is Java $v; the Kafka $KAFKA_VERSION broker needs Java 17 or newer (set JAVA_HOME)"
}

libs_ok() { [[ -f "$LIBS/.complete" && "$(cat "$LIBS/.complete")" == "$KAFKA_VERSION" ]]; }

# The process in the pid file, if it is alive and is the broker of this run folder.
running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    is_our_broker "$pid" || return 1
    echo "$pid"
}

# Alive and not a zombie (a killed JVM can linger as one until it is reaped).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st="$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' 2>/dev/null </proc/"$1"/stat || true)"
    [[ "$st" != Z && "$st" != X ]]
}

is_our_broker() {
    local cmd
    alive "$1" || return 1
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true)"
    [[ "$cmd" == *"kafka.Kafka $CONF"* ]]
}

# Brokers of this run folder that lost their pid file (found via /proc, matched
# on the exact config path, so nothing else is ever touched).
orphan_pids() {
    local d pid cmd
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline" || true)"
        [[ "$cmd" == *"kafka.Kafka $CONF"* ]] && echo "$pid"
    done
    return 0
}

# Clears a pid file that does not point at a live broker of ours. Prints why.
clear_stale_pidfile() {
    [[ -f "$PIDFILE" ]] || return 0
    running_pid >/dev/null && return 0
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then
        say "stale pid file $PIDFILE: pid $pid is alive but is not this broker (pid reused?); removing the pid file"
    else
        say "stale pid file $PIDFILE: broker pid ${pid:-?} is gone (crashed, killed, or machine restarted); removing the pid file"
        [[ -f "$LOGDIR/server.log" ]] && say "last broker log: $LOGDIR/server.log"
    fi
    rm -f "$PIDFILE"
}

# SIGTERM, wait up to KAFKA_STOP_TIMEOUT s (a clean shutdown takes a few s), then SIGKILL.
stop_pids() {
    local pid still waited=0
    kill -TERM "$@" 2>/dev/null || true
    while :; do
        still=""
        for pid in "$@"; do alive "$pid" && still="$still $pid"; done
        [[ -z "$still" ]] && return 0
        if ((waited >= KAFKA_STOP_TIMEOUT * 2)); then
            say "still running after $KAFKA_STOP_TIMEOUT s, sending SIGKILL to$still"
            # shellcheck disable=SC2086
            kill -KILL $still 2>/dev/null || true
            sleep 0.5
            return 0
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "( sport = :$1 )" 2>/dev/null | awk '{ $1=$1; print }' | head -n 3
    fi
}

port_free_or_die() {
    local p="$1" what="$2" owner
    if port_open "$p"; then
        owner="$(port_owner "$p")"
        die "port $p ($what) on 127.0.0.1 is already in use by another process, not by a broker started by kafka.sh for KAFKA_PORT=$KAFKA_PORT.${owner:+
  listener: $owner}
  Stop that process, or use other ports, e.g. KAFKA_PORT=$((KAFKA_PORT + 10)) $0 up
  (the controller listens on KAFKA_PORT+1 and the SASL listener on KAFKA_PORT+2, unless
  KAFKA_CONTROLLER_PORT / KAFKA_SASL_PORT are set)."
    fi
}

log_tail() {
    local f
    for f in "$LOGDIR/server.log" "$LOGDIR/kafka.out"; do
        if [[ -s "$f" ]]; then
            echo "----- last 40 lines of $f -----" >&2
            tail -n 40 "$f" >&2
        fi
    done
    echo "-----" >&2
}

# A python that has confluent_kafka, for the readiness check; empty if none.
ready_python() {
    local py
    [[ "${KAFKA_PYTHON:-}" == none ]] && return 0
    for py in "${KAFKA_PYTHON:-}" "$ROOT/.venv/bin/python" python3; do
        [[ -n "$py" ]] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -c 'import confluent_kafka' >/dev/null 2>&1 && { echo "$py"; return 0; }
    done
    return 0
}

# One readiness probe: a metadata request that lists this broker.
broker_ready() {
    local py="$1"
    if [[ -n "$py" ]]; then
        "$py" - "$BOOTSTRAP" <<'PY' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0, "socket.timeout.ms": 5000})
md = a.list_topics(timeout=5)
if not md.brokers:
    sys.exit(1)
# the group coordinator answers too (ListGroups is served by every broker)
r = a.list_consumer_groups(request_timeout=5).result(timeout=10)
sys.exit(1 if r.errors else 0)
PY
    else
        timeout 30 "$JAVA" -Xmx128m -Dlog4j2.configurationFile="$RUN/log4j2-tools.properties" \
            -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1
    fi
}

# Kafka Uuid: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
random_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* && "$id" != AAAAAAAAAAAAAAAAAAAAAA && "$id" != AAAAAAAAAAAAAAAAAAAAAQ ]] && break
    done
    echo "$id"
}

write_configs() {
    mkdir -p "$DATA" "$LOGDIR"
    local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
    local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if ((SASL)); then
        listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
        protocols="$protocols,SASL_PLAINTEXT:SASL_PLAINTEXT"
    fi
    # It holds the SASL password: readable by its owner only.
    : >"$CONF" && chmod 600 "$CONF"
    cat >"$CONF" <<EOF
# Written by scripts/kafka.sh up; rewritten on every up.
# Single node, KRaft combined mode (broker + controller), no ZooKeeper.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols

log.dirs=$DATA
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# small machine: few threads, short retention, small segments
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=300000
EOF
    if ((SASL)); then
        # SASL/PLAIN on its own listener (what managed clusters offer, over TLS there): one
        # user, checked by the broker's built-in PlainLoginModule. Brokers and the controller
        # talk PLAINTEXT among themselves, so only clients authenticate.
        cat >>"$CONF" <<EOF

# SASL/PLAIN client listener (KAFKA_SASL_PORT): user $KAFKA_SASL_USER
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
EOF
    fi
    cat >"$LOG4J" <<EOF
# Written by scripts/kafka.sh up.
status = warn
name = kafka-sh
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $LOGDIR/server.log
appender.file.filePattern = $LOGDIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
    cat >"$RUN/log4j2-tools.properties" <<EOF
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# ---------------------------------------------------------------- commands ---

cmd_fetch() {
    lock fetch
    if libs_ok; then
        say "Kafka $KAFKA_VERSION jars already in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (apt-get install maven) to fetch the Kafka jars"
    [[ -f "$POM" ]] || die "missing $POM"
    if [[ -f "$LIBS/.complete" ]]; then
        local d users=""
        for d in /proc/[0-9]*; do
            [[ "$(tr '\0' ' ' 2>/dev/null <"$d/cmdline" || true)" == *"$LIBS/*"* ]] && users="$users ${d#/proc/}"
        done
        [[ -z "$users" ]] || die "Kafka $(cat "$LIBS/.complete") is running from $LIBS (pid$users); stop it (scripts/kafka.sh down) before switching to $KAFKA_VERSION"
    fi
    say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS ..."
    local tmp="$LIBS.tmp.$$" out rc=0
    rm -rf "$tmp"
    mkdir -p "$tmp"
    out="$(mvn -q -B -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1)" || rc=$?
    if ((rc != 0)) || ! ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1; then
        echo "$out" >&2
        rm -rf "$tmp"
        die "fetching Kafka $KAFKA_VERSION with Maven failed (exit $rc); see the Maven output above"
    fi
    echo "$KAFKA_VERSION" >"$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    say "fetched $(ls "$LIBS"/*.jar | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) for Kafka $KAFKA_VERSION"
}

cmd_up() {
    check_java
    libs_ok || cmd_fetch
    lock "port-$KAFKA_PORT"

    local pid
    if pid="$(running_pid)"; then
        say "Kafka is already running on $BOOTSTRAP (pid $pid, run folder $RUN)"
        return 0
    fi
    clear_stale_pidfile
    local orphans
    orphans="$(orphan_pids)"
    [[ -z "$orphans" ]] || die "a broker for $RUN is running without a pid file (pid $(echo $orphans)); run: $0 down"

    port_free_or_die "$KAFKA_PORT" "KAFKA_PORT, client listener"
    port_free_or_die "$KAFKA_CONTROLLER_PORT" "KAFKA_CONTROLLER_PORT, KRaft controller listener"
    ((SASL == 0)) || port_free_or_die "$KAFKA_SASL_PORT" "KAFKA_SASL_PORT, SASL/PLAIN client listener"

    # A formatted log dir remembers the controller endpoint: refuse a silent change.
    if [[ -f "$DATA/meta.properties" && -f "$RUN/controller.port" ]]; then
        local old
        old="$(cat "$RUN/controller.port")"
        [[ "$old" == "$KAFKA_CONTROLLER_PORT" ]] || die "the data in $RUN was formatted with controller port $old, not $KAFKA_CONTROLLER_PORT; use KAFKA_CONTROLLER_PORT=$old or '$0 down --purge' first"
    fi

    write_configs
    if [[ ! -f "$DATA/meta.properties" ]]; then
        local cid out
        cid="$(random_cluster_id)"
        say "formatting storage in $DATA (cluster id $cid)"
        out="$("$JAVA" -Xmx256m -Dlog4j2.configurationFile="$RUN/log4j2-tools.properties" -cp "$LIBS/*" \
                kafka.tools.StorageTool format --standalone -t "$cid" -c "$CONF" 2>&1)" \
            || { echo "$out" >&2; die "formatting the storage failed"; }
        echo "$KAFKA_CONTROLLER_PORT" >"$RUN/controller.port"
    fi

    say "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
    : >"$LOGDIR/kafka.out"
    # setsid: own session, so a Ctrl-C in the calling terminal/make does not reach it.
    # shellcheck disable=SC2086
    setsid "$JAVA" $KAFKA_HEAP_OPTS \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J" -Dkafka.logs.dir="$LOGDIR" \
        -cp "$LIBS/*" kafka.Kafka "$CONF" \
        </dev/null >>"$LOGDIR/kafka.out" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PIDFILE"

    local py start=$SECONDS
    py="$(ready_python)"
    while :; do
        if ! alive "$pid"; then
            rm -f "$PIDFILE"
            log_tail
            die "the broker process (pid $pid) exited during startup; logs in $LOGDIR"
        fi
        if port_open "$KAFKA_PORT" && { ((SASL == 0)) || port_open "$KAFKA_SASL_PORT"; } \
                && broker_ready "$py"; then
            break
        fi
        if ((SECONDS - start >= KAFKA_START_TIMEOUT)); then
            log_tail
            stop_pids "$pid"
            rm -f "$PIDFILE"
            die "Kafka on $BOOTSTRAP was not ready after $KAFKA_START_TIMEOUT s (KAFKA_START_TIMEOUT); stopped it. Logs in $LOGDIR"
        fi
        sleep 1
    done
    say "Kafka is ready on $BOOTSTRAP after $((SECONDS - start)) s (pid $pid; logs in $LOGDIR)"
    ((SASL == 0)) || say "SASL/PLAIN listener on 127.0.0.1:$KAFKA_SASL_PORT (user $KAFKA_SASL_USER; password: KAFKA_SASL_PASSWORD, default tootlake-secret)"
}

cmd_down() {
    local purge=0
    for a in "$@"; do
        case "$a" in
            --purge) purge=1 ;;
            *) die "unknown option for down: $a" ;;
        esac
    done
    lock "port-$KAFKA_PORT"
    local pids pid
    if pid="$(running_pid)"; then
        pids="$pid"
    else
        clear_stale_pidfile
        pids="$(orphan_pids)"
        [[ -z "$pids" ]] || say "found a broker for $RUN without a pid file: pid $(echo $pids)"
    fi
    if [[ -z "$pids" ]]; then
        say "Kafka on port $KAFKA_PORT is not running"
    else
        say "stopping Kafka on port $KAFKA_PORT (pid $(echo $pids))"
        stop_pids $pids
        say "stopped"
    fi
    rm -f "$PIDFILE"
    if ((purge)); then
        rm -rf "$RUN"
        say "purged $RUN"
    fi
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running (pid $pid, $BOOTSTRAP, Kafka $(cat "$LIBS/.complete" 2>/dev/null || echo '?'), run folder $RUN)"
        local sasl
        sasl="$(sed -n 's|^listeners=.*SASL_PLAINTEXT://\([^,]*\).*|\1|p' "$CONF" 2>/dev/null || true)"
        [[ -z "$sasl" ]] || echo "SASL/PLAIN listener on $sasl"
        return 0
    fi
    local orphans
    orphans="$(orphan_pids)"
    if [[ -n "$orphans" ]]; then
        echo "running without a pid file (pid $(echo $orphans), $BOOTSTRAP); '$0 down' stops it"
        return 0
    fi
    if [[ -f "$PIDFILE" ]]; then
        echo "stopped (stale pid file $PIDFILE; 'down' or 'up' will clear it)"
    else
        echo "stopped"
    fi
    return 3
}

cmd_logs() {
    echo "$LOGDIR/server.log"
    [[ -f "$LOGDIR/server.log" ]] && tail -n "${1:-40}" "$LOGDIR/server.log"
    return 0
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    fetch) shift; cmd_fetch "$@" ;;
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    restart) shift; cmd_down; cmd_up ;;
    status) shift; cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
