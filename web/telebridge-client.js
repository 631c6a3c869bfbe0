/*
 * telebridge-client.js — a small client for the telebridge WebSocket protocol (docs/protocol.md).
 * An ES module without dependencies; runs in browsers and in Node (pass a WebSocket class).
 *
 *   import { TelebridgeClient } from "./telebridge-client.js";
 *   const tb = new TelebridgeClient({ url: "ws://127.0.0.1:8080/ws", getToken: () => token });
 *   tb.addEventListener("telemetry", (e) => console.log(e.detail.payload.fields));
 *   tb.subscribe({ rooms: ["global"], series: 60, max_hz: 1 }); // or tb.subscribe(["global"])
 *   tb.connect();
 *
 * In Node 20 (no global WebSocket) pass one: `import WebSocket from "ws"` and
 * `new TelebridgeClient({ url, getToken, WebSocket })`; fetch is global since Node 18.
 * Types for TypeScript: telebridge-client.d.ts beside this file.
 *
 * What it does for you:
 * - credentials: before every connection it asks getToken() (sync or async) for a JWT and, by
 *   default, exchanges it for a single-use ticket (POST /api/v1/ws/ticket), so the token never
 *   sits in a URL; `credential: "token"` sends ?token= instead.
 * - reconnects after any close it did not ask for, with exponential backoff and full jitter:
 *   a delay drawn uniformly from [0, min(maxDelayMs, minDelayMs * 2^attempt)), 1 s → 30 s.
 *   The attempt counter resets once a connection has stayed up for stableAfterMs.
 * - subscribe options (max_hz, fields, series) belong to the rooms of that request; on every
 *   connection each request is sent again, with the rooms it still holds and its options.
 * - resubscribes with `since: {epoch, seq, time}` of its position (the last live device message
 *   seen: its bridge's epoch, its seq, its envelope timestamp), so the same bridge replays by
 *   seq, another bridge of the fleet by time (subscribed.payload.recovered: true, mode "seq" or
 *   "time"), or it sends its snapshot of latest values (recovered: false).
 * - after a recovery by time it drops the repeats the bridge's overlap brings: a device message
 *   with the same type, device_id and payload.timestamp (and, for alerts, rule_name and state)
 *   as one it received within repeatWindowMs before the position, each at most once.
 * - refreshes the token before it expires: on the bridge's `token_expiring` message, and on a
 *   timer refreshMarginS before the token's `exp`, it calls getToken() and sends `refresh`.
 * - application ping every pingIntervalMs; no pong within pongTimeoutMs drops the connection
 *   (and so reconnects). In a browser, the window's "online" event cuts a backoff wait short.
 *
 * Events (CustomEvent, the message or the information in `detail`):
 * - one per server message type: "connected", "subscribed", "unsubscribed", "telemetry",
 *   "device_status", "alert", "series", "notice", "error" (a server error message:
 *   detail.payload.code), "pong", "refreshed", "token_expiring", and any other type the server
 *   sends; plus "message" for all. A dropped repeat fires only "repeat".
 * - "state": detail {state, attempt, delayMs?, code?, reason?}; states are "idle",
 *   "connecting", "open" (connected received), "reconnecting" (waiting delayMs), "closed".
 * - "close": detail {code, reason, willReconnect} for each connection that ends.
 * - "unauthorized": detail {status}: the ticket endpoint refused the token; the client stops.
 */

export const DEFAULTS = Object.freeze({
    credential: "ticket", // "ticket" or "token"
    minDelayMs: 1000,
    maxDelayMs: 30000,
    stableAfterMs: 10000,
    pingIntervalMs: 25000,
    pongTimeoutMs: 10000,
    refreshMarginS: 60,
    connectTimeoutMs: 10000,
    repeatWindowMs: 5000, // > the bridge's 2 s overlap of a recovery by time (docs/protocol.md)
    repeatMaxEntries: 20000, // bound of the repeat filter's memory, whatever the message rate
});

