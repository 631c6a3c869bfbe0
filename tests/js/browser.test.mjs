/*
 * The dashboard (web/) in Debian's chromium, headless, driven by playwright-core, against a real
 * telebridge and mosquitto: sign in (URL fragment and form), tiles filled by the snapshot, a value
 * changing after mosquitto_pub, recovery after the bridge restarts, tickets instead of tokens in
 * URLs; sparklines drawn from `series` at once, the rate cap resubscribing with `max_hz`. Saves a
 * screenshot (docs/dashboard.png with TB_UPDATE_SCREENSHOT=1).
 *
 * CHROMIUM_BIN overrides /usr/bin/chromium.
 */
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";

import { ROOT, sleep, startStack, waitFor } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const UI_TIMEOUT = 10000;
const DEVICES = ["sensor-hum-002", "sensor-press-003", "sensor-temp-001", "sensor-temp-004"];

const HIGH_TEMP = [{ name: "high-temp", field: "temperature", op: ">", threshold: 30,
    clear_below: 29, severity: "warning", devices: ["*"] }];

const tile = (id) => `.tile[data-device="${id}"]`;
const fieldValue = (id, field) => `${tile(id)} .field[data-field="${field}"] .value`;

async function publishReading(stack, device, i) {
    const wave = (k) => Math.round((Math.sin(i / 3 + k) * 3 + 20 + k) * 100) / 100;
    const k = DEVICES.indexOf(device);
    await stack.broker.publish(`devices/${device}/telemetry`, JSON.stringify({
        fields: { temperature: wave(k), humidity: wave(k + 5) + 25, battery: 97 - k - i / 10 },
        tags: { site: "lab" },
    }));
}

async function textOf(page, selector) {
    return (await page.locator(selector).textContent({ timeout: UI_TIMEOUT })).trim();
}

async function waitText(page, selector, want) {
    await page.waitForFunction(([sel, text]) => document.querySelector(sel)?.textContent.trim() === text,
        [selector, want], { timeout: UI_TIMEOUT });
}

