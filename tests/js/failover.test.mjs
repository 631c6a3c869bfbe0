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
        fwd.target = a.port;
    });
    after(async () => {
        if (fwd) await fwd.close();
        if (a) await a.stop(); // SIGKILLed by the test
        const code = b ? await b.stop() : null;
        if (broker) await broker.stop();
        rmSync(dir, { recursive: true, force: true });
        assert.equal(code, 0, "bridge B exits 0 on SIGTERM (and clean under ASan)");
    });

    test("the client ends with every message exactly once, the overlap's repeats dropped", async () => {
        const token = await a.mint();
        const sent = [];
        class Spy extends WebSocket {
            send(data) {
                sent.push(JSON.parse(data));
                super.send(data);
            }
        }
        const c = new TelebridgeClient({ url: `ws://127.0.0.1:${fwd.port}/ws`, credential: "token",
            getToken: () => token, WebSocket: Spy, minDelayMs: 200, maxDelayMs: 400 });
        const got = [];
        c.addEventListener("telemetry", (e) => { if (!e.detail.snapshot) got.push(e.detail); });
        const subscribed = [];
        c.addEventListener("subscribed", (e) => subscribed.push(e.detail.payload));
        const connected = [];
        c.addEventListener("connected", (e) => connected.push(e.detail.payload.epoch));
        try {
            c.subscribe({ rooms: ["device:fo-1"] });
            const first = nextEvent(c, "subscribed");
            c.connect();
            await first;
            const t0 = Date.now();
            for (let n = 1; n <= MESSAGES; n++) {
                // The device's own timestamp: distinct per message, the same on both bridges.
                await broker.publish("devices/fo-1/telemetry", JSON.stringify({
                    fields: { n }, timestamp: new Date(t0 + n).toISOString(),
                }));
                if (n === KILL_AT) {
                    await waitFor(() => got.length >= KILL_AT - 5, 5000, "A to deliver most of them");
                    fwd.target = b.port; // the proxy's next choice
                    a.proc.kill("SIGKILL"); // no close frame: the client sees the TCP connection end
                }
                await sleep(1000 / RATE);
            }
            await waitFor(() => got.length >= MESSAGES, 15000, `all ${MESSAGES} messages (have ${got.length})`);
            await sleep(500); // anything more would be a duplicate
            const ns = got.map((m) => m.payload.fields.n);
            assert.deepEqual(ns, Array.from({ length: MESSAGES }, (_, i) => i + 1),
                "every message exactly once, in order");
            assert.equal(connected.length, 2);
            assert.notEqual(connected[0], connected[1], "B is another bridge life");
            const resub = sent.filter((m) => m.type === "subscribe").at(-1);
            assert.equal(resub.payload.since.epoch, connected[0]);
            assert.match(resub.payload.since.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
            assert.equal(subscribed.at(-1).recovered, true);
            assert.equal(subscribed.at(-1).mode, "time");
            assert.ok(c.repeatsDropped > 0, "B's overlap sent messages again, and they were dropped");
            assert.equal(c.position.epoch, connected[1], "the position is in B's stream now");
        } finally {
            c.close();
        }
    });
});
