#!/usr/bin/env bash
# tools/bench/memory.sh — telebridge's memory per idle connection: RSS after N authenticated,
# subscribed (one room each), idle WebSocket connections minus RSS before, divided by N.
#
#   tools/bench/memory.sh [--counts "10000 50000"] [--server telebridge] [--bin build/bin]
#
# --server telebridge-deflate: the connections negotiated permessage-deflate (telebridge-bench
# --deflate), as a browser's do.
#
# One fresh broker and server per count (tools/bench/run.sh with --duration 0: connect, measure,
# publish nothing). Needs an open-file limit of about 2 N + 4096 (raised for its own processes;
# as root that always works); the port range of one loopback address holds ~28k connections,
# so telebridge-bench spreads them over 127.0.0.1..K. Changes no sysctl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TB_SCRIPT=bench/memory.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh

PYTHON=/usr/bin/python3
COUNTS="10000 50000"
SERVER=telebridge
BIN=build/bin
while (($#)); do
    case "$1" in
    --counts) COUNTS=${2:?}; shift 2 ;;
    --server) SERVER=${2:?}; shift 2 ;;
    --bin) BIN=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) tb_log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
done

printf '%-8s %12s %14s %12s %14s\n' connections "RSS (kB)" "bytes/conn" "connects/s" "failed"
for n in $COUNTS; do
    out=$(tools/bench/run.sh --server "$SERVER" --bin "$BIN" --subs "$n" --duration 0 --parallel 512 \
        --check 2>/dev/null) || { tb_log "$n connections: run failed"; exit 1; }
    "$PYTHON" - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"{r['ready']:<8} {r['server_rss_kb']:>12} {r['rss_per_conn_bytes']:>14.0f} "
      f"{r['connects_per_s']:>12.0f} {r['failed_connects']:>14}")
PY
done
