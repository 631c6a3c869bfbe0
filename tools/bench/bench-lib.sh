# tools/bench/bench-lib.sh — starting and stopping what a benchmark run measures. Source it
# after tools/lib.sh, from the repository root; it defines functions and changes nothing by
# itself. Every process it starts is recorded in BENCH_PIDS and stopped by bench_stop_all
# (which copies the logs to the folder $BENCH_KEEP first when that is set; a later run's logs
# overwrite an earlier one's).
#
# The workload (the same for every server): topics bench/{group}/{device}/telemetry, groups
# g0..gN from the topic, rooms device:<id>, group:<name>, global (telebridge-bench --help).

BENCH_DIR=${BENCH_DIR:-}
BENCH_BIN=${BENCH_BIN:-build/bin}
BENCH_PIDS=()
BENCH_WRAP=() # a command telebridge runs under (valgrind …); empty: none
BENCH_READY_TIMEOUT=20
BENCH_STOP_WAIT=50 # tenths of a second
BENCH_FLAGS=()
# node-deflate compresses every message (bridge.js --deflate): ws's default threshold, 1024
# bytes, would leave the bench's telemetry frames (200-400 bytes) uncompressed.
BENCH_NODE_DEFLATE_THRESHOLD=${BENCH_NODE_DEFLATE_THRESHOLD:-0}

# A scratch folder for configs and logs, removed by bench_stop_all.
bench_workdir() {
    BENCH_DIR=$(mktemp -d /tmp/telebridge-bench.XXXXXX)
}

# Starts "$@" in its own session, logging to $BENCH_DIR/$1.log; its pid lands in BENCH_PID.
bench_spawn() {
    local name=$1
    shift
    setsid "$@" >"$BENCH_DIR/$name.log" 2>&1 </dev/null &
    BENCH_PID=$!
    BENCH_PIDS+=("$BENCH_PID")
}

bench_stop() {
    tb_stop_pid "$1" "$BENCH_STOP_WAIT"
}

