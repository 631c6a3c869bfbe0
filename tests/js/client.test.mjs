/*
 * Tests of web/telebridge-client.js with Node's test runner, against a real telebridge and
 * mosquitto started here (see harness.mjs). Run: cd tests/js && npm ci && node --test
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import WebSocket, { WebSocketServer } from "ws";

import {
    backoffDelay, DEFAULTS, RepeatFilter, repeatKey, TelebridgeClient, ticketUrlFor, tokenExpiry,
} from "../../web/telebridge-client.js";
import { freePort, nextEvent, sleep, startStack, ticketsSupported, waitFor } from "./harness.mjs";

/* A `ws` WebSocket that records what the client sends. */
function spyClass(sent) {
    return class extends WebSocket {
        send(data) {
            sent.push(JSON.parse(data));
            super.send(data);
        }
    };
}

/* A `ws` WebSocket that never delivers a pong (a bridge that stopped answering). */
class NoPongWebSocket extends WebSocket {
    set onmessage(fn) {
        super.onmessage = (ev) => {
            if (JSON.parse(ev.data).type !== "pong") fn(ev);
        };
    }

    get onmessage() {
        return super.onmessage;
    }
}

function client(stack, opts = {}) {
    return new TelebridgeClient({
        url: stack.bridge.url,
        credential: "token",
        getToken: () => stack.bridge.mint(),
        WebSocket,
        minDelayMs: 100,
        maxDelayMs: 1000,
        ...opts,
    });
}

const telemetry = (device, value) =>
    [`devices/${device}/telemetry`, JSON.stringify({ temperature: value })];

describe("pure helpers", () => {
    test("backoff: full jitter under an exponential cap, 1 s to 30 s", () => {
        assert.equal(DEFAULTS.minDelayMs, 1000);
        assert.equal(DEFAULTS.maxDelayMs, 30000);
        const top = () => 0.999999;
        const caps = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
        caps.forEach((cap, attempt) => {
            assert.equal(backoffDelay(attempt, () => 0), 0);
            assert.equal(backoffDelay(attempt, top), cap - 1, `attempt ${attempt}`);
            assert.equal(backoffDelay(attempt, () => 0.5), cap / 2);
        });
        assert.equal(backoffDelay(1000, top), 29999); // no overflow for a huge attempt
        const draws = Array.from({ length: 200 }, () => backoffDelay(3));
        assert.ok(draws.every((d) => d >= 0 && d < 8000));
        assert.ok(new Set(draws).size > 50, "delays are spread, not fixed");
    });

    test("tokenExpiry reads exp, null otherwise", () => {
        const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
        assert.equal(tokenExpiry(`${b64({ alg: "HS256" })}.${b64({ exp: 1234567890 })}.sig`), 1234567890);
        assert.equal(tokenExpiry(`${b64({ alg: "HS256" })}.${b64({ sub: "x" })}.sig`), null);
        assert.equal(tokenExpiry("not a jwt"), null);
        assert.equal(tokenExpiry("a.!!!.c"), null);
        assert.equal(tokenExpiry(undefined), null);
    });

    test("ticket URL follows the WebSocket URL's scheme and host", () => {
        assert.equal(ticketUrlFor("ws://h:8080/ws?x=1"), "http://h:8080/api/v1/ws/ticket");
        assert.equal(ticketUrlFor("wss://h/api/v1/ws"), "https://h/api/v1/ws/ticket");
    });

    test("a ticket endpoint that never answers times out into a reconnect", async () => {
        const sockets = [];
        const server = net.createServer((sock) => sockets.push(sock)); // accepts, never answers
        const port = await freePort();
        await new Promise((r) => server.listen(port, "127.0.0.1", r));
        const c = new TelebridgeClient({ url: `ws://127.0.0.1:${port}/ws`,
            getToken: () => "t", WebSocket, connectTimeoutMs: 300, minDelayMs: 60000 });
        try {
            const reconnecting = nextEvent(c, "state", (d) => d.state === "reconnecting", 3000);
            c.connect();
            const d = await reconnecting;
            assert.match(d.reason, /abort|timeout/i);
            assert.equal(d.attempt, 0);
        } finally {
            c.close();
            sockets.forEach((sock) => sock.destroy());
            server.close();
        }
    });

    test("constructor needs url and getToken", () => {
        assert.throws(() => new TelebridgeClient({ url: "ws://h/ws" }), TypeError);
    });
});

