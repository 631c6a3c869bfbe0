#!/usr/bin/env bash
# tools/bench/compare.sh — telebridge and its peers under the same workload, in the same run.
#
#   tools/bench/compare.sh [--subs 1000] [--duration 4] [--loads "25000 50000 100000 200000 400000"]
#       [--servers "telebridge telebridge-deflate node node-deflate mosquitto raw"]
#       [--payload demo] [--idle "100 15000"] [--idle-servers "telebridge telebridge-deflate"]
#       [--idle-rate 250] [--idle-duration 6] [--out docs/bench]
#
# For each server (telebridge; the Node reference bridge in tools/bench/node-bridge; mosquitto's
# own WebSocket listener, subscribers speaking MQTT over WebSocket; the raw epoll ceiling; and
# telebridge and Node again with subscribers that compress, -deflate: the bench's --deflate,
# and Node's ws with perMessageDeflate) it starts a fresh broker and server for every run,
# measures saturation (publishing as fast as delivered), then half of that, then each offered
# load of --loads (deliveries/s: the publish rate times the mean fan-out, so that the raw server,
# which sends every message to everyone, is comparable), with --subs subscribers in the room mix
# device=60,group=30,global=10, publishing --payload (demo: what tools/simulate.py sends).
# Then the idle-heavy runs: for each of --idle-servers and each count of --idle, one subscriber
# in one device's room receiving --idle-rate messages/s (each its own wake-up) beside that many
# idle connections; server CPU per message is compared across the counts.
# Writes OUT/results.jsonl (one telebridge-bench line per run; idle runs in OUT/idle.jsonl),
# OUT/results.md (the tables, ratios telebridge ÷ peer, compressing ÷ plain, many idle ÷ few)
# and the plots OUT/deliveries.png, OUT/p99.png (gnuplot). Installs gnuplot-nox and the Node
# packages when missing (as root / with npm ci, from the lockfile). Expects the plain build in
# build/ (tools/lib.sh tb_build_plain). Raises the open-file limit for its own processes only;
# changes no sysctl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TB_SCRIPT=bench/compare.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh
# shellcheck source=tools/bench/bench-lib.sh
source tools/bench/bench-lib.sh

PYTHON=/usr/bin/python3
SUBS=1000
DURATION=4
LOADS="25000 50000 100000 200000 400000"
SERVERS="telebridge telebridge-deflate node node-deflate mosquitto raw"
PAYLOAD=demo
IDLE="100 15000"
IDLE_SERVERS="telebridge telebridge-deflate"
IDLE_RATE=250
IDLE_DURATION=6
OUT=docs/bench
RUN_TIMEOUT=300

while (($#)); do
    case "$1" in
    --subs) SUBS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --loads) LOADS=${2:?}; shift 2 ;;
    --servers) SERVERS=${2:?}; shift 2 ;;
    --payload) PAYLOAD=${2:?}; shift 2 ;;
    --idle) IDLE=${2?}; shift 2 ;;
    --idle-servers) IDLE_SERVERS=${2?}; shift 2 ;;
    --idle-rate) IDLE_RATE=${2:?}; shift 2 ;;
    --idle-duration) IDLE_DURATION=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) tb_log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
done

install_tools() {
    if ! command -v gnuplot >/dev/null 2>&1; then
        [[ "$(id -u)" == 0 ]] || { tb_log "install gnuplot-nox for the plots"; return 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnuplot-nox \
            || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                --no-install-recommends gnuplot-nox; }
    fi
    if [[ " $SERVERS " == *" node"* ]] && ! command -v node >/dev/null 2>&1; then
        tb_log "the node peer needs Node.js and npm (apt-get install nodejs npm)"
        return 1
    fi
    if [[ " $SERVERS " == *" node"* && ! -d tools/bench/node-bridge/node_modules ]]; then
        (cd tools/bench/node-bridge && npm ci --no-audit --no-fund)
    fi
    [[ -x "$BENCH_BIN/telebridge-bench" ]] || tb_build_plain
}

# One measurement ($1 the label, $2 the results file); appends its JSON line to the results.
measure() {
    local label=$1 results=$2 broker=()
    shift 2
    [[ "$SERVER_PID" != "$BROKER_PID" ]] && broker=(--broker-pid "$BROKER_PID")
    timeout "$RUN_TIMEOUT" "$BENCH_BIN/telebridge-bench" --target "$BENCH_TARGET" \
        --port "$SERVER_PORT" --mqtt-port "$BROKER_PORT" --token "$TOKEN" \
        --server-pid "$SERVER_PID" --label "$label" --payload "$PAYLOAD" "${broker[@]}" \
        "${BENCH_FLAGS[@]}" "$@" >>"$results"
}

# Deliveries/s of the last result line.
last_deliveries() {
    "$PYTHON" -c 'import json,sys; print(round(json.loads(sys.stdin.readlines()[-1])["deliveries_per_s"]))' \
        <"$OUT/results.jsonl"
}

# One measurement of server $1 against a fresh broker and server: a server that outlived a run
# would answer the next run's subscribers with snapshots of the last run's devices, and hold
# their live messages behind them.
fresh_measure() {
    local server=$1
    shift
    bench_workdir
    bench_start_broker || return 1
    bench_start_server "$server" "$((SUBS + 16))" || return 1
    measure "$server" "$OUT/results.jsonl" --subs "$SUBS" --duration "$DURATION" "$@" || return 1
    bench_stop_all
}

# Server $1 with $2 idle connections beside one subscriber in one device's room, each message
# its own wake-up.
idle_measure() {
    local server=$1 idle=$2
    bench_workdir
    bench_start_broker || return 1
    bench_start_server "$server" "$((idle + 16))" || return 1
    measure "$server idle=$idle" "$OUT/idle.jsonl" --subs 1 --mix device=100 --devices 1 \
        --idle "$idle" --rate "$IDLE_RATE" --duration "$IDLE_DURATION" --parallel 512 --check \
        || return 1
    bench_stop_all
}

compare_server() {
    local server=$1 load half
    tb_log "$server: saturation"
    fresh_measure "$server" --rate 0 || return 1
    half=$(($(last_deliveries) / 2))
    tb_log "$server: half of saturation ($half deliveries/s)"
    fresh_measure "$server" --offered "$((half > 0 ? half : 1))" || return 1
    for load in $LOADS; do
        tb_log "$server: $load deliveries/s offered"
        fresh_measure "$server" --offered "$load" || return 1
    done
}

trap bench_stop_all EXIT
trap 'exit 130' INT TERM
install_tools || exit 1
most=$SUBS
for n in $IDLE; do ((n + 1 > most)) && most=$((n + 1)); done
bench_nofile "$most" || tb_log "cannot raise the open-file limit for $most connections"
mkdir -p "$OUT"
: >"$OUT/results.jsonl"
: >"$OUT/idle.jsonl"
for server in $SERVERS; do
    compare_server "$server" || { tb_log "$server failed"; exit 1; }
done
for server in $IDLE_SERVERS; do
    for n in $IDLE; do
        tb_log "$server: $n idle connections, $IDLE_RATE messages/s to one subscriber"
        idle_measure "$server" "$n" || { tb_log "$server with $n idle failed"; exit 1; }
    done
done
"$PYTHON" tools/bench/report.py "$OUT"
for plot in deliveries p99; do
    gnuplot -e "dir='$OUT'; servers='$SERVERS'" "tools/bench/$plot.gp"
done
cat "$OUT/results.md"
