/*
 * The telebridge dashboard: sign in with a token, watch a room, one tile per device with its
 * latest values, status, last-seen age and a sparkline per numeric field; alerts; connection
 * state and message rate. All data goes through telebridge-client.js (tickets, reconnection,
 * `since` recovery, token refresh). Device data is only ever written with textContent.
 *
 * The room is subscribed with `series` (SPARK_POINTS), so the bridge sends each device's last
 * values before its snapshot and the sparklines are drawn at once; the rate cap control
 * resubscribes the room with `max_hz` (at most that many telemetry messages per device per
 * second, the newest values merged) for fleets too large to watch message by message.
 */
import { TelebridgeClient } from "./telebridge-client.js";

const TOKEN_KEY = "telebridge.token"; // sessionStorage: gone when the tab closes
const ROOM_KEY = "telebridge.room";
const CAP_KEY = "telebridge.max_hz"; // the rate cap: "" (none) or max_hz
const DEFAULT_ROOM = "global";
const SPARK_POINTS = 60; // values kept per field for its sparkline
const MAX_ALERTS = 50;
const MAX_TILES = 500; // a room with more devices shows the first ones
const RATE_WINDOW_MS = 5000;
const TICK_MS = 1000; // ages and the rate are redrawn this often
const STALE_AFTER_MS = 60000; // a device silent this long is shown as stale

const $ = (id) => document.getElementById(id);

const view = {
    client: null,
    room: null,
    devices: new Map(), // device id → {el, status, lastSeen, fields: Map name → {el, points}}
    arrivals: [], // arrival times (ms) of device messages within RATE_WINDOW_MS
    dirty: new Set(), // fields whose sparkline needs a redraw
    drawQueued: false,
    leaving: new Map(), // room → unsubscribes of ours not answered yet
};

// ---- token --------------------------------------------------------------------------------

/* The token from the URL fragment (#token=…, never the query), else the session's. */
function takeToken() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (token) {
        sessionStorage.setItem(TOKEN_KEY, token.trim());
        history.replaceState(null, "", location.pathname); // out of the address bar and history
    }
    return sessionStorage.getItem(TOKEN_KEY);
}

/* The token's claims (for display and room suggestions only: the bridge verifies it). */
function claims(token) {
    try {
        const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
        return JSON.parse(atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), "=")));
    } catch {
        return {};
    }
}

// ---- sign in / out ------------------------------------------------------------------------

function showSignIn(message = "") {
    $("sign-in").hidden = false;
    $("board").hidden = true;
    $("alerts-panel").hidden = true;
    $("room-form").hidden = true;
    $("sign-out").hidden = true;
    $("user").textContent = "";
    $("sign-in-error").textContent = message;
    setState("signed-out", "signed out");
}

function signOut(message) {
    if (view.client) view.client.close();
    view.client = null;
    view.room = null;
    view.leaving.clear();
    view.devices.clear();
    $("tiles").replaceChildren();
    $("alerts").replaceChildren();
    $("no-alerts").hidden = false;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(message);
}

function start(token) {
    const c = claims(token);
    $("sign-in").hidden = true;
    $("board").hidden = false;
    $("alerts-panel").hidden = false;
    $("room-form").hidden = false;
    $("sign-out").hidden = false;
    $("user").textContent = c.sub ? `user ${c.sub}` : "";
    suggestRooms(Array.isArray(c.rooms) ? c.rooms : []);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const client = new TelebridgeClient({
        url: `${scheme}//${location.host}/ws`,
        getToken: () => sessionStorage.getItem(TOKEN_KEY),
    });
    view.client = client;
    client.addEventListener("state", (e) => onState(e.detail));
    client.addEventListener("unauthorized", () => signOut("The bridge refused this token."));
    client.addEventListener("connected", () => {
        view.leaving.clear(); // a new connection answers nothing of the last one
        setNotice("");
    });
    client.addEventListener("token_expiring", () => setNotice(
        "Your token expires soon: sign out and in again with a new one to stay connected."));
    client.addEventListener("close", (e) => {
        if (e.detail.code === 4001) setNotice("Your token expired.");
    });
    client.addEventListener("subscribed", (e) => onSubscribed(e.detail));
    client.addEventListener("series", (e) => onSeries(e.detail));
    client.addEventListener("telemetry", (e) => onTelemetry(e.detail));
    client.addEventListener("device_status", (e) => onStatus(e.detail));
    client.addEventListener("alert", (e) => onAlert(e.detail.payload));
    client.addEventListener("unsubscribed", (e) => onUnsubscribed(e.detail));
    client.addEventListener("error", (e) => onServerError(e.detail.payload));
    watch(sessionStorage.getItem(ROOM_KEY) || DEFAULT_ROOM);
    client.connect();
}

/* The room picker suggests global, the token's exact rooms, and each device seen. */
function suggestRooms(patterns) {
    $("room-suggestions").replaceChildren();
    for (const r of new Set([DEFAULT_ROOM, ...patterns.filter((p) => !p.includes("*"))])) suggest(r);
}