const iso = (ms) => new Date(ms).toISOString();
const T0 = Date.parse("2026-12-02T06:00:00.000Z");

/* A device message as a bridge sends it: env timestamp envMs, device time devMs. */
function deviceMsg(type, device, seq, envMs, devMs, extra = {}) {
    const payload = { device_id: device, timestamp: iso(devMs), ...extra };
    return { type, room: `device:${device}`, payload, timestamp: iso(envMs), seq };
}

describe("repeat filter (docs/protocol.md → Failover between bridges)", () => {
    test("the key: type, device_id, payload.timestamp; alerts add rule and state", () => {
        const t = deviceMsg("telemetry", "d1", 1, T0, T0, { fields: { a: 1 } });
        assert.equal(repeatKey(t), repeatKey({ ...t, seq: 99, timestamp: iso(T0 + 5) }),
            "another bridge's seq and envelope timestamp do not matter");
        assert.notEqual(repeatKey(t), repeatKey({ ...t, type: "device_status" }));
        assert.notEqual(repeatKey(t), repeatKey(deviceMsg("telemetry", "d2", 1, T0, T0)));
        assert.notEqual(repeatKey(t), repeatKey(deviceMsg("telemetry", "d1", 1, T0, T0 + 1)));
        const alert = (rule, state) => deviceMsg("alert", "d1", 2, T0, T0, { rule_name: rule, state });
        assert.notEqual(repeatKey(alert("high", "firing")), repeatKey(alert("low", "firing")));
        assert.notEqual(repeatKey(alert("high", "firing")), repeatKey(alert("high", "resolved")));
        assert.equal(repeatKey({ type: "notice", payload: { text: "x" } }), null, "no device: no key");
        assert.equal(repeatKey({ type: "telemetry", payload: { device_id: "d" } }), null);
    });

    test("holds only the window before the newest arrival, and at most maxEntries", () => {
        let now = T0;
        const f = new RepeatFilter(1000, 50, () => now);
        for (let i = 0; i < 40; i++, now += 100) f.record(deviceMsg("telemetry", "d", i, T0, T0 + i * 100));
        assert.equal(f.size, 11, "the last second: 100 ms apart, 3.0 s to 3.9 s");
        for (let i = 0; i < 200; i++) f.record(deviceMsg("telemetry", `e${i}`, i, T0, T0));
        assert.equal(f.size, 50, "bounded by maxEntries at any rate");
        for (let i = 0; i < 5000; i++, now++) f.record(deviceMsg("telemetry", "x", i, T0, T0 + i));
        assert.ok(f.size <= 50 && f.recent.length <= 2 * 1024 + 100, `compacted: ${f.recent.length}`);
        f.record({ type: "notice", payload: { text: "no device" }, timestamp: iso(T0) });
        assert.equal(f.size, 50, "what has no key is not held");
        now += 10000; // a long disconnection: nothing is forgotten until the next message
        assert.equal(f.size, 50);
        f.arm(T0);
        assert.equal(f.candidates.size, 50);
        const none = new RepeatFilter(1000, 0);
        none.record(deviceMsg("telemetry", "d", 1, T0, T0));
        assert.equal(none.size, 0, "maxEntries 0 holds nothing");
    });

    test("armed, it drops each held message once, then disarms past the window", () => {
        const f = new RepeatFilter(5000, 1000);
        const a = deviceMsg("telemetry", "d", 10, T0, T0);
        const b = deviceMsg("telemetry", "d", 11, T0 + 100, T0 + 100);
        f.record(a);
        f.record(b);
        assert.equal(f.isRepeat({ ...a, seq: 1 }), false, "not armed: nothing is a repeat");
        f.arm(T0 + 100);
        assert.equal(f.isRepeat({ ...a, seq: 1 }), true);
        assert.equal(f.isRepeat({ ...a, seq: 2 }), false, "a key drops one repeat");
        const fresh = deviceMsg("telemetry", "d", 3, T0 + 200, T0 + 200);
        assert.equal(f.isRepeat(fresh), false);
        assert.equal(f.isRepeat({ ...b, seq: 4, timestamp: iso(T0 + 5101) }), false,
            "ingested past the window after the position: new, and the filter disarms");
        assert.equal(f.armed, false);
        assert.equal(f.isRepeat({ ...b, seq: 5 }), false);
    });
});

