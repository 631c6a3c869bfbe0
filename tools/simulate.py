#!/usr/bin/python3
"""Sensor simulator for telebridge: publishes realistic telemetry for a fleet of devices.

Each device announces itself with a retained `online` status, then publishes telemetry RATE
times a second — temperature as a random walk around 21 °C, humidity around 45 %, a battery that
slowly drains — alternating the two payload forms the bridge accepts (a flat object, and
{"fields", "tags", "timestamp"}). On exit (--duration elapsed, Ctrl-C or SIGTERM) every device
publishes a retained `offline` status.

  /usr/bin/python3 tools/simulate.py --host 127.0.0.1 --port 1883 --devices 10 --rate 5

Device ids are PREFIX + kind + number ("sensor-temp-001", "sensor-hum-002", …), so the example
group of config/telebridge.json (building-a: sensor-temp-001, sensor-hum-*) has members. With
--groups-in-topic the topics carry a group level (site/{group}/{device}/…), for a bridge whose
templates are site/{group}/{device}/telemetry and site/{group}/{device}/status.
"""

import argparse
import datetime
import json
import random
import signal
import sys
import time
import uuid

import paho.mqtt.client as mqtt

KINDS = ("temp", "hum")
FIRMWARE = "1.4.2"
# Random-walk shape: a step's spread and the pull back towards the mean, per reading.
TEMP_MEAN, TEMP_STEP, TEMP_PULL = 21.0, 0.15, 0.05
HUM_MEAN, HUM_STEP, HUM_PULL = 45.0, 0.5, 0.05
BATTERY_DRAIN = 0.01  # percent per reading
CONNECT_TIMEOUT_S = 10


def rfc3339_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Device:
    def __init__(self, index, prefix, groups, rng):
        self.kind = KINDS[index % len(KINDS)]
        self.id = f"{prefix}{self.kind}-{index + 1:03d}"
        self.group = f"floor-{index % groups + 1}"
        self.rng = rng
        self.temperature = TEMP_MEAN + rng.uniform(-1.5, 1.5)
        self.humidity = HUM_MEAN + rng.uniform(-5, 5)
        self.battery = rng.uniform(80, 100)
        self.readings = 0

    def step(self):
        r = self.rng
        self.temperature += r.gauss(0, TEMP_STEP) + (TEMP_MEAN - self.temperature) * TEMP_PULL
        self.humidity += r.gauss(0, HUM_STEP) + (HUM_MEAN - self.humidity) * HUM_PULL
        self.humidity = min(100.0, max(0.0, self.humidity))
        self.battery = max(0.0, self.battery - BATTERY_DRAIN)
        self.readings += 1

    def payload(self):
        """Alternates the flat form and the fields/tags/timestamp form."""
        fields = {
            "temperature": round(self.temperature, 2),
            "humidity": round(self.humidity, 1),
            "battery": round(self.battery, 2),
        }
        if self.readings % 2:
            return fields
        return {"fields": fields, "tags": {"kind": self.kind, "firmware": FIRMWARE},
                "timestamp": rfc3339_now()}


def make_client(client_id):
    """paho 1.x (Debian 12 ships 1.6) and 2.x (which needs a callback API version)."""
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    return mqtt.Client(client_id=client_id)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--devices", type=int, default=10, help="number of devices (default 10)")
    p.add_argument("--rate", type=float, default=5.0,
                   help="telemetry messages per second per device (default 5)")
    p.add_argument("--duration", type=float, default=0,
                   help="seconds to run; 0 runs until Ctrl-C (default)")
    p.add_argument("--prefix", default="sensor-", help="device id prefix (default sensor-)")
    p.add_argument("--groups", type=int, default=2,
                   help="groups the devices are spread over with --groups-in-topic (default 2)")
    p.add_argument("--groups-in-topic", action="store_true",
                   help="publish on site/{group}/{device}/telemetry|status")
    p.add_argument("--qos", type=int, choices=(0, 1), default=0, help="telemetry QoS")
    p.add_argument("--seed", type=int, help="random seed, for repeatable data")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.devices < 1 or a.rate <= 0 or a.duration < 0 or a.groups < 1:
        p.error("--devices and --groups must be >= 1, --rate > 0, --duration >= 0")
    return a


class Simulator:
    def __init__(self, args):
        self.args = args
        rng = random.Random(args.seed)
        self.devices = [Device(i, args.prefix, args.groups, rng) for i in range(args.devices)]
        self.client = make_client(f"telebridge-sim-{uuid.uuid4().hex[:8]}")
        self.stop = False
        self.sent = 0

    def topic(self, dev, kind):
        if self.args.groups_in_topic:
            return f"site/{dev.group}/{dev.id}/{kind}"
        return f"devices/{dev.id}/{kind}"

    def connect(self):
        self.client.connect(self.args.host, self.args.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise SystemExit(f"simulate: no MQTT connection to {self.args.host}:"
                                 f"{self.args.port} within {CONNECT_TIMEOUT_S} s")
            time.sleep(0.05)

    def status_all(self, status):
        infos = [self.client.publish(self.topic(d, "status"), status, qos=1, retain=True)
                 for d in self.devices]
        try:
            for info in infos:
                info.wait_for_publish(CONNECT_TIMEOUT_S)
        except (RuntimeError, ValueError) as e:  # paho: the connection went away meanwhile
            self.log(f"status {status!r} not delivered: {e}")

    def run(self):
        a = self.args
        self.connect()
        self.status_all("online")
        self.log(f"{len(self.devices)} devices online, {a.rate:g} msg/s each, "
                 f"{'until Ctrl-C' if not a.duration else f'for {a.duration:g} s'}")
        interval = 1.0 / a.rate
        start = next_tick = time.monotonic()
        while not self.stop and (not a.duration or time.monotonic() - start < a.duration):
            for d in self.devices:
                d.step()
                self.client.publish(self.topic(d, "telemetry"), json.dumps(d.payload()),
                                    qos=a.qos)
                self.sent += 1
            next_tick += interval
            time.sleep(max(0.0, next_tick - time.monotonic()))
        self.status_all("offline")
        self.client.disconnect()
        self.client.loop_stop()
        self.log(f"sent {self.sent} telemetry messages; devices offline")

    def log(self, msg):
        if not self.args.quiet:
            print(f"simulate: {msg}", file=sys.stderr, flush=True)


def main(argv):
    sim = Simulator(parse_args(argv))

    def on_signal(signum, frame):
        sim.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
