#!/usr/bin/env bash
# tools/bench/callgrind.sh — user-space instructions (Ir, callgrind) per delivered and per
# ingested message on a fixed workload, counted from the first publish to the last delivery
# (start-up and connection set-up excluded; every thread of the bridge, libraries included).
#
#   tools/bench/callgrind.sh [--messages 2000] [--subs 100] [--top 25] [--rate 100]
#                            [--deflate] [--payload minimal|demo] [--bin build/bin] [--out DIR]
#                            [--subscribe-options '"max_hz":1']
#
# Two runs of telebridge under callgrind (instrumentation switched on by the bench just before
# it publishes and off after the last delivery):
#   fan-out: SUBS subscribers all in `global`, MESSAGES telemetry messages from 100 devices
#   ingest:  one subscriber in one device's room, the same messages (1 in 100 delivered)
# Ir per ingested message = ingest Ir / messages;
# Ir per delivery = (fan-out Ir - ingest Ir) / (fan-out deliveries - ingest deliveries).
# Prints both, the whole fan-out run's Ir per delivery, and the top functions of the fan-out
# run (callgrind_annotate, self cost). Keeps DIR/{fanout,ingest}.out (-deflate.out with
# --deflate) for callgrind_annotate --inclusive=yes or kcachegrind; DIR is --out, or a new
# /tmp/telebridge-callgrind.XXXXXX (so that runs at the same time keep apart), printed at the end.
# --deflate: the subscribers compress (telebridge-bench --deflate); --payload: what each message
# carries; --bin: the binaries' folder; --subscribe-options: members added to the fan-out
# subscribers' subscribe (max_hz, fields): the loss check is then off (conflation folds messages
# away) and the figure to read is Ir per message and subscriber, (fan-out - ingest) / (messages
# x subscribers). Needs valgrind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TB_SCRIPT=bench/callgrind.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh
# shellcheck source=tools/bench/bench-lib.sh
source tools/bench/bench-lib.sh

PYTHON=/usr/bin/python3
MESSAGES=2000
SUBS=100
TOP=25
# Slow enough for the bridge under callgrind (about 50 times slower) to route each message
# alone: the figures then vary by a few percent between runs. At higher rates several frames
# share one write, fewer instructions per delivery but varying with timing (--rate).
RATE=100
READY_TIMEOUT_VALGRIND=60
EXTRA=()
OUT=
TAG= # in the kept files' names: -deflate with --deflate
SUB_OPTS=()
CHECK=(--check)

while (($#)); do
    case "$1" in
    --messages) MESSAGES=${2:?}; shift 2 ;;
    --subs) SUBS=${2:?}; shift 2 ;;
    --top) TOP=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --deflate) EXTRA+=(--deflate); TAG=-deflate; shift ;;
    --payload) EXTRA+=(--payload "${2:?}"); shift 2 ;;
    --subscribe-options) SUB_OPTS=(--subscribe-options "${2:?}"); CHECK=(); shift 2 ;;
    --bin) BENCH_BIN=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) tb_log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { tb_log "valgrind is needed (apt-get install valgrind)"; exit 1; }
if [[ -n "$OUT" ]]; then mkdir -p "$OUT"; else OUT=$(mktemp -d /tmp/telebridge-callgrind.XXXXXX); fi

# One run: $1 name, then bench arguments. Prints "IR DELIVERED" and keeps the profile.
profile_run() {
    local name=$1 out
    shift
    trap bench_stop_all EXIT # this runs in a subshell: it stops its own processes
    bench_workdir
    BENCH_WRAP=(valgrind --tool=callgrind --instr-atstart=no
        "--callgrind-out-file=$BENCH_DIR/callgrind.out")
    BENCH_READY_TIMEOUT=$READY_TIMEOUT_VALGRIND
    bench_start_broker || return 1
    bench_start_server telebridge 1000 || return 1
    out=$(bench_measure --rate "$RATE" --messages "$MESSAGES" --duration 600 "${CHECK[@]}" \
        --exec-before "callgrind_control -i on $SERVER_PID >/dev/null" \
        --exec-after "callgrind_control -i off $SERVER_PID >/dev/null" "${EXTRA[@]}" "$@" \
        2>/dev/null) \
        || { tb_log "$name run failed"; return 1; }
    bench_stop "$SERVER_PID"
    cp "$BENCH_DIR/callgrind.out" "$OUT/$name$TAG.out"
    callgrind_annotate --threshold=100 "$BENCH_DIR/callgrind.out" \
        >"$OUT/$name$TAG.txt"
    printf '%s %s\n' "$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' \
        "$OUT/$name$TAG.txt")" \
        "$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["delivered"])' "$out")"
    bench_stop_all
}

trap bench_stop_all EXIT
trap 'exit 130' INT TERM
read -r fan_ir fan_n < <(profile_run fanout --subs "$SUBS" --mix global=100 "${SUB_OPTS[@]}")
read -r ing_ir ing_n < <(profile_run ingest --subs 1 --mix device=100)
"$PYTHON" - "$MESSAGES" "$fan_ir" "$fan_n" "$ing_ir" "$ing_n" "$SUBS" <<'PY'
import sys
m, fan_ir, fan_n, ing_ir, ing_n, subs = (int(x) for x in sys.argv[1:])
print(f"messages {m}, fan-out deliveries {fan_n}, ingest-run deliveries {ing_n}")
print(f"Ir fan-out run {fan_ir:,}, ingest run {ing_ir:,}")
print(f"Ir per ingested message: {ing_ir / m:,.0f}")
print(f"Ir per delivery (marginal): {(fan_ir - ing_ir) / (fan_n - ing_n):,.0f}")
print(f"Ir per delivery (whole fan-out run, ingest included): {fan_ir / fan_n:,.0f}")
print(f"Ir per message and subscriber (marginal): {(fan_ir - ing_ir) / (m * subs):,.0f}")
PY
printf '\nTop functions of the fan-out run (self Ir):\n'
sed -n '/^Ir/,$p' "$OUT/fanout$TAG.txt" | head -n "$((TOP + 2))"
printf '\nProfiles kept in %s\n' "$OUT"
