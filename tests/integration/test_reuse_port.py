"""Several bridges on one port (docs/operations.md → Several bridges on one host;
docs/configuration.md → listen.reuse_port): the kernel spreads the connections over them, every
client gets its messages from whichever bridge took it, and a port that is not shareable is a
clear start-up error."""

import json
import signal
import socket
import time

import pytest

import tb

CLIENTS = 40
MESSAGES = 5


def on_port(make_bridge, port, reuse_port, secret):
    """A bridge (not started) configured for the given port."""
    b = make_bridge({"listen": {"port": port, "reuse_port": reuse_port}}, start=False,
                    secret=secret)
    b.port = port
    return b


def test_two_bridges_share_one_port(make_bridge, connect):
    b1 = make_bridge({"listen": {"reuse_port": True}})
    b2 = on_port(make_bridge, b1.port, True, b1.secret).start()
    # tb.Bridge.start moves to another port when "cannot listen": it must not have.
    assert b2.port == b1.port
    token = b1.mint(rooms=("device:dev-share",))
    # Half the clients compress, half do not.
    clients = [connect(b1, token=token, compression="deflate" if i % 2 else None,
                       rooms=["device:dev-share"]) for i in range(CLIENTS)]
    n1 = b1.stats()["connections"]
    n2 = b2.stats()["connections"]
    print(f"{CLIENTS} connections over two bridges on one port: {n1} and {n2}")
    assert n1 + n2 == CLIENTS, (n1, n2)
    # 40 connections all landing on one of two listeners: 2 * 2^-40 if the kernel spreads them.
    assert n1 > 0 and n2 > 0, f"the kernel gave every connection to one bridge: {n1}, {n2}"

    tb.mqtt_publish_lines(b1.broker_port, "devices/dev-share/telemetry",
                          [json.dumps({"n": i}) for i in range(MESSAGES)])
    for ws in clients:
        got = [m["payload"]["fields"]["n"] for m in ws.recv_n(MESSAGES)]
        assert got == list(range(MESSAGES)), got


def wait_exit(bridge):
    """Starts the bridge expecting it to refuse to start; returns its log."""
    bridge.expect_clean_exit = False
    offset = bridge._spawn()
    rc = bridge.proc.wait(tb.START_TIMEOUT)
    assert rc == 1, rc
    return bridge._log_since(offset)


@pytest.mark.parametrize("late_reuse_port", [True, False], ids=["late-reuses", "neither-reuses"])
def test_port_held_without_reuse_port_is_a_start_error(make_bridge, late_reuse_port):
    """A port held by a bridge without reuse_port stops a later bridge's start-up, saying why,
    whether or not the later one asks for reuse_port; the first goes on serving."""
    plain = make_bridge()
    late = on_port(make_bridge, plain.port, late_reuse_port, plain.secret)
    log = wait_exit(late)
    assert f"cannot listen on 127.0.0.1:{plain.port}: Address already in use" in log, log
    assert plain.get("/healthz")[0] == 200


def test_reuse_port_false_cannot_join_a_shared_port(make_bridge):
    sharing = make_bridge({"listen": {"reuse_port": True}})
    late = on_port(make_bridge, sharing.port, False, sharing.secret)
    log = wait_exit(late)
    assert (f"cannot listen on 127.0.0.1:{sharing.port}: Address already in use (bridges sharing "
            "a port need listen.reuse_port in each)") in log, log
    assert sharing.get("/healthz")[0] == 200


def test_client_id_placeholders_give_each_bridge_its_own_session(make_bridge):
    """docs/configuration.md → mqtt.client_id: {hostname} and {port} expand, the expanded id is
    logged, and two bridges of one template keep their own broker sessions."""
    template = {"mqtt": {"client_id": "tb-{hostname}-{port}"}}
    bridges = [make_bridge(template), make_bridge(template)]
    host = socket.gethostname()
    for b in bridges:
        assert f"client_id=tb-{host}-{b.port} clean_session=false" in b.log_text()
        assert f'msg="mqtt connected"' in b.log_text()
    time.sleep(1.5)  # longer than the first reconnect delay: a takeover would show by now
    for b in bridges:
        stats = b.stats()
        assert stats["mqtt_connected"] is True
        assert stats["details"]["mqtt_connects"] == 1, stats["details"]


def test_one_client_id_on_two_bridges_take_over_each_other(make_bridge):
    """docs/operations.md → Several bridges on one host: the broker keeps one session per id, so
    two bridges with the same id keep taking it from each other."""
    same = {"mqtt": {"client_id": "tb-same"}}
    a = make_bridge(same)
    b = make_bridge(same, probe=False)
    tb.wait_until(lambda: a.stats()["details"]["mqtt_connects"] +
                  b.stats()["details"]["mqtt_connects"] >= 4, 10,
                  "the two bridges to take the session from each other")
    assert "mqtt connection lost" in a.log_text() + b.log_text()


def test_a_stopping_bridge_leaves_the_port_to_the_other(make_bridge, connect):
    """docs/operations.md → Several bridges on one host: on SIGTERM a bridge closes its shared
    listener first, so connections made while it drains its clients go to the other bridge
    (none is answered 503)."""
    stays = make_bridge({"listen": {"reuse_port": True}})
    stops = on_port(make_bridge, stays.port, True, stays.secret).start()
    token = stays.mint(rooms=("global",))
    # Clients on the stopping bridge keep it draining (it closes them with 1001, then exits).
    held = [connect(stays, token=token) for _ in range(10)]
    assert stops.stats()["connections"] > 0
    before = stays.stats()["details"]["connections_total"]
    stops.send_signal(signal.SIGTERM)
    tb.wait_until(lambda: 'msg="stopping"' in stops.log_text(), 5, "the stop to begin")
    statuses, resets = [], 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            s, status, _, _ = tb.raw_handshake(stays.port, path=f"/ws?token={token}")
        except ConnectionResetError:
            resets += 1  # one accepted into the backlog as the listener closed
            continue
        statuses.append(status)
        s.close()
    assert statuses and set(statuses) == {101}, statuses
    assert resets <= 1, resets
    tb.wait_until(lambda: stays.stats()["details"]["connections_total"] >= before + len(statuses),
                  5, "the surviving bridge to count them")
    assert stops.stop(sig=None) == 0
    del held
