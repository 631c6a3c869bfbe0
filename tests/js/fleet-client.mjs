/*
 * web/telebridge-client.js as a process, for tests/integration/test_nginx.py's fleet tests:
 *
 *   TB_TOKEN=<jwt> node tests/js/fleet-client.mjs ws://127.0.0.1:<proxy>/ws device:<id>[,room…]
 *
 * Connects with its defaults (a ticket per connection) but short reconnection waits, joins the
 * rooms, and prints one JSON line per event on stdout: {"event": <type>, "detail": <detail>}
 * for every server message the application is given ("connected", "subscribed", "telemetry",
 * …), and for "state", "close", "unauthorized" and "repeat" (a replayed message the client
 * dropped as one it already had). It closes the client and exits 0 when stdin ends (the test's way to stop it).
 */
import WebSocket from "ws";

import { TelebridgeClient } from "../../web/telebridge-client.js";

const [url, rooms] = process.argv.slice(2);
const token = process.env.TB_TOKEN;
if (!url || !rooms || !token) {
    console.error("usage: TB_TOKEN=<jwt> node fleet-client.mjs <ws url> <room>[,<room>…]");
    process.exit(2);
}

const client = new TelebridgeClient({
    url,
    getToken: () => token,
    rooms: rooms.split(","),
    WebSocket,
    minDelayMs: 100,
    maxDelayMs: 400,
    connectTimeoutMs: 3000,
});

const print = (event, detail) => process.stdout.write(`${JSON.stringify({ event, detail })}\n`);
client.addEventListener("message", (e) => print(e.detail.type, e.detail));
for (const event of ["state", "close", "unauthorized", "repeat"])
    client.addEventListener(event, (e) => print(event, e.detail));

process.stdin.resume();
process.stdin.on("end", () => {
    client.close();
    process.stdout.write("", () => process.exit(0));
});
client.connect();
