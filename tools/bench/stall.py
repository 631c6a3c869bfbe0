#!/usr/bin/python3
"""Latency of readers while other subscribers stall: starts a private mosquitto and bridge,
connects --stalled raw subscribers to `global` that never read (a 4 KiB receive window), keeps
a filler stream on `global` so their queues overflow, and runs telebridge-bench (C readers,
its own latency percentiles) with --subs readers on device rooms it publishes to. Prints the
bench's JSON line and the bridge's slow-consumer closes and RSS.

    tools/bench/stall.py --subs 4500 --stalled 500 --rate 10 --duration 10 [--bin build/bin]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import tb  # noqa: E402

FILLER = 3000  # 1 KB messages on `global`, enough to overflow every stalled queue


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subs", type=int, default=4500)
    p.add_argument("--stalled", type=int, default=500)
    p.add_argument("--rate", type=int, default=10)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--bin", default=str(ROOT / "build" / "bin"))
    a = p.parse_args()
    tb.BRIDGE_BIN = Path(a.bin) / "telebridge"
    work = Path(tempfile.mkdtemp(prefix="tb-stall-"))
    broker = tb.Broker(work)
    broker.start()
    # The topics telebridge-bench publishes to (tools/bench/bench-lib.sh).
    bridge = tb.Bridge(work, broker.port, {"mqtt": {"telemetry_topic": "bench/{group}/{device}/telemetry",
                                                    "status_topic": "bench/{group}/{device}/status"},
                                           "limits": {"send_queue_messages": 64},
                                           "heartbeat": {"ping_interval_s": 600,
                                                         "pong_timeout_s": 1200}},
                       probe=False)
    stalled = []
    try:
        bridge.start()
        token = bridge.mint(ttl=3600)
        for _ in range(a.stalled):
            s, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={token}", rcvbuf=4096)
            assert status == 101
            s.sendall(tb.ws_frame(json.dumps({"type": "subscribe",
                                              "payload": {"rooms": ["global"]}})))
            stalled.append(s)
        filler = threading.Thread(target=tb.mqtt_publish_lines, args=(
            broker.port, "bench/filler/filler/telemetry",
            [json.dumps({"i": i, "blob": "x" * 1000}) for i in range(FILLER)]))
        rss0 = bridge.rss_kb()
        filler.start()
        out = subprocess.run(
            [str(Path(a.bin) / "telebridge-bench"), "--port", str(bridge.port), "--token", token,
             "--mqtt-port", str(broker.port), "--subs", str(a.subs),
             "--rate", str(a.rate), "--duration", str(a.duration),
             "--server-pid", str(bridge.pid)],
            capture_output=True, text=True, timeout=600)
        filler.join(60)
        stats = bridge.stats()
        print(out.stdout.strip())
        print(out.stderr.strip(), file=sys.stderr)
        print(f"stall: {a.stalled} stalled, slow-consumer closes "
              f"{stats['slow_consumer_disconnects']}, RSS {rss0 / 1024:.0f} -> "
              f"{bridge.rss_kb() / 1024:.0f} MiB")
        return out.returncode
    finally:
        for s in stalled:
            s.close()
        bridge.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