/*
 * A scripted bridge fleet on one port: each connection gets the next script, a function of
 * (socket, the subscribe messages it sent) — two bridges of different epochs behind one
 * address, as a proxy makes them look.
 */
async function scriptedFleet(scripts) {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: await freePort() });
    await new Promise((r) => wss.once("listening", r));
    const subscribes = [];
    let n = 0;
    wss.on("connection", (sock) => {
        const script = scripts[Math.min(n++, scripts.length - 1)];
        const mine = [];
        subscribes.push(mine);
        sock.on("message", (data) => {
            const m = JSON.parse(data);
            if (m.type === "subscribe") {
                mine.push(m);
                script.onSubscribe(sock, m);
            }
        });
        sock.send(JSON.stringify({ type: "connected", payload: { connection_id: `c${n}`,
            server_time: iso(Date.now()), epoch: script.epoch, user: "alice" }, timestamp: iso(Date.now()) }));
    });
    return {
        url: `ws://127.0.0.1:${wss.address().port}/ws`,
        subscribes,
        close: () => new Promise((r) => {
            wss.clients.forEach((c) => c.terminate());
            wss.close(r);
        }),
    };
}

const send = (sock, ...msgs) => msgs.forEach((m) => sock.send(JSON.stringify(m)));

describe("failover between bridges (scripted bridges)", () => {
    test("since carries time; a recovery by time drops the overlap's repeats, keeps the rest", async () => {
        /* Bridge A: 5 messages, then it dies (the socket is cut). */
        const fromA = [1, 2, 3, 4, 5].map((i) => deviceMsg("telemetry", "d1", 100 + i, T0 + i * 100, T0 + i * 100,
            { fields: { v: i }, tags: {} }));
        const alertA = deviceMsg("alert", "d1", 106, T0 + 550, T0 + 500,
            { rule_name: "high", state: "firing", alert_id: "a", severity: "warning", field: "v", value: 5, threshold: 4 });
        const bridgeA = {
            epoch: "epoch-A",
            onSubscribe(sock, m) {
                send(sock, { type: "subscribed", payload: { rooms: m.payload.rooms, seq: 100 }, timestamp: iso(T0) },
                    ...fromA, alertA);
                setTimeout(() => sock.terminate(), 100);
            },
        };
        /* Bridge B (another epoch): replays from time − 2 s: messages 3..5 and the alert
         * again (its own seq and envelope times), another rule's alert on the same sample, a
         * device without timestamps (stamped by B: differs), then new ones. */
        const bridgeB = {
            epoch: "epoch-B",
            onSubscribe(sock, m) {
                const t = (i) => T0 + i * 100 + 7; // B got each message 7 ms later than A
                send(sock, { type: "subscribed", payload: { rooms: m.payload.rooms, seq: 900, recovered: true,
                    mode: "time" }, timestamp: iso(Date.now()) },
                ...[3, 4, 5].map((i) => ({ ...fromA[i - 1], seq: 880 + i, timestamp: iso(t(i)) })),
                { ...alertA, seq: 886, timestamp: iso(t(5.5)) },
                { ...alertA, seq: 887, timestamp: iso(t(5.5)), payload: { ...alertA.payload, rule_name: "other" } },
                deviceMsg("telemetry", "d1", 888, t(6), T0 + 600, { fields: { v: 6 }, tags: {} }),
                deviceMsg("telemetry", "d1", 889, T0 + 9000, T0 + 5 * 100, { fields: { v: 55 }, tags: {} }));
            },
        };
        const fleet = await scriptedFleet([bridgeA, bridgeB]);
        const c = new TelebridgeClient({ url: fleet.url, credential: "token", getToken: () => "t", WebSocket,
            minDelayMs: 50, maxDelayMs: 100 });
        const got = [];
        const repeats = [];
        c.addEventListener("telemetry", (e) => got.push(e.detail));
        c.addEventListener("alert", (e) => got.push(e.detail));
        c.addEventListener("repeat", (e) => repeats.push(e.detail));
        try {
            c.subscribe({ rooms: ["global"], max_hz: 2, fields: ["v"], series: 10 });
            const recovered = nextEvent(c, "subscribed", (m) => m.payload.recovered === true, 5000);
            c.connect();
            await recovered;
            await waitFor(() => got.length === 9, 5000, "A's 6 messages and B's 3 new ones");
            const [toA, toB] = fleet.subscribes;
            assert.deepEqual(toA[0].payload, { rooms: ["global"], max_hz: 2, fields: ["v"], series: 10 },
                "the options go with the request");
            assert.deepEqual(toB[0].payload, { rooms: ["global"], max_hz: 2, fields: ["v"], series: 10,
                since: { epoch: "epoch-A", seq: 106, time: alertA.timestamp } },
            "and again on reconnection, with since {epoch, seq, time} of the last message");
            assert.deepEqual(repeats.map((m) => m.seq), [883, 884, 885, 886], "the overlap's repeats");
            assert.equal(c.repeatsDropped, 4);
            assert.deepEqual(got.slice(6).map((m) => m.seq), [887, 888, 889],
                "another rule's alert, a new message, and one past the window: kept");
            assert.deepEqual(c.position, { epoch: "epoch-B", seq: 889, time: iso(T0 + 9000) },
                "the position moves to bridge B's stream");
            assert.equal(c.repeats.armed, false, "past the window the filter is off");
        } finally {
            c.close();
            await fleet.close();
        }
    });

    test("until bridge B sends a message the position stays A's; a snapshot answer takes B's", async () => {
        const fromA = deviceMsg("telemetry", "d1", 7, T0, T0, { fields: { v: 1 }, tags: {} });
        const quick = (epoch, answer) => ({
            epoch,
            onSubscribe(sock, m) {
                send(sock, { type: "subscribed", payload: { rooms: m.payload.rooms, ...answer },
                    timestamp: iso(T0 + 1000) }, ...(epoch === "A" ? [fromA] : []));
                setTimeout(() => sock.terminate(), 100);
            },
        });
        const fleet = await scriptedFleet([quick("A", { seq: 6 }), quick("B", { seq: 40, recovered: true, mode: "time" }),
            quick("C", { seq: 70, recovered: false }), quick("C", { seq: 71, recovered: true, mode: "seq" })]);
        const c = new TelebridgeClient({ url: fleet.url, credential: "token", getToken: () => "t", WebSocket,
            rooms: ["device:d1"], minDelayMs: 50, maxDelayMs: 100 });
        try {
            c.connect();
            await waitFor(() => fleet.subscribes.length === 4 && fleet.subscribes[3].length, 5000, "four connections");
            const since = fleet.subscribes.map((s) => s[0].payload.since);
            assert.equal(since[0], undefined);
            assert.deepEqual(since[1], { epoch: "A", seq: 7, time: fromA.timestamp });
            assert.deepEqual(since[2], since[1], "B recovered by time but sent nothing: still A's position");
            assert.deepEqual(since[3], { epoch: "C", seq: 70, time: iso(T0 + 1000) },
                "C's snapshot answer: its seq and the subscribed timestamp");
        } finally {
            c.close();
            await fleet.close();
        }
    });
});

