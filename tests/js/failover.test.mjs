/*
 * web/telebridge-client.js failing over between two real bridges on one broker
 * (docs/protocol.md → "Recovery across bridges: since.time"): a client behind one address (a
 * TCP forwarder standing in for the proxy) gets numbered messages from bridge A; A is killed and
 * the forwarder sends the reconnection to bridge B, of another epoch, which has ingested the same
 * messages. The client says since {epoch, seq, time}, B answers recovered: true, mode: "time"
 * and replays from 2 s before; the client ends with every message exactly once, having dropped
 * the overlap's repeats. The same with a bridge restart of the same epoch would be mode "seq"
 * (client.test.mjs covers seq recovery).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { TelebridgeClient } from "../../web/telebridge-client.js";
import { Bridge, Broker, freePort, nextEvent, sleep, waitFor } from "./harness.mjs";

const MESSAGES = 60; // numbered messages, MESSAGES / RATE seconds
const RATE = 20; // per second: the 2 s overlap holds ~40 of them
const KILL_AT = 30; // A is killed after this many were published

/* A TCP forwarder on one port to whichever backend port `target` names (the proxy). */
async function forwarder() {
    const port = await freePort();
    const socks = new Set();
    const fwd = { port, target: 0 };
    const server = net.createServer((client) => {
        const upstream = net.connect({ host: "127.0.0.1", port: fwd.target });
        socks.add(client).add(upstream);
        const done = () => { client.destroy(); upstream.destroy(); socks.delete(client); socks.delete(upstream); };
        client.on("error", done).on("close", done);
        upstream.on("error", done).on("close", done);
        client.pipe(upstream).pipe(client);
    });
    await new Promise((r) => server.listen(port, "127.0.0.1", r));
    fwd.close = () => new Promise((r) => {
        socks.forEach((s) => s.destroy());
        server.close(r);
    });
    return fwd;
}

/*
 * Numbered messages for device fo-<tag> through the forwarder, bridge `from` SIGKILLed after
 * KILL_AT of them and the forwarder turned to `to`; the client's telemetry, subscribed answers,
 * connected epochs and sent subscribes. token: valid on both (one fleet secret).
 */
async function failover(broker, fwd, from, to, request, tag, token) {
    const sent = [];
    class Spy extends WebSocket {
        send(data) {
            sent.push(JSON.parse(data));
            super.send(data);
        }
    }
    fwd.target = from.port;
    const c = new TelebridgeClient({ url: `ws://127.0.0.1:${fwd.port}/ws`, credential: "token",
        getToken: () => token, WebSocket: Spy, minDelayMs: 200, maxDelayMs: 400 });
    const r = { c, sent, got: [], subscribed: [], connected: [] };
    c.addEventListener("telemetry", (e) => { if (!e.detail.snapshot) r.got.push(e.detail); });
    c.addEventListener("subscribed", (e) => r.subscribed.push(e.detail.payload));
    c.addEventListener("connected", (e) => r.connected.push(e.detail.payload.epoch));
    c.subscribe({ rooms: [`device:fo-${tag}`], ...request });
    const first = nextEvent(c, "subscribed");
    c.connect();
    await first;
    const t0 = Date.now();
    const lastN = () => r.got.at(-1)?.payload.fields.n || 0;
    for (let n = 1; n <= MESSAGES; n++) {
        // The device's own timestamp: distinct per message, the same on both bridges.
        await broker.publish(`devices/fo-${tag}/telemetry`, JSON.stringify({
            fields: { n }, timestamp: new Date(t0 + n).toISOString(),
        }));
        if (n === KILL_AT) {
            await waitFor(() => lastN() >= (request.max_hz ? 1 : KILL_AT - 5), 5000, "the first bridge to deliver");
            fwd.target = to.port; // the proxy's next choice
            from.proc.kill("SIGKILL"); // no close frame: the client sees the TCP connection end
        }
        await sleep(1000 / RATE);
    }
    await waitFor(() => lastN() === MESSAGES, 15000, `message ${MESSAGES} (have ${r.got.length})`);
    await sleep(500); // anything more would be a duplicate
    return r;
}

describe("failover between two bridges on one broker", () => {
    let dir;
    let broker;
    let a;
    let b;
    let fwd;
    before(async () => {
        dir = mkdtempSync(path.join(tmpdir(), "tb-js-failover-"));
        broker = new Broker(dir);
        await broker.start();
        const dirA = mkdtempSync(path.join(dir, "a-"));
        const dirB = mkdtempSync(path.join(dir, "b-"));
        a = new Bridge(dirA, broker.port);
        // One fleet, one secret: a token works on either bridge.
        b = new Bridge(dirB, broker.port, { auth: { secret_file: a.secretFile } });
        await a.start();
        await b.start();
        fwd = await forwarder();
    });
    after(async () => {
        if (fwd) await fwd.close();
        if (b) await b.stop(); // SIGKILLed by the second test
        const code = a ? await a.stop() : null;
        if (broker) await broker.stop();
        rmSync(dir, { recursive: true, force: true });
        assert.equal(code, 0, "bridge A, restarted, exits 0 on SIGTERM (and clean under ASan)");
    });

    test("the client ends with every message exactly once, the overlap's repeats dropped", async () => {
        const r = await failover(broker, fwd, a, b, {}, "1", await a.mint());
        try {
            const ns = r.got.map((m) => m.payload.fields.n);
            assert.deepEqual(ns, Array.from({ length: MESSAGES }, (_, i) => i + 1),
                "every message exactly once, in order");
            assert.equal(r.connected.length, 2);
            assert.notEqual(r.connected[0], r.connected[1], "B is another bridge life");
            const resub = r.sent.filter((m) => m.type === "subscribe").at(-1);
            assert.equal(resub.payload.since.epoch, r.connected[0]);
            assert.match(resub.payload.since.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
            assert.equal(r.subscribed.at(-1).recovered, true);
            assert.equal(r.subscribed.at(-1).mode, "time");
            assert.ok(r.c.repeatsDropped > 0, "B's overlap sent messages again, and they were dropped");
            assert.equal(r.c.position.epoch, r.connected[1], "the position is in B's stream now");
        } finally {
            r.c.close();
        }
    });

    test("with max_hz: states only move forward across the failover, none twice, the newest last", async () => {
        await a.start(); // back, as a new life (no history.file): it ingests from now on
        const r = await failover(broker, fwd, b, a, { max_hz: 1 }, "2", await a.mint());
        try {
            const ns = r.got.map((m) => m.payload.fields.n);
            assert.ok(ns.length < MESSAGES / 2, `conflated: ${ns}`);
            assert.ok(ns.every((n, i) => i === 0 || n > ns[i - 1]), `never an older state again: ${ns}`);
            assert.equal(ns.at(-1), MESSAGES);
            assert.equal(r.subscribed.at(-1).recovered, true);
            assert.equal(r.subscribed.at(-1).mode, "time");
            assert.equal(r.sent.filter((m) => m.type === "subscribe").at(-1).payload.max_hz, 1,
                "the cap goes with the reconnection");
        } finally {
            r.c.close();
        }
    });
});
