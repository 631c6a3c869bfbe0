/*
 * tools/bench/client_js.mjs — what web/telebridge-client.js costs per received message in Node
 * (no dependencies; no network: frames are fed to the client's message handler directly):
 *
 *   node tools/bench/client_js.mjs [--messages 300000] [--devices 1000]
 *
 * Prints one JSON line: ns per message through onMessage (JSON.parse, position, repeat filter,
 * the two events), the same with the repeat filter's record() stubbed (what the filter adds),
 * the filter's size at the end, and what arm() (the start of a recovery by time) costs with a
 * full filter. Figures: docs/performance.md → The web client.
 */
import { TelebridgeClient } from "../../web/telebridge-client.js";

const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MESSAGES = arg("messages", 300000);
const DEVICES = arg("devices", 1000);
const t0 = Date.parse("2026-12-02T06:00:00.000Z");

const frames = Array.from({ length: 10000 }, (_, i) => JSON.stringify({
    type: "telemetry", room: `device:d${i % DEVICES}`, seq: i + 1, timestamp: new Date(t0 + i).toISOString(),
    payload: { device_id: `d${i % DEVICES}`, timestamp: new Date(t0 + i).toISOString(),
        fields: { temperature: 20 + (i % 7), humidity: 40 + (i % 5) }, tags: { site: "lab" } },
}));

function run(stub) {
    const c = new TelebridgeClient({ url: "ws://127.0.0.1:1/ws", getToken: () => "t" });
    c.epoch = "bench";
    if (stub) c.repeats.record = () => {};
    let events = 0;
    c.addEventListener("telemetry", () => events++);
    for (let i = 0; i < 20000; i++) c.onMessage(frames[i % frames.length]); // warm-up
    const start = process.hrtime.bigint();
    for (let i = 0; i < MESSAGES; i++) c.onMessage(frames[i % frames.length]);
    const ns = Number(process.hrtime.bigint() - start) / MESSAGES;
    if (events !== MESSAGES + 20000) throw new Error(`${events} events for ${MESSAGES + 20000} messages`);
    return { ns, c };
}

const full = run(false);
const stubbed = run(true);
const armStart = process.hrtime.bigint();
full.c.repeats.arm(t0);
const armMs = Number(process.hrtime.bigint() - armStart) / 1e6;
console.log(JSON.stringify({
    messages: MESSAGES, devices: DEVICES, node: process.version,
    ns_per_message: Math.round(full.ns), ns_per_message_filter_stubbed: Math.round(stubbed.ns),
    filter_ns_per_message: Math.round(full.ns - stubbed.ns), filter_entries: full.c.repeats.size,
    arm_ms: Number(armMs.toFixed(2)),
}));
