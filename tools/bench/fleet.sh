#!/usr/bin/env bash
# tools/bench/fleet.sh — a fleet of bridges on one port under many connections, every connection
# checked: N telebridge processes sharing one listen port (listen.reuse_port), one mosquitto, P
# telebridge-bench processes, each from its own loopback source addresses.
#
#   tools/bench/fleet.sh [--bridges 6] [--conns 100000] [--clients 7] [--deflate-clients 2]
#       [--mix device=80,group=19,global=1] [--devices 350] [--groups 50] [--rate 50]
#       [--duration 20] [--drain 5] [--payload demo] [--sysctl] [--break-one] [--bin build/bin]
#       [--out FILE]
#
# Bench process p of P opens its share of --conns (subscribers) from 127.0.0.<2+p*K>.. (K
# addresses when its share needs more than one: a source address has one ephemeral port range
# per destination), the first --deflate-clients of them offering permessage-deflate as browsers
# do. Each publishes --rate/P messages/s from its own --devices/P devices for --duration seconds;
# rooms follow --mix (device rooms, group:g<j> of --groups, global), so group and global
# subscribers also get the other processes' devices (counted as `foreign`, telebridge-bench
# --help). The processes connect, wait for each other (--ready-file, --go-file), then publish
# together, and each waits up to --drain seconds of quiet for its last deliveries. Every subscriber must receive exactly its room's messages of its own process: the
# report counts those that did not (`conns_missing`, `conns_extra`), and any makes the exit status 1.
#
# Measured per bridge: connections held (/stats on its admin port), RSS after connecting minus
# RSS at start, divided by its connections; CPU % while messages flow. For the fleet: deliveries/s
# (every bench's own and foreign deliveries over the time from "go" to the last bench done), the
# worst bench's p50/p99/p99.9, the broker's and the benches' CPU. One JSON line on stdout, a
# table on stderr; --out FILE appends the JSON line (and each bench's) to FILE.
#
# Kernel limits: the script checks the open-file hard limit (each process holds its own side),
# fs.file-max, net.core.somaxconn and, when conntrack is loaded, nf_conntrack_max minus the
# entries in use (loopback connections are tracked too; closed ones stay as TIME_WAIT entries for
# 2 minutes). A shortfall is an error, or with --sysctl (root) the sysctl is raised to what the
# run needs and the change printed; the script never lowers one and does not restore them. It
# reads net.ipv4.ip_local_port_range and never changes it: each bench puts at most 3/4 of that
# range (and at most 20,000) connections on one source address and uses more addresses instead.
#
# --break-one points the last bridge at a second, silent broker: its connections get nothing,
# and the run must report them (conns_missing > 0, exit 1). tools/test.sh checks both ways.
# Everything it starts is stopped at exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TB_SCRIPT=bench/fleet.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh
# shellcheck source=tools/bench/bench-lib.sh
source tools/bench/bench-lib.sh

PYTHON=/usr/bin/python3
BRIDGES=6
CONNS=100000
CLIENTS=7
DEFLATE_CLIENTS=2
MIX=device=80,group=19,global=1
DEVICES=350
GROUPS_N=50
RATE=50
DURATION=20
PAYLOAD=demo
DRAIN=5
SYSCTL=0
BREAK_ONE=0
OUT=
PARALLEL=128
PER_SOURCE=20000 # connections per source address: at most 3/4 of the ephemeral port range
CONNECT_WAIT=600 # seconds for every bench to connect
RUN_WAIT=300     # seconds from "go" to every bench done
EXIT_WAIT=60     # seconds for the benches to exit after that
while (($#)); do
    case "$1" in
    --bridges) BRIDGES=${2:?}; shift 2 ;;
    --conns) CONNS=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --deflate-clients) DEFLATE_CLIENTS=${2:?}; shift 2 ;;
    --mix) MIX=${2:?}; shift 2 ;;
    --devices) DEVICES=${2:?}; shift 2 ;;
    --groups) GROUPS_N=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --payload) PAYLOAD=${2:?}; shift 2 ;;
    --drain) DRAIN=${2:?}; shift 2 ;;
    --sysctl) SYSCTL=1; shift ;;
    --break-one) BREAK_ONE=1; shift ;;
    --bin) BENCH_BIN=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,37p' "$0"; exit 0 ;;
    *) tb_log "unknown argument: $1 (try --help)"; exit 2 ;;
    esac
