"""Turns compare.sh's results.jsonl into results.md and one gnuplot data file per server.

usage: python3 report.py DIR. Each server's lines come in compare.sh's order: saturation,
half of saturation, then the fixed rates.
"""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
runs = {}
for line in (out / "results.jsonl").read_text().splitlines():
    r = json.loads(line)
    runs.setdefault(r["label"], []).append(r)

sat = {name: rs[0] for name, rs in runs.items()}
ref = sat.get("telebridge")


def ratio(name):
    peer = sat[name]["deliveries_per_s"]
    if not ref or name == "telebridge" or peer <= 0:
        return "—"
    return f"{ref['deliveries_per_s'] / peer:.2f}"


rows = [
    "| server | deliveries/s at saturation | telebridge ÷ server | messages/s | lost | "
    "p50 / p99 / p99.9 at half saturation (ms) | server CPU % | broker CPU % | bench CPU % | "
    "connects/s |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for name, rs in runs.items():
    s, h = rs[0], rs[1]
    lost = sum(r["lost"] for r in rs)
    rows.append(
        f"| {name} | {s['deliveries_per_s']:,.0f} | {ratio(name)} | {s['messages_per_s']:,.0f} | "
        f"{lost} | {h['p50_us'] / 1000:.2f} / {h['p99_us'] / 1000:.2f} / "
        f"{h['p999_us'] / 1000:.2f} | {s['server_cpu_pct']:.0f} | "
        f"{max(s['broker_cpu_pct'], 0):.0f} | {s['bench_cpu_pct']:.0f} | "
        f"{s['connects_per_s']:,.0f} |"
    )
    with open(out / f"{name}.dat", "w") as dat:
        dat.write("# offered_deliveries/s deliveries/s p99_ms messages/s\n")
        for r in sorted(rs[2:], key=lambda r: r["offered_per_s"]):
            dat.write(f"{r['offered_per_s']:.0f} {r['deliveries_per_s']:.0f} "
                      f"{r['p99_us'] / 1000:.3f} {r['rate']:.1f}\n")
subs = next(iter(sat.values()))["subscribers"] if sat else 0
(out / "results.md").write_text(
    f"{subs} subscribers, room mix device=60,group=30,global=10 (raw: every message to every "
    "subscriber). Saturation: publishing as fast as delivered (64 messages in flight).\n\n"
    + "\n".join(rows) + "\n"
)
