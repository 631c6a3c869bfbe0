"""The broker-cluster failover (docs/operations.md → A broker cluster): a real three-node NATS
cluster on loopback (nats-server's MQTT gateway on clustered JetStream), sensors publishing
numbered QoS 1 messages to node 1, two bridges on nodes 2 and 3 (mqtt.hosts in different
orders). The node one bridge is on is killed mid-stream: that bridge moves to another node and
its WebSocket client still gets every message; so does the other bridge's client."""

import json
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid

import paho.mqtt.client as paho

import tb

NODES = 3
RATE = 40          # messages per second from the sensor
BEFORE_KILL_S = 1.5
AFTER_KILL_S = 3.0
CLUSTER_START_S = 60.0  # a loaded machine, ASan bridges: JetStream takes its time
PROBE_EVERY_S = 1.0
FAILOVER_S = 40.0  # the bridge back on a node; docs/operations.md has the measured times
# NATS redelivers what a session did not acknowledge after ack_wait (30 s by default); a
# failover sometimes stalls a moved session until then. Shorter here to keep the test short.
ACK_WAIT_S = 3
QUIET_S = 2 * ACK_WAIT_S + 1  # nothing new for this long: what is missing by then stays so
# What NATS 2.9.10 guarantees, measured (docs/operations.md → A broker cluster): the session
# and its backlog survive the node's death, but a QoS 1 subscriber on another node than the
# publisher's misses isolated messages now and then, failover or not.
MAX_LOSS = 0.02    # of the messages published (measured: at most 1 %)
MAX_RUN = 2        # consecutive numbers missing (losing the failover's backlog would be dozens)
MAX_REPEATS = 0.02
DEVICE = "dev-cluster"