done
# Device k of a bench is in group g<k mod G>: with fewer devices per bench than groups, some
# groups would get no message, and their subscribers' check would prove nothing.
((BRIDGES >= 1 && CLIENTS >= 1 && CONNS >= CLIENTS && DEVICES / CLIENTS >= GROUPS_N)) || {
    tb_log "need --bridges >= 1, --clients >= 1, --conns >= --clients, --devices / --clients >= --groups"
    exit 2
}

# ---- kernel limits ---------------------------------------------------------------------------

# The ephemeral port range is never changed (other servers on the host pick their ports below
# it): a narrower one only spreads each bench over more source addresses.
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
(((PORT_HI - PORT_LO + 1) * 3 / 4 < PER_SOURCE)) && PER_SOURCE=$(((PORT_HI - PORT_LO + 1) * 3 / 4))
SHARE=$(((CONNS + CLIENTS - 1) / CLIENTS))       # subscribers of the largest bench
SOURCES=$(((SHARE + PER_SOURCE - 1) / PER_SOURCE)) # source addresses per bench
# limits.max_connections: the kernel's spread is not exact, so a quarter above the mean share,
# but below the descriptor limit, so that a bridge over its share answers 503 rather than
# failing accept() (the bench then reports the connection as failed).
BRIDGE_SHARE=$(((CONNS + BRIDGES - 1) / BRIDGES))
BRIDGE_MAX=$((BRIDGE_SHARE * 5 / 4 + 64))
NOFILE=$(ulimit -Hn)
[[ "$NOFILE" != unlimited ]] && ((BRIDGE_MAX > NOFILE - 256)) && BRIDGE_MAX=$((NOFILE - 256))
((2 + CLIENTS * SOURCES - 1 <= 254)) || { tb_log "too many source addresses"; exit 2; }

sysctl_path() { echo "/proc/sys/${1//.//}"; }

# need NAME VALUE: the sysctl is at least VALUE, or is raised to it with --sysctl.
need() {
    local name=$1 want=$2 have
    have=$(cat "$(sysctl_path "$name")")
    ((have >= want)) && return 0
    if ((SYSCTL)); then
        echo "$want" >"$(sysctl_path "$name")" || { tb_log "cannot set $name"; return 1; }
        tb_log "set $name = $want (was $have)"
        return 0
    fi
    tb_log "$name is $have, the run needs $want (--sysctl raises it)"
    return 1
}

check_limits() {
    local ok=0 hard
    hard=$(ulimit -Hn)
    if [[ "$hard" != unlimited ]] && ((SHARE + 64 > hard || BRIDGE_SHARE * 21 / 20 > BRIDGE_MAX)); then
        tb_log "ulimit -Hn is $hard: a bench needs $((SHARE + 64)), a bridge $((BRIDGE_SHARE * 21 / 20))"
        tb_log "(add bench processes with --clients, bridges with --bridges)"
        ok=1
    fi
    ulimit -n "$hard"
    need fs.file-max $((2 * CONNS + 65536)) || ok=1
    need net.core.somaxconn $((CLIENTS * PARALLEL)) || ok=1
    local ct=/proc/sys/net/netfilter/nf_conntrack_max
    if [[ -r "$ct" ]]; then
        local used
        used=$(cat /proc/sys/net/netfilter/nf_conntrack_count)
        need net.netfilter.nf_conntrack_max $((used + CONNS + 4096)) || ok=1
    fi
    return "$ok"
}

# ---- the fleet -------------------------------------------------------------------------------

# /proc figures of a process: "RSS_kB CPU_ticks FDS".
proc_figures() {
    local pid=$1 rss cpu fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    cpu=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$rss $cpu $fds"
}

