"""mqtt.hosts with independent mosquitto brokers (docs/configuration.md → mqtt.hosts,
docs/operations.md → A broker cluster): the bridge starts on the first node that answers,
moves to the next one, round-robin, when its node goes away or refuses, and says where it is
(log, /stats details.mqtt_node). The failover against a real cluster is test_broker_cluster.py."""

import json

import tb


def on_node(bridge, index, port):
    """Waits until the bridge holds a session on node `index` (mqtt.hosts order, from 0)."""
    tb.wait_until(lambda: bridge.stats()["mqtt_connected"] and
                  bridge.stats()["details"]["mqtt_node"] == index, 10,
                  f"a session on node {index}")
    assert f"port={port} node={index + 1}/" in bridge.log_text()


def test_a_dead_first_node_is_skipped(make_bridge, broker):
    dead = tb.free_port()
    bridge = make_bridge({"mqtt": {"hosts": [f"127.0.0.1:{dead}", f"127.0.0.1:{broker.port}"]}})
    on_node(bridge, 1, broker.port)
    log = bridge.log_text()
    assert f'msg="mqtt connect failed" host=127.0.0.1 port={dead} attempt=1' in log, log
    assert f"next_host=127.0.0.1 next_port={broker.port}" in log, log
    assert f"mqtt=127.0.0.1:{dead} mqtt_nodes=2" in log, log


def test_moves_round_robin_when_its_node_goes(make_bridge, broker, connect, tmp_path):
    d = tmp_path / "broker-b"
    d.mkdir()
    other = tb.Broker(d)
    other.start()
    try:
        bridge = make_bridge({"mqtt": {"hosts": [f"127.0.0.1:{broker.port}",
                                                 f"127.0.0.1:{other.port}"]}})
        ws = connect(bridge, rooms=["device:dev-n"])
        on_node(bridge, 0, broker.port)
        broker.stop()
        on_node(bridge, 1, other.port)
        tb.mqtt_publish(other.port, "devices/dev-n/telemetry", json.dumps({"n": 1}))
        assert ws.recv()["payload"]["fields"]["n"] == 1
        broker.start()
        other.stop()
        on_node(bridge, 0, broker.port)  # after the last node, the first again
        tb.mqtt_publish(broker.port, "devices/dev-n/telemetry", json.dumps({"n": 2}))
        assert ws.recv()["payload"]["fields"]["n"] == 2
        assert "mqtt connection lost" in bridge.log_text()
        assert not ws.closed
    finally:
        if other.proc is not None:
            other.stop()
