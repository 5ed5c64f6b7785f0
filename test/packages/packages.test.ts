/**
 * The packages as an app gets them (issue 18's proof): build them (scripts/build-packages.mjs), `npm
 * pack` each, install the tarballs into a fresh app in the system's temporary directory (no workspace,
 * no node_modules of the repository above it) with npm offline and an empty cache, then:
 *
 * - type-check the example app (./app: browser.ts and backend.ts, which import every public export,
 *   checked against the installed .d.ts) with `tsc --strict`, and backend.ts alone without DOM types;
 * - bundle the browser example with esbuild, from the installed package;
 * - run `npx relaykit-relay --help` from the installed relay package;
 * - run a Node script (./app/join.mjs) that mints join tokens with @relaykit/server and joins a room on
 *   the local Worker (`npm start` with JOIN_SECRET) with @relaykit/client, one peer signalling the other.
 *
 * typescript and esbuild are the repository's own binaries, run by absolute path from inside the app:
 * they resolve the app's imports from the app's node_modules, and installing them offline would need
 * registry metadata that `npm ci` does not cache. `ws` (the Node script's WebSocket) is packed from the
 * repository's node_modules the same way as ours. Nothing here reaches a registry: npm runs offline,
 * with its registry pointed at a closed loopback port besides.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_WORKER_HOOK_TIMEOUT_MS, repoRoot, run as runCommand, startLocalWorker, type LocalWorker, type RunResult } from "../node/processes.js";
import { publicExports } from "./public-exports.js";

const PACKAGES = ["client", "server", "relay"] as const;
const LIBRARIES = ["client", "server"] as const;
/** Each step is a few seconds here; these bound a hang, not a slow machine. */
const BUILD_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 30_000;
const SETUP_TIMEOUT_MS = BUILD_TIMEOUT_MS + 5 * STEP_TIMEOUT_MS;
const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
/** esbuild's install puts its native binary here (a JavaScript shim where it could not). */
const esbuild = join(repoRoot, "node_modules", "esbuild", "bin", "esbuild");
/** npm must not reach a registry from a test: offline, and a registry nobody listens on if it tried. */
const offlineNpm = { npm_config_offline: "true", npm_config_registry: "http://127.0.0.1:9/", npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" };

/** Runs a command to completion in `cwd`, killed (its whole process group) after `timeoutMs`. */
function run(command: string, args: string[], cwd: string, timeoutMs: number, env: Record<string, string> = {}): Promise<RunResult> {
  return runCommand(command, args, timeoutMs, { cwd, env, group: true });
}

const report = (what: string, ran: RunResult) => `${what}: exit ${ran.code}\nstdout:\n${ran.stdout}\nstderr:\n${ran.stderr}`;

async function mustRun(what: string, command: string, args: string[], cwd: string, timeoutMs: number, env: Record<string, string> = {}): Promise<RunResult> {
  const ran = await run(command, args, cwd, timeoutMs, env);
  if (ran.code !== 0) throw new Error(report(what, ran));
  return ran;
}

interface PackedFile {
  path: string;
}
interface Packed {
  name: string;
  filename: string;
  files: PackedFile[];
}

/** `npm pack` of one directory into `destination`; what npm says it packed. */
async function pack(dir: string, destination: string, extra: string[] = []): Promise<Packed> {
  const ran = await mustRun(`npm pack ${dir}`, "npm", ["pack", "--json", "--pack-destination", destination, ...extra], dir, STEP_TIMEOUT_MS, offlineNpm);
  const [packed] = JSON.parse(ran.stdout) as Packed[];
  if (packed === undefined) throw new Error(`npm pack ${dir} printed no package: ${ran.stdout}`);
  return packed;
}

/** The names an example file imports from `specifier`. */
function importedNames(file: string, specifier: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const names: string[] = [];
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier) || statement.moduleSpecifier.text !== specifier) continue;
    const bindings = statement.importClause?.namedBindings;
    if (bindings !== undefined && ts.isNamedImports(bindings)) names.push(...bindings.elements.map((element) => (element.propertyName ?? element.name).text));
  }
  return names;
}

