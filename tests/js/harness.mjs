/*
 * Test harness for the JavaScript tests: a private mosquitto and telebridge on free loopback
 * ports, tokens from telebridge-token, publishing with mosquitto_pub, bounded waits.
 *
 * Binaries: TELEBRIDGE_BIN and TELEBRIDGE_TOKEN_BIN (default build/bin/…). Every process a
 * test starts is stopped by stop() (the tests call it in `after`/`finally`).
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BRIDGE_BIN = process.env.TELEBRIDGE_BIN || path.join(ROOT, "build/bin/telebridge");
export const TOKEN_BIN =
    process.env.TELEBRIDGE_TOKEN_BIN || path.join(ROOT, "build/bin/telebridge-token");
export const WEB_ROOT = path.join(ROOT, "web");

/* Bounds, in ms. */
export const START_TIMEOUT = 10000;
export const STOP_TIMEOUT = 8000;
export const RECV_TIMEOUT = 5000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls pred (sync or async) until it returns a true value, which is returned. */
export async function waitFor(pred, timeoutMs, what, intervalMs = 50) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(intervalMs);
    }
}

/* The next event of `type` on target whose detail satisfies pred; rejects after timeoutMs. */
export function nextEvent(target, type, pred = () => true, timeoutMs = RECV_TIMEOUT) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            target.removeEventListener(type, on);
            reject(new Error(`no "${type}" event within ${timeoutMs} ms`));
        }, timeoutMs);
        function on(ev) {
            if (!pred(ev.detail)) return;
            clearTimeout(timer);
            target.removeEventListener(type, on);
            resolve(ev.detail);
        }
        target.addEventListener(type, on);
    });
}

// A loopback port nothing holds now, from 20000-31999: below the kernel's ephemeral range, so that
// no outgoing connection takes it before the server binds it (as tests/integration/tb.py does).
const portsUsed = new Set();
function tryPort(port) {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.on("error", () => resolve(false));
        srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
}

export async function freePort() {
    for (let i = 0; i < 1000; i++) {
        const port = 20000 + Math.floor(Math.random() * 12000);
        if (portsUsed.has(port)) continue;
        if (await tryPort(port)) {
            portsUsed.add(port);
            return port;
        }
    }
    throw new Error("no free port in 20000-31999 after 1000 tries");
}

export function portOpen(port) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: "127.0.0.1", port });
        sock.setTimeout(500);
        sock.on("connect", () => { sock.destroy(); resolve(true); });
        sock.on("error", () => resolve(false));
        sock.on("timeout", () => { sock.destroy(); resolve(false); });
    });
}

async function httpStatus(url) {
    try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.status;
    } catch {
        return 0;
    }
}

/* Sends SIGTERM and waits for the exit; SIGKILL past STOP_TIMEOUT. Returns the exit code. */
function stopProcess(proc) {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null)
        return Promise.resolve(proc ? proc.exitCode : null);
    return new Promise((resolve) => {
        const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT);
        proc.once("exit", (code) => { clearTimeout(timer); resolve(code); });
        proc.kill("SIGTERM");
    });
}

export class Broker {
    constructor(dir) {
        this.dir = dir;
        this.proc = null;
    }

