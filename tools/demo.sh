#!/usr/bin/env bash
# tools/demo.sh — runs telebridge locally with a broker and simulated sensors.
#
#   ./tools/demo.sh [--http-port 8080] [--mqtt-port 1883] [--devices 6] [--rate 1]
#                   [--no-wait] [--no-build]
#
# Installs what is missing, builds, writes config/demo/ (a random JWT secret and a config made
# from config/telebridge.json), starts mosquitto on 127.0.0.1:MQTT_PORT unless something
# already listens there, starts the bridge and tools/simulate.py, mints a token and prints how
# to connect. Ctrl-C stops everything it started.
#   --no-wait   smoke test: check /readyz, that GET / serves the dashboard and that one
#               telemetry message reaches a WebSocket client, stop everything, exit 0 (1 on
#               failure)
#   --no-build  use the binaries already in build/ (build only when they are missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TB_SCRIPT=demo.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh

PYTHON=/usr/bin/python3
DEMO_DIR=config/demo
HTTP_PORT=8080
MQTT_PORT=1883
DEVICES=6
RATE=1
WAIT=1
BUILD=1
READY_TIMEOUT=20
TELEMETRY_TIMEOUT=15

usage() {
    sed -n '2,14p' "$0"
}

while (($#)); do
    case "$1" in
    --http-port) HTTP_PORT=${2:?--http-port needs a value}; shift 2 ;;
    --mqtt-port) MQTT_PORT=${2:?--mqtt-port needs a value}; shift 2 ;;
    --devices) DEVICES=${2:?--devices needs a value}; shift 2 ;;
    --rate) RATE=${2:?--rate needs a value}; shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) tb_log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
done

PIDS=()     # what this script started, stopped in reverse order
NAMES=()

# Each in its own session, so a Ctrl-C reaches only this script, which then stops them in
# order (the simulator first, so its offline statuses still reach the broker).
start_bg() {
    local name=$1 log=$2
    shift 2
    setsid "$@" >"$log" 2>&1 </dev/null &
    PIDS+=("$!")
    NAMES+=("$name")
}

cleanup() {
    local i pid
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        if kill -0 "$pid" 2>/dev/null; then
            # Bounded wait: the bridge exits within 5 s of SIGTERM (docs/operations.md → systemd).
            tb_stop_pid "$pid" 100
            tb_log "stopped ${NAMES[i]}"
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    tb_log "$*"
    [[ -f "$DEMO_DIR/telebridge.log" ]] && tail -n 20 "$DEMO_DIR/telebridge.log" >&2
    exit 1
}

tb_install_missing
if ((BUILD)) || [[ ! -x build/bin/telebridge || ! -x build/bin/telebridge-token ]]; then
    tb_build_plain
fi

# ---- config/demo: secret and config ------------------------------------------------------------

mkdir -p "$DEMO_DIR"
# The folder holds a secret and logs: keep all of it out of git.
printf '*\n' >"$DEMO_DIR/.gitignore"
if [[ ! -s "$DEMO_DIR/secret.key" ]]; then
    (umask 077 && openssl rand -hex 32 >"$DEMO_DIR/secret.key")
fi
"$PYTHON" - "$DEMO_DIR/telebridge.json" "$HTTP_PORT" "$MQTT_PORT" <<'EOF'
import json, os, sys
out, http_port, mqtt_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = "config/telebridge.json"
cfg = json.load(open(base)) if os.path.exists(base) else {}
cfg.setdefault("listen", {}).update({"host": "127.0.0.1", "port": http_port,
                                     "web_root": os.path.abspath("web")})
cfg.setdefault("mqtt", {}).update({"host": "127.0.0.1", "port": mqtt_port,
                                   "client_id": "telebridge-demo"})
cfg.setdefault("auth", {}).update({"algorithm": "HS256", "secret_file": "secret.key"})
cfg["auth"].pop("public_key_file", None)
# An alert rule the simulated temperatures (about 21 +- 0.5 degrees) cross now and then, so the
# dashboard's alert list has something to show.
cfg.setdefault("alerts", [{"name": "warm", "field": "temperature", "op": ">", "threshold": 22,
                           "clear_below": 21.5, "severity": "warning", "devices": ["*"]}])