describe("the published packages, packed and installed into a fresh app", () => {
  let work: string;
  let app: string;
  const packed = new Map<string, Packed>();
  let buildOutput = "";

  beforeAll(async () => {
    buildOutput = (await mustRun("npm run build:packages", process.execPath, ["scripts/build-packages.mjs", "--quiet"], repoRoot, BUILD_TIMEOUT_MS)).stdout;
    work = mkdtempSync(join(tmpdir(), "relaykit-packages-"));
    const tarballs = join(work, "tarballs");
    app = join(work, "app");
    mkdirSync(tarballs);
    for (const name of PACKAGES) packed.set(name, await pack(join(repoRoot, "packages", name), tarballs));
    // ws has no scripts to run and no dependencies; packed, it installs offline like ours.
    const ws = await pack(join(repoRoot, "node_modules", "ws"), tarballs, ["--ignore-scripts"]);
    cpSync(join(repoRoot, "test", "packages", "app"), app, { recursive: true });
    const files = [...PACKAGES.map((name) => packed.get(name)!.filename), ws.filename].map((file) => join(tarballs, file));
    // An empty cache of its own: what installs here needs nothing beyond the tarballs.
    await mustRun("npm install", "npm", ["install", "--offline", "--no-audit", "--no-fund", "--cache", join(work, "npm-cache"), ...files], app, STEP_TIMEOUT_MS, offlineNpm);
  }, SETUP_TIMEOUT_MS);

  afterAll(() => {
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("measures the browser client under 15 KB minified and gzipped, and says so", () => {
    expect(buildOutput).toMatch(/@relaykit\/client: \d+ bytes minified, \d+ bytes \([\d.]+ KB\) minified\+gzipped; limit 15360/);
    const size = JSON.parse(readFileSync(join(repoRoot, "packages", "client", "dist", "size.json"), "utf8")) as { gzipBytes: number; minifiedBytes: number; limitBytes: number };
    expect(size.limitBytes).toBe(15_360);
    expect(size.gzipBytes).toBeGreaterThan(1_000);
    expect(size.gzipBytes).toBeLessThanOrEqual(15_360);
    expect(size.minifiedBytes).toBeGreaterThan(size.gzipBytes);
  });

  it("refuses a build over the size limit with the figures, and leaves dist/ as it was", async () => {
    const sizeFile = join(repoRoot, "packages", "client", "dist", "size.json");
    const before = statSync(sizeFile).mtimeMs;
    const ran = await run(process.execPath, ["scripts/build-packages.mjs", "--size-limit", "1000"], repoRoot, BUILD_TIMEOUT_MS);
    expect(ran.code, report("build-packages --size-limit 1000", ran)).toBe(1);
    expect(ran.stderr).toMatch(/minified\+gzipped; limit 1000: over the limit by \d+ bytes\. The largest inputs \(minified\): shared\/client\//);
    expect(statSync(sizeFile).mtimeMs).toBe(before);
  });

  it("packs what a careful package ships: ESM with types and maps, license, changelog, no dependencies", () => {
    for (const name of PACKAGES) {
      const files = packed.get(name)!.files.map((file) => file.path);
      for (const required of ["package.json", "README.md", "LICENSE", "CHANGELOG.md"]) expect(files, `@relaykit/${name}`).toContain(required);
      expect(files.filter((file) => file.startsWith("src/")), `@relaykit/${name} ships its dist only`).toEqual([]);
      const installed = JSON.parse(readFileSync(join(app, "node_modules", "@relaykit", name, "package.json"), "utf8")) as Record<string, unknown>;
      expect(installed).toMatchObject({ name: `@relaykit/${name}`, version: "0.1.0", type: "module", license: "MIT" });
      expect(installed.dependencies, `@relaykit/${name} inlines what it uses`).toBeUndefined();
      expect(installed.engines).toEqual({ node: ">=20" });
    }
    for (const name of LIBRARIES) {
      const files = packed.get(name)!.files.map((file) => file.path);
      for (const required of ["dist/index.js", "dist/index.js.map", "dist/index.d.ts"]) expect(files, `@relaykit/${name}`).toContain(required);
      expect(files.some((file) => file.endsWith(".d.ts.map"))).toBe(true);
      const installed = JSON.parse(readFileSync(join(app, "node_modules", "@relaykit", name, "package.json"), "utf8")) as Record<string, unknown>;
      expect(installed.sideEffects).toBe(false);
      expect(installed.exports).toEqual({ ".": { types: "./dist/index.d.ts", import: "./dist/index.js" }, "./package.json": "./package.json" });
    }
    expect(packed.get("relay")!.files.map((file) => file.path)).toEqual(
      expect.arrayContaining(["dist/relay.mjs", "dist/scripts/build-native-udp.mjs", "dist/relay/transport/native/udp-batch.c", "dist/relay/transport/native/stream-io.c", "dist/relay/transport/native/channel-routes.c", "dist/relay/transport/native/channel-routes.h", "dist/relay/transport/native/native-common.h"]),
    );
  });

  it("type-checks an example that uses every public export with tsc --strict (and the backend without DOM types)", async () => {
    const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], types: [], strict: true };
    const examples = { client: join(app, "browser.ts"), server: join(app, "backend.ts") };
    for (const name of LIBRARIES) {
      const surface = publicExports(join(app, "node_modules", "@relaykit", name, "dist", "index.d.ts"), options).map((entry) => entry.name);
      expect(surface.length).toBeGreaterThan(10);
      const used = importedNames(examples[name], `@relaykit/${name}`);
      expect(surface.filter((exported) => !used.includes(exported)), `exports of @relaykit/${name} that ${examples[name]} does not import`).toEqual([]);
    }
    // noUnusedLocals in the app's tsconfig: an import the example does not use is an error there.
    await mustRun("tsc -p tsconfig.json (browser + backend, DOM)", process.execPath, [tsc, "-p", "tsconfig.json"], app, STEP_TIMEOUT_MS);
    await mustRun("tsc -p tsconfig.backend.json (backend, ES2022 only)", process.execPath, [tsc, "-p", "tsconfig.backend.json"], app, STEP_TIMEOUT_MS);
  }, 2 * STEP_TIMEOUT_MS);

  it("bundles the browser example with esbuild from the installed package", async () => {
    await mustRun("esbuild browser.ts", esbuild, ["browser.ts", "--bundle", "--format=esm", "--platform=browser", "--target=es2022", "--minify", "--outfile=out/browser.js", "--metafile=out/meta.json", "--log-level=warning"], app, STEP_TIMEOUT_MS);
    const meta = JSON.parse(readFileSync(join(app, "out", "meta.json"), "utf8")) as { inputs: Record<string, unknown> };
    const inputs = Object.keys(meta.inputs);
    expect(inputs).toContain("node_modules/@relaykit/client/dist/index.js");
    expect(inputs.filter((input) => input.includes("shared/")), "the bundle took nothing from the repository").toEqual([]);
    expect(readFileSync(join(app, "out", "browser.js"), "utf8")).toContain("relaykit.v1");
  });

  it("runs npx @relaykit/relay --help (its bin, relaykit-relay) from the installed relay package", async () => {
    const ran = await mustRun("npx @relaykit/relay --help", "npx", ["@relaykit/relay", "--help"], app, STEP_TIMEOUT_MS, offlineNpm);
    expect(ran.stdout).toContain("relaykit relay: a STUN/TURN server");
    expect(ran.stdout).toContain("--static-auth-secret");
  });

  it("builds the UDP addon at install where a C compiler is there, and it loads", async () => {
    const compiler = await run(process.env.CC ?? "cc", ["--version"], app, STEP_TIMEOUT_MS).catch(() => null);
    const addon = join(app, "node_modules", "@relaykit", "relay", "dist", "native", "build", "udp-batch.node");
    if (compiler === null || compiler.code !== 0 || process.platform !== "linux") {
      // Without a compiler the install step must still succeed (it did: beforeAll) and build nothing.
      expect(existsSync(addon)).toBe(false);
      return;
    }
    expect(existsSync(addon), "the relay package's install step built no addon").toBe(true);
    const loaded = createRequire(import.meta.url)(addon) as { open?: unknown; send?: unknown };
    expect(typeof loaded.open).toBe("function");
    expect(typeof loaded.send).toBe("function");
  });

  describe("against the local Worker", () => {
    const JOIN_SECRET = `packages-test-join-secret-${process.pid}-0123456789abcdef`;
    let worker: LocalWorker;

    beforeAll(async () => {
      worker = await startLocalWorker({ env: { JOIN_SECRET } });
    }, LOCAL_WORKER_HOOK_TIMEOUT_MS);

    afterAll(() => worker?.stop(), LOCAL_WORKER_HOOK_TIMEOUT_MS);

    it("mints join tokens with @relaykit/server and joins a room with @relaykit/client from Node", async () => {
      const room = `packages-${process.pid}-${Date.now()}`;
      const ran = await run(process.execPath, ["join.mjs", `http://127.0.0.1:${worker.port}`, JOIN_SECRET, room], app, STEP_TIMEOUT_MS);
      const failure = `${report("node join.mjs", ran)}\nnpm start:\n${worker.output()}`;
      expect(ran.code, failure).toBe(0);
      const result = JSON.parse(ran.stdout.trim()) as { alice: string; bob: string; bobSaw: { id: string; name: string }[]; signal: { from: string; data: unknown }; turnEntries: number };
      // The peer ids are the tokens' subs, so the Worker accepted the tokens the package minted.
      expect(result, failure).toEqual({ alice: "alice", bob: "bob", bobSaw: [{ id: "alice", name: "Alice" }], signal: { from: "alice", data: { hello: "bob" } }, turnEntries: 1 });
    });

  });
});
