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


def peak(rs):
    """The most deliveries/s of a run that lost nothing (0 when every run lost some)."""
    return max((r["deliveries_per_s"] for r in rs if r["lost"] == 0), default=0.0)


peaks = {name: peak(rs) for name, rs in runs.items()}


def ratio(name):
    if "telebridge" not in peaks or name == "telebridge" or peaks[name] <= 0:
        return "—"
    return f"{peaks['telebridge'] / peaks[name]:.2f}"


rows = [
    "| server | peak deliveries/s, nothing lost | telebridge ÷ server | closed-loop saturation "
    "deliveries/s | p50 / p99 / p99.9 at half saturation (ms) | server CPU % | broker CPU % | "
    "bench CPU % | connects/s | lost, all runs |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for name, rs in runs.items():
    s, h = rs[0], rs[1]
    lost = sum(r["lost"] for r in rs)
    rows.append(
        f"| {name} | {peaks[name]:,.0f} | {ratio(name)} | {s['deliveries_per_s']:,.0f} | "
        f"{h['p50_us'] / 1000:.1f} / {h['p99_us'] / 1000:.1f} / {h['p999_us'] / 1000:.1f} | "
        f"{s['server_cpu_pct']:.0f} | {max(s['broker_cpu_pct'], 0):.0f} | "
        f"{s['bench_cpu_pct']:.0f} | {s['connects_per_s']:,.0f} | {lost:,} |"
    )
    with open(out / f"{name}.dat", "w") as dat:
        dat.write("# offered_deliveries/s deliveries/s p99_ms messages/s\n")
        for r in sorted(rs[2:], key=lambda r: r["offered_per_s"]):
            dat.write(f"{r['offered_per_s']:.0f} {r['deliveries_per_s']:.0f} "
                      f"{r['p99_us'] / 1000:.3f} {r['rate']:.1f}\n")
subs = next(iter(sat.values()))["subscribers"] if sat else 0
(out / "results.md").write_text(
    f"{subs} subscribers, room mix device=60,group=30,global=10 (raw: every message to every "
    "subscriber). Peak: the most deliveries/s of any run (closed loop or fixed load) that lost "
    "nothing; the ratio compares peaks. Closed-loop saturation: publishing as fast as delivered, "
    "64 messages in flight; CPU columns are from that run.\n\n"
    + "\n".join(rows) + "\n"
)
