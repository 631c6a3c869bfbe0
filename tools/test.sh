#!/usr/bin/env bash
# tools/test.sh — installs what is missing, builds, and runs every test of telebridge.
#
#   ./tools/test.sh           full run: plain build, ASan+UBSan build and unit tests, TSan build
#                             and the threaded unit tests, integration tests against the ASan
#                             binary, a 20 s soak, a short run of every libFuzzer target (with
#                             clang), JavaScript client and browser tests, the Debian package,
#                             benchmark and demo smoke tests
#   ./tools/test.sh --quick   plain build, unit tests, integration tests, JavaScript client
#                             and browser tests, the Debian package, benchmark and demo smoke
#                             tests
#
# Exits 0 only when every step passed. The last line is "steps: N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TB_SCRIPT=test.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh

PYTHON=/usr/bin/python3
# Unit tests run under TSan (those that exist): the ones with threads.
TSAN_TESTS=(test_queue test_hub test_ingest)
# Items of the queue stress test under TSan: millions, in seconds (5 s here, idle).
TSAN_STRESS_ITEMS=5000000
# Seconds of the soak run against the ASan binary (tools/soak.sh; longer runs by hand).
SOAK_SECONDS=20
# Seconds each libFuzzer target of tests/fuzz runs (docs/operations.md: longer runs).
FUZZ_SECONDS=${TB_FUZZ_SECONDS:-15}
# Hard bounds so a hung step can never hold CI: seconds.
UNIT_TIMEOUT=600
INTEGRATION_TIMEOUT=900
DEMO_TIMEOUT=180
BENCH_TIMEOUT=120
JS_TIMEOUT=300

QUICK=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,13p' "$0"
        exit 0
        ;;
    *)
        tb_log "unknown argument: $arg (try --help)"
        exit 2
        ;;
    esac
done

RESULTS=() # one line per step, in order
PASSED=0
FAILED=0

# Runs a step function, records its outcome and duration; returns its status. Step functions
# check each command themselves ("|| return 1"): bash ignores `set -e` inside a function called
# as a condition.
step() {
    local name=$1 t0=$SECONDS rc=0
    shift
    printf '\n==> %s\n' "$name"
    "$@" || rc=$?
    if ((rc == 0)); then
        PASSED=$((PASSED + 1))
        RESULTS+=("ok       $name ($((SECONDS - t0)) s)")
    else
        FAILED=$((FAILED + 1))
        RESULTS+=("FAILED   $name ($((SECONDS - t0)) s, status $rc)")
    fi
    return "$rc"
}

skip() {
    RESULTS+=("skipped  $1 ($2)")
    printf '\n==> %s: skipped, %s\n' "$1" "$2"
}

summary() {
    local s
    printf '\n==> summary (%d s)\n' "$SECONDS"
    for s in "${RESULTS[@]+"${RESULTS[@]}"}"; do printf '  %s\n' "$s"; done
    printf 'steps: %d passed, %d failed\n' "$PASSED" "$FAILED"
}

# ---- steps ------------------------------------------------------------------------------------

build_dir() {
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTB_WERROR=ON "$@" || return 1
    cmake --build "$dir" -j2 || return 1
}

unit_plain() {
    timeout "$UNIT_TIMEOUT" ctest --test-dir build --output-on-failure
}

unit_asan() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        timeout "$UNIT_TIMEOUT" ctest --test-dir build-asan --output-on-failure
}

tsan_targets() {
    local t
    for t in "${TSAN_TESTS[@]}"; do
        [[ -f "tests/unit/$t.c" ]] && printf '%s\n' "$t"
    done
    return 0
}

build_tsan() {
    local t targets
    mapfile -t targets < <(tsan_targets)
    cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTB_WERROR=ON -DTB_TSAN=ON \
        || return 1
    for t in "${targets[@]}"; do
        cmake --build build-tsan -j2 --target "$t" || return 1
    done
}