/*
 * subscribe()'s argument, an array of rooms or {rooms, ...options}, as {rooms, options}. The
 * options (max_hz, fields, series: docs/protocol.md) go to the bridge unchanged, unknown ones
 * too: the bridge names what it refuses.
 */
function splitRequest(request) {
    if (Array.isArray(request)) return { rooms: [...request], options: {} };
    if (!request || !Array.isArray(request.rooms))
        throw new TypeError("subscribe needs an array of rooms or {rooms, max_hz?, fields?, series?}");
    if ("since" in request) throw new TypeError("since is the client's to send (its position)");
    const options = {};
    for (const [k, v] of Object.entries(request)) if (k !== "rooms" && v !== undefined) options[k] = v;
    return { rooms: [...request.rooms], options };
}

/* CustomEvent is global in browsers and Node >= 19; Node 18 (Debian 12) gets this stand-in. */
const DetailEvent = globalThis.CustomEvent || class extends Event {
    constructor(type, init) {
        super(type);
        this.detail = init ? init.detail : null;
    }
};

/* WebSocket close codes a client may send itself (1000 or 3000-4999). */
const CLOSE_NORMAL = 1000;
const CLOSE_PING_TIMEOUT = 4000;
const CLOSE_CONNECT_TIMEOUT = 4002;
const WS_OPEN = 1;

/*
 * The wait before reconnection attempt `attempt` (0 for the first retry): full jitter over an
 * exponentially growing cap. random() returns [0, 1).
 */
export function backoffDelay(attempt, random = Math.random, minMs = 1000, maxMs = 30000) {
    const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
    return Math.floor(random() * cap);
}

/* The `exp` claim (seconds) of a JWT, or null when the token has none or is not a JWT. */
export function tokenExpiry(token) {
    const part = typeof token === "string" ? token.split(".")[1] : undefined;
    if (!part) return null;
    try {
        const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
        const claims = JSON.parse(atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), "=")));
        return typeof claims.exp === "number" ? claims.exp : null;
    } catch {
        return null;
    }
}

/* http(s)://host/api/v1/ws/ticket for a ws(s)://host/… URL. */
export function ticketUrlFor(wsUrl) {
    const u = new URL(wsUrl);
    u.protocol = u.protocol === "wss:" ? "https:" : "http:";
    u.pathname = "/api/v1/ws/ticket";
    u.search = "";
    return u.toString();
}

/*
 * The key that identifies a device message across bridges: type, device_id and the device's
 * payload.timestamp (and, for an alert, its rule and state: two rules firing on one sample share
 * the rest). null for a message without device_id or payload.timestamp (a published notice).
 */
export function repeatKey(env) {
    const p = env && env.payload;
    if (!p || typeof p.device_id !== "string" || typeof p.timestamp !== "string") return null;
    return keyOf(env.type, p.device_id, p.timestamp, p.rule_name, p.state);
}

function keyOf(type, device, timestamp, rule, state) {
    const key = `${type}\u0000${device}\u0000${timestamp}`;
    return type === "alert" ? `${key}\u0000${rule}\u0000${state}` : key;
}

/* An envelope's timestamp in ms; `fallback` when it has none or it does not parse. */
function envelopeMs(env, fallback) {
    const t = typeof env.timestamp === "string" ? Date.parse(env.timestamp) : NaN;
    return Number.isFinite(t) ? t : fallback;
}

/*
 * Remembers the device messages received within windowMs of the newest one (at most maxEntries,
 * the oldest forgotten first), so that after a recovery by time the messages the new bridge
 * sends again can be told apart. Per message it keeps the parts of its key and its arrival time
 * (now(), Date.now by default): keys are built only when a recovery starts, so the cost per
 * message is a push and a compare. Memory: O(min(maxEntries, messages in windowMs)).
 *
 *   record(env)   a device message was received (and shown)
 *   arm(timeMs)   a recovery by time from position timeMs starts: the messages held now are the
 *                 candidates; each drops one repeat
 *   isRepeat(env) true for a candidate (which is used up); disarms once messages ingested
 *                 more than windowMs after timeMs arrive (envelope timestamps), as none of those
 *                 can be a repeat
 */
