/*
 * Tests of web/telebridge-client.js with Node's test runner, against a real telebridge and
 * mosquitto started here (see harness.mjs). Run: cd tests/js && npm ci && node --test
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import {
    backoffDelay, DEFAULTS, TelebridgeClient, ticketUrlFor, tokenExpiry,
} from "../../web/telebridge-client.js";
import { nextEvent, sleep, startStack, ticketsSupported, waitFor } from "./harness.mjs";

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
        await new Promise((r) => server.listen(0, "127.0.0.1", r));
        const c = new TelebridgeClient({ url: `ws://127.0.0.1:${server.address().port}/ws`,
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

    test("connects with a ticket, and stops on a refused token", async (t) => {
        if (!(await ticketsSupported(stack.bridge, await stack.bridge.mint()))) {
            t.skip("the bridge serves no POST /api/v1/ws/ticket");
            return;
        }
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

    test("reconnects after a bridge restart with backoff, resubscribes with since", async (t) => {
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
            if (snap.length) {
                assert.deepEqual(snap.map((m) => m.payload.fields.temperature), [2]);
                assert.ok(got.indexOf(snap[0]) < got.length - 1, "the snapshot comes before live data");
            } else {
                t.diagnostic("this bridge sends no snapshot yet");
            }
            const resub = sent.filter((m) => m.type === "subscribe").at(-1);
            assert.deepEqual(resub.payload.rooms, ["device:js-b"]);
            assert.deepEqual(resub.payload.since, { epoch, seq: seen.seq },
                "since names the last message seen before the drop");
            assert.equal(c.state, "open");
        } finally {
            c.close();
            if (!stack.bridge.proc) await stack.bridge.start();
        }
    });

    test("a dropped connection recovers the messages it missed", async (t) => {
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
                { epoch: c.epoch, seq: seen.seq });
            if (subscribed.payload.recovered !== true) {
                t.skip("the bridge holds no history to recover from (recovered: false)");
                return;
            }
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

    test("refreshes on the bridge's token_expiring", async (t) => {
        let calls = 0;
        const getToken = () => stack.bridge.mint({ ttl: calls++ === 0 ? "5s" : "1h" });
        // A negative margin puts the timer after exp: only token_expiring can save the connection.
        const c = client(stack, { getToken, refreshMarginS: -100 });
        try {
            const warned = nextEvent(c, "token_expiring", () => true, 7000);
            const closed = nextEvent(c, "close", () => true, 7000);
            c.connect();
            const first = await Promise.race([warned.then(() => "warned"), closed.then(() => "closed")]);
            if (first === "closed") {
                t.skip("the bridge sends no token_expiring");
                return;
            }
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
