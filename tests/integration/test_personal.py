"""The personal room user:<sub> and `notice` messages published to it
(docs/protocol.md → The personal room; docs/security.md → Room grants)."""

import tb

NOTIFIER_ROOMS = ["user:*"]


def publish(bridge, room, payload, token, type_="notice"):
    got, body, _ = tb.http_post(bridge.port, "/api/v1/publish",
                                {"room": room, "type": type_, "payload": payload},
                                headers={"Authorization": f"Bearer {token}"})
    return got, body


def assert_notice(msg, room, payload):
    assert set(msg) == {"type", "room", "payload", "timestamp", "seq"}, msg
    assert msg["type"] == "notice" and msg["room"] == room, msg
    assert msg["payload"] == payload, msg
    assert tb.RFC3339_MS.match(msg["timestamp"]), msg


def test_notice_reaches_every_connection_of_its_user_once(bridge, connect, wire):
    # No grant names user: rooms: each joins its own through its sub alone.
    a1 = connect(bridge, bridge.mint(sub="alice", rooms=[]), rooms=["user:alice"])
    a2 = connect(bridge, bridge.mint(sub="alice", rooms=["device:x"]), rooms=["user:alice"])
    b = connect(bridge, bridge.mint(sub="bob", rooms=[]), rooms=["user:bob"])
    notifier = bridge.mint(sub="notifier", rooms=NOTIFIER_ROOMS, scope="publish")

    got, body = publish(bridge, "user:alice", {"title": "Backup done", "body": "3 files"},
                        notifier)
    assert got == 202 and body["room"] == "user:alice", body
    for ws in (a1, a2):
        assert_notice(ws.recv(), "user:alice", {"title": "Backup done", "body": "3 files"})
    got, _ = publish(bridge, "user:bob", {"title": "for bob"}, notifier)
    assert got == 202
    assert_notice(b.recv(), "user:bob", {"title": "for bob"})
    # Once each: nothing more for alice's screens, and bob never saw alice's notice.
    for ws in (a1, a2, b):
        ws.expect_silence(0.3)


def test_other_users_room_needs_an_explicit_user_grant(bridge, broker, connect, wire):
    # "*" covers every device, group and global room, but not other people's rooms.
    b = connect(bridge, bridge.mint(sub="bob", rooms=["*"]))
    ans = b.subscribe(["user:alice", "user:bob", "global"])
    assert ans["type"] == "subscribed" and sorted(ans["payload"]["rooms"]) == ["global",
                                                                              "user:bob"], ans
    err = b.recv()
    assert err["type"] == "error" and err["payload"]["code"] == "forbidden", err
    assert err["payload"]["rooms"] == ["user:alice"], err
    # A malformed user room is a bad_request, not a forbidden one.
    ans = b.subscribe(["user:a b"])
    assert ans["payload"]["rooms"] == []
    err = b.recv()
    assert err["payload"]["code"] == "bad_request" and err["payload"]["rooms"] == ["user:a b"]

    # An explicit user: pattern grants it (a support console, say).
    support = connect(bridge, bridge.mint(sub="support", rooms=["user:ali*"]),
                      rooms=["user:alice"])
    notifier = bridge.mint(sub="notifier", rooms=NOTIFIER_ROOMS, scope="publish")
    assert publish(bridge, "user:alice", {"title": "hi"}, notifier)[0] == 202
    assert_notice(support.recv(), "user:alice", {"title": "hi"})
    b.expect_silence(0.3)
    tb.assert_next_client_served(bridge, broker, connect)


def test_publish_to_personal_rooms_follows_the_same_rule(bridge, connect):
    alice = connect(bridge, bridge.mint(sub="alice", rooms=[]), rooms=["user:alice"])
    star = bridge.mint(sub="ops", rooms=["*"], scope="publish")
    own = bridge.mint(sub="alice", rooms=[], scope="publish")
    got, body = publish(bridge, "user:alice", {"title": "x"}, star)
    assert (got, body) == (403, {"error": "forbidden"})
    got, _ = publish(bridge, "user:alice", {"title": "note to self"}, own)
    assert got == 202
    assert_notice(alice.recv(), "user:alice", {"title": "note to self"})
    got, body = publish(bridge, "user:", {"title": "x"}, own)
    assert (got, body) == (400, {"error": "invalid_room"})
    alice.expect_silence(0.3)
    assert any(r["room"] == "user:alice" and r["subscribers"] == 1
               for r in tb.http_get(bridge.port, "/rooms",
                                    token=bridge.mint(sub="op", scope="admin"))[1])