function suggest(room) {
    const list = $("room-suggestions");
    if ([...list.options].some((o) => o.value === room)) return;
    const opt = document.createElement("option");
    opt.value = room;
    list.append(opt);
}

// ---- rooms ----------------------------------------------------------------------------------

/* Switches the board to room: leaves the old one, forgets its devices, joins the new one. */
function watch(room) {
    if (room === view.room) return;
    if (view.room) leave(view.room);
    view.room = room;
    sessionStorage.setItem(ROOM_KEY, room);
    $("room").value = room;
    view.devices.clear();
    $("tiles").replaceChildren();
    $("empty").hidden = false;
    view.client.subscribe(subscription(room));
}

/* The subscribe request for room: its series, and the rate cap when one is chosen. */
function subscription(room) {
    const request = { rooms: [room], series: SPARK_POINTS };
    const cap = Number(sessionStorage.getItem(CAP_KEY) || 0);
    if (cap > 0) request.max_hz = cap;
    return request;
}

/* A new rate cap: the room is subscribed again with it (its series and snapshot redraw the
 * tiles, which stay). */
function setRateCap(value) {
    if (value) sessionStorage.setItem(CAP_KEY, value);
    else sessionStorage.removeItem(CAP_KEY);
    if (!view.client || !view.room) return;
    leave(view.room);
    view.client.subscribe(subscription(view.room));
}

/* Leaves room; its `unsubscribed` answer is then ours, not the bridge taking the room away. */
function leave(room) {
    if (view.client.state === "open") view.leaving.set(room, (view.leaving.get(room) || 0) + 1);
    view.client.unsubscribe([room]);
}

function onSubscribed(env) {
    const p = env.payload || {};
    if (p.recovered === true) setNotice("Reconnected: missed messages replayed.");
}

function onUnsubscribed(env) {
    const rooms = (env.payload && env.payload.rooms) || [];
    for (const room of rooms) {
        const ours = view.leaving.get(room) || 0;
        if (ours) {
            if (ours > 1) view.leaving.set(room, ours - 1);
            else view.leaving.delete(room);
        } else if (room === view.room) {
            setNotice(`The bridge took ${view.room} away (the token no longer grants it).`);
        }
    }
}

function onServerError(p) {
    if (!p) return;
    const rooms = Array.isArray(p.rooms) && p.rooms.length ? ` (${p.rooms.join(", ")})` : "";
    setNotice(`${p.code}: ${p.message}${rooms}`);
}

// ---- devices --------------------------------------------------------------------------------

function device(id) {
    let d = view.devices.get(id);
    if (d) return d;
    if (view.devices.size >= MAX_TILES) return null;
    const el = $("tile-template").content.firstElementChild.cloneNode(true);
    el.dataset.device = id;
    el.querySelector(".device").textContent = id;
    d = { el, status: "unknown", lastSeen: 0, fields: new Map() };
    view.devices.set(id, d);
    suggest(`device:${id}`);
    insertSorted($("tiles"), el, id);
    $("empty").hidden = true;
    setStatus(d, d.status);
    return d;
}

/* Tiles stay in device-id order, whatever order the devices show up in. */
function insertSorted(parent, el, id) {
    for (const other of parent.children) {
        if (other.dataset.device > id) {
            parent.insertBefore(el, other);
            return;
        }
    }
    parent.append(el);
}

function seen(d, timestamp) {
    const t = Date.parse(timestamp);
    const at = Number.isFinite(t) ? t : Date.now();
    if (at > d.lastSeen) d.lastSeen = at;
    drawAge(d, Date.now());
}

function counted() {
    view.arrivals.push(Date.now());
}

function onTelemetry(env) {
    counted();
    const p = env.payload;
    const d = device(p.device_id);
    if (!d) return;
    seen(d, p.timestamp);
    const t = Date.parse(p.timestamp);
    for (const [name, value] of Object.entries(p.fields || {})) setField(d, name, value, t);
    flash(d.el);
}

/* A device's last values per numeric field (before its snapshot): the sparklines at once. */
function onSeries(env) {
    const p = env.payload;
    const d = device(p.device_id);
    if (!d) return;
    for (const [name, points] of Object.entries(p.fields || {})) {
        if (!Array.isArray(points) || !points.length) continue;
        const last = points[points.length - 1];
        const f = setField(d, name, last[1], last[0], false);
        f.points = points.slice(-SPARK_POINTS).map((pt) => pt[1]);
        f.lastT = last[0];
        queueDraw(f);
    }
}

function onStatus(env) {
    counted();
    const p = env.payload;
    const d = device(p.device_id);
    if (!d) return;
    seen(d, p.timestamp);
    setStatus(d, String(p.status));
}

function setStatus(d, status) {
    d.status = status;
    const el = d.el.querySelector(".status");
    el.textContent = status;
    el.dataset.status = status === "online" || status === "offline" ? status : "other";
}

/*
 * Shows a field's value; a numeric one measured at t (ms) is also a sparkline point, unless the
 * sparkline has it already (the snapshot repeats the series' last sample) or `push` is false.
 */