export class RepeatFilter {
    constructor(windowMs = DEFAULTS.repeatWindowMs, maxEntries = DEFAULTS.repeatMaxEntries, now = Date.now) {
        this.windowMs = windowMs;
        this.maxEntries = maxEntries;
        this.now = now;
        this.recent = []; // [{type, d, ts, r, s: the key's parts, t: arrival}], oldest first
        this.head = 0; // recent[head…] are live; the array is compacted now and then
        this.candidates = null; // Map key → count while armed
        this.armedUntil = 0;
    }

    get size() {
        return this.recent.length - this.head;
    }

    record(env) {
        const p = env && env.payload;
        if (!p || typeof p.device_id !== "string" || typeof p.timestamp !== "string") return;
        const t = this.now();
        this.recent.push({ type: env.type, d: p.device_id, ts: p.timestamp, r: p.rule_name, s: p.state, t });
        while (this.size && (this.size > this.maxEntries || this.recent[this.head].t < t - this.windowMs))
            this.head++;
        if (this.head > 1024 && this.head * 2 > this.recent.length) {
            this.recent = this.recent.slice(this.head);
            this.head = 0;
        }
    }

    arm(timeMs) {
        this.candidates = new Map();
        for (let i = this.head; i < this.recent.length; i++) {
            const { type, d, ts, r, s } = this.recent[i];
            const key = keyOf(type, d, ts, r, s);
            this.candidates.set(key, (this.candidates.get(key) || 0) + 1);
        }
        this.armedUntil = timeMs + this.windowMs;
    }

    get armed() {
        return this.candidates !== null;
    }

    isRepeat(env) {
        if (!this.candidates) return false;
        if (envelopeMs(env, Infinity) > this.armedUntil) {
            this.candidates = null;
            return false;
        }
        const key = repeatKey(env);
        const n = key === null ? 0 : this.candidates.get(key) || 0;
        if (!n) return false;
        if (n > 1) this.candidates.set(key, n - 1);
        else this.candidates.delete(key);
        return true;
    }

    disarm() {
        this.candidates = null;
    }
}

export class TelebridgeClient extends EventTarget {
    /*
     * opts: url (ws://host:port/ws), getToken (() => token or Promise of it), and optionally
     * rooms (joined without options, like subscribe(rooms)), credential, ticketUrl, the timings
     * and bounds of DEFAULTS, WebSocket and fetch (defaults: the globals), random (Math.random).
     */
    constructor(opts) {
        super();
        if (!opts || !opts.url || typeof opts.getToken !== "function")
            throw new TypeError("TelebridgeClient needs {url, getToken}");
        this.opts = { ...DEFAULTS, ...opts };
        this.opts.ticketUrl = opts.ticketUrl || ticketUrlFor(opts.url);
        this.WebSocket = opts.WebSocket || globalThis.WebSocket;
        this.fetch = opts.fetch || globalThis.fetch?.bind(globalThis);
        this.random = opts.random || Math.random;
        /* The subscribe requests to send on every connection: {rooms: Set, options}, a room in
         * one of them at most (its latest subscribe's). */
        this.subscriptions = [];
        if (opts.rooms && opts.rooms.length) this.subscriptions.push({ rooms: new Set(opts.rooms), options: {} });
        this.state = "idle";
        this.attempt = 0;
        this.epoch = null; // the epoch of the current (or last) connection's `connected`
        this.position = null; // {epoch, seq, time}: what `since` says (see track())
        this.repeats = new RepeatFilter(this.opts.repeatWindowMs, this.opts.repeatMaxEntries);
        this.repeatsDropped = 0;
        this.sinceSent = null; // the since of this connection's subscribe requests
        this.user = null;
        this.ws = null;
        this.token = null;
        this.timers = {};
        this.nextRequest = 1;
        this.pendingPings = new Map(); // request_id → {resolve, reject, sent}
        this.refreshing = false; // or {id, token} while a refresh awaits its answer
        /* In a browser, the network coming back ends a backoff wait at once. */
        this.onOnline = () => {
            if (this.state !== "reconnecting") return;
            clearTimeout(this.timers.reconnect);
            this.open();
        };
    }