bench_stop_all() {
    local i
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do bench_stop "${BENCH_PIDS[i]}"; done
    BENCH_PIDS=()
    if [[ -n "$BENCH_DIR" && -d "$BENCH_DIR" ]]; then
        if [[ -n "${BENCH_KEEP:-}" ]]; then
            { mkdir -p "$BENCH_KEEP" && cp "$BENCH_DIR"/*.log "$BENCH_KEEP"/; } \
                || tb_log "cannot keep the logs in $BENCH_KEEP"
        fi
        rm -rf "$BENCH_DIR"
    fi
    BENCH_DIR=
}

# mosquitto with a TCP listener (publishers, bridges) and a WebSocket one (the mqtt-ws peer:
# Debian's 2.0.11 opens `protocol websockets` only beside a plain listener). Large queues so
# the broker itself never drops. Sets BROKER_PORT, BROKER_WS_PORT, BROKER_PID.
bench_start_broker() {
    BROKER_PORT=$(tb_free_port) || return 1
    BROKER_WS_PORT=$(tb_free_port) || return 1
    cat >"$BENCH_DIR/mosquitto.conf" <<EOF
listener $BROKER_PORT 127.0.0.1
listener $BROKER_WS_PORT 127.0.0.1
protocol websockets
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 0
max_connections -1
log_type error
log_type warning
EOF
    bench_spawn mosquitto mosquitto -c "$BENCH_DIR/mosquitto.conf"
    BROKER_PID=$BENCH_PID
    tb_wait_port "$BROKER_PORT" "$BENCH_READY_TIMEOUT" && tb_wait_port "$BROKER_WS_PORT" 5
}

# telebridge for $1 connections (under BENCH_WRAP when set); sets SERVER_PORT, SERVER_PID,
# TOKEN. $BENCH_TELEBRIDGE_CONFIG, when set, is added to the config's top-level members, e.g.
# '"heartbeat": {"ping_interval_s": 1, "pong_timeout_s": 2}'.
bench_start_telebridge() {
    local max=$1
    SERVER_PORT=$(tb_free_port) || return 1
    openssl rand -hex 32 >"$BENCH_DIR/secret.key"
    cat >"$BENCH_DIR/telebridge.json" <<EOF
{
  "listen": {"host": "127.0.0.1", "port": $SERVER_PORT},
  "mqtt": {"host": "127.0.0.1", "port": $BROKER_PORT, "client_id": "telebridge-bench",
           "telemetry_topic": "bench/{group}/{device}/telemetry",
           "status_topic": "bench/{group}/{device}/status"},
  "auth": {"algorithm": "HS256", "secret_file": "secret.key"},
  "limits": {"max_connections": $max}${BENCH_TELEBRIDGE_CONFIG:+,
  $BENCH_TELEBRIDGE_CONFIG}
}
EOF
    TOKEN=$("$BENCH_BIN/telebridge-token" --sub bench --rooms '*' --ttl 1h \
        --secret-file "$BENCH_DIR/secret.key") || return 1
    bench_spawn telebridge "${BENCH_WRAP[@]}" "$BENCH_BIN/telebridge" --config "$BENCH_DIR/telebridge.json" \
        --log-level warn
    SERVER_PID=$BENCH_PID
    tb_wait_http_ok "http://127.0.0.1:$SERVER_PORT/readyz" "$BENCH_READY_TIMEOUT"
}

# The Node reference bridge (tools/bench/node-bridge), with arguments $@ (--deflate N); sets
# SERVER_PORT, SERVER_PID, TOKEN.
bench_start_node() {
    SERVER_PORT=$(tb_free_port) || return 1
    TOKEN=unused
    bench_spawn node node tools/bench/node-bridge/bridge.js "$SERVER_PORT" "$BROKER_PORT" "$@"
    SERVER_PID=$BENCH_PID
    tb_wait_port "$SERVER_PORT" "$BENCH_READY_TIMEOUT"
}

# The raw ceiling server; sets SERVER_PORT, SERVER_PID.
bench_start_raw() {
    SERVER_PORT=$(tb_free_port) || return 1
    TOKEN=unused
    bench_spawn raw "$BENCH_BIN/telebridge-bench-raw" "$SERVER_PORT" "$BROKER_PORT"
    SERVER_PID=$BENCH_PID
    tb_wait_port "$SERVER_PORT" "$BENCH_READY_TIMEOUT"
}

# Starts the server named $1 (telebridge | telebridge-deflate | node | node-deflate | mosquitto
# | raw) for $2 connections, after bench_start_broker. Sets SERVER_PORT, SERVER_PID,
# BENCH_TARGET (telebridge-bench --target) and BENCH_FLAGS (more bench arguments: the -deflate
# servers are the same servers measured with compressing clients, --deflate).
bench_start_server() {
    BENCH_FLAGS=()
    case "$1" in
    *-deflate) BENCH_FLAGS=(--deflate) ;;
    esac
    case "$1" in
    telebridge | telebridge-deflate) BENCH_TARGET=telebridge; bench_start_telebridge "$2" ;;
    node) BENCH_TARGET=node; bench_start_node ;;
    node-deflate) BENCH_TARGET=node; bench_start_node --deflate "$BENCH_NODE_DEFLATE_THRESHOLD" ;;
    raw) BENCH_TARGET=raw; bench_start_raw ;;
    mosquitto)
        BENCH_TARGET=mqtt-ws
        TOKEN=unused
        SERVER_PORT=$BROKER_WS_PORT
        SERVER_PID=$BROKER_PID
        ;;
    *) tb_log "unknown server: $1"; return 2 ;;
    esac
}

# Runs telebridge-bench against the running server; extra arguments are passed on.
bench_measure() {
    local broker=()
    [[ "$SERVER_PID" != "$BROKER_PID" ]] && broker=(--broker-pid "$BROKER_PID")
    "$BENCH_BIN/telebridge-bench" --target "$BENCH_TARGET" --port "$SERVER_PORT" \
        --mqtt-port "$BROKER_PORT" --token "$TOKEN" --server-pid "$SERVER_PID" "${broker[@]}" \
        "${BENCH_FLAGS[@]}" "$@"
}

# Raises this shell's open-file limit (inherited by everything it starts) to hold $1
# connections on both sides; fails when it cannot.
bench_nofile() {
    local need=$(($1 * 2 + 4096))
    (($(ulimit -n) >= need)) && return 0
    ulimit -n "$need" 2>/dev/null || ulimit -Hn "$need" 2>/dev/null && ulimit -n "$need"
}