function setField(d, name, value, t = NaN, push = true) {
    let f = d.fields.get(name);
    if (!f) {
        const el = $("field-template").content.firstElementChild.cloneNode(true);
        el.dataset.field = name;
        el.querySelector(".name").textContent = name;
        f = { el, points: [], lastT: -Infinity };
        d.fields.set(name, f);
        const list = d.el.querySelector(".fields");
        const next = [...list.children].find((c) => c.dataset.field > name);
        list.insertBefore(el, next || null);
    }
    f.el.querySelector(".value").textContent = formatValue(value);
    const numeric = typeof value === "number" && Number.isFinite(value);
    f.el.querySelector(".spark").hidden = !numeric;
    if (!numeric || !push) return f;
    if (Number.isFinite(t)) {
        if (t <= f.lastT) return f;
        f.lastT = t;
    }
    f.points.push(value);
    if (f.points.length > SPARK_POINTS) f.points.shift();
    queueDraw(f);
    return f;
}

function queueDraw(f) {
    view.dirty.add(f);
    if (!view.drawQueued) {
        view.drawQueued = true;
        requestAnimationFrame(drawSparks);
    }
}

function formatValue(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
    if (v === null) return "null";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth; // restarts the animation
    el.classList.add("flash");
}

// ---- sparklines -----------------------------------------------------------------------------

function drawSparks() {
    view.drawQueued = false;
    for (const f of view.dirty) drawSpark(f.el.querySelector(".spark"), f.points);
    view.dirty.clear();
}

/* A polyline of the points, scaled to the canvas, the last point marked; data-points says how
 * many it shows. */
function drawSpark(canvas, points) {
    canvas.dataset.points = String(points.length);
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
    if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (points.length < 1) return;
    const min = Math.min(...points);
    const max = Math.max(...points);
    const span = max - min || 1;
    const pad = 3;
    const x = (i) => pad + (points.length === 1 ? w - 2 * pad : (i * (w - 2 * pad)) / (points.length - 1));
    const y = (v) => h - pad - ((v - min) / span) * (h - 2 * pad);
    ctx.strokeStyle = getComputedStyle(canvas).color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
    const last = points.length - 1;
    ctx.fillStyle = ctx.strokeStyle;
    ctx.beginPath();
    ctx.arc(x(last), y(points[last]), 2.5, 0, 2 * Math.PI);
    ctx.fill();
}

// ---- alerts ---------------------------------------------------------------------------------

function onAlert(p) {
    counted();
    const li = document.createElement("li");
    li.dataset.state = p.state;
    li.dataset.severity = p.severity;
    const when = new Date(Date.parse(p.timestamp) || Date.now()).toLocaleTimeString();
    const head = document.createElement("strong");
    head.textContent = `${p.state === "resolved" ? "resolved" : "firing"} ${p.severity}`;
    const body = document.createElement("span");
    body.textContent = ` ${p.rule_name} on ${p.device_id}: ${p.field} = ${formatValue(p.value)}` +
        ` (threshold ${formatValue(p.threshold)}) at ${when}`;
    li.append(head, body);
    const list = $("alerts");
    list.prepend(li);
    while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
    $("no-alerts").hidden = true;
}

// ---- connection state, ages, rate -------------------------------------------------------------

function setState(state, text) {
    const el = $("state");
    el.dataset.state = state;
    el.textContent = text;
}

function setNotice(text) {
    $("notice").textContent = text;
}

function onState(s) {
    switch (s.state) {
    case "connecting":
        setState("connecting", "connecting…");
        break;
    case "open":
        setState("open", "live");
        break;
    case "reconnecting":
        setState("reconnecting", `reconnecting in ${(s.delayMs / 1000).toFixed(1)} s`);
        break;
    case "closed":
        setState("closed", "disconnected");
        break;
    default:
        break;
    }
}

function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
}

function drawAge(d, now) {
    const el = d.el.querySelector(".seen");
    el.textContent = d.lastSeen ? `last seen ${age(now - d.lastSeen)}` : "never seen";
    d.el.classList.toggle("stale", d.lastSeen > 0 && now - d.lastSeen > STALE_AFTER_MS);
}

function tick() {
    const now = Date.now();
    while (view.arrivals.length && now - view.arrivals[0] > RATE_WINDOW_MS) view.arrivals.shift();
    $("rate").textContent = `${(view.arrivals.length / (RATE_WINDOW_MS / 1000)).toFixed(1)} msg/s`;
    for (const d of view.devices.values()) drawAge(d, now);
}

// ---- start ----------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    $("token").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    start(token);
});

$("room-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const room = $("room").value.trim();
    if (room && view.client) watch(room);
});

$("rate-cap").value = sessionStorage.getItem(CAP_KEY) || "";
$("rate-cap").addEventListener("change", (e) => setRateCap(e.target.value));

$("sign-out").addEventListener("click", () => signOut(""));

setInterval(tick, TICK_MS);
const token = takeToken();
if (token) start(token);
else showSignIn();
