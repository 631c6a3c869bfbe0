#!/usr/bin/python3
"""The soak run behind tools/soak.sh: a private mosquitto and bridge, steady publishing and
WebSocket churn (connect, subscribe, read a while, disconnect — a fifth of them by dropping the
TCP connection) for --duration seconds, then checks that resources came back flat:

- RSS under the same load at the end (not checked under valgrind) is within max(RSS_SLACK_MB, RSS_SLACK_PCT) of the RSS
  after the warm-up (the first WARMUP_SHARE of the run);
- the bridge's open descriptors, once the churn stopped, are back to their count before the
  first client (within FD_SLACK);
- /stats: no connection left, every acknowledged publish counted in messages_in, nothing
  dropped, nothing invalid;
- the bridge exits 0 on SIGTERM with no sanitizer report (LeakSanitizer included, for an ASan
  binary) and, with --valgrind, no definite leak or memory error.
Exits 0 when every check passed; prints one line per sample and a summary.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP_SHARE = 0.25
SAMPLE_S = 5.0
# ASan alone may add its 8 MiB quarantine after the warm-up; LeakSanitizer catches small leaks.
RSS_SLACK_MB = 16
RSS_SLACK_PCT = 10
FD_SLACK = 2
DEVICES = [f"soak-{i}" for i in range(20)]
ROOMS = ["global", "group:soak"] + [f"device:{d}" for d in DEVICES[:5]]
# Under valgrind everything is tens of times slower.
VALGRIND_TIMEOUT_FACTOR = 10


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    p.add_argument("--clients", type=int, default=50, help="concurrent churning clients")
    p.add_argument("--rate", type=float, default=50, help="MQTT messages per second")
    p.add_argument("--bin", default=None, help="folder of the telebridge binary")
    p.add_argument("--valgrind", action="store_true", help="run the bridge under valgrind")
    return p.parse_args()


def bridge_binary(args, workdir):
    """The binary, or with --valgrind a wrapper that runs it under valgrind."""
    folder = Path(args.bin) if args.bin else (
        ROOT / "build-asan" / "bin" if (ROOT / "build-asan/bin/telebridge").exists()
        else ROOT / "build" / "bin")
    binary = folder / "telebridge"
    if not binary.exists():
        sys.exit(f"soak: {binary} not built")
    if not args.valgrind:
        return binary
    wrapper = workdir / "telebridge-valgrind"
    wrapper.write_text(
        "#!/bin/sh\nexec valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite "
        f"--error-exitcode=99 {binary} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


class Publisher(threading.Thread):
    """Publishes {"v": n} round-robin over DEVICES at `rate`/s, QoS 1; counts acknowledgements."""

    def __init__(self, port, rate):
        super().__init__(daemon=True)
        self.client = paho.Client()
        self.client.max_inflight_messages_set(0)
        self.acked = 0
        self.client.on_publish = lambda c, u, mid: self._ack()
        self.lock = threading.Lock()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.rate, self.sent = rate, 0
        self.done = threading.Event()

    def _ack(self):
        with self.lock:
            self.acked += 1

    def run(self):
        while not self.done.wait(1.0 / self.rate):
            device = DEVICES[self.sent % len(DEVICES)]
            self.client.publish(f"devices/{device}/telemetry", json.dumps({"v": self.sent}), 1)
            self.sent += 1

    def finish(self):
        self.done.set()
        self.join(5)
        tb.wait_until(lambda: self.acked == self.sent, 20, "every publish acknowledged")
        self.client.disconnect()
        self.client.loop_stop()


async def churn_client(url, stop, counts):
    while not stop.is_set():
        try:
            async with websockets.connect(url, ping_interval=None, open_timeout=10,
                                          close_timeout=1, max_queue=None) as ws:
                await ws.recv()
                rooms = random.sample(ROOMS, 2)
                await ws.send(json.dumps({"type": "subscribe", "payload": {"rooms": rooms}}))
                until = time.monotonic() + random.uniform(0.2, 2.0)
                while (left := until - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(ws.recv(), left)
                        counts["frames"] += 1
                    except asyncio.TimeoutError:
                        break
                if random.random() < 0.2:
                    ws.transport.abort()
                counts["sessions"] += 1
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
            counts["errors"] += 1
        await asyncio.sleep(random.uniform(0, 0.2))


def resources(bridge):
    return bridge.rss_kb() / 1024, len(os.listdir(f"/proc/{bridge.pid}/fd"))


def run_load(args, bridge, broker, loop):
    """Runs the load; returns (rss after warm-up, rss at the end, counts, publisher)."""
    counts = {"frames": 0, "sessions": 0, "errors": 0}
    stop = asyncio.Event()
    url = bridge.url(token=bridge.mint(ttl=int(args.duration) + 3600))

    async def start():
        return [asyncio.ensure_future(churn_client(url, stop, counts))
                for _ in range(args.clients)]

    tasks = loop.run(start(), 10)
    pub = Publisher(broker.port, args.rate)
    pub.start()
    t0 = time.monotonic()
    warm_rss, rss = None, 0.0
    while (elapsed := time.monotonic() - t0) < args.duration:
        time.sleep(min(SAMPLE_S, args.duration - elapsed))
        rss, fds = resources(bridge)
        stats = bridge.stats()
        print(f"soak: t={time.monotonic() - t0:5.0f}s rss={rss:6.1f}MiB fds={fds:4d} "
              f"conns={stats['connections']:4d} in={stats['messages_in']} "
              f"out={stats['messages_out']} sessions={counts['sessions']} "
              f"errors={counts['errors']}", flush=True)
        if warm_rss is None and time.monotonic() - t0 >= args.duration * WARMUP_SHARE:
            warm_rss = rss

    async def stop_all():
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    loop.run(stop_all(), 30)
    pub.finish()
    return warm_rss or rss, rss, counts, pub


def check(args, bridge, broker, loop, timeout):
    problems = []
    _, idle_fds = resources(bridge)
    warm_rss, end_rss, counts, pub = run_load(args, bridge, broker, loop)
    tb.wait_until(lambda: bridge.stats()["connections"] == 0, timeout, "every client gone")
    tb.wait_until(lambda: bridge.stats()["messages_in"] >= pub.sent + 1, timeout,
                  "every message ingested")
    idle_rss, fds = resources(bridge)
    stats = bridge.stats()
    slack = max(RSS_SLACK_MB, warm_rss * RSS_SLACK_PCT / 100)
    print(f"soak: {counts['sessions']} sessions ({counts['errors']} failed), "
          f"{pub.sent} published, {stats['messages_out']} frames out; RSS warm {warm_rss:.1f} "
          f"-> end {end_rss:.1f} MiB (allowed +{slack:.1f}), idle {idle_rss:.1f} MiB; "
          f"fds {idle_fds} before -> {fds} after")
    # Under valgrind the RSS is mostly valgrind's own (shadow memory, translations).
    if end_rss - warm_rss > slack and not args.valgrind:
        problems.append(f"RSS grew {end_rss - warm_rss:.1f} MiB under steady load")
    if fds > idle_fds + FD_SLACK:
        problems.append(f"{fds - idle_fds} descriptors more than before the first client")
    if stats["messages_in"] != pub.sent + 1:  # + the start-up probe
        problems.append(f"messages_in {stats['messages_in']} != {pub.sent} published + probe")
    if stats["dropped"] or stats["invalid_mqtt"]:
        problems.append(f"dropped {stats['dropped']}, invalid {stats['invalid_mqtt']}")
    if counts["sessions"] == 0 or counts["errors"] > counts["sessions"] // 100:
        problems.append(f"{counts['errors']} failed client sessions of {counts['sessions']}")
    return problems


def main():
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tb-soak-"))
    os.environ["TELEBRIDGE_BIN"] = str(bridge_binary(args, workdir))
    # A small quarantine: ASan keeps freed memory there, which would read as RSS growth.
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=8")
    # Imported here, for the whole module: tb reads TELEBRIDGE_BIN when it is imported.
    global tb, paho, websockets
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import paho.mqtt.client as paho
    import websockets

    import tb
    timeout = 10.0 * (VALGRIND_TIMEOUT_FACTOR if args.valgrind else 1)
    if args.valgrind:
        tb.START_TIMEOUT = tb.STOP_TIMEOUT = timeout * 3
    broker = tb.Broker(workdir)
    broker.start()
    # A history that fills during the warm-up, so that its (bounded) growth is not read as a
    # leak afterwards.
    history = max(100, int(args.rate * args.duration * WARMUP_SHARE / 2))
    bridge = tb.Bridge(workdir, broker.port, {"groups": {"soak": ["soak-*"]},
                                              "history": {"messages": history}})
    loop = tb.Loop()
    problems = []
    try:
        bridge.start()
        problems = check(args, bridge, broker, loop, timeout)
    finally:
        loop.close()
        rc = bridge.stop(timeout=tb.STOP_TIMEOUT) if bridge.proc else None
        broker.stop()
    if rc != 0:
        problems.append(f"exit code {rc} (99: valgrind found errors or leaks)")
    problems += bridge.check_log()
    for p in problems:
        print(f"soak: FAILED: {p}")
    if problems:
        print(f"soak: logs kept in {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("soak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
