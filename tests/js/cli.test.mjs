/*
 * Runs the blocks of docs/cli-clients.md marked "```sh tested" against a real bridge, as a user
 * would paste them: same text, only 127.0.0.1:8080 replaced by the test bridge's address, TOKEN
 * set, and `npx wscat` resolved to the wscat of tests/js/node_modules. Every tool a tested block
 * names must be there (tools/test.sh installs them): a missing one fails its block. websocat is
 * not packaged for Debian 12, so its blocks are untested (docs/cli-clients.md says so).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { ROOT, startStack } from "./harness.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GUIDE = path.join(ROOT, "docs/cli-clients.md");
const BLOCK_TIMEOUT_MS = 30000;

function testedBlocks() {
    const text = readFileSync(GUIDE, "utf8");
    return [...text.matchAll(/^```sh tested\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

const have = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

/* Runs a block in bash with TOKEN set; resolves with {code, stdout, stderr}. */
function run(block, env) {
    return new Promise((resolve, reject) => {
        const script = `npx() { "$@"; }\nset -e\n${block}`;
        const child = spawn("bash", ["-c", script], { env, cwd: ROOT });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => { stdout += d; });
        child.stderr.on("data", (d) => { stderr += d; });
        const timer = setTimeout(() => child.kill("SIGKILL"), BLOCK_TIMEOUT_MS);
        child.on("error", reject);
        child.on("exit", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

describe("docs/cli-clients.md, copy-pasted", () => {
    let stack;
    let env;
    before(async () => {
        stack = await startStack();
        env = {
            ...process.env,
            PATH: `${path.join(HERE, "node_modules/.bin")}:${process.env.PATH}`,
            TOKEN: await stack.bridge.mint({ rooms: "device:*,group:*,global" }),
        };
    });
    after(async () => {
        const { code } = await stack.stop();
        assert.equal(code, 0);
    });

    test("the guide has tested blocks for wscat and tickets, none for websocat", () => {
        const blocks = testedBlocks();
        assert.ok(blocks.length >= 3, `${blocks.length} blocks`);
        assert.ok(!blocks.some((b) => b.includes("websocat")));
        assert.ok(blocks.some((b) => b.includes("ticket=")));
    });

    testedBlocks().forEach((block, i) => {
        const first = block.split("\n")[0];
        test(`block ${i + 1}: ${first}`, async () => {
            if (block.includes("curl")) assert.ok(have("curl"), "curl is missing");
            const text = block.replaceAll("127.0.0.1:8080", `127.0.0.1:${stack.bridge.port}`);
            const { code, stdout, stderr } = await run(text, env);
            assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
            assert.match(stdout, /"type":"connected"/, stdout + stderr);
            if (block.includes('"subscribe"')) assert.match(stdout, /"type":"subscribed"/, stdout);
            if (block.includes('"ping"')) assert.match(stdout, /"type":"pong"/, stdout);
            assert.doesNotMatch(stdout + stderr, /"type":"error"|Unexpected server response/);
        });
    });
});
