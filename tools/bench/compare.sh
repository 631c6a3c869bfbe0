#!/usr/bin/env bash
# tools/bench/compare.sh — telebridge and its peers under the same workload, in the same run.
#
#   tools/bench/compare.sh [--subs 1000] [--duration 4] [--loads "25000 50000 100000 200000 400000"]
#                          [--servers "telebridge node mosquitto raw"] [--out docs/bench]
#
# For each server (telebridge; the Node reference bridge in tools/bench/node-bridge; mosquitto's
# own WebSocket listener, subscribers speaking MQTT over WebSocket; the raw epoll ceiling) it
# starts a fresh broker and server for every run, measures saturation (publishing as fast as delivered),
# then half of that, then each offered load of --loads (deliveries/s: the publish rate times the
# mean fan-out, so that the raw server, which sends every message to everyone, is comparable),
# with --subs subscribers in the room mix device=60,group=30,global=10. Writes OUT/results.jsonl (one telebridge-bench
# line per run), OUT/results.md (the table, ratios telebridge ÷ peer) and the plots
# OUT/deliveries.png, OUT/p99.png (gnuplot). Installs gnuplot-nox and the Node packages when
# missing (as root / with npm). Expects the plain build in build/ (tools/lib.sh tb_build_plain).
# Raises the open-file limit for its own processes only; changes no sysctl.
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
SERVERS="telebridge node mosquitto raw"
OUT=docs/bench
RUN_TIMEOUT=120

while (($#)); do
    case "$1" in
    --subs) SUBS=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --loads) LOADS=${2:?}; shift 2 ;;
    --servers) SERVERS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
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
    if [[ " $SERVERS " == *" node "* ]] && ! command -v node >/dev/null 2>&1; then
        tb_log "the node peer needs Node.js and npm (apt-get install nodejs npm)"
        return 1
    fi
    if [[ " $SERVERS " == *" node "* && ! -d tools/bench/node-bridge/node_modules ]]; then
        (cd tools/bench/node-bridge && npm ci --no-audit --no-fund)
    fi
    [[ -x "$BENCH_BIN/telebridge-bench" ]] || tb_build_plain
}

# One measurement; appends its JSON line to the results.
measure() {
    local label=$1 broker=()
    shift
    [[ "$SERVER_PID" != "$BROKER_PID" ]] && broker=(--broker-pid "$BROKER_PID")
    timeout "$RUN_TIMEOUT" "$BENCH_BIN/telebridge-bench" --target "$BENCH_TARGET" \
        --port "$SERVER_PORT" --mqtt-port "$BROKER_PORT" --token "$TOKEN" \
        --server-pid "$SERVER_PID" --subs "$SUBS" --duration "$DURATION" --label "$label" \
        "${broker[@]}" "$@" >>"$OUT/results.jsonl"
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
    measure "$server" "$@" || return 1
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
bench_nofile "$SUBS" || tb_log "cannot raise the open-file limit for $SUBS connections"
mkdir -p "$OUT"
: >"$OUT/results.jsonl"
for server in $SERVERS; do
    compare_server "$server" || { tb_log "$server failed"; exit 1; }
done
"$PYTHON" tools/bench/report.py "$OUT"
for plot in deliveries p99; do
    gnuplot -e "dir='$OUT'" "tools/bench/$plot.gp"
done
cat "$OUT/results.md"