    /* Starts connecting (and keeps the connection up until close()). */
    connect() {
        if (this.state !== "idle" && this.state !== "closed") return;
        this.attempt = 0;
        globalThis.window?.addEventListener("online", this.onOnline);
        this.open();
    }

    /* Closes for good: no reconnection. */
    close(code = CLOSE_NORMAL, reason = "client closed") {
        globalThis.window?.removeEventListener("online", this.onOnline);
        this.setState("closed");
        this.clearTimers();
        this.rejectPings(new Error("closed"));
        const ws = this.ws;
        this.ws = null;
        if (ws) ws.close(code, reason);
    }

    /* Every room of every subscription. */
    get rooms() {
        const all = new Set();
        for (const sub of this.subscriptions) sub.rooms.forEach((r) => all.add(r));
        return all;
    }

    /* The seq of the position, 0 before any. */
    get lastSeq() {
        return this.position ? this.position.seq : 0;
    }

    /*
     * Joins rooms now (when connected) and on every reconnection: subscribe(["global"]) or
     * subscribe({rooms, max_hz, fields, series}). The options go to the bridge as given (it
     * checks them: a bad one is an `error` bad_request and nothing is joined) and are sent
     * again with these rooms on each connection; a room subscribed again takes the new ones.
     */
    subscribe(request) {
        const { rooms, options } = splitRequest(request);
        this.forget(rooms);
        this.subscriptions.push({ rooms: new Set(rooms), options });
        if (this.state === "open") this.send({ type: "subscribe", payload: { rooms: [...rooms], ...options } });
    }

    unsubscribe(rooms) {
        this.forget(rooms);
        if (this.state === "open")
            this.send({ type: "unsubscribe", payload: { rooms: [...rooms] } });
    }

    /* Takes rooms out of every subscription, dropping those left empty. */
    forget(rooms) {
        for (const sub of this.subscriptions) rooms.forEach((r) => sub.rooms.delete(r));
        this.subscriptions = this.subscriptions.filter((sub) => sub.rooms.size);
    }

    /* Sends an application ping; resolves with the round trip in ms when the pong arrives. */
    ping() {
        if (this.state !== "open") return Promise.reject(new Error("not connected"));
        const id = `ping-${this.nextRequest++}`;
        return new Promise((resolve, reject) => {
            this.pendingPings.set(id, { resolve, reject, sent: Date.now() });
            this.send({ type: "ping", request_id: id });
        });
    }

    /* Sends a message (an object, sent as JSON); false when not connected. */
    send(msg) {
        if (!this.ws || this.ws.readyState !== WS_OPEN) return false;
        this.ws.send(JSON.stringify(msg));
        return true;
    }

    // ---- connection life ----------------------------------------------------------------------

    async open() {
        this.setState("connecting");
        let url;
        try {
            url = await this.credentialUrl();
        } catch (err) {
            if (this.state === "closed") return;
            if (err.status === 401 || err.status === 403) {
                this.emit("unauthorized", { status: err.status });
                this.close();
                return;
            }
            this.scheduleReconnect({ code: 0, reason: String(err.message || err) });
            return;
        }
        if (this.state === "closed") return;
        const ws = new this.WebSocket(url);
        this.ws = ws;
        this.timers.connect = setTimeout(() => ws.close(CLOSE_CONNECT_TIMEOUT, "no connected message"),
            this.opts.connectTimeoutMs);
        ws.onmessage = (ev) => this.ws === ws && this.onMessage(ev.data);
        ws.onclose = (ev) => this.ws === ws && this.onClose(ev.code, ev.reason);
        ws.onerror = () => {}; // a close follows every error; it carries what we need
    }

