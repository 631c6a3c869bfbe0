"""SIGHUP (docs/configuration.md → Reloading): the group map and the auth keys are re-read
without dropping connections; a bad new config is refused and the running one stays."""

import json
import signal


import tb


def publish(broker, device, **fields):
    broker.publish(f"devices/{device}/telemetry", json.dumps(fields))


def wait_log(bridge, text):
    tb.wait_until(lambda: text in bridge.log_text(), 5, f"log line {text!r}")


def test_sighup_reloads_groups_without_dropping(bridge, broker, connect):
    ws = connect(bridge, rooms=["group:night-shift"])
    publish(broker, "pump-1", rpm=1)
    ws.expect_silence(0.5)

    bridge.config["groups"]["night-shift"] = ["pump-*"]
    bridge.config_file.write_text(json.dumps(bridge.config))
    bridge.send_signal(signal.SIGHUP)
    wait_log(bridge, "reloaded groups, auth keys and alert rules")

    publish(broker, "pump-1", rpm=2)
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", "pump-1")
    assert m["payload"]["fields"] == {"rpm": 2}


def test_sighup_reloads_the_secret(bridge, connect):
    old_token = bridge.mint()
    kept = connect(bridge, token=old_token, rooms=["global"])
    # docs/security.md → Tickets across a fleet: one issued under the old secret (so signed with
    # the old fleet key) stays good for its TTL after the reload.
    old_ticket = tb.get_ticket(bridge.port, old_token)
    new_secret = "b" * 64
    bridge.secret_file.write_text(new_secret + "\n")
    bridge.send_signal(signal.SIGHUP)
    wait_log(bridge, "reloaded groups, auth keys and alert rules")

    assert tb.handshake_status(bridge.port, f"/ws?token={old_token}")[0] == 401
    new_token = tb.mint("alice", ["*"], 3600, new_secret)
    assert tb.handshake_status(bridge.port, f"/ws?token={new_token}")[0] == 101
    assert tb.handshake_status(bridge.port, f"/ws?ticket={old_ticket}")[0] == 101
    assert tb.handshake_status(bridge.port,
                               f"/ws?ticket={tb.get_ticket(bridge.port, new_token)}")[0] == 101
    # The connection opened with the old key is still served.
    assert kept.request({"type": "ping", "request_id": 1})["type"] == "pong"
    bridge.secret = new_secret  # the teardown checks the log for the secret in use


def test_bad_config_on_sighup_keeps_running_one(bridge, broker, connect):
    ws = connect(bridge, rooms=["group:building-a"])
    bridge.config_file.write_text('{"groups": {"building-a": ["sensor-hum-*"]}, "bogus": 1}')
    bridge.send_signal(signal.SIGHUP)
    wait_log(bridge, "reload refused")
    assert "bogus: unknown key" in bridge.log_text()

    publish(broker, "sensor-hum-3", t=1)
    tb.assert_device_envelope(ws.recv(), "telemetry", "sensor-hum-3")
    assert bridge.get("/healthz")[0] == 200


HOT = {"name": "hot", "field": "temperature", "op": ">", "threshold": 30, "severity": "warning",
       "devices": ["sensor-*"]}
WET = {"name": "wet", "field": "humidity", "op": ">", "threshold": 80, "devices": ["*"]}


def reload_with(bridge, config, expect):
    bridge.config_file.write_text(json.dumps(config))
    offset = len(bridge.log_text())
    bridge.send_signal(signal.SIGHUP)
    tb.wait_until(lambda: expect in bridge.log_text()[offset:], 5, f"log line {expect!r}")


def alerts_and_telemetry(ws, n):
    got = ws.recv_n(n)
    return ([m["payload"] for m in got if m["type"] == "alert"],
            [m for m in got if m["type"] == "telemetry"])


def test_sighup_swaps_alert_rules(make_bridge, broker, connect):
    """New thresholds and severities apply from the next sample; a device already firing keeps
    firing (no second `firing`) and resolves by the new rule; rules may be reordered."""
    bridge = make_bridge({"alerts": [HOT, WET]})
    ws = connect(bridge, rooms=["device:sensor-1", "device:sensor-2"])
    publish(broker, "sensor-1", temperature=35)
    alerts, _ = alerts_and_telemetry(ws, 2)
    assert [(a["rule_name"], a["state"], a["threshold"]) for a in alerts] == [
        ("hot", "firing", 30)]

    new_hot = dict(HOT, threshold=50, severity="critical", clear_below=45)
    reload_with(bridge, dict(bridge.config, alerts=[WET, new_hot]),
                "reloaded groups, auth keys and alert rules")
    publish(broker, "sensor-2", temperature=40)  # under the new threshold: nothing
    publish(broker, "sensor-1", temperature=47)  # still firing under the new bounds
    publish(broker, "sensor-1", temperature=44)  # below clear_below: resolved
    publish(broker, "sensor-2", temperature=55)  # over the new threshold
    alerts, tele = alerts_and_telemetry(ws, 6)
    assert len(tele) == 4
    assert [(a["device_id"], a["state"], a["threshold"], a["severity"]) for a in alerts] == [
        ("sensor-1", "resolved", 50, "critical"), ("sensor-2", "firing", 50, "critical")]
    ws.expect_silence(0.3)


def test_sighup_refuses_a_new_rule_and_keeps_everything(make_bridge, broker, connect):
    """Adding a rule takes a restart: the whole reload is refused, groups included (atomic)."""
    bridge = make_bridge({"alerts": [HOT]})
    ws = connect(bridge, rooms=["group:night-shift", "device:sensor-3"])
    config = dict(bridge.config, alerts=[HOT, WET])
    config["groups"] = dict(bridge.config["groups"], **{"night-shift": ["pump-*"]})
    reload_with(bridge, config, "reload refused")
    assert "alerts: 2 rules instead of 1; adding or removing rules takes a restart" in \
        bridge.log_text()
    renamed = dict(config, alerts=[dict(HOT, name="hotter")])
    reload_with(bridge, renamed, "hotter")
    assert "is new; adding or removing rules takes a restart" in bridge.log_text()
    publish(broker, "pump-1", rpm=1)  # the group change was not applied
    publish(broker, "sensor-3", temperature=31, humidity=90)
    alerts, tele = alerts_and_telemetry(ws, 2)
    assert [t["payload"]["device_id"] for t in tele] == ["sensor-3"]
    assert [(a["rule_name"], a["state"]) for a in alerts] == [("hot", "firing")]
    ws.expect_silence(0.3)


def test_sighup_bad_key_file_keeps_the_old_keys_and_groups(bridge, broker, connect):
    old_token = bridge.mint()
    ws = connect(bridge, token=old_token, rooms=["group:night-shift"])
    config = dict(bridge.config)
    config["groups"] = dict(bridge.config["groups"], **{"night-shift": ["pump-*"]})
    config["auth"] = dict(config["auth"], secret_file=str(bridge.dir / "missing.secret"))
    reload_with(bridge, config, "reload refused")
    assert "missing.secret" in bridge.log_text()
    assert tb.handshake_status(bridge.port, f"/ws?token={old_token}")[0] == 101
    publish(broker, "pump-1", rpm=1)
    ws.expect_silence(0.5)  # the group change came with the bad key: not applied
    assert ws.request({"type": "ping", "request_id": 1})["type"] == "pong"
