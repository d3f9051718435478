#!/usr/bin/env bash
# A dev/CI Apache Kafka broker without Docker and without the Apache download mirrors:
# the broker's jars come from Maven Central (see pom.xml next to this file) and run on
# the machine's Java 17+.
#
#   kafka.sh fetch
#       Copy the broker's jars into deploy/kafka/.cache/jars (once; later calls return at once).
#   kafka.sh start [--port 9092] [--dir deploy/kafka/.cache/run] [--controller-port P]
#       Start a single-node KRaft broker+controller on 127.0.0.1:PORT in the background, wait
#       until it answers Kafka requests, and print "127.0.0.1:PORT" as the last stdout line.
#   kafka.sh stop [--dir deploy/kafka/.cache/run]
#       Stop the broker started with the same --dir.
#
# Progress and diagnostics go to stderr, so stdout carries only the bootstrap address.
#
# Environment:
#   PYTHON                 python used for free-port picking and the readiness check
#                          (stdlib only; default: python3)
#   KAFKA_HEAP_OPTS        JVM heap flags (default: -Xms256m -Xmx768m)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default: 60)
#   KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL on stop (default: 30)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/.cache"
JARS="$CACHE/jars"
STAMP="$JARS/.complete"   # holds the hash of pom.xml the jars were fetched for
PYTHON="${PYTHON:-python3}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------

pom_hash() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

jars_ready() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; }