    /* The URL for the next connection: with a fresh ticket, or with the token. */
    async credentialUrl() {
        this.token = await this.opts.getToken();
        const u = new URL(this.opts.url);
        if (this.opts.credential === "token") {
            u.searchParams.set("token", this.token);
            return u.toString();
        }
        const res = await this.fetch(this.opts.ticketUrl, {
            method: "POST",
            headers: { Authorization: `Bearer ${this.token}` },
            signal: AbortSignal.timeout(this.opts.connectTimeoutMs),
        });
        if (!res.ok) {
            const err = new Error(`ticket request answered ${res.status}`);
            err.status = res.status;
            throw err;
        }
        const body = await res.json();
        u.searchParams.set("ticket", body.ticket);
        return u.toString();
    }

    onClose(code, reason) {
        this.ws = null;
        this.refreshing = false;
        this.clearTimers();
        this.rejectPings(new Error(`connection closed (${code})`));
        const willReconnect = this.state !== "closed";
        this.emit("close", { code, reason, willReconnect });
        if (willReconnect) this.scheduleReconnect({ code, reason });
    }

    scheduleReconnect(why) {
        const delayMs = backoffDelay(this.attempt, this.random, this.opts.minDelayMs,
            this.opts.maxDelayMs);
        this.setState("reconnecting", { delayMs, ...why });
        this.attempt++;
        this.timers.reconnect = setTimeout(() => this.open(), delayMs);
    }

    onConnected(env) {
        clearTimeout(this.timers.connect);
        const p = env.payload || {};
        const pos = this.position;
        const since = pos ? { epoch: pos.epoch, seq: pos.seq } : undefined;
        if (since && typeof pos.time === "string") since.time = pos.time;
        this.epoch = p.epoch;
        this.user = p.user;
        this.repeats.disarm();
        this.setState("open");
        this.timers.stable = setTimeout(() => { this.attempt = 0; }, this.opts.stableAfterMs);
        this.timers.ping = setInterval(() => this.heartbeat(), this.opts.pingIntervalMs);
        this.scheduleRefresh();
        for (const sub of this.subscriptions) {
            const payload = { rooms: [...sub.rooms], ...sub.options };
            if (since) payload.since = since;
            this.send({ type: "subscribe", payload });
        }
        this.sinceSent = since || null;
    }

    onMessage(data) {
        let env;
        try {
            env = JSON.parse(data);
        } catch {
            return; // the bridge sends only JSON text; anything else is not ours to interpret
        }
        if (!env || typeof env.type !== "string") return;
        if (this.isRepeat(env)) {
            this.track(env, false);
            this.repeatsDropped++;
            this.emit("repeat", env);
            return;
        }
        this.track(env, true);
        switch (env.type) {
        case "connected":
            this.onConnected(env);
            break;
        case "subscribed":
            /* The first recovery by time of this connection arms the filter; the other
             * requests of the reconnection share it (one since, one overlap). */
            if (env.payload && env.payload.recovered === true && env.payload.mode === "time" &&
                this.sinceSent && !this.repeats.armed)
                this.repeats.arm(envelopeMs({ timestamp: this.sinceSent.time }, 0));
            break;
        case "pong":
            this.onPong(env);
            break;
        case "token_expiring":
            this.refresh();
            break;
        case "refreshed":
            this.onRefreshAnswer(env, true);
            break;
        case "error":
            this.onRefreshAnswer(env, false);
            break;
        default:
            break;
        }
        this.emit(env.type, env);
        this.emit("message", env);
    }

    /* A device message of a live stream (not a snapshot, not an answer): it has a seq. */
    static isLive(env) {
        return typeof env.seq === "number" && !env.snapshot;
    }

    /* A repeat of a message received before a recovery by time (see RepeatFilter). */
    isRepeat(env) {
        return TelebridgeClient.isLive(env) && this.repeats.isRepeat(env);
    }

