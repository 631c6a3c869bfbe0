/*
 * web/telebridge-client.d.ts: tsc --noEmit --strict accepts the typed example
 * (tests/js/types/example.ts) and the "tsx tested" blocks of docs/react.md (the useTelebridge
 * hook, with @types/react), and refuses a type error; and the declarations cover the module:
 * every export, every member of its classes, every key of DEFAULTS, no more and no fewer.
 * TypeScript and @types/react are the versions tests/js/package-lock.json locks.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import ts from "typescript";

import * as client from "../../web/telebridge-client.js";

const execFileP = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const DTS = path.join(ROOT, "web/telebridge-client.d.ts");
const TSC = path.join(HERE, "node_modules/typescript/bin/tsc");
const TSC_TIMEOUT = 120000;

/* The "```tsx tested NAME" blocks of docs/react.md: [{name, code}]. */
function reactBlocks() {
    const text = readFileSync(path.join(ROOT, "docs/react.md"), "utf8");
    return [...text.matchAll(/^```tsx tested (\S+)\n([\s\S]*?)^```$/gm)]
        .map((m) => ({ name: m[1], code: m[2] }));
}

/* Runs tsc -p dir/tsconfig.json; {code, out}. */
async function tsc(dir) {
    try {
        const { stdout, stderr } = await execFileP(process.execPath, [TSC, "-p", path.join(dir, "tsconfig.json")],
            { timeout: TSC_TIMEOUT });
        return { code: 0, out: stdout + stderr };
    } catch (err) {
        return { code: err.code ?? 1, out: `${err.stdout || ""}${err.stderr || ""}${err.killed ? " (timed out)" : ""}` };
    }
}

/*
 * A scratch project: the client and its types, the doc's blocks (or `files`), node_modules of
 * tests/js (@types/react), strict options as tests/js/tsconfig.json has them, plus JSX.
 */
function project(files) {
    const dir = mkdtempSync(path.join(tmpdir(), "tb-tsc-"));
    copyFileSync(DTS, path.join(dir, "telebridge-client.d.ts"));
    copyFileSync(path.join(ROOT, "web/telebridge-client.js"), path.join(dir, "telebridge-client.js"));
    symlinkSync(path.join(HERE, "node_modules"), path.join(dir, "node_modules"), "dir");
    for (const { name, code } of files) writeFileSync(path.join(dir, name), code);
    const base = JSON.parse(readFileSync(path.join(HERE, "tsconfig.json"), "utf8"));
    const compilerOptions = { ...base.compilerOptions, jsx: "react-jsx", types: ["react"] };
    writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({
        compilerOptions, files: [...files.map((f) => f.name), "telebridge-client.d.ts"],
    }));
    return dir;
}

/* The d.ts's top-level exported names and, per class and interface, its member names. */
function declarations() {
    const sf = ts.createSourceFile(DTS, readFileSync(DTS, "utf8"), ts.ScriptTarget.Latest, true);
    const values = new Set();
    const members = new Map();
    const name = (m) => (m.name && ts.isIdentifier(m.name) ? m.name.text : null);
    for (const st of sf.statements) {
        if (ts.isClassDeclaration(st) || ts.isInterfaceDeclaration(st)) {
            const own = new Set(st.members.map(name).filter(Boolean));
            members.set(st.name.text, own);
            if (ts.isClassDeclaration(st)) values.add(st.name.text);
        } else if (ts.isFunctionDeclaration(st)) {
            values.add(st.name.text);
        } else if (ts.isVariableStatement(st)) {
            for (const d of st.declarationList.declarations) values.add(d.name.text);
        }
    }
    return { values, members };
}

/* Names a class's instances have: own properties of `instance` and its prototype's members. */
function memberNames(cls, instance) {
    const names = new Set(Object.keys(instance));
    for (const n of Object.getOwnPropertyNames(cls.prototype)) if (n !== "constructor") names.add(n);
    return names;
}

describe("telebridge-client.d.ts", () => {
    test("declares every export of telebridge-client.js, and nothing it lacks", () => {
        const { values } = declarations();
        assert.deepEqual([...values].sort(), Object.keys(client).sort());
    });

    test("declares every member of TelebridgeClient and RepeatFilter, and DEFAULTS' keys", () => {
        const { members } = declarations();
        const tb = new client.TelebridgeClient({ url: "ws://127.0.0.1:1/ws", getToken: () => "t" });
        const cases = [
            ["TelebridgeClient", memberNames(client.TelebridgeClient, tb)],
            ["RepeatFilter", memberNames(client.RepeatFilter, new client.RepeatFilter())],
        ];
        for (const [cls, js] of cases) {
            const declared = new Set([...members.get(cls)].filter((n) => n !== "addEventListener" &&
                n !== "removeEventListener"));
            for (const n of Object.getOwnPropertyNames(client[cls]))
                if (typeof client[cls][n] === "function") js.add(n); // statics
            assert.deepEqual([...declared].sort(), [...js].sort(), cls);
        }
        assert.deepEqual([...members.get("TelebridgeDefaults")].sort(), Object.keys(client.DEFAULTS).sort());
    });

    describe("tsc --noEmit", () => {
        const dirs = [];
        before(() => assert.ok(reactBlocks().length >= 2, "docs/react.md has its tested blocks"));
        after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

        test("accepts the typed example (tests/js/tsconfig.json)", async () => {
            const { code, out } = await tsc(HERE);
            assert.equal(code, 0, out);
        });

        test("accepts docs/react.md's useTelebridge hook and its use, with @types/react", async () => {
            const dir = project(reactBlocks());
            dirs.push(dir);
            const { code, out } = await tsc(dir);
            assert.equal(code, 0, out);
        });

        test("refuses a type error (a wrong option type, a misspelt payload member)", async () => {
            const dir = project([{ name: "broken.ts", code: [
                'import { TelebridgeClient } from "./telebridge-client.js";',
                'const c = new TelebridgeClient({ url: "ws://h/ws", getToken: () => "t" });',
                'c.subscribe({ rooms: ["global"], max_hz: "1" });',
                'c.addEventListener("device_status", (e) => e.detail.payload.statuz);',
                "",
            ].join("\n") }]);
            dirs.push(dir);
            const { code, out } = await tsc(dir);
            assert.notEqual(code, 0, out);
            assert.match(out, /broken\.ts\(3,\d+\): error TS2322/);
            assert.match(out, /broken\.ts\(4,\d+\): error TS2551: Property 'statuz'/);
        });
    });
});
