#!/usr/bin/env bash
# tools/soak.sh — a bounded soak of telebridge: steady MQTT publishing and WebSocket churn
# (connect, subscribe, read, disconnect or drop) against a private mosquitto, then checks that
# RSS, open descriptors and the /stats counters came back flat and that the bridge stops
# cleanly with no leak reported. See tools/soak.py for the checks and their bounds.
#
#   ./tools/soak.sh                      60 s against build-asan/bin (else build/bin)
#   ./tools/soak.sh --duration 600       ten minutes
#   ./tools/soak.sh --valgrind --bin build/bin --duration 120 --clients 10 --rate 10
#   ./tools/soak.sh --clients 200 --rate 200
#
# Exits 0 when every check passed; the last line is "soak: ok" or the failures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TB_SCRIPT=soak.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,13p' "$0"
    exit 0
fi
for arg in "$@"; do
    if [[ "$arg" == --valgrind ]] && ! command -v valgrind >/dev/null 2>&1; then
        tb_log "valgrind is not installed (apt-get install valgrind)"
        exit 2
    fi
done
# A hard bound on the whole run, whatever --duration says.
exec timeout 7200 /usr/bin/python3 tools/soak.py "$@"