with open(out, "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
EOF
build/bin/telebridge --config "$DEMO_DIR/telebridge.json" --check-config >/dev/null \
    || fail "the demo config is invalid: $DEMO_DIR/telebridge.json"

# ---- processes ---------------------------------------------------------------------------------

if tb_port_open "$HTTP_PORT"; then
    fail "something already listens on 127.0.0.1:$HTTP_PORT (choose another with --http-port)"
fi
if tb_port_open "$MQTT_PORT"; then
    tb_log "using the MQTT broker already listening on 127.0.0.1:$MQTT_PORT"
else
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" \
        >"$DEMO_DIR/mosquitto.conf"
    start_bg mosquitto "$DEMO_DIR/mosquitto.log" mosquitto -c "$DEMO_DIR/mosquitto.conf"
    tb_wait_port "$MQTT_PORT" 10 || fail "mosquitto did not start (see $DEMO_DIR/mosquitto.log)"
fi

start_bg telebridge "$DEMO_DIR/telebridge.log" \
    build/bin/telebridge --config "$DEMO_DIR/telebridge.json"
tb_wait_http_ok "http://127.0.0.1:$HTTP_PORT/readyz" "$READY_TIMEOUT" \
    || fail "the bridge is not ready after ${READY_TIMEOUT} s (see $DEMO_DIR/telebridge.log)"

start_bg simulator "$DEMO_DIR/simulate.log" "$PYTHON" tools/simulate.py --host 127.0.0.1 \
    --port "$MQTT_PORT" --devices "$DEVICES" --rate "$RATE"

TOKEN=$(build/bin/telebridge-token --sub demo --rooms 'device:*,group:*,global' --ttl 1h \
    --secret-file "$DEMO_DIR/secret.key") || fail "telebridge-token failed"
# /stats, /rooms and /metrics answer only a token with the admin scope (docs/security.md).
ADMIN_TOKEN=$(build/bin/telebridge-token --sub demo-operator --rooms '' --scope admin --ttl 1h \
    --secret-file "$DEMO_DIR/secret.key") || fail "telebridge-token failed"

# ---- smoke test or wait ------------------------------------------------------------------------

if ((!WAIT)); then
    [[ "$(tb_http_status "http://127.0.0.1:$HTTP_PORT/")" == 200 ]] \
        || fail "the dashboard is not served at http://127.0.0.1:$HTTP_PORT/"
    "$PYTHON" - "$HTTP_PORT" "$TOKEN" "$TELEMETRY_TIMEOUT" "$ADMIN_TOKEN" <<'EOF' || fail "no telemetry reached a WebSocket client, or /stats failed"
import asyncio, json, sys, urllib.error, urllib.request
import websockets

port, token, timeout, admin = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

def stats(bearer):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/stats",
                                 headers={"Authorization": f"Bearer {bearer}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

async def main():
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token}",
                                  open_timeout=timeout) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        assert hello["type"] == "connected", hello
        await ws.send(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if msg["type"] == "telemetry":
                print("demo.sh: telemetry received:", json.dumps(msg)[:160])
                return

asyncio.run(asyncio.wait_for(main(), timeout))
assert stats(token) == (403, {"error": "forbidden"}), "/stats without the admin scope"
status, body = stats(admin)
assert status == 200 and body["messages_in"] > 0, (status, body)
print(f"demo.sh: /stats with the admin token: {body['messages_in']} messages in")
EOF
    tb_log "smoke test passed"
    exit 0
fi

cat <<EOF

telebridge is running (logs in $DEMO_DIR/).

  Dashboard:   http://127.0.0.1:$HTTP_PORT/#token=$TOKEN
  Stats:       curl -H "Authorization: Bearer $ADMIN_TOKEN" \\
                   http://127.0.0.1:$HTTP_PORT/stats

  Token (1 h, rooms device:*, group:*, global):
    $TOKEN

  Connect with one of:
    websocat "ws://127.0.0.1:$HTTP_PORT/ws?token=$TOKEN"
    npx wscat -c "ws://127.0.0.1:$HTTP_PORT/ws?token=$TOKEN"
  then type:
    {"type":"subscribe","payload":{"rooms":["global"]}}

Press Ctrl-C to stop everything.
EOF
# Returns when one of them exits or a signal arrives; the EXIT trap stops the rest.
wait -n "${PIDS[@]}" || true