# Bridge i on the shared port, its admin listener on ADMIN_PORTS[i], broker port $2.
start_bridge() {
    local i=$1 mqtt_port=$2 admin
    admin=$(tb_free_port) || return 1
    ADMIN_PORTS+=("$admin")
    cat >"$BENCH_DIR/bridge-$i.json" <<EOF
{
  "listen": {"host": "127.0.0.1", "port": $FLEET_PORT, "reuse_port": true},
  "admin": {"host": "127.0.0.1", "port": $admin},
  "mqtt": {"host": "127.0.0.1", "port": $mqtt_port, "client_id": "telebridge-fleet-$i",
           "telemetry_topic": "bench/{group}/{device}/telemetry",
           "status_topic": "bench/{group}/{device}/status"},
  "auth": {"algorithm": "HS256", "secret_file": "secret.key"},
  "limits": {"max_connections": $BRIDGE_MAX}
}
EOF
    bench_spawn "bridge-$i" "$BENCH_BIN/telebridge" --config "$BENCH_DIR/bridge-$i.json" \
        --log-level warn
    BRIDGE_PIDS+=("$BENCH_PID")
}

# Waits until $2 files match $1 or a bench has exited early; 0 when they are all there.
wait_files() {
    local glob=$1 want=$2 limit=$3 deadline=$((SECONDS + $3)) n
    while :; do
        n=$(compgen -G "$glob" | wc -l)
        ((n >= want)) && return 0
        for pid in "${CLIENT_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || { tb_log "a bench exited early (see its log)"; return 1; }
        done
        ((SECONDS < deadline)) || { tb_log "$n of $want after $limit s ($glob)"; return 1; }
        sleep 0.2
    done
}

sample_all() { # $1: a name for the sample file
    local pid
    for pid in "${BRIDGE_PIDS[@]}" "$BROKER_PID"; do echo "$pid $(proc_figures "$pid")"; done \
        >"$BENCH_DIR/sample-$1"
}

trap bench_stop_all EXIT
trap 'exit 130' INT TERM
check_limits || exit 1
bench_workdir
bench_start_broker || { tb_log "mosquitto did not start"; exit 1; }
MAIN_BROKER=$BROKER_PORT
MAIN_BROKER_PID=$BROKER_PID
SILENT_BROKER=$MAIN_BROKER
if ((BREAK_ONE)); then
    bench_start_broker || { tb_log "the silent mosquitto did not start"; exit 1; }
    SILENT_BROKER=$BROKER_PORT
    BROKER_PORT=$MAIN_BROKER
    BROKER_PID=$MAIN_BROKER_PID
fi
openssl rand -hex 32 >"$BENCH_DIR/secret.key"
TOKEN=$("$BENCH_BIN/telebridge-token" --sub bench --rooms '*' --ttl 1h \
    --secret-file "$BENCH_DIR/secret.key")
FLEET_PORT=$(tb_free_port)
ADMIN_PORTS=()
BRIDGE_PIDS=()
CLIENT_PIDS=()
for ((i = 0; i < BRIDGES; i++)); do
    mqtt_port=$MAIN_BROKER
    ((BREAK_ONE && i == BRIDGES - 1)) && mqtt_port=$SILENT_BROKER
    start_bridge "$i" "$mqtt_port" || { tb_log "bridge $i: no port"; exit 1; }
done
for ((i = 0; i < BRIDGES; i++)); do
    tb_wait_http_ok "http://127.0.0.1:${ADMIN_PORTS[i]}/readyz" "$BENCH_READY_TIMEOUT" || {
        tb_log "bridge $i is not ready:"
        cat "$BENCH_DIR/bridge-$i.log" >&2
        exit 1
    }
done
sample_all start
tb_log "$BRIDGES bridges on 127.0.0.1:$FLEET_PORT; $CLIENTS benches, $CONNS connections"

for ((p = 0; p < CLIENTS; p++)); do
    subs=$((CONNS / CLIENTS + (p < CONNS % CLIENTS)))
    devs=$((DEVICES / CLIENTS + (p < DEVICES % CLIENTS)))
    flags=()
    ((p < DEFLATE_CLIENTS)) && flags=(--deflate)
    rate=$("$PYTHON" -c "print($RATE * $devs / $DEVICES)")
    # shellcheck disable=SC2016 # $@ and $0 are the inner shell's: the bench and its JSON file
    bench_spawn "bench-$p" bash -c 'exec "$@" >"$0"' "$BENCH_DIR/bench-$p.json" \
        "$BENCH_BIN/telebridge-bench" --target telebridge --port "$FLEET_PORT" \
        --mqtt-port "$MAIN_BROKER" --token "$TOKEN" --label "bench-$p" --subs "$subs" \
        --source-base $((2 + p * SOURCES)) --sources "$SOURCES" --mix "$MIX" --devices "$devs" \
        --groups "$GROUPS_N" --rate "$rate" --duration "$DURATION" --payload "$PAYLOAD" \
        --parallel "$PARALLEL" --drain "$DRAIN" --check --ready-file "$BENCH_DIR/ready.$p" \
        --go-file "$BENCH_DIR/go" --hist-file "$BENCH_DIR/hist-$p" --exec-after "touch $BENCH_DIR/done.$p" "${flags[@]}"
    CLIENT_PIDS+=("$BENCH_PID")
