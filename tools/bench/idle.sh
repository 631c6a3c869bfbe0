#!/usr/bin/env bash
# tools/bench/idle.sh — what idle connections cost each message: telebridge's CPU per message
# with N idle connections, for each N of a list, in one run.
#
#   tools/bench/idle.sh [--idle "100 2000 15000"] [--rate 250] [--duration 10] [--out FILE]
#
# For each N: a fresh broker and telebridge, N idle connections (telebridge-bench --idle:
# authenticated, subscribed to a quiet room, answering pings), and one subscriber in one
# device's room receiving --rate messages/s (250: 4 ms apart, each its own wake-up) for
# --duration seconds. Prints one line per N — the server's CPU (from /proc) per message — and
# the ratio of each to the first N's; the bench's JSON lines go to --out (default: a temporary
# file, removed). BENCH_BIN (default build/bin) names the folder holding telebridge,
# telebridge-token and telebridge-bench, so another build can be measured the same way.
# compare.sh runs the same measurement beside its other runs; this script runs only it.
# Raises the open-file limit for its own processes only; changes no sysctl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TB_SCRIPT=bench/idle.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh
# shellcheck source=tools/bench/bench-lib.sh
source tools/bench/bench-lib.sh

PYTHON=/usr/bin/python3
IDLE="100 2000 15000"
RATE=250
DURATION=10
OUT=
RUN_TIMEOUT=300

while (($#)); do
    case "$1" in
    --idle) IDLE=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) tb_log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
done

trap bench_stop_all EXIT
trap 'exit 130' INT TERM
most=0
for n in $IDLE; do ((n > most)) && most=$n; done
# Each process holds its own side: the soft limit must cover N + a few, not 2 N.
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited ]] && ((most + 64 > hard)); then
    tb_log "ulimit -Hn is $hard: $most idle connections need $((most + 64))"
    exit 1
fi
ulimit -n "$hard" 2>/dev/null || ulimit -n "$((most + 64))"
results=${OUT:-$(mktemp /tmp/telebridge-idle.XXXXXX)}
[[ -n "$OUT" ]] || trap 'bench_stop_all; rm -f "$results"' EXIT
: >"$results"
for n in $IDLE; do
    tb_log "$n idle connections, $RATE messages/s to one subscriber for $DURATION s"
    bench_workdir
    bench_start_broker || { tb_log "the broker did not start"; exit 1; }
    bench_start_server telebridge "$((n + 16))" || { tb_log "telebridge did not start"; exit 1; }
    timeout "$RUN_TIMEOUT" "$BENCH_BIN/telebridge-bench" --target telebridge --port "$SERVER_PORT" \
        --mqtt-port "$BROKER_PORT" --token "$TOKEN" --server-pid "$SERVER_PID" \
        --label "telebridge idle=$n" --subs 1 --mix device=100 --devices 1 --idle "$n" \
        --rate "$RATE" --duration "$DURATION" --parallel 512 --check >>"$results"
    bench_stop_all
done
"$PYTHON" - "$results" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
base = None
for r in rows:
    us = r["server_cpu_us_per_message"]
    base = base or us
    print(f"{r['label']}: {r['published']} messages, {r['idle_ready']} idle held, "
          f"server CPU {us:.0f} us per message, {us / base:.2f}x the first")
EOF