    /*
     * The position sent as `since`: {epoch, seq, time} of the last live (non-snapshot) message
     * (the epoch of the connection it came on, its envelope timestamp), or of a `subscribed`
     * that brings a snapshot (its seq and timestamp: what happened before it is in the
     * snapshot), when later. A recovering `subscribed` is not taken: its replay, which may be
     * cut short, brings the position up to it message by message; until the first message of
     * a new bridge arrives, the position stays the old bridge's, which is still true. `fresh`:
     * not a dropped repeat (whose key the filter holds already).
     */
    track(env, fresh) {
        const pos = this.position;
        const later = (seq) => !pos || pos.epoch !== this.epoch || seq > pos.seq;
        if (env.type === "subscribed") {
            const p = env.payload || {};
            if (typeof p.seq === "number" && p.recovered !== true && later(p.seq))
                this.position = { epoch: this.epoch, seq: p.seq, time: env.timestamp };
        } else if (TelebridgeClient.isLive(env)) {
            if (fresh) this.repeats.record(env);
            if (later(env.seq)) this.position = { epoch: this.epoch, seq: env.seq, time: env.timestamp };
        }
    }

    // ---- heartbeat ----------------------------------------------------------------------------

    heartbeat() {
        const ws = this.ws;
        this.ping().catch(() => {});
        clearTimeout(this.timers.pong);
        this.timers.pong = setTimeout(() => {
            if (this.ws === ws && this.pendingPings.size)
                ws.close(CLOSE_PING_TIMEOUT, "no pong");
        }, this.opts.pongTimeoutMs);
    }

    onPong(env) {
        const p = this.pendingPings.get(env.request_id);
        if (!p) return;
        this.pendingPings.delete(env.request_id);
        if (!this.pendingPings.size) clearTimeout(this.timers.pong);
        p.resolve(Date.now() - p.sent);
    }

    rejectPings(err) {
        for (const p of this.pendingPings.values()) p.reject(err);
        this.pendingPings.clear();
    }

    // ---- token refresh ------------------------------------------------------------------------

    /* Arms the timer that refreshes refreshMarginS before the current token's exp. */
    scheduleRefresh() {
        clearTimeout(this.timers.refresh);
        const exp = tokenExpiry(this.token);
        if (exp === null) return;
        const inMs = Math.max(0, exp * 1000 - Date.now() - this.opts.refreshMarginS * 1000);
        /* setTimeout's longest wait is 2^31-1 ms; a longer one is re-armed by the next refresh. */
        this.timers.refresh = setTimeout(() => this.refresh(), Math.min(inMs, 2 ** 31 - 1));
    }

    /* Asks getToken() for a fresh token and sends it, unless it is the one in use. */
    async refresh() {
        if (this.refreshing || this.state !== "open") return;
        this.refreshing = true;
        try {
            const token = await this.opts.getToken();
            const id = `refresh-${this.nextRequest++}`;
            if (!token || token === this.token ||
                !this.send({ type: "refresh", request_id: id, payload: { token } })) {
                this.refreshing = false;
                return;
            }
            this.refreshing = { id, token };
        } catch {
            this.refreshing = false;
        }
    }

    /* The answer to our refresh: `refreshed` (the new token is in use) or an `error`. */
    onRefreshAnswer(env, ok) {
        if (!this.refreshing || env.request_id !== this.refreshing.id) return;
        const token = this.refreshing.token;
        this.refreshing = false;
        /* After a refusal only the bridge's token_expiring tries again: no retry loop. */
        if (ok) {
            this.token = token;
            this.scheduleRefresh();
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    setState(state, extra = {}) {
        this.state = state;
        this.emit("state", { state, attempt: this.attempt, ...extra });
    }

    emit(type, detail) {
        this.dispatchEvent(new DetailEvent(type, { detail }));
    }

    clearTimers() {
        clearTimeout(this.timers.connect);
        clearTimeout(this.timers.reconnect);
        clearTimeout(this.timers.stable);
        clearTimeout(this.timers.refresh);
        clearTimeout(this.timers.pong);
        clearInterval(this.timers.ping);
        this.timers = {};
    }
}