done
t0=$SECONDS
wait_files "$BENCH_DIR/ready.*" "$CLIENTS" "$CONNECT_WAIT" || exit 1
connect_s=$((SECONDS - t0))
sample_all connected
for ((i = 0; i < BRIDGES; i++)); do
    curl -s "http://127.0.0.1:${ADMIN_PORTS[i]}/stats" >"$BENCH_DIR/stats-$i.json"
done
go_ns=$(date +%s%N)
touch "$BENCH_DIR/go"
wait_files "$BENCH_DIR/done.*" "$CLIENTS" "$RUN_WAIT" || true
done_ns=$(date +%s%N)
sample_all "done"
for ((i = 0; i < BRIDGES; i++)); do
    curl -s "http://127.0.0.1:${ADMIN_PORTS[i]}/stats" >"$BENCH_DIR/stats-end-$i.json"
done
# Each bench exits once it has written its report; one that does not within EXIT_WAIT is
# stopped and the run fails.
status=0
deadline=$((SECONDS + EXIT_WAIT))
for pid in "${CLIENT_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { tb_log "bench $pid did not exit"; tb_stop_pid "$pid" 20; status=1; }
    wait "$pid" || status=1
done
CLIENT_PIDS=()

"$PYTHON" - "$BENCH_DIR" "$BRIDGES" "$CLIENTS" "$connect_s" "$go_ns" "$done_ns" "$status" \
    "${OUT:-/dev/null}" "$(getconf CLK_TCK)" "$CONNS" <<'EOF' || exit 1
import json, math, os, sys
d, nb, nc, connect_s, go, done, status, out, tck, conns = sys.argv[1:]
nb, nc, tck, conns = int(nb), int(nc), int(tck), int(conns)
wall = (int(done) - int(go)) / 1e9

def sample(name):
    rows = [line.split() for line in open(os.path.join(d, "sample-" + name))]
    return [tuple(int(x) for x in r[1:]) for r in rows]  # (rss_kb, cpu_ticks, fds)

start, conn, end = sample("start"), sample("connected"), sample("done")
benches = []
for p in range(nc):
    text = open(os.path.join(d, f"bench-{p}.json")).read().strip()
    benches.append(json.loads(text.splitlines()[-1]) if text else {"label": f"bench-{p}"})
bridges = []
for i in range(nb):
    st = json.load(open(os.path.join(d, f"stats-{i}.json")))
    held = st["connections"]
    grown = (conn[i][0] - start[i][0]) * 1024
    bridges.append({
        "bridge": i, "connections": held, "fds": conn[i][2] - start[i][2],
        "rss_start_kb": start[i][0], "rss_connected_kb": conn[i][0], "rss_done_kb": end[i][0],
        "rss_per_conn_bytes": round(grown / held) if held else None,
        # after the messages: queues grown, history, last values and series of the devices
        "rss_per_conn_end_bytes": round((end[i][0] - start[i][0]) * 1024 / held) if held else None,
        "cpu_pct": round((end[i][1] - conn[i][1]) / tck / wall * 100, 1),
        "connect_cpu_s": round((conn[i][1] - start[i][1]) / tck, 2),
        "connect_cpu_us_per_conn": round((conn[i][1] - start[i][1]) / tck * 1e6 / held)
        if held else None,
    })
broker_cpu = round((end[nb][1] - conn[nb][1]) / tck / wall * 100, 1)
ok = [b for b in benches if "delivered" in b]

# Every bench's latency histogram merged: quantiles over all the fleet's own deliveries.
buckets = {}
for p in range(nc):
    path = os.path.join(d, f"hist-{p}")
    for line in open(path) if os.path.exists(path) else []:
        up, n = (int(x) for x in line.split())
        buckets[up] = buckets.get(up, 0) + n