# Runs every TSan test (not stopping at the first failure); fails when any failed.
unit_tsan() {
    local t targets failed=()
    mapfile -t targets < <(tsan_targets)
    for t in "${targets[@]}"; do
        printf -- '--- %s (TSan)\n' "$t"
        # setarch -R: TSan's fixed memory layout does not survive high ASLR entropy.
        TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 TB_STRESS_ITEMS=$TSAN_STRESS_ITEMS \
            timeout "$UNIT_TIMEOUT" setarch "$(uname -m)" -R "build-tsan/bin/$t" || failed+=("$t")
    done
    if ((${#failed[@]})); then
        printf -- '--- TSan failures: %s\n' "${failed[*]}"
        return 1
    fi
}

soak_short() {
    ./tools/soak.sh --duration "$SOAK_SECONDS" --bin build-asan/bin
}

# True when clang can link a libFuzzer target.
fuzz_available() {
    command -v clang >/dev/null 2>&1 || return 1
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return (int)(d && n) * 0; }\n' |
        clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1
}

build_fuzz() {
    build_dir build-fuzz -DCMAKE_C_COMPILER=clang -DTB_FUZZ=ON -DTB_TESTS=OFF
}

# Runs every target FUZZ_SECONDS from its seed corpus (new inputs go to build-fuzz/corpus, never
# into the repository); a crash leaves its input in build-fuzz/crash-<target>-*.
fuzz_short() {
    local src name rc failed=()
    for src in tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        mkdir -p "build-fuzz/corpus/$name"
        printf -- '--- %s (%d s)\n' "$name" "$FUZZ_SECONDS"
        rc=0
        timeout $((FUZZ_SECONDS + 60)) "build-fuzz/bin/$name" -max_total_time="$FUZZ_SECONDS" \
            -artifact_prefix="build-fuzz/crash-$name-" "build-fuzz/corpus/$name" \
            "tests/fuzz/corpus/${name#fuzz_}" >"build-fuzz/$name.log" 2>&1 || rc=$?
        grep -E '^(Done |==[0-9]+==|SUMMARY)' "build-fuzz/$name.log" || true
        ((rc == 0)) || failed+=("$name")
    done
    if ((${#failed[@]})); then
        printf -- '--- fuzz failures: %s\n' "${failed[*]}"
        return 1
    fi
}

integration() {
    local dir=$1 nginx
    nginx=$(tb_nginx_bin) || tb_log "no nginx: the reverse-proxy doc test will be skipped"
    # test_nginx.py runs web/telebridge-client.js in node, with tests/js's `ws`.
    tb_npm_ci || tb_log "no node or tests/js packages: test_nginx.py's Node client tests will fail"
    TB_NGINX=${nginx:-} TELEBRIDGE_BIN="$PWD/$dir/bin/telebridge" \
        TELEBRIDGE_TOKEN_BIN="$PWD/$dir/bin/telebridge-token" \
        ASAN_OPTIONS=detect_leaks=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        PYTHONDONTWRITEBYTECODE=1 \
        timeout "$INTEGRATION_TIMEOUT" "$PYTHON" -m pytest -q -p no:cacheprovider tests/integration
}

# web/telebridge-client.js under Node's test runner, against the plain build; its types
# (web/telebridge-client.d.ts, docs/react.md's hook) under tsc --noEmit (tests/js/types.test.mjs).
js_client() {
    tb_npm_ci || return 1
    TELEBRIDGE_BIN="$PWD/build/bin/telebridge" \
        TELEBRIDGE_TOKEN_BIN="$PWD/build/bin/telebridge-token" \
        timeout "$JS_TIMEOUT" node --test tests/js/client.test.mjs tests/js/failover.test.mjs \
        tests/js/cli.test.mjs tests/js/types.test.mjs || return 1
    # The client's benchmark still runs (it checks its event count; figures: docs/performance.md).
    timeout 60 node tools/bench/client_js.mjs --messages 20000
}

# The dashboard in headless chromium (playwright-core), against the plain build.
browser_test() {
    tb_npm_ci || return 1
    TELEBRIDGE_BIN="$PWD/build/bin/telebridge" \
        TELEBRIDGE_TOKEN_BIN="$PWD/build/bin/telebridge-token" \
        timeout "$JS_TIMEOUT" node --test tests/js/browser.test.mjs
}

# Builds the .deb (tools/package.sh) and checks it: control data, files, unit, and an install
# into a scratch root (tests/package/check_deb.sh).
package_deb() {
    local deb
    deb=$(TB_PACKAGE_DIR=build-pkg ./tools/package.sh) || return 1
    tests/package/check_deb.sh "$deb"
}

demo_smoke() {
    local http_port mqtt_port
    http_port=$(tb_free_port) || return 1
    mqtt_port=$(tb_free_port) || return 1
    timeout "$DEMO_TIMEOUT" ./tools/demo.sh --no-wait --no-build --http-port "$http_port" \
        --mqtt-port "$mqtt_port"
}

# A few seconds of load through the plain binary, 100 idle connections beside the subscribers:
# nothing lost, no idle connection closed or sent telemetry, figures in their ranges; then a
# second with compressing subscribers.
bench_smoke() {
    local out
    out=$(timeout "$BENCH_TIMEOUT" tools/bench/run.sh --bin build/bin --subs 200 --idle 100 \
        --rate 500 --duration 2 --check) || return 1
    printf '%s\n' "$out"
    "$PYTHON" - "$out" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
assert r["ready"] == r["subscribers"] == 200, r
assert r["expected"] == r["delivered"] > 0 and r["lost"] == 0, r
assert 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"] < 5_000_000, r
assert r["deliveries_per_s"] > 0 and r["connects_per_s"] > 0, r
assert 0 <= r["server_cpu_pct"] <= 200 and 0 <= r["bench_cpu_pct"] <= 200, r
assert r["server_rss_kb"] > 0 and r["failed_connects"] == 0, r
assert r["idle_ready"] == r["idle"] == 100 and r["idle_closed"] == r["idle_received"] == 0, r
EOF
    # The same with clients that offer permessage-deflate as Chromium does: negotiated by every
    # one, each message inflated and checked (JSON object, order), nothing lost.
    out=$(timeout "$BENCH_TIMEOUT" tools/bench/run.sh --bin build/bin --subs 100 --rate 500 \
        --duration 1 --deflate --payload demo --check) || return 1
    printf '%s\n' "$out"
    "$PYTHON" - "$out" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
assert r["ready"] == r["deflate_conns"] == 100 and r["protocol_errors"] == 0, r
assert r["expected"] == r["delivered"] > 0 and r["lost"] == r["out_of_order"] == 0, r
assert r["wire_bytes"] > 0 and r["message_bytes"] > 0, r
EOF
    fleet_smoke
}

# The CI size of the 100,000-connection run (tools/bench/fleet.sh, docs/performance.md → A
# fleet on one port): two bridges on one port (listen.reuse_port), 400 connections from two
# bench processes, one of them compressing. Every connection must get exactly its room's
# messages; then the same with one bridge on a broker nobody publishes to, where the check must
# name that bridge's connections and fail.
fleet_smoke() {
    local out args=(--bin build/bin --bridges 2 --conns 400 --clients 2 --deflate-clients 1
        --devices 20 --groups 4 --rate 100 --duration 2 --mix device=60,group=30,global=10)
    # --drain: how long a bench waits for late deliveries; a full run ends as soon as all came.
    out=$(timeout "$BENCH_TIMEOUT" tools/bench/fleet.sh "${args[@]}" --drain 5) || return 1
    printf '%s\n' "$out"
    "$PYTHON" - "$out" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
assert r["ready"] == r["conns"] == 400 and r["deflate_conns"] == 200, r
assert r["conns_missing"] == r["conns_extra"] == r["misrouted"] == r["lost"] == 0, r
assert r["delivered"] > 0 and r["foreign"] > 0, r  # group/global rooms: both benches' devices
held = [b["connections"] for b in r["bridges_detail"]]
assert sum(held) == 400 and min(held) > 0, held  # the kernel spread them over both
EOF
    if out=$(timeout "$BENCH_TIMEOUT" tools/bench/fleet.sh "${args[@]}" --drain 1 --break-one); then
        tb_log "fleet.sh --break-one passed: the per-connection check cannot fail"
        return 1
    fi
    printf '%s\n' "$out"
    "$PYTHON" - "$out" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
silent = r["bridges_detail"][-1]["connections"]
assert r["ready"] == 400 and silent > 0 and r["conns_missing"] == silent, r
EOF
}

# ---- main ------------------------------------------------------------------------------------

trap summary EXIT

step "install missing packages" tb_install_missing || exit 1
step "build (plain)" build_dir build || exit 1

if ((QUICK)); then
    step "unit tests (plain)" unit_plain || true
    skip "ASan+UBSan build and unit tests" "--quick"
    skip "TSan build and unit tests" "--quick"
    step "integration tests (plain binary)" integration build || true
else
    if step "build (ASan+UBSan)" build_dir build-asan -DTB_SANITIZE=ON; then
        step "unit tests (ASan+UBSan)" unit_asan || true
        step "integration tests (ASan+UBSan binary)" integration build-asan || true
        step "soak (${SOAK_SECONDS} s, ASan+UBSan binary)" soak_short || true
    else
        skip "unit and integration tests (ASan+UBSan)" "build failed"
    fi
    if step "build (TSan: ${TSAN_TESTS[*]})" build_tsan; then
        step "unit tests (TSan)" unit_tsan || true
    else
        skip "unit tests (TSan)" "build failed"
    fi
    if ! fuzz_available; then
        skip "fuzz targets" "clang cannot link libFuzzer"
    elif step "build (libFuzzer)" build_fuzz; then
        step "fuzz targets (${FUZZ_SECONDS} s each)" fuzz_short || true
    else
        skip "fuzz targets" "build failed"
    fi
fi
step "JavaScript client tests (node --test, tsc --noEmit)" js_client || true
if tb_ensure_chromium; then
    step "browser test (dashboard in headless chromium)" browser_test || true
else
    skip "browser test (dashboard in headless chromium)" "chromium is not installed and could not be"
fi
step "Debian package (build, inspect, install into a scratch root)" package_deb || true
step "benchmark smoke test" bench_smoke || true
step "demo smoke test" demo_smoke || true

((FAILED == 0))