class NatsCluster:
    """NODES nats-server processes on loopback, each with JetStream (its own store in workdir),
    routes to the others and an MQTT listener. stop() ends every one still running."""

    def __init__(self, workdir):
        assert shutil.which("nats-server"), "nats-server is not installed (tools/test.sh installs it)"
        self.dir = workdir
        self.client_ports = [tb.free_port() for _ in range(NODES)]
        self.route_ports = [tb.free_port() for _ in range(NODES)]
        self.mqtt_ports = [tb.free_port() for _ in range(NODES)]
        self.http_ports = [tb.free_port() for _ in range(NODES)]  # monitoring: /jsz
        self.procs = [None] * NODES
        self.logs = [workdir / f"nats{i + 1}.log" for i in range(NODES)]

    def _conf(self, i):
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        store = self.dir / f"js{i + 1}"
        return (f"server_name: n{i + 1}\n"
                f"listen: 127.0.0.1:{self.client_ports[i]}\n"
                f"jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB,"
                f" max_file_store: 256MB }}\n"
                f"cluster {{ name: tb, listen: 127.0.0.1:{self.route_ports[i]},"
                f" routes: [{routes}] }}\n"
                f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]}, ack_wait: \"{ACK_WAIT_S}s\" }}\n"
                f"http: 127.0.0.1:{self.http_ports[i]}\n")

    def start(self):
        for i in range(NODES):
            conf = self.dir / f"nats{i + 1}.conf"
            conf.write_text(self._conf(i))
            with open(self.logs[i], "ab") as log:
                self.procs[i] = subprocess.Popen(["nats-server", "-c", str(conf)], stdout=log,
                                                 stderr=log, stdin=subprocess.DEVNULL)
        for i in range(NODES):
            tb.wait_until(lambda: mqtt_connects(self.mqtt_ports[i]), CLUSTER_START_S,
                          f"MQTT on node {i + 1}:\n{self.log_tail()}", interval=0.5)
        self.wait_flowing()

    def wait_flowing(self):
        """Waits until QoS 1 messages published on node 1 reach subscribers on nodes 2 and 3:
        the MQTT streams exist and have leaders, so a session made now gets its messages."""
        subs = [QoS1Subscriber(port, "devices/tb-ready/status") for port in self.mqtt_ports[1:]]
        try:
            tb.wait_until(lambda: all(s.subscribed for s in subs), CLUSTER_START_S,
                          f"SUBACKs on nodes 2 and 3:\n{self.log_tail()}", interval=0.2)
            tb.wait_until(lambda: publish_then(self.mqtt_ports[0], "devices/tb-ready/status",
                                               lambda: all(s.got for s in subs)),
                          CLUSTER_START_S, f"node 1's messages on nodes 2 and 3:\n"
                          f"{self.log_tail()}", interval=0.0)
        finally:
            for s in subs:
                s.close()

    def meta_leader(self, i):
        """The JetStream meta leader's name as node i sees it ("n1"…), or None."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[i]}/jsz",
                                        timeout=2) as r:
                return json.load(r).get("meta_cluster", {}).get("leader")
        except OSError:
            return None

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(tb.STOP_TIMEOUT)
        self.procs[i] = None

    def stop(self):
        for p in self.procs:
            if p is not None:
                p.terminate()
        for i, p in enumerate(self.procs):
            if p is None:
                continue
            try:
                p.wait(tb.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(tb.STOP_TIMEOUT)
            self.procs[i] = None

    def log_tail(self):
        return "\n".join(f"--- {log}:\n{log.read_text(errors='replace')[-1500:]}"
                         for log in self.logs if log.exists())


class QoS1Subscriber:
    """A paho client (clean session) on one node subscribed to topic at QoS 1, counting what
    arrives."""

    def __init__(self, port, topic):
        self.got = 0
        self.subscribed = False
        self.c = paho.Client(client_id=f"tb-ready-{uuid.uuid4().hex[:8]}", clean_session=True)
        self.c.on_connect = lambda client, userdata, flags, rc: client.subscribe(topic, 1)
        self.c.on_subscribe = lambda client, userdata, mid, granted: setattr(self, "subscribed",
                                                                            True)
        self.c.on_message = lambda client, userdata, msg: setattr(self, "got", self.got + 1)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def publish_then(port, topic, arrived):
    """Publishes one QoS 1 message on the node, then waits up to PROBE_EVERY_S for arrived();
    returns what it last returned (one isolated message may be lost: the caller publishes
    again)."""
    tb.mqtt_publish(port, topic, "online")
    deadline = time.monotonic() + PROBE_EVERY_S
    while not arrived() and time.monotonic() < deadline:
        time.sleep(0.05)
    return arrived()


def start_on_cluster(bridge, probe_port):
    """Starts the bridge and waits until its session takes messages: probes published on node
    1 until one is ingested (the cluster may lose one, or hold it until ack_wait)."""
    bridge.probe = False
    bridge.start()
    before = bridge.stats()["messages_in"]
    tb.wait_until(lambda: publish_then(probe_port, "devices/tb-probe/status",
                                       lambda: bridge.stats()["messages_in"] > before),
                  CLUSTER_START_S, f"{bridge.name} to ingest a probe from node 1", interval=0.0)
    return bridge


def mqtt_connects(port):
    """True when an MQTT client gets a CONNACK 0 from the node within 5 s (it answers only once
    its JetStream is up)."""
    c = paho.Client(client_id=f"tb-probe-{uuid.uuid4().hex[:8]}", clean_session=True)
    result = []
    c.on_connect = lambda client, userdata, flags, rc: result.append(rc)
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    c.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not result and time.monotonic() < deadline:
            time.sleep(0.05)
        return result == [0]
    finally:
        c.disconnect()
        c.loop_stop()


def numbers(ws, want, timeout, quiet=QUIET_S):
    """Reads the device's messages until every number in `want` arrived, nothing came for
    `quiet` seconds, or timeout. Returns the numbers in arrival order (repeats included) and
    how long after the start the last new one came."""
    got = []
    start = last = newest = time.monotonic()
    deadline = start + timeout
    while not want <= set(got) and time.monotonic() < min(deadline, last + quiet):
        try:
            m = ws.recv(0.5)
        except AssertionError:
            continue  # nothing within the slice; the deadline bounds the loop
        last = time.monotonic()
        if m.get("type") == "telemetry" and m["payload"].get("device_id") == DEVICE:
            n = m["payload"]["fields"]["i"]
            if n not in got:
                newest = last
            got.append(n)
    return got, newest - start


def longest_run(ns):
    """The longest run of consecutive numbers in the sorted list ns (0 when empty)."""
    best = run = 0
    for k, n in enumerate(ns):
        run = run + 1 if k and ns[k - 1] == n - 1 else 1
        best = max(best, run)
    return best


def ranges(ns):
    """[1, 2, 3, 7] -> "1-3,7"."""
    out = []
    for n in ns:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out)


def test_cluster_node_killed_bridge_moves_on_and_keeps_its_backlog(make_bridge, connect, tmp_path):
    cluster = NatsCluster(tmp_path)
    publisher = None
    try:
        cluster.start()
        n1, n2, n3 = (f"127.0.0.1:{p}" for p in cluster.mqtt_ports)
        bridges = []
        for hosts in ([n2, n3, n1], [n3, n2, n1]):
            b = make_bridge({"mqtt": {"hosts": hosts}}, start=False)
            bridges.append(start_on_cluster(b, cluster.mqtt_ports[0]))
        a, b = bridges
        assert a.stats()["details"]["mqtt_node"] == 0 and b.stats()["details"]["mqtt_node"] == 0
        ws_a = connect(a, rooms=[f"device:{DEVICE}"])
        ws_b = connect(b, rooms=[f"device:{DEVICE}"], compression="deflate")

        publisher = tb.NumberedPublisher(cluster.mqtt_ports[0], f"devices/{DEVICE}/telemetry",
                                         RATE)
        time.sleep(BEFORE_KILL_S)
        killed_at = publisher.count
        leader = cluster.meta_leader(0)
        cluster.kill(1)  # node 2: bridge a's
        t_kill = time.monotonic()
        tb.wait_until(lambda: a.stats()["mqtt_connected"] and
                      a.stats()["details"]["mqtt_node"] != 0, FAILOVER_S,
                      f"bridge a on another node:\n{a.log_text()[-3000:]}", interval=0.2)
        failover_s = time.monotonic() - t_kill
        time.sleep(AFTER_KILL_S)
        total = publisher.stop()
        publisher.close()  # every message acknowledged by node 1
        publisher = None
        assert killed_at > 0 and total > killed_at + RATE, (killed_at, total)

        want = set(range(total))
        # The messages sent while bridge a was between nodes: at RATE per second over
        # failover_s, so losing its session's backlog would show as a run of them missing.
        assert failover_s * RATE > 2 * MAX_RUN, failover_s
        for name, ws in (("a", ws_a), ("b", ws_b)):
            got, late = numbers(ws, want, FAILOVER_S)
            missing = sorted(want - set(got))
            repeats = len(got) - len(set(got))
            print(f"bridge {name}: {total} published, {len(set(got))} received, "
                  f"missing {len(missing)} [{ranges(missing)}], repeats {repeats}, "
                  f"killed at {killed_at}, failover {failover_s:.1f} s, last new one {late:.1f} s "
                  f"into the read, meta leader {leader}")
            assert not set(got) - want, "numbers never published"
            assert len(missing) <= MAX_LOSS * total, f"bridge {name} lost {ranges(missing)}"
            assert longest_run(missing) <= MAX_RUN, f"bridge {name} lost {ranges(missing)}"
            assert repeats <= MAX_REPEATS * total, f"bridge {name}: {repeats} repeats"
        assert "mqtt connection lost" in a.log_text()
    finally:
        if publisher is not None:
            publisher.stop()
            publisher.client.loop_stop()
        cluster.stop()