describe("dashboard in headless chromium", () => {
    let stack;
    let browser;
    before(async () => {
        assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed`);
        stack = await startStack({ alerts: HIGH_TEMP });
        browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    });
    after(async () => {
        if (browser) await browser.close();
        const { code } = await stack.stop();
        assert.equal(code, 0);
    });

    test("signs in from the fragment, fills from the snapshot, updates live, recovers", async () => {
        for (const d of DEVICES) {
            await stack.broker.publish(`devices/${d}/status`, d === "sensor-press-003" ? "offline" : "online",
                { retain: true });
            await publishReading(stack, d, 0);
        }
        const token = await stack.bridge.mint({ sub: "dashboard" });
        const page = await browser.newPage({ viewport: { width: 1280, height: 470 } });
        const wsUrls = [];
        const pageErrors = [];
        const frames = []; // text frames the page received, as Chromium inflated them
        page.on("websocket", (ws) => {
            wsUrls.push(ws.url());
            ws.on("framereceived", (f) => frames.push(f.payload));
        });
        page.on("pageerror", (err) => pageErrors.push(String(err)));
        // Errors the page reports, but not the failed requests a bridge restart causes.
        page.on("console", (msg) => msg.type() === "error" &&
            !msg.text().startsWith("Failed to load resource") && pageErrors.push(msg.text()));
        try {
            await page.goto(`${stack.bridge.httpUrl}/#token=${token}`);
            await page.waitForSelector('#state[data-state="open"]', { timeout: UI_TIMEOUT });
            assert.ok(!page.url().includes(token), "the token leaves the address bar");
            assert.equal(await textOf(page, "#user"), "user dashboard");
            // Chromium offers permessage-deflate: the page's connection compresses.
            assert.equal(await stack.bridge.metric('telebridge_connections{compression="deflate"}'), 1);
            assert.equal(await stack.bridge.metric('telebridge_connections{compression="none"}'), 0);
            for (const d of DEVICES) await page.waitForSelector(tile(d), { timeout: UI_TIMEOUT });
            assert.equal(await textOf(page, `${tile("sensor-press-003")} .status`), "offline");
            assert.equal(await textOf(page, `${tile("sensor-temp-001")} .status`), "online");
            assert.match(await textOf(page, `${tile("sensor-temp-001")} .seen`), /^last seen \d+ s ago$/);

            await stack.broker.publish("devices/sensor-temp-001/telemetry", '{"temperature": 23.25}');
            await waitText(page, fieldValue("sensor-temp-001", "temperature"), "23.25");
            // Its frame is over compression.min_bytes (128 by default): the bridge compressed
            // it, and Chromium inflated it to the envelope.
            const live = frames.map((p) => JSON.parse(p)).filter((m) =>
                m.type === "telemetry" && m.payload.fields.temperature === 23.25);
            assert.equal(live.length, 1);
            assert.ok(JSON.stringify(live[0]).length >= 128, "a frame the bridge compresses");
            await page.waitForFunction(() => /^[1-9]\d*\.\d msg\/s$|^0\.[1-9] msg\/s$/
                .test(document.querySelector("#rate").textContent), null, { timeout: UI_TIMEOUT });

            // The bridge goes away and comes back on the same port: the page reconnects.
            await stack.bridge.stop();
            await page.waitForSelector('#state[data-state="reconnecting"]', { timeout: UI_TIMEOUT });
            await stack.bridge.start();
            await page.waitForSelector('#state[data-state="open"]', { timeout: 40000 });
            await stack.broker.publish("devices/sensor-temp-001/telemetry", '{"temperature": 24.75}');
            await waitText(page, fieldValue("sensor-temp-001", "temperature"), "24.75");

            assert.ok(wsUrls.length >= 2, `connected twice: ${wsUrls.length}`);
            for (const u of wsUrls) {
                assert.match(u, /[?&]ticket=/, "the page connects with a ticket");
                assert.doesNotMatch(u, /token=/, "never with the token in the URL");
            }

            for (let i = 1; i <= 40; i++) for (const d of DEVICES) await publishReading(stack, d, i);
            await waitText(page, fieldValue("sensor-temp-004", "battery"), "90");
            for (const d of DEVICES)
                await stack.broker.publish(`devices/${d}/status`, d === "sensor-press-003" ? "offline" : "online");
            await waitText(page, `${tile("sensor-press-003")} .status`, "offline");
            await stack.broker.publish("devices/sensor-temp-001/telemetry", '{"temperature": 31.4}');
            await page.waitForSelector('#alerts li[data-state="firing"]', { timeout: UI_TIMEOUT });
            assert.match(await textOf(page, "#alerts li"),
                /^firing warning high-temp on sensor-temp-001: temperature = 31\.40 \(threshold 30\)/);
            await sleep(300); // the last sparkline frame
            const out = process.env.TB_UPDATE_SCREENSHOT === "1"
                ? path.join(ROOT, "docs/dashboard.png") : path.join(stack.dir, "dashboard.png");
            await page.screenshot({ path: out });
            assert.ok(statSync(out).size > 10000, "the screenshot has content");
            assert.deepEqual(pageErrors, []);
        } finally {
            await page.close();
        }
    });

    test("draws sparklines from series at once; the rate cap resubscribes with max_hz", async () => {
        // 20 readings per device before the page opens: only `series` can bring them.
        const devices = ["series-a", "series-b"];
        const before = (await stack.bridge.stats()).messages_in;
        for (let i = 0; i < 20; i++) {
            for (const [k, d] of devices.entries()) {
                await stack.broker.publish(`devices/${d}/telemetry`, JSON.stringify({
                    fields: { temperature: 20 + k + i / 10, label: `r${i}` },
                    timestamp: new Date(Date.now() - (20 - i) * 1000).toISOString(),
                }));
            }
        }
        await waitFor(async () => (await stack.bridge.stats()).messages_in >= before + 40, UI_TIMEOUT,
            "the bridge to ingest the readings");
        const token = await stack.bridge.mint({ sub: "fleet-watcher" });
        const page = await browser.newPage();
        const sentFrames = [];
        const received = [];
        page.on("websocket", (ws) => {
            ws.on("framesent", (f) => sentFrames.push(JSON.parse(f.payload)));
            ws.on("framereceived", (f) => received.push(JSON.parse(f.payload)));
        });
        const spark = (d, f) => `${tile(d)} .field[data-field="${f}"] .spark`;
        try {
            await page.goto(`${stack.bridge.httpUrl}/#token=${token}`);
            await page.waitForSelector('#state[data-state="open"]', { timeout: UI_TIMEOUT });
            // Nothing is published after load: 20 points can only come from the series.
            for (const d of devices)
                await page.waitForSelector(`${spark(d, "temperature")}[data-points="20"]`, { timeout: UI_TIMEOUT });
            assert.equal(await textOf(page, fieldValue("series-b", "temperature")), "22.90");
            assert.equal(await textOf(page, fieldValue("series-a", "label")), "r19", "the snapshot's text field");
            assert.equal(await page.locator(`${spark("series-a", "label")}`).isHidden(), true);
            const subs = sentFrames.filter((m) => m.type === "subscribe");
            assert.deepEqual(subs[0].payload, { rooms: ["global"], series: 60 });
            const series = received.filter((m) => m.type === "series" && m.payload.device_id === "series-a");
            assert.equal(series.length, 1);
            assert.equal(series[0].payload.fields.temperature.length, 20);
            // Still 20 after the snapshot: its sample is the series' last one, not a new point.
            await sleep(300);
            assert.equal(await page.getAttribute(spark("series-a", "temperature"), "data-points"), "20");

            // The rate cap: the room is subscribed again with max_hz.
            const nSent = sentFrames.length;
            const nRecv = received.length;
            await page.selectOption("#rate-cap", "1");
            await waitFor(() => sentFrames.slice(nSent).some((m) => m.type === "subscribe"), UI_TIMEOUT,
                "the page to resubscribe");
            const after = sentFrames.slice(nSent);
            assert.deepEqual(after.map((m) => m.type), ["unsubscribe", "subscribe"]);
            assert.deepEqual(after[1].payload, { rooms: ["global"], series: 60, max_hz: 1 });
            await page.waitForSelector(`${spark("series-a", "temperature")}[data-points="20"]`, { timeout: UI_TIMEOUT });
            await waitFor(() => received.slice(nRecv).some((m) => m.type === "subscribed"), UI_TIMEOUT,
                "the bridge's answers");
            assert.deepEqual(received.slice(nRecv).filter((m) => /subscribed$/.test(m.type)).map((m) => m.type),
                ["unsubscribed", "subscribed"]);
            await sleep(200);
            assert.equal(await textOf(page, "#notice"), "", "our own unsubscribe is not the bridge taking the room away");
            // A burst of 10 readings in well under a second: at most one telemetry message a
            // second arrives, and the last one shown is the newest.
            const nReceived = received.length;
            for (let i = 1; i <= 10; i++)
                await stack.broker.publish("devices/series-a/telemetry", JSON.stringify({ temperature: 40 + i }));
            await waitText(page, fieldValue("series-a", "temperature"), "50");
            const live = received.slice(nReceived).filter((m) => m.type === "telemetry" && !m.snapshot &&
                m.payload.device_id === "series-a");
            assert.ok(live.length >= 1 && live.length <= 3, `capped: ${live.length} of 10 messages`);
            assert.equal(await page.evaluate(() => sessionStorage.getItem("telebridge.max_hz")), "1");

            // Back to every message: subscribed again without max_hz.
            const n2 = sentFrames.length;
            await page.selectOption("#rate-cap", "");
            await waitFor(() => sentFrames.slice(n2).some((m) => m.type === "subscribe"), UI_TIMEOUT,
                "the page to resubscribe");
            assert.deepEqual(sentFrames.slice(n2).find((m) => m.type === "subscribe").payload,
                { rooms: ["global"], series: 60 });
        } finally {
            await page.close();
        }
    });

    test("signs in with the form, picks rooms; refuses a bad token; ignores ?token= in the query", async () => {
        const page = await browser.newPage();
        try {
            const token = await stack.bridge.mint({ sub: "form-user", rooms: "global,device:*" });
            await page.goto(`${stack.bridge.httpUrl}/?token=${token}`);
            await page.waitForSelector("#sign-in:not([hidden])", { timeout: UI_TIMEOUT });
            assert.equal(await textOf(page, "#state"), "signed out");

            await page.fill("#token", "not-a-token");
            await page.click('#sign-in-form button[type="submit"]');
            await waitText(page, "#sign-in-error", "The bridge refused this token.");

            await page.fill("#token", token);
            await page.click('#sign-in-form button[type="submit"]');
            await page.waitForSelector('#state[data-state="open"]', { timeout: UI_TIMEOUT });
            assert.equal(await textOf(page, "#user"), "user form-user");

            // The room picker: watch one device; only its tile stays.
            await stack.broker.publish("devices/sensor-temp-001/telemetry", '{"temperature": 22.0}');
            await page.waitForSelector(tile("sensor-temp-001"), { timeout: UI_TIMEOUT });
            assert.ok(await page.locator('#room-suggestions option[value="device:sensor-temp-001"]').count());
            await page.fill("#room", "device:sensor-hum-002");
            await page.click('#room-form button[type="submit"]');
            await page.waitForSelector(tile("sensor-hum-002"), { timeout: UI_TIMEOUT });
            assert.equal(await page.locator(".tile").count(), 1);
            // A room the token does not grant: the page says so.
            await page.fill("#room", "group:building-a");
            await page.click('#room-form button[type="submit"]');
            await page.waitForFunction(() => document.querySelector("#notice").textContent.startsWith("forbidden:"),
                null, { timeout: UI_TIMEOUT });

            await page.click("#sign-out");
            await page.waitForSelector("#sign-in:not([hidden])", { timeout: UI_TIMEOUT });
            assert.equal(await page.evaluate(() => sessionStorage.getItem("telebridge.token")), null);
        } finally {
            await page.close();
        }
    });
});