    async start() {
        this.port = this.port || (await freePort());
        const conf = path.join(this.dir, "mosquitto.conf");
        writeFileSync(conf, `listener ${this.port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
        const log = openSync(path.join(this.dir, "mosquitto.log"), "a");
        this.proc = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", log, log] });
        await waitFor(() => portOpen(this.port), START_TIMEOUT, `mosquitto on ${this.port}`);
    }

    async stop() {
        await stopProcess(this.proc);
        this.proc = null;
    }

    publish(topic, payload, { retain = false } = {}) {
        const args = ["-h", "127.0.0.1", "-p", String(this.port), "-q", "1", "-t", topic, "-m", payload];
        if (retain) args.push("-r");
        return execFileP("mosquitto_pub", args, { timeout: RECV_TIMEOUT * 2 });
    }
}

export class Bridge {
    /* overrides: merged into the config section by section (one level deep); arrays replace. */
    constructor(dir, brokerPort, overrides = {}) {
        this.dir = dir;
        this.secretFile = path.join(dir, "secret.key");
        writeFileSync(this.secretFile, randomBytes(32).toString("hex") + "\n");
        this.config = {
            listen: { host: "127.0.0.1", port: 0, web_root: WEB_ROOT },
            mqtt: { host: "127.0.0.1", port: brokerPort, client_id: `tb-js-${randomUUID().slice(0, 12)}` },
            auth: { algorithm: "HS256", secret_file: this.secretFile },
        };
        for (const [k, v] of Object.entries(overrides))
            this.config[k] = Array.isArray(v) ? v : { ...this.config[k], ...v };
        this.log = path.join(dir, "telebridge.log");
        this.proc = null;
        this.exitCodes = [];
    }

    get url() {
        return `ws://127.0.0.1:${this.port}/ws`;
    }

    get httpUrl() {
        return `http://127.0.0.1:${this.port}`;
    }

    /* Starts the bridge (on the same port as before when restarted) and waits until ready. */
    async start() {
        this.port = this.port || (await freePort());
        this.config.listen.port = this.port;
        const file = path.join(this.dir, "telebridge.json");
        writeFileSync(file, JSON.stringify(this.config, null, 2));
        const log = openSync(this.log, "a");
        const env = { ...process.env };
        delete env.TELEBRIDGE_JWT_SECRET;
        this.proc = spawn(BRIDGE_BIN, ["--config", file, "--log-level", "debug"],
            { stdio: ["ignore", log, log], env });
        const proc = this.proc;
        await waitFor(async () => {
            if (proc.exitCode !== null) throw new Error(`bridge exited at start:\n${this.logText()}`);
            return (await httpStatus(`${this.httpUrl}/readyz`)) === 200;
        }, START_TIMEOUT, "/readyz 200");
    }

    async stop() {
        if (!this.proc) return null;
        const code = await stopProcess(this.proc);
        this.proc = null;
        this.exitCodes.push(code);
        return code;
    }

    logText() {
        try {
            return readFileSync(this.log, "utf8");
        } catch {
            return "";
        }
    }

    /* GET /stats, an operator endpoint: with a token whose scope has `admin` (docs/security.md
     * → Operator endpoints), minted once. */
    async stats() {
        this.adminToken = this.adminToken || (await this.mint({ sub: "operator", scope: "admin" }));
        const res = await fetch(`${this.httpUrl}/stats`,
            { headers: { Authorization: `Bearer ${this.adminToken}` } });
        if (res.status !== 200) throw new Error(`/stats answered ${res.status}`);
        return res.json();
    }

    /* One sample of GET /metrics (an operator endpoint, like /stats): the value of the line
     * `name` exactly (labels included, e.g. 'telebridge_connections{compression="deflate"}'). */
    async metric(name) {
        this.adminToken = this.adminToken || (await this.mint({ sub: "operator", scope: "admin" }));
        const res = await fetch(`${this.httpUrl}/metrics`,
            { headers: { Authorization: `Bearer ${this.adminToken}` } });
        if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
        const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
        if (!line) throw new Error(`no ${name} in /metrics`);
        return Number(line.slice(name.length + 1));
    }

    /* A token from telebridge-token: {sub, rooms (comma list), ttl ("1h", "5s"), scope}. */
    async mint({ sub = "alice", rooms = "*", ttl = "1h", scope = null } = {}) {
        const args = ["--sub", sub, "--rooms", rooms, "--ttl", ttl, "--secret-file", this.secretFile];
        if (scope) args.push("--scope", scope);
        const { stdout } = await execFileP(TOKEN_BIN, args, { timeout: RECV_TIMEOUT });
        return stdout.trim();
    }
}

/* A scratch folder with a broker and a bridge in it; stop() stops both and removes it. */
export async function startStack(overrides = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), "tb-js-"));
    const broker = new Broker(dir);
    const stack = { dir, broker, bridge: null };
    stack.stop = async () => {
        const code = stack.bridge ? await stack.bridge.stop() : null;
        await broker.stop();
        const log = stack.bridge ? stack.bridge.logText() : "";
        rmSync(dir, { recursive: true, force: true });
        return { code, log };
    };
    try {
        await broker.start();
        stack.bridge = new Bridge(dir, broker.port, overrides);
        await stack.bridge.start();
    } catch (err) {
        await stack.stop();
        throw err;
    }
    return stack;
}

/* Is POST /api/v1/ws/ticket served (the ticket feature)? */
export async function ticketsSupported(bridge, token) {
    const res = await fetch(`${bridge.httpUrl}/api/v1/ws/ticket`, {
        method: "POST", headers: { Authorization: `Bearer ${token}` },
    });
    await res.arrayBuffer();
    return res.status === 200;
}
