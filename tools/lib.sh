# tools/lib.sh — shell helpers shared by tools/test.sh and tools/demo.sh. Source it; it defines
# functions only and changes nothing by itself.

# Debian 12 packages the build, the tests and the demo need.
TB_PACKAGES=(
    build-essential cmake pkg-config
    libwebsockets-dev libwebsockets-evlib-ev libev-dev # lws runs on libev through its plugin
    libmosquitto-dev libjansson-dev libjwt-dev libcmocka-dev libssl-dev
    zlib1g-dev # permessage-deflate: the inflater; the bench's inflater
    libdeflate-dev # permessage-deflate: the compressor
    mosquitto mosquitto-clients
    python3-pytest python3-websockets python3-paho-mqtt python3-jwt
    python3-cryptography # python3-jwt only recommends it; the RS256/ES256 tests sign with it
    clang libclang-rt-14-dev openssl procps curl man-db groff-base
    file # CPack's dpkg-shlibdeps step needs it to build the .deb
    nats-server # test_broker_cluster: a three-node MQTT broker cluster (JetStream)
)

tb_log() {
    printf '%s: %s\n' "${TB_SCRIPT:-telebridge}" "$*" >&2
}

# Prints the packages of TB_PACKAGES that dpkg does not list as installed.
tb_missing_packages() {
    local pkg status
    for pkg in "${TB_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ "$status" == "install ok installed" ]] || printf '%s\n' "$pkg"
    done
}

# Installs whatever is missing (as root, through apt-get); otherwise says what to install and
# fails. Returns 0 when everything is there afterwards.
tb_install_missing() {
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        tb_log "dpkg-query not found: this script expects Debian 12; install: ${TB_PACKAGES[*]}"
        return 1
    fi
    mapfile -t missing < <(tb_missing_packages)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        tb_log "missing packages: ${missing[*]}"
        tb_log "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
        return 1
    fi
    tb_log "installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# Node.js and npm for the JavaScript client and browser tests. Not in TB_PACKAGES: a machine may
# have them from elsewhere (nodesource's nodejs ships npm and conflicts with Debian's npm), so
# Debian's are installed only when the commands are missing.
tb_need_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" != 0 ]]; then
        tb_log "node and npm are missing; install them with: sudo apt-get install -y nodejs npm"
        return 1
    fi
    tb_log "installing: nodejs npm"
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
}

# Installs tests/js's locked npm packages (ws, playwright-core) unless already there.
tb_npm_ci() {
    tb_need_node || return 1
    if [[ -f tests/js/node_modules/.package-lock.json ]] &&
        cmp -s tests/js/package-lock.json tests/js/node_modules/.tb-installed-lock; then
        return 0
    fi
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error) || return 1
    cp tests/js/package-lock.json tests/js/node_modules/.tb-installed-lock
}

# Debian's chromium for the browser test: large, so installed only by that step, only when
# missing. Returns 1 when it is not there and cannot be installed (not root, apt failed).
tb_ensure_chromium() {
    [[ -x /usr/bin/chromium ]] && return 0
    if [[ "$(id -u)" != 0 ]]; then
        tb_log "chromium is missing; install it with: sudo apt-get install -y chromium"
        return 1
    fi
    tb_log "installing: chromium"
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
}

# Prints an nginx binary for the test of docs/operations.md's proxy examples: the one in PATH,
# else Debian's package unpacked into build/nginx/ (downloaded, not installed: installing would
# start a web server on port 80). Returns 1 when neither is possible.
tb_nginx_bin() {
    local dir=build/nginx
    if command -v nginx >/dev/null 2>&1; then
        command -v nginx
        return 0
    fi
    if [[ ! -x "$dir/usr/sbin/nginx" ]]; then
        rm -rf "$dir" && mkdir -p "$dir" || return 1
        if ! (cd "$dir" && apt-get download nginx >/dev/null 2>&1); then
            # Package lists may be missing (a fresh image): refresh them once, as root.
            [[ "$(id -u)" == 0 ]] && apt-get update >/dev/null 2>&1 || return 1
            (cd "$dir" && apt-get download nginx >/dev/null 2>&1) || return 1
        fi
        dpkg-deb -x "$dir"/nginx_*.deb "$dir" || return 1
    fi
    printf '%s\n' "$PWD/$dir/usr/sbin/nginx"
}

# Stops process $1: SIGTERM, then up to $2 tenths of a second (default 50) for it to go, then
# SIGKILL; reaps it when it is this shell's child. Returns 0 whether or not it was running.
tb_stop_pid() {
    local pid=$1 tenths=${2:-50}
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago, from 20000-31999: below the
# kernel's ephemeral range, so that no outgoing connection takes it before the server binds it
# (tests/integration/tb.py's free_port() follows the same rule).
tb_free_port() {
    /usr/bin/python3 - <<'EOF'
import random, socket
for _ in range(1000):
    port = random.randrange(20000, 32000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port in 20000-31999")
EOF
}

# True when something accepts TCP connections on 127.0.0.1:$1.
tb_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits up to $2 seconds for 127.0.0.1:$1 to accept connections.
tb_wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    until tb_port_open "$port"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Prints the HTTP status of GET $1 (000 when nothing answers).
tb_http_status() {
    /usr/bin/python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print("000")
EOF
}

# Waits up to $2 seconds for GET $1 to answer 200.
tb_wait_http_ok() {
    local url=$1 deadline=$((SECONDS + $2))
    until [[ "$(tb_http_status "$url")" == 200 ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Configures and builds the plain binaries into build/ (what demo.sh runs and test.sh tests
# with --quick).
tb_build_plain() {
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTB_WERROR=ON
    cmake --build build -j2
}
