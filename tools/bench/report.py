"""Turns compare.sh's results.jsonl and idle.jsonl into results.md and one gnuplot data file per
server.

usage: python3 report.py DIR. Each server's lines come in compare.sh's order: saturation,
half of saturation, then the fixed rates. A server named X-deflate is server X measured with
compressing subscribers; idle.jsonl holds the idle-heavy runs, labelled "SERVER idle=N".
"""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def read(name):
    path = out / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


runs = {}
for r in read("results.jsonl"):
    runs.setdefault(r["label"], []).append(r)


def peak(rs):
    """The most deliveries/s of a run that lost nothing (0 when every run lost some)."""
    return max((r["deliveries_per_s"] for r in rs if r["lost"] == 0), default=0.0)


peaks = {name: peak(rs) for name, rs in runs.items()}


def base_of(name):
    """The telebridge run a server is compared with: compressing with compressing."""
    return "telebridge-deflate" if name.endswith("-deflate") else "telebridge"


def ratio(name):
    base = base_of(name)
    if base not in peaks or name == base or peaks[name] <= 0:
        return "—"
    return f"{peaks[base] / peaks[name]:.2f}"


def fixed_load(rs, offered):
    """The fixed-load run of rs whose offered load is closest to offered."""
    fixed = rs[2:]
    return min(fixed, key=lambda r: abs(r["offered_per_s"] - offered)) if fixed else None


rows = [
    "| server | peak deliveries/s, nothing lost | telebridge ÷ server | closed-loop saturation "
    "deliveries/s | p50 / p99 / p99.9 at half saturation (ms) | server CPU % | broker CPU % | "
    "bench CPU % | server CPU µs per delivery | wire bytes per delivery | connects/s | "
    "lost, all runs |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for name, rs in runs.items():
    s, h = rs[0], rs[1]
    lost = sum(r["lost"] for r in rs)
    rows.append(
        f"| {name} | {peaks[name]:,.0f} | {ratio(name)} | {s['deliveries_per_s']:,.0f} | "
        f"{h['p50_us'] / 1000:.1f} / {h['p99_us'] / 1000:.1f} / {h['p999_us'] / 1000:.1f} | "
        f"{s['server_cpu_pct']:.0f} | {max(s['broker_cpu_pct'], 0):.0f} | "
        f"{s['bench_cpu_pct']:.0f} | {s.get('server_cpu_us_per_delivery', -1):.2f} | "
        f"{s.get('wire_bytes_per_delivery', -1):.0f} | {s['connects_per_s']:,.0f} | {lost:,} |"
    )
    with open(out / f"{name}.dat", "w") as dat:
        dat.write("# offered_deliveries/s deliveries/s p99_ms messages/s\n")
        for r in sorted(rs[2:], key=lambda r: r["offered_per_s"]):
            dat.write(f"{r['offered_per_s']:.0f} {r['deliveries_per_s']:.0f} "
                      f"{r['p99_us'] / 1000:.3f} {r['rate']:.1f}\n")

deflate_rows = []
for name in runs:
    plain = name[: -len("-deflate")] if name.endswith("-deflate") else None
    if plain not in runs:
        continue
    p, d = runs[plain], runs[name]
    low = fixed_load(p, min(r["offered_per_s"] for r in p[2:])) if p[2:] else None
    low_d = fixed_load(d, low["offered_per_s"]) if low else None
    cpu = "—"
    if low and low_d and low["server_cpu_us_per_delivery"] > 0:
        cpu = (f"{low_d['server_cpu_us_per_delivery'] / low['server_cpu_us_per_delivery']:.2f} "
               f"({low_d['server_cpu_us_per_delivery']:.2f} / "
               f"{low['server_cpu_us_per_delivery']:.2f} µs, {low['offered_per_s']:,.0f}/s)")
    sat = d[0]["deliveries_per_s"] / p[0]["deliveries_per_s"] if p[0]["deliveries_per_s"] else 0
    wire = (d[0]["wire_bytes_per_delivery"] / p[0]["wire_bytes_per_delivery"]
            if p[0]["wire_bytes_per_delivery"] > 0 else 0)
    deflate_rows.append(
        f"| {plain} | {sat:.2f} | {peaks[name] / peaks[plain] if peaks[plain] else 0:.2f} | "
        f"{cpu} | {wire:.2f} | {d[0]['deflate_conns']} of {d[0]['ready']}, "
        f"{d[0]['deflated_messages']:,} messages inflated |"
    )

idle_rows = []
idle = {}
for r in read("idle.jsonl"):
    server, _, n = r["label"].rpartition(" idle=")
    idle.setdefault(server, []).append((int(n), r))
for server, rs in idle.items():
    rs.sort(key=lambda x: x[0])
    few = rs[0][1]["server_cpu_us_per_message"]
    for n, r in rs:
        per = r["server_cpu_us_per_message"]
        idle_rows.append(
            f"| {server} | {n:,} ({r['idle_ready']:,} held, {r['idle_closed']} closed) | "
            f"{per:.0f} | {per / few if few > 0 else 0:.2f} | {r['rss_per_conn_bytes']:,.0f} | "
            f"{r['pings']:,} | {r['delivered']:,} of {r['expected']:,} |"
        )

subs = next(iter(runs.values()))[0]["subscribers"] if runs else 0
payload = next(iter(runs.values()))[0].get("payload", "minimal") if runs else "—"
text = (
    f"{subs} subscribers, room mix device=60,group=30,global=10 (raw: every message to every "
    f"subscriber), payload `{payload}`. Peak: the most deliveries/s of any run (closed loop or "
    "fixed load) that lost nothing; the ratio compares peaks (a -deflate server with "
    "telebridge-deflate). Closed-loop saturation: publishing as fast as delivered, 64 messages in "
    "flight; CPU and byte columns are from that run.\n\n" + "\n".join(rows) + "\n"
)
if deflate_rows:
    text += (
        "\nCompressing subscribers ÷ plain ones, same server, same workload: saturation "
        "deliveries/s, peak deliveries/s, server CPU per delivery at the lowest fixed load, wire "
        "bytes per delivery at saturation.\n\n"
        "| server | saturation | peak | CPU per delivery | wire bytes | negotiated |\n"
        "|---|---:|---:|---:|---:|---|\n" + "\n".join(deflate_rows) + "\n"
    )
if idle_rows:
    text += (
        "\nIdle-heavy runs: one subscriber in one device's room, each message its own wake-up, "
        "beside N idle connections (authenticated, subscribed to a quiet room, answering pings). "
        "Server CPU per message, and its ratio to the run with the fewest idle connections.\n\n"
        "| server | idle connections | server CPU µs per message | ÷ fewest | RSS bytes per "
        "connection | pings answered | delivered |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(idle_rows) + "\n"
    )
(out / "results.md").write_text(text)