describe("against a bridge", () => {
    let stack;
    before(async () => { stack = await startStack({ auth: { leeway_s: 0, expiry_warning_s: 3 } }); });
    after(async () => {
        const { code, log } = await stack.stop();
        assert.equal(code, 0, "the bridge exits 0 on SIGTERM");
        assert.doesNotMatch(log, /eyJ[\w-]+\.eyJ/, "no token in the bridge's log");
    });

    test("connects, subscribes, and delivers typed events", async () => {
        const sent = [];
        const c = client(stack, { rooms: ["device:js-a"], WebSocket: spyClass(sent) });
        const states = [];
        c.addEventListener("state", (e) => states.push(e.detail.state));
        try {
            const connected = nextEvent(c, "connected");
            const subscribed = nextEvent(c, "subscribed");
            c.connect();
            const hello = await connected;
            assert.equal(hello.payload.user, "alice");
            assert.equal(typeof hello.payload.epoch, "string");
            assert.deepEqual((await subscribed).payload.rooms, ["device:js-a"]);
            assert.deepEqual(sent[0], { type: "subscribe", payload: { rooms: ["device:js-a"] } },
                "the first subscribe has no since");
            const tele = nextEvent(c, "telemetry", (m) => m.payload.fields.temperature === 21.5);
            const any = nextEvent(c, "message", (m) => m.type === "telemetry");
            await stack.broker.publish(...telemetry("js-a", 21.5));
            const msg = await tele;
            assert.equal(msg.room, "device:js-a");
            assert.equal((await any).seq, msg.seq);
            assert.equal(c.lastSeq, msg.seq);
            assert.equal(c.epoch, hello.payload.epoch);
            const rtt = await c.ping();
            assert.ok(Number.isFinite(rtt) && rtt >= 0);
            const err = nextEvent(c, "error");
            c.send({ type: "no-such-type" });
            assert.equal((await err).payload.code, "unknown_type");
            assert.deepEqual(states, ["connecting", "open"]);
        } finally {
            c.close();
        }
        assert.equal(c.state, "closed");
        await waitFor(async () => (await stack.bridge.stats()).connections === 0, 5000,
            "the bridge to see the close");
    });

    test("subscribe options reach the bridge; a bad one is its bad_request, the connection stays", async () => {
        const sent = [];
        const c = client(stack, { WebSocket: spyClass(sent) });
        try {
            c.subscribe({ rooms: ["device:js-o"], max_hz: 2, fields: ["temperature"], series: 5 });
            const subscribed = nextEvent(c, "subscribed");
            c.connect();
            assert.deepEqual((await subscribed).payload.rooms, ["device:js-o"]);
            assert.deepEqual(sent[0].payload, { rooms: ["device:js-o"], max_hz: 2, fields: ["temperature"], series: 5 });
            const err = nextEvent(c, "error");
            c.subscribe({ rooms: ["device:js-p"], max_hz: 1000 });
            const e = await err;
            assert.equal(e.payload.code, "bad_request");
            assert.match(e.payload.message, /max_hz/);
            const ok = nextEvent(c, "subscribed");
            c.subscribe({ rooms: ["device:js-p"], fields: ["humidity"] });
            assert.deepEqual((await ok).payload.rooms, ["device:js-p"], "the next request is served");
            assert.deepEqual(c.subscriptions.map((x) => [[...x.rooms], x.options]),
                [[["device:js-o"], { max_hz: 2, fields: ["temperature"], series: 5 }],
                    [["device:js-p"], { fields: ["humidity"] }]], "the latest options of each room");
            assert.throws(() => c.subscribe({ rooms: ["global"], since: { epoch: "e", seq: 1 } }), TypeError);
            assert.equal(c.state, "open");
        } finally {
            c.close();
        }
    });

    test("options take effect: a capped, projected room beside a full one; series on subscribe", async () => {
        const c = client(stack);
        const got = { "js-cap": [], "js-free": [] };
        c.addEventListener("telemetry", (e) => {
            if (!e.detail.snapshot) got[e.detail.payload.device_id]?.push(e.detail);
        });
        const c2 = client(stack);
        try {
            c.subscribe({ rooms: ["device:js-cap"], max_hz: 2, fields: ["temperature"] });
            c.subscribe(["device:js-free"]);
            const both = nextEvent(c, "subscribed", (m) => m.payload.rooms[0] === "device:js-free");
            c.connect();
            await both;
            const t0 = Date.now();
            for (let i = 1; i <= 10; i++) {
                for (const d of ["js-cap", "js-free"])
                    await stack.broker.publish(`devices/${d}/telemetry`, JSON.stringify({ temperature: i, humidity: 50 + i }));
            }
            await waitFor(() => got["js-free"].length === 10 &&
                got["js-cap"].at(-1)?.payload.fields.temperature === 10, 5000, "the last of each");
            const seconds = (Date.now() - t0) / 1000;
            const cap = got["js-cap"];
            assert.ok(cap.length >= 1 && cap.length <= 2 + 2 * seconds,
                `${cap.length} capped messages in ${seconds.toFixed(2)} s at max_hz 2`);
            assert.ok(cap.length < 10, "conflated");
            for (const m of cap) assert.deepEqual(Object.keys(m.payload.fields), ["temperature"], "fields projection");
            assert.deepEqual(got["js-free"].map((m) => m.payload.fields.temperature), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                "the uncapped room in full, once each");
            assert.deepEqual(Object.keys(got["js-free"][0].payload.fields).sort(), ["humidity", "temperature"]);

            // Another connection asks for the last 5 values: a series message before the snapshot.
            const order = [];
            c2.addEventListener("message", (e) => order.push(e.detail.type + (e.detail.snapshot ? "*" : "")));
            c2.subscribe({ rooms: ["device:js-cap"], series: 5 });
            const series = nextEvent(c2, "series");
            c2.connect();
            const s = await series;
            assert.equal(s.room, "device:js-cap");
            assert.deepEqual(s.payload.fields.temperature.map((p) => p[1]), [6, 7, 8, 9, 10]);
            assert.ok(s.payload.fields.temperature.every((p) => Number.isInteger(p[0]) && p[0] > 0), "t_ms");
            await waitFor(() => order.includes("telemetry*"), 5000, "the snapshot");
            assert.ok(order.indexOf("series") < order.indexOf("telemetry*"), `series first: ${order}`);
        } finally {
            c.close();
            c2.close();
        }
    });

    test("a compressing connection (ws offers permessage-deflate) gets every frame intact", async () => {
        const sockets = [];
        class Recording extends WebSocket {
            constructor(...args) {
                super(...args);
                sockets.push(this);
            }
        }
        const c = client(stack, { rooms: ["device:js-z"], WebSocket: Recording });
        try {
            const subscribed = nextEvent(c, "subscribed");
            c.connect();
            await subscribed;
            const ws = sockets.at(-1);
            assert.match(ws.extensions, /^permessage-deflate/, "ws negotiated compression");
            /* ~300 B, 40 KB of hex noise, a frame past 64 KiB, and 30 KB that compresses well
             * (whose bytes on the socket show that the bridge compressed it). */
            const noise = (n) => randomBytes(n / 2).toString("hex");
            const blobs = ["x".repeat(150), noise(40000), noise(65400), "telemetry ".repeat(3000)];
            for (const [i, blob] of blobs.entries()) {
                const read = ws._socket.bytesRead;
                const got = nextEvent(c, "telemetry", (m) => m.payload.fields.i === i);
                await stack.broker.publish("devices/js-z/telemetry", JSON.stringify({ fields: { i, blob } }));
                assert.equal((await got).payload.fields.blob, blob, `message ${i}`);
                if (i === blobs.length - 1)
                    assert.ok(ws._socket.bytesRead - read < blob.length / 4,
                        `${ws._socket.bytesRead - read} bytes read for ${blob.length}`);
            }
        } finally {
            c.close();
        }
    });

    test("the snapshot fills in; the position is the subscribed seq, not the snapshot's", async () => {
        const before = (await stack.bridge.stats()).messages_in;
        await stack.broker.publish(...telemetry("js-s", 7.5));
        await waitFor(async () => (await stack.bridge.stats()).messages_in > before, 5000, "ingest");
        const c = client(stack, { rooms: ["device:js-s"] });
        try {
            const subscribed = nextEvent(c, "subscribed");
            const snap = nextEvent(c, "telemetry", (m) => m.snapshot === true);
            c.connect();
            const sub = await subscribed;
            const s = await snap;
            assert.equal(s.payload.fields.temperature, 7.5);
            assert.equal(typeof sub.payload.seq, "number");
            assert.ok(s.seq <= sub.payload.seq);
            assert.equal(c.lastSeq, sub.payload.seq);
        } finally {
            c.close();
        }
    });

    test("connects with a ticket, and stops on a refused token", async () => {
        assert.ok(await ticketsSupported(stack.bridge, await stack.bridge.mint()),
            "POST /api/v1/ws/ticket (docs/protocol.md → Tickets)");
        const sent = [];
        class UrlSpy extends WebSocket {
            constructor(url, ...rest) {
                sent.push(url);
                super(url, ...rest);
            }
        }
        const c = client(stack, { credential: "ticket", WebSocket: UrlSpy });
        try {
            const connected = nextEvent(c, "connected");
            c.connect();
            assert.equal((await connected).payload.user, "alice");
            assert.match(sent[0], /\?ticket=/);
            assert.doesNotMatch(sent[0], /token=/);
        } finally {
            c.close();
        }
        const bad = client(stack, { credential: "ticket", getToken: () => "not.a.token" });
        const unauthorized = nextEvent(bad, "unauthorized");
        bad.connect();
        assert.equal((await unauthorized).status, 401);
        assert.equal(bad.state, "closed");
    });

    test("reconnects after a bridge restart with backoff, resubscribes with since", async () => {
        const sent = [];
        const c = client(stack, { rooms: ["device:js-b"], WebSocket: spyClass(sent) });
        const delays = [];
        c.addEventListener("state", (e) => {
            if (e.detail.state === "reconnecting") delays.push([e.detail.attempt, e.detail.delayMs]);
        });
        try {
            const first = nextEvent(c, "telemetry");
            c.connect();
            await nextEvent(c, "subscribed");
            await stack.broker.publish(...telemetry("js-b", 1));
            const seen = await first;
            const epoch = c.epoch;

            const closed = nextEvent(c, "close");
            await stack.bridge.stop();
            const close = await closed;
            assert.equal(close.code, 1001, "the bridge says going away");
            assert.equal(close.willReconnect, true);
            await sleep(1500); // a few attempts fail while the bridge is down
            assert.ok(delays.length >= 2, `several attempts: ${JSON.stringify(delays)}`);
            delays.forEach(([attempt, d], i) => {
                assert.equal(attempt, i);
                assert.ok(d >= 0 && d < Math.min(1000, 100 * 2 ** i), `delay ${d} for attempt ${i}`);
            });
            // The broker keeps the bridge's session: this reaches the bridge once it is back,
            // before the client resubscribes, so the client sees it in the snapshot.
            await stack.broker.publish(...telemetry("js-b", 2));
            const got = [];
            c.addEventListener("telemetry", (e) => got.push(e.detail));
            const reconnected = nextEvent(c, "subscribed", () => true, 15000);
            await stack.bridge.start();
            await reconnected;
            const live = nextEvent(c, "telemetry", (m) => m.payload.fields.temperature === 3);
            await stack.broker.publish(...telemetry("js-b", 3));
            await live;
            const snap = got.filter((m) => m.snapshot);
            assert.deepEqual(snap.map((m) => m.payload.fields.temperature), [2], "the snapshot");
            assert.ok(got.indexOf(snap[0]) < got.length - 1, "the snapshot comes before live data");
            const resub = sent.filter((m) => m.type === "subscribe").at(-1);
            assert.deepEqual(resub.payload.rooms, ["device:js-b"]);
            assert.deepEqual(resub.payload.since, { epoch, seq: seen.seq, time: seen.timestamp },
                "since names the last message seen before the drop");
            assert.equal(c.state, "open");
        } finally {
            c.close();
            if (!stack.bridge.proc) await stack.bridge.start();
        }
    });

    test("a dropped connection recovers the messages it missed", async () => {
        const sent = [];
        // random 0.9 with 1 s: the first retry waits 900 ms, time to publish into the gap.
        const c = client(stack, { rooms: ["device:js-c"], WebSocket: spyClass(sent), minDelayMs: 1000,
            random: () => 0.9 });
        try {
            c.connect();
            await nextEvent(c, "subscribed");
            const first = nextEvent(c, "telemetry");
            await stack.broker.publish(...telemetry("js-c", 0));
            const seen = await first;
            const closed = nextEvent(c, "close");
            c.ws.terminate();
            await closed;
            for (const v of [1, 2, 3]) await stack.broker.publish(...telemetry("js-c", v));
            const got = [];
            c.addEventListener("telemetry", (e) => got.push(e.detail));
            const subscribed = await nextEvent(c, "subscribed", () => true, 5000);
            assert.deepEqual(sent.filter((m) => m.type === "subscribe").at(-1).payload.since,
                { epoch: c.epoch, seq: seen.seq, time: seen.timestamp });
            assert.equal(subscribed.payload.recovered, true);
            assert.equal(subscribed.payload.mode, "seq", "the same bridge: a replay by seq");
            await waitFor(() => got.length >= 3, 5000, "the three missed messages");
            assert.deepEqual(got.map((m) => m.payload.fields.temperature), [1, 2, 3]);
            assert.deepEqual(got.map((m) => m.seq), [seen.seq + 1, seen.seq + 2, seen.seq + 3],
                "in order, right after the last one seen");
        } finally {
            c.close();
        }
    });

    test("refreshes the token on a timer before exp", async () => {
        let calls = 0;
        const tokens = [];
        const getToken = async () => {
            const tk = await stack.bridge.mint({ ttl: calls++ === 0 ? "4s" : "1h" });
            tokens.push(tk);
            return tk;
        };
        // The timer fires 2.5 s before exp, about 1.5 s in; token_expiring would come at 3 s.
        const c = client(stack, { getToken, refreshMarginS: 2.5 });
        const closes = [];
        c.addEventListener("close", (e) => closes.push(e.detail.code));
        try {
            const refreshed = nextEvent(c, "refreshed", () => true, 6000);
            c.connect();
            const ans = await refreshed;
            assert.equal(calls, 2);
            assert.equal(c.token, tokens[1]);
            assert.ok(ans.payload.exp > Date.now() / 1000 + 3000, "the new exp is an hour away");
            await sleep(3500); // past the first token's exp
            assert.deepEqual(closes, []);
            assert.equal(c.state, "open");
            await c.ping();
        } finally {
            c.close();
        }
    });

    test("refreshes on the bridge's token_expiring", async () => {
        let calls = 0;
        const getToken = () => stack.bridge.mint({ ttl: calls++ === 0 ? "5s" : "1h" });
        // A negative margin puts the timer after exp: only token_expiring can save the connection.
        const c = client(stack, { getToken, refreshMarginS: -100 });
        try {
            const warned = nextEvent(c, "token_expiring", () => true, 7000);
            const closed = nextEvent(c, "close", () => true, 7000);
            c.connect();
            const first = await Promise.race([warned.then(() => "warned"), closed.then(() => "closed")]);
            assert.equal(first, "warned", "token_expiring before the close");
            await nextEvent(c, "refreshed", () => true, 5000);
            assert.equal(calls, 2);
            await sleep(3000); // past the first token's exp
            assert.equal(c.state, "open");
        } finally {
            c.close();
        }
    });

    test("the browser's online event ends a backoff wait at once", async () => {
        globalThis.window = new EventTarget(); // what a browser page has
        // A first retry that would wait 50 s.
        const c = client(stack, { minDelayMs: 100000, maxDelayMs: 100000, random: () => 0.5 });
        try {
            c.connect();
            await nextEvent(c, "connected");
            const waiting = nextEvent(c, "state", (d) => d.state === "reconnecting");
            c.ws.terminate();
            assert.equal((await waiting).delayMs, 50000);
            const again = nextEvent(c, "connected", () => true, 3000);
            window.dispatchEvent(new Event("online"));
            await again;
        } finally {
            c.close();
            delete globalThis.window;
        }
    });

    test("a bridge that stops answering pings is dropped and reconnected", async () => {
        const c = client(stack, { WebSocket: NoPongWebSocket, pingIntervalMs: 300, pongTimeoutMs: 300 });
        try {
            const closed = nextEvent(c, "close", () => true, 3000);
            c.connect();
            await nextEvent(c, "connected");
            const again = nextEvent(c, "connected", () => true, 5000);
            const close = await closed;
            assert.equal(close.code, 4000);
            assert.equal(close.willReconnect, true);
            await again;
        } finally {
            c.close();
        }
    });
});
