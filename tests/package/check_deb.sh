#!/usr/bin/env bash
# tests/package/check_deb.sh DEB — checks a telebridge .deb: its control data and file list
# (dpkg-deb -I/-c), the systemd unit (systemd-analyze), and, as root, an install into a scratch
# root (dpkg --root, maintainer scripts run chrootless) where the installed binary must accept
# the installed config and serve the installed dashboard; then a purge. Exits 0 when all holds.
set -euo pipefail
DEB=$(realpath "$1")
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tools/lib.sh" # tb_free_port
WORK=$(mktemp -d)
BRIDGE_PID=
INSTANCE_PIDS=()
cleanup() {
    local pid
    for pid in $BRIDGE_PID "${INSTANCE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        printf 'ok    %s\n' "$what"
    else
        printf 'FAIL  %s\n' "$what"
        FAILS=$((FAILS + 1))
    fi
}
has_line() { grep -qxF -- "$2" <<<"$1"; }
has_match() { grep -qE -- "$2" <<<"$1"; }

# ---- control data ------------------------------------------------------------------------
INFO=$(dpkg-deb -I "$DEB")
CONTROL=$(dpkg-deb -f "$DEB")
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
check "package name" test "$(dpkg-deb -f "$DEB" Package)" = telebridge
for lib in libwebsockets17 libwebsockets-evlib-ev libev4 libmosquitto1 libjansson4 libjwt0 libdeflate0 libc6 passwd; do
    check "Depends on $lib" has_match "$DEPENDS" "(^|, )$lib( |,|$)"
done
check "Recommends mosquitto" has_match "$CONTROL" '^Recommends: .*mosquitto'
for script in postinst prerm postrm conffiles; do
    check "control has $script" has_match "$INFO" " $script( |$)"
done
dpkg-deb -e "$DEB" "$WORK/control"
check "conffiles: the config" has_line "$(cat "$WORK/control/conffiles")" /etc/telebridge/telebridge.json
for script in postinst prerm postrm; do
    check "$script is valid sh" sh -n "$WORK/control/$script"
done

# ---- files ---------------------------------------------------------------------------------
FILES=$(dpkg-deb -c "$DEB" | awk '{ print $6 }')
for f in ./usr/bin/telebridge ./usr/bin/telebridge-token ./etc/telebridge/telebridge.json \
    ./usr/lib/systemd/system/telebridge.service ./usr/lib/systemd/system/telebridge@.service \
    ./usr/share/man/man1/telebridge.1 \
    ./usr/share/man/man1/telebridge-token.1 \
    ./usr/share/telebridge/web/index.html ./usr/share/telebridge/web/app.js \
    ./usr/share/telebridge/web/style.css ./usr/share/telebridge/web/telebridge-client.js \
    ./usr/share/doc/telebridge/README.md ./usr/share/doc/telebridge/protocol.md \
    ./usr/share/doc/telebridge/operations.md; do
    check "contains $f" has_line "$FILES" "$f"
done
check "no node_modules, no secret, nothing under /usr/local" \
    bash -c '! grep -qE "node_modules|secret\.key|^\./usr/local" <<<"$1"' _ "$FILES"
dpkg-deb -x "$DEB" "$WORK/x"
check "binaries are stripped" bash -c '! readelf -S "$1" | grep -q "\.symtab"' _ "$WORK/x/usr/bin/telebridge"

# ---- the systemd unit ------------------------------------------------------------------------
UNIT=$WORK/x/usr/lib/systemd/system/telebridge.service
for line in "DynamicUser=yes" "ProtectSystem=strict" "NoNewPrivileges=yes" "Restart=on-failure" \
    'ExecReload=/bin/kill -HUP $MAINPID' \
    "ExecStart=/usr/bin/telebridge --config /etc/telebridge/telebridge.json" \
    "SupplementaryGroups=telebridge" "WantedBy=multi-user.target"; do
    check "unit: $line" has_line "$(cat "$UNIT")" "$line"
done
# The template (docs/operations.md → systemd): the same unit, its instance the port.
TEMPLATE=$WORK/x/usr/lib/systemd/system/telebridge@.service
TEMPLATE_EXEC="ExecStart=/usr/bin/telebridge --config /etc/telebridge/telebridge.json --listen :%i"
check "template: $TEMPLATE_EXEC" has_line "$(cat "$TEMPLATE")" "$TEMPLATE_EXEC"
check "unit: StateDirectory=telebridge" has_line "$(cat "$UNIT")" "StateDirectory=telebridge"
check "template: StateDirectory=telebridge-%i" has_line "$(cat "$TEMPLATE")" \
    "StateDirectory=telebridge-%i"
check "template: the unit's other lines" bash -c \
    'x="^ExecStart=\|^Description=\|^StateDirectory="; diff <(grep -v "$x" "$1") <(grep -v "$x" "$2")' \
    _ "$UNIT" "$TEMPLATE"
if command -v systemd-analyze >/dev/null; then
    sed "s|/usr/bin/telebridge|$WORK/x/usr/bin/telebridge|" "$UNIT" >"$WORK/telebridge.service"
    check "systemd-analyze verify" env MANPATH="$WORK/x/usr/share/man" \
        systemd-analyze verify "$WORK/telebridge.service"
    check "systemd-analyze security: exposure <= 2.5" \
        systemd-analyze security --offline=yes --threshold=25 "$UNIT"
    sed "s|/usr/bin/telebridge|$WORK/x/usr/bin/telebridge|" "$TEMPLATE" >"$WORK/telebridge@8081.service"
    check "systemd-analyze verify telebridge@8081" env MANPATH="$WORK/x/usr/share/man" \
        systemd-analyze verify "$WORK/telebridge@8081.service"