total = sum(buckets.values())

def quantile(q):
    rank, seen = max(1, math.ceil(q * total)), 0  # as tb_bench_hist_quantile
    for up in sorted(buckets):
        seen += buckets[up]
        if seen >= rank:
            return up // 1000
    return 0

get = lambda k: sum(b.get(k, 0) for b in ok)
deliveries = get("delivered") + get("foreign")
r = {
    "label": "fleet", "bridges": nb, "benches": nc, "conns": conns,
    "ready": get("ready"), "deflate_conns": get("deflate_conns"),
    "conns_missing": get("conns_missing") + sum(1 for b in benches if "delivered" not in b),
    "conns_extra": get("conns_extra"), "conns_unchecked": get("conns_unchecked"),
    "misrouted": get("misrouted"),
    "failed_connects": get("failed_connects"), "closed_during_run": get("closed_during_run"),
    "published": get("published"), "delivered": get("delivered"), "foreign": get("foreign"),
    "lost": get("lost"), "out_of_order": get("out_of_order"),
    "connect_s": int(connect_s), "run_s": round(wall, 2),
    "deliveries_per_s": round(deliveries / wall),
    "p50_us": quantile(0.5), "p99_us": quantile(0.99), "p999_us": quantile(0.999),
    "p50_us_worst": max((b["p50_us"] for b in ok), default=0),
    "p99_us_worst": max((b["p99_us"] for b in ok), default=0),
    "p999_us_worst": max((b["p999_us"] for b in ok), default=0),
    "p99_us_best": min((b["p99_us"] for b in ok), default=0),
    "bridge_cpu_pct_sum": round(sum(b["cpu_pct"] for b in bridges), 1),
    "broker_cpu_pct": broker_cpu,
    "bench_cpu_pct_sum": round(sum(b.get("bench_cpu_pct", 0) for b in ok), 1),
    "rss_per_conn_bytes_max": max((b["rss_per_conn_bytes"] or 0 for b in bridges), default=0),
    "rss_per_conn_end_bytes_max": max((b["rss_per_conn_end_bytes"] or 0 for b in bridges),
                                      default=0),
    "loadavg_1m": round(os.getloadavg()[0], 2), "bridges_detail": bridges,
    "status": int(status),
}
line = json.dumps(r)
print(line)
with open(out, "a") as f:
    f.write(line + "\n")
    for b in benches:
        f.write(json.dumps(b) + "\n")
w = sys.stderr.write
w(f"fleet: {nb} bridges, {nc} benches, {r['ready']} of {conns} connections ready "
  f"({r['deflate_conns']} compressing) in {connect_s} s\n")
w(f"  conns_missing {r['conns_missing']}, conns_extra {r['conns_extra']}, unchecked "
  f"{r['conns_unchecked']}, misrouted "
  f"{r['misrouted']}, failed {r['failed_connects']}, closed {r['closed_during_run']}\n")
w(f"  {r['published']} messages, {r['delivered']} deliveries + {r['foreign']} foreign in "
  f"{wall:.1f} s: {r['deliveries_per_s']}/s; p50 / p99 / p99.9 {r['p50_us']} / {r['p99_us']} / "
  f"{r['p999_us']} us (p99 of the benches {r['p99_us_best']}-{r['p99_us_worst']})\n")
w(f"  CPU %: bridges {r['bridge_cpu_pct_sum']}, broker {broker_cpu}, benches "
  f"{r['bench_cpu_pct_sum']}\n")
for b in bridges:
    w(f"  bridge {b['bridge']}: {b['connections']} connections, RSS {b['rss_start_kb']} -> "
      f"{b['rss_connected_kb']} kB ({b['rss_done_kb']} at the end), "
      f"{b['rss_per_conn_bytes']} B/conn ({b['rss_per_conn_end_bytes']} at the end), "
      f"CPU {b['cpu_pct']} %, "
      f"{b['connect_cpu_us_per_conn']} us CPU per handshake\n")
bad = r["conns_missing"] or r["conns_extra"] or r["conns_unchecked"] or r["misrouted"] \
    or r["failed_connects"] \
    or r["closed_during_run"] or r["ready"] != conns or int(status)
sys.exit(1 if bad else 0)
EOF
