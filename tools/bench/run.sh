#!/usr/bin/env bash
# tools/bench/run.sh — one benchmark run: a broker, one server, telebridge-bench against it.
#
#   tools/bench/run.sh [--server S] [--bin DIR] [--subs N] [--idle N] [BENCH ARGS...]
#
# S: telebridge (default), node, mosquitto, raw; telebridge-deflate and node-deflate are the
# bridges measured with compressing subscribers (the bench's --deflate; Node with ws's
# perMessageDeflate).
#
# Starts mosquitto and the server on free loopback ports, runs build/bin/telebridge-bench with
# the ports, pids and token filled in (other arguments go to it: --subs, --idle, --rate, --duration,
# --check, …; see telebridge-bench --help), stops everything and exits with its status.
# The JSON line goes to stdout, the table to stderr. Nothing stays running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TB_SCRIPT=bench/run.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh
# shellcheck source=tools/bench/bench-lib.sh
source tools/bench/bench-lib.sh

SERVER=telebridge
ARGS=()
SUBS=1000
IDLE=0
while (($#)); do
    case "$1" in
    --server) SERVER=${2:?--server needs a value}; shift 2 ;;
    --bin) BENCH_BIN=${2:?--bin needs a value}; shift 2 ;;
    --subs) SUBS=${2:?--subs needs a value}; shift 2 ;;
    --idle) IDLE=${2:?--idle needs a value}; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
    esac
done

trap bench_stop_all EXIT
trap 'exit 130' INT TERM
CONNS=$((SUBS + IDLE))
bench_nofile "$CONNS" || tb_log "cannot raise the open-file limit for $CONNS connections"
bench_workdir
bench_start_broker || { tb_log "mosquitto did not start"; exit 1; }
bench_start_server "$SERVER" "$((CONNS + 16))" || {
    tb_log "$SERVER did not start:"
    cat "$BENCH_DIR"/*.log >&2
    exit 1
}
bench_measure --subs "$SUBS" --idle "$IDLE" "${ARGS[@]}"