fi

# ---- install into a scratch root -------------------------------------------------------------
if [[ "$(id -u)" != 0 ]]; then
    echo "skip  scratch-root install (needs root for dpkg --root)"
    ((FAILS == 0))
    exit
fi
R=$WORK/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
touch "$R/var/lib/dpkg/status" "$R/etc/group" "$R/etc/gshadow" "$R/etc/passwd" "$R/etc/shadow"
DPKG=(dpkg --root="$R" --force-script-chrootless --force-depends --log=/dev/null)
check "dpkg --root -i" "${DPKG[@]}" -i "$DEB"
check "installed: status ok" bash -c 'dpkg --root="$1" -s telebridge | grep -qx "Status: install ok installed"' _ "$R"
check "postinst: group telebridge" grep -q '^telebridge:' "$R/etc/group"
check "postinst: secret.key 0640, 64 hex digits" bash -c \
    '[[ "$(stat -c %a "$1")" == 640 ]] && grep -qxE "[0-9a-f]{64}" "$1"' _ "$R/etc/telebridge/secret.key"
EFFECTIVE=$WORK/effective.json
check "installed binary accepts the installed config" bash -c \
    '"$1/usr/bin/telebridge" --config "$1/etc/telebridge/telebridge.json" --check-config >"$2"' _ "$R" "$EFFECTIVE"
check "web_root is /usr/share/telebridge/web" /usr/bin/python3 -c '
import json, sys
assert json.load(open(sys.argv[1]))["listen"]["web_root"] == "/usr/share/telebridge/web"' "$EFFECTIVE"
check "--check-config does not print the secret" bash -c '! grep -qf "$1" "$2"' _ \
    "$R/etc/telebridge/secret.key" "$EFFECTIVE"

# The installed binary serves the installed dashboard (web_root moved into the scratch root).
PORT=$(tb_free_port)
sed "s|\"/usr/share/telebridge/web\"|\"$R/usr/share/telebridge/web\"|" \
    "$R/etc/telebridge/telebridge.json" >"$R/etc/telebridge/served.json"
"$R/usr/bin/telebridge" --config "$R/etc/telebridge/served.json" --listen "127.0.0.1:$PORT" \
    --mqtt 127.0.0.1:1 >"$WORK/bridge.log" 2>&1 &
BRIDGE_PID=$!
serves_index() {
    local deadline=$((SECONDS + 10))
    until /usr/bin/python3 -c 'import sys, urllib.request
open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=2).read())' \
        "http://127.0.0.1:$PORT/" "$WORK/index.html" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    cmp -s "$WORK/index.html" "$R/usr/share/telebridge/web/index.html"
}
check "installed binary serves the installed dashboard at GET /" serves_index
kill -TERM "$BRIDGE_PID"
check "installed binary exits 0 on SIGTERM" wait "$BRIDGE_PID"
BRIDGE_PID=

# Two instances of the template, started with its ExecStart line (%i = each one's port) on the
# one installed config: each listens on its port and holds its own MQTT session id
# (client_id "telebridge-{hostname}-{port}" in the shipped config).
EXEC=$(sed -n 's/^ExecStart=//p' "$R/usr/lib/systemd/system/telebridge@.service")
for i in 1 2; do
    P=$(tb_free_port)
    read -ra CMD <<<"${EXEC//%i/$P}"
    CMD=("${CMD[@]/#\/usr\/bin\/telebridge/$R/usr/bin/telebridge}")
    CMD=("${CMD[@]/#\/etc\/telebridge\/telebridge.json/$R/etc/telebridge/served.json}")
    "${CMD[@]}" --mqtt 127.0.0.1:1 >"$WORK/instance$i.log" 2>&1 &
    INSTANCE_PIDS+=($!)
    INSTANCE_PORTS+=("$P")
done
instance_serves() { # instance_serves PORT LOG
    local deadline=$((SECONDS + 10))
    until grep -q 'msg="listening"' "$2" && /usr/bin/python3 -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()' "http://127.0.0.1:$1/healthz" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    grep -q "port=$1 " "$2" && grep -q "client_id=telebridge-$(hostname)-$1 clean_session=false" "$2"
}
for i in 1 2; do
    check "template instance $i serves its port with its own client id" \
        instance_serves "${INSTANCE_PORTS[$((i - 1))]}" "$WORK/instance$i.log"
done
for i in 1 2; do
    kill -TERM "${INSTANCE_PIDS[$((i - 1))]}"
    check "template instance $i exits 0 on SIGTERM" wait "${INSTANCE_PIDS[$((i - 1))]}"
done
INSTANCE_PIDS=()

check "dpkg --root -P (purge)" "${DPKG[@]}" -P telebridge
check "purge: secret and group gone" bash -c '[[ ! -e "$1/etc/telebridge/secret.key" ]] &&
    ! grep -q "^telebridge:" "$1/etc/group"' _ "$R"
check "purge: no files left under usr/" bash -c '[[ -z "$(find "$1/usr" -type f 2>/dev/null)" ]]' _ "$R"

((FAILS == 0))
