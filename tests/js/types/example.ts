/*
 * A typed use of web/telebridge-client.js through telebridge-client.d.ts: tsc --noEmit must
 * accept it (tests/js/types.test.mjs). Never run; it only has to type-check.
 */
import {
    DEFAULTS, RepeatFilter, TelebridgeClient, backoffDelay, repeatKey, ticketUrlFor, tokenExpiry,
    type ConnectionState, type FieldValue, type Room, type SeriesPoint, type ServerMessage,
    type Since, type SubscribeRequest,
} from "../../../web/telebridge-client.js";

declare const jwt: string;

const tb = new TelebridgeClient({
    url: "wss://bridge.example/ws",
    getToken: async () => jwt,
    rooms: ["global"],
    credential: "ticket",
    minDelayMs: 500,
    WebSocket: globalThis.WebSocket,
    fetch: globalThis.fetch,
});

const request: SubscribeRequest = {
    rooms: ["group:building-a", "device:sensor-1", "user:alice"],
    max_hz: 1,
    fields: ["temperature", "humidity"],
    series: 60,
};
tb.subscribe(request);
tb.subscribe(["device:sensor-2"]);
tb.unsubscribe(["device:sensor-2"]);

const latest = new Map<string, Record<string, FieldValue>>();
const charts = new Map<string, Map<string, SeriesPoint[]>>();

tb.addEventListener("telemetry", (e) => {
    const { device_id, fields } = e.detail.payload;
    const seq: number = e.detail.seq;
    const snapshot: boolean = e.detail.snapshot === true;
    latest.set(device_id, { ...latest.get(device_id), ...fields });
    void seq;
    void snapshot;
});
tb.addEventListener("series", (e) => {
    const byField = new Map<string, SeriesPoint[]>();
    for (const [name, points] of Object.entries(e.detail.payload.fields)) {
        const [t0, v0]: [number, number] = points[0];
        byField.set(name, points);
        void t0;
        void v0;
    }
    charts.set(e.detail.payload.device_id, byField);
});
tb.addEventListener("device_status", (e) => console.log(e.detail.payload.status.toUpperCase()));
tb.addEventListener("alert", (e) => {
    const state: "firing" | "resolved" = e.detail.payload.state;
    console.log(e.detail.payload.rule_name, state, e.detail.payload.threshold.toFixed(1));
});
tb.addEventListener("notice", (e) => console.log(e.detail.room, e.detail.payload));
tb.addEventListener("subscribed", (e) => {
    const p = e.detail.payload;
    if (p.recovered === true) {
        const mode: "seq" | "time" = p.mode; // present exactly when recovered
        console.log(`recovered by ${mode}`);
    }
    const rooms: Room[] = p.rooms;
    void rooms;
});
tb.addEventListener("error", (e) => {
    if (e.detail.payload.code === "bad_request") console.warn(e.detail.payload.message);
    console.log(e.detail.payload.rooms?.join(", "));
});
tb.addEventListener("state", (e) => {
    const s: ConnectionState = e.detail.state;
    if (s === "reconnecting") console.log(`retry in ${e.detail.delayMs ?? 0} ms`);
});
tb.addEventListener("close", (e) => console.log(e.detail.code, e.detail.willReconnect));
tb.addEventListener("unauthorized", (e) => console.log(e.detail.status));
tb.addEventListener("repeat", (e) => console.log("dropped", e.detail.payload.device_id));
tb.addEventListener("connected", (e) => console.log(e.detail.payload.epoch, e.detail.payload.user));
tb.addEventListener("token_expiring", (e) => console.log(e.detail.payload.expires_in));
tb.addEventListener("message", (e) => describe(e.detail));
tb.addEventListener("some-future-type", (e) => console.log(e.type)); // any other type: an Event

function describe(m: ServerMessage): string {
    switch (m.type) {
    case "telemetry":
        return Object.keys(m.payload.fields).join(",");
    case "series":
        return m.payload.device_id;
    case "connected":
        return m.payload.connection_id;
    default:
        return m.type;
    }
}

tb.connect();
tb.ping().then((ms: number) => console.log(`${ms} ms`));
const sent: boolean = tb.send({ type: "ping", request_id: 7 });
const pos: Since | null = tb.position;
const seq: number = tb.lastSeq;
const dropped: number = tb.repeatsDropped;
const all: Set<Room> = tb.rooms;
for (const sub of tb.subscriptions) console.log([...sub.rooms], sub.options.max_hz);
tb.close(1000, "bye");

const f = new RepeatFilter(DEFAULTS.repeatWindowMs, 1000);
f.record({ type: "telemetry", payload: { device_id: "d", timestamp: "t" }, timestamp: "t" });
f.arm(Date.now());
const rep: boolean = f.isRepeat({ type: "telemetry", payload: { device_id: "d", timestamp: "t" } });
const key: string | null = repeatKey({ type: "alert", payload: {} });
const wait: number = backoffDelay(3, Math.random, 1000, 30000);
const exp: number | null = tokenExpiry(jwt);
const ticketUrl: string = ticketUrlFor("wss://bridge.example/ws");
void [sent, pos, seq, dropped, all, rep, key, wait, exp, ticketUrl];