cmd_fetch() {
    # Fast path: the stamp is written only after a complete copy, and it names the pom it was
    # made from, so an interrupted fetch or a bumped kafka.version both fetch again.
    if jars_ready; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven 3.6+ is needed to fetch the Kafka jars"
    command -v java >/dev/null || die "java not found: Java 17+ is needed to run Kafka 4.x"
    mkdir -p "$CACHE"

    # Two test sessions starting at once must not both write the cache: serialize on a lock,
    # then look again, since the other one may have finished the job meanwhile.
    local lock_fd
    exec {lock_fd}>"$CACHE/fetch.lock"
    flock "$lock_fd"
    if jars_ready; then
        exec {lock_fd}>&-
        return 0
    fi

    local version
    version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")"
    log "fetching Apache Kafka $version jars from Maven Central into $JARS ..."
    local t0=$SECONDS
    # Copy into a fresh directory and swap it in only when Maven succeeded, so the cache is
    # never half-written and stale jars of an older version never linger on the classpath.
    local tmp="$CACHE/jars.tmp.$$"
    rm -rf "$tmp"
    # -B/-ntp/-q: no progress bars; Maven's own output goes to a log shown only on failure.
    if ! mvn -B -q -ntp -f "$HERE/pom.xml" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
        >"$CACHE/fetch.log" 2>&1; then
        rm -rf "$tmp"
        tail -n 40 "$CACHE/fetch.log" >&2 || true
        die "Maven could not fetch the Kafka jars (full log: $CACHE/fetch.log)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven succeeded but copied no kafka_2.13 jar into $tmp"
    pom_hash >"$tmp/.complete"
    rm -rf "$JARS"
    mv "$tmp" "$JARS"
    exec {lock_fd}>&-
    log "fetched $(find "$JARS" -name '*.jar' | wc -l) jars ($(du -sh "$JARS" | cut -f1)) in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------
# start / stop helpers
# ---------------------------------------------------------------------------------------------

# A free TCP port on 127.0.0.1 (the kernel picks it; it is released again at once).
free_port() {
    "$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_is_free() {
    "$PYTHON" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# Exit 0 once the broker answers real Kafka requests on 127.0.0.1:$1: ApiVersions, then
# Metadata v4 listing a broker on that port. KRaft brokers leave fenced brokers out of
# Metadata, so this also means the broker is registered and unfenced, i.e. ready for clients.
# Stdlib only (raw Kafka wire protocol), so it works with any python3, not only the venv's.
broker_answers() {
    "$PYTHON" - "$1" 2>/dev/null <<'PY'
import socket, struct, sys

port = int(sys.argv[1])

def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf

def call(sock, api_key, version, correlation_id, body):
    # Request header v1: api_key, api_version, correlation_id, client_id (int16-length string).
    client_id = b"kafka.sh"
    msg = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    data = recv_exact(sock, size)
    if struct.unpack_from(">i", data, 0)[0] != correlation_id:
        raise ValueError("correlation id mismatch")
    return data, 4  # response header v0 is the correlation id only

def string(data, pos):
    (n,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if n < 0:
        return None, pos
    return data[pos:pos + n].decode(), pos + n

try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        # ApiVersions v0 (key 18): error_code, [api_key, min_version, max_version].
        data, pos = call(sock, 18, 0, 1, b"")
        error, count = struct.unpack_from(">hi", data, pos)
        pos += 6
        if error != 0:
            sys.exit(f"ApiVersions error {error}")
        versions = {}
        for _ in range(count):
            key, lo, hi = struct.unpack_from(">hhh", data, pos)
            pos += 6
            versions[key] = (lo, hi)
        lo, hi = versions.get(3, (0, -1))
        if not lo <= 4 <= hi:
            sys.exit(0)  # a future Kafka without Metadata v4: ApiVersions answering must do
        # Metadata v4 (key 3): topics = [] (none, just brokers), allow_auto_topic_creation = false.
        data, pos = call(sock, 3, 4, 2, struct.pack(">ib", 0, 0))
        pos += 4  # throttle_time_ms
        (brokers,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(brokers):
            pos += 4  # node_id
            _host, pos = string(data, pos)
            (broker_port,) = struct.unpack_from(">i", data, pos)
            pos += 4
            _rack, pos = string(data, pos)
            if broker_port == port:
                sys.exit(0)
        sys.exit("broker not in metadata yet (still fenced)")
except (OSError, ValueError, struct.error) as exc:
    sys.exit(f"not answering: {exc}")
PY
}

# The pid in DIR/kafka.pid if that process is alive and is a Kafka broker (not a recycled pid).
running_pid() {
    local pidfile="$1/kafka.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

show_log_tail() {
    local dir="$1" f
    for f in "$dir/logs/kafka.out" "$dir/logs/server.log"; do
        if [[ -s "$f" ]]; then
            log "---- last lines of $f ----"
            tail -n 40 "$f" >&2
        fi
    done
}

# Parses --port/--dir/--controller-port into PORT, DIR, CONTROLLER_PORT.
parse_args() {
    PORT=9092
    DIR="$HERE/.cache/run"
    CONTROLLER_PORT=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) PORT="${2:?--port needs a value}"; shift 2 ;;
            --dir) DIR="${2:?--dir needs a value}"; shift 2 ;;
            --controller-port) CONTROLLER_PORT="${2:?--controller-port needs a value}"; shift 2 ;;
            -h|--help) usage ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, got: $PORT"
    [[ -z "$CONTROLLER_PORT" || "$CONTROLLER_PORT" =~ ^[0-9]+$ ]] \
        || die "--controller-port must be a number, got: $CONTROLLER_PORT"
    # Absolute: server.properties and the log4j2 config need absolute paths.
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
}

# ---------------------------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------------------------

write_server_properties() {
    cat >"$DIR/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh: a single-node KRaft broker+controller for tests and benchmarks.
# Edits are lost on the next start.

# --- one process is both the KRaft controller and the broker ---
process.roles=broker,controller
node.id=1
# A static one-voter quorum (not KIP-853 --standalone): the voter's address lives here rather
# than in the formatted metadata log, so a restart may use another controller port.
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT

# --- loopback only: nothing outside this machine can reach it ---
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$DIR/data

# --- topics: tests produce to fresh topic names and expect them to appear ---
auto.create.topics.enable=true
num.partitions=4
default.replication.factor=1
min.insync.replicas=1

# --- internal topics: one broker, so replication factor 1; fewer partitions than the
#     default 50 so the first consumer group / transaction does not wait for 50 creations ---
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# --- tests: a consumer group starts consuming at once instead of after 3 s ---
group.initial.rebalance.delay.ms=0

# --- sized for a 2-core machine shared with the code under test ---
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
# The log cleaner (for compacted topics such as __consumer_offsets) allocates this on the heap;
# the default 128 MiB is a large share of a 768 MiB heap.
log.cleaner.dedupe.buffer.size=16777216
# Brokers report to the controller every 2 s by default; unfencing at startup waits for a
# heartbeat, so a shorter interval makes the broker ready sooner.
broker.heartbeat.interval.ms=500

# Retention is irrelevant for short-lived test data; the run directory is thrown away.
EOF
}

# Everything to files under DIR/logs (nothing on the console); WARN and up for the chatty
# per-request and state-change loggers.
write_log4j2_config() {
    cat >"$DIR/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by deploy/kafka/kafka.sh. -->
<!-- shutdownHook="disable": log4j's own JVM shutdown hook would stop logging while Kafka's
     shutdown hook is still closing the broker, losing those lines (and printing "Unable to
     register Log4j shutdown hook because JVM is shutting down"). Kafka's shutdown stops log4j. -->
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <RollingFile name="server" fileName="$DIR/logs/server.log"
                 filePattern="$DIR/logs/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Logger name="kafka.authorizer.logger" level="warn"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="warn"/>
    <!-- Each component dumps its full config (~1500 lines per start) at INFO; the effective
         settings are in server.properties next to this file anyway. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="warn"/>
  </Loggers>
</Configuration>
EOF
}

# A Kafka cluster id: 16 random bytes, base64url without padding (what `kafka-storage.sh
# random-uuid` prints), made here to save a JVM start. Kafka avoids ids starting with "-"
# because they read like a command-line flag.
random_cluster_id() {
    "$PYTHON" -c 'import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break'
}

java_classpath() { echo "$JARS/*"; }

cmd_start() {
    parse_args "$@"
    local t0=$SECONDS

    local pid
    if pid="$(running_pid "$DIR")"; then
        die "a broker started with --dir $DIR is already running (pid $pid); stop it first"
    fi
    rm -f "$DIR/kafka.pid"
    port_is_free "$PORT" || die "port $PORT on 127.0.0.1 is already in use"

    cmd_fetch

    # Reuse the previous controller port of this DIR unless told otherwise; else pick a free one.
    if [[ -z "$CONTROLLER_PORT" && -f "$DIR/server.properties" ]]; then
        CONTROLLER_PORT="$(sed -n 's/^controller.quorum.voters=1@127.0.0.1:\([0-9]*\)$/\1/p' \
            "$DIR/server.properties")"
        if [[ -n "$CONTROLLER_PORT" ]] && ! port_is_free "$CONTROLLER_PORT"; then
            CONTROLLER_PORT=""
        fi
    fi
    if [[ -z "$CONTROLLER_PORT" ]]; then
        CONTROLLER_PORT="$(free_port)"
        [[ "$CONTROLLER_PORT" != "$PORT" ]] || CONTROLLER_PORT="$(free_port)"
    fi
    [[ "$CONTROLLER_PORT" != "$PORT" ]] || die "--controller-port must differ from --port"

    mkdir -p "$DIR/logs"
    write_server_properties
    write_log4j2_config

    local jvm_log_opts=("-Dlog4j2.configurationFile=$DIR/log4j2.xml")

    # Format the storage once per DIR; a later start in the same DIR keeps its topics.
    if [[ ! -f "$DIR/data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$(random_cluster_id)"
        log "formatting $DIR/data (cluster id $cluster_id)"
        # TieredStopAtLevel=1: a short-lived tool starts ~1 s sooner without the optimizing JIT.
        if ! java -Xmx256m -XX:TieredStopAtLevel=1 "${jvm_log_opts[@]}" -cp "$(java_classpath)" \
            kafka.tools.StorageTool \
            format --cluster-id "$cluster_id" --config "$DIR/server.properties" --ignore-formatted \
            >"$DIR/logs/format.log" 2>&1; then
            cat "$DIR/logs/format.log" >&2
            die "formatting the storage failed"
        fi
    fi

    # Same JVM flags as Kafka's own kafka-run-class.sh, with a heap sized for tests.
    # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is a list of flags on purpose
    local heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m})
    local java_cmd=(
        java "${heap[@]}"
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        "${jvm_log_opts[@]}"
        -cp "$(java_classpath)"
        kafka.Kafka "$DIR/server.properties"
    )

    log "starting Kafka on 127.0.0.1:$PORT (controller 127.0.0.1:$CONTROLLER_PORT), dir $DIR"
    # Interrupted before the broker is ready (Ctrl-C): do not leave a half-started broker behind.
    trap '( cmd_stop --dir "$DIR" ) || true; exit 130' INT TERM
    # setsid: the broker gets its own session, so a Ctrl-C in the terminal (or a signal to the
    # caller's process group) does not hit it; `stop` ends it. The inner shell writes its own
    # pid, which `exec` hands on to java. All three standard streams are redirected so a caller
    # that captures our output (subprocess.run) is not kept waiting on a pipe the broker holds.
    # shellcheck disable=SC2016  # $$ and $@ are for the inner shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$DIR/kafka.pid" "${java_cmd[@]}" \
        </dev/null >>"$DIR/logs/kafka.out" 2>&1 &

    local timeout="${KAFKA_START_TIMEOUT:-60}" deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
    while true; do
        if [[ -s "$DIR/kafka.pid" ]] && ! kill -0 "$(cat "$DIR/kafka.pid")" 2>/dev/null; then
            show_log_tail "$DIR"
            rm -f "$DIR/kafka.pid"
            die "Kafka exited during startup"
        fi
        # (broker_answers is quiet by itself: a 2>/dev/null here would also swallow the output
        # of the trap above if a signal arrives meanwhile.)
        if broker_answers "$PORT"; then
            break
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail "$DIR"
            log "broker did not answer within ${timeout}s; stopping it"
            ( cmd_stop --dir "$DIR" ) || true   # subshell: keeps our PORT/DIR intact
            die "Kafka did not become ready on 127.0.0.1:$PORT"
        fi
        sleep 0.25
    done
    trap - INT TERM
    log "ready in $((SECONDS - t0))s (pid $(cat "$DIR/kafka.pid"), logs in $DIR/logs)"
    echo "127.0.0.1:$PORT"
}

# ---------------------------------------------------------------------------------------------
# stop
# ---------------------------------------------------------------------------------------------

cmd_stop() {
    parse_args "$@"
    local pid
    if ! pid="$(running_pid "$DIR")"; then
        log "no broker running for --dir $DIR"
        rm -f "$DIR/kafka.pid"
        return 0
    fi
    # SIGTERM runs Kafka's shutdown hook (controlled shutdown, clean log close); SIGKILL only
    # if that takes too long, e.g. a wedged JVM.
    local timeout="${KAFKA_STOP_TIMEOUT:-30}" t0=$SECONDS
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS - t0 >= timeout)); then
            log "broker (pid $pid) still running after ${timeout}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            # SIGKILL cannot be caught; the process is gone once the kernel has reaped it.
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
            break
        fi
        sleep 0.1
    done
    rm -f "$DIR/kafka.pid"
    log "stopped broker (pid $pid) in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------

main() {
    [[ $# -gt 0 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        fetch) [[ $# -eq 0 ]] || die "fetch takes no arguments"; cmd_fetch
               log "jars ready in $JARS" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        -h|--help|help) usage ;;
        *) die "unknown command: $cmd (expected fetch, start or stop)" ;;
    esac
}

main "$@"
