/**
 * The container image, without a Docker engine: relay/Dockerfile is read and checked (multi-stage,
 * not root, a HEALTHCHECK, the Node LTS the parity run uses), then the very artifact its build stage
 * makes (`node scripts/build-relay.mjs /out`) is built into a temporary root and run the way the
 * image's ENTRYPOINT runs it: the image's ENV, its WORKDIR, a Docker secret file at the path the
 * image expects (under the temporary root), and no node_modules anywhere near. It must serve an
 * Allocate, /readyz and /metrics, pass its own HEALTHCHECK, drain on SIGTERM, and log no secret.
 * Relay ports 42800-42849 are this file's own.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isBuiltin } from "node:module";
import { isAbsolute, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StunClass } from "../../../relay/stun/constants.js";
import { freePort, repoRoot } from "../../node/processes.js";
import { imageRuntimeEnv } from "../../../bench/lib/servers.js";
import { SECRET, TurnTestClient, mint } from "../turn-client.js";
import {
  allocateOk,
  cleanEnv,
  deleteAllocation,
  httpGet,
  parsePrometheus,
  portOf,
  sampleValue,
  spawnNode,
  stopAllProcesses,
  waitForEvent,
  waitForListening,
  waitUntil,
} from "./ops-helpers.js";

const BUILD_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------------------------
// Reading a Dockerfile: enough of the syntax for our own file (continuations, comments, JSON or shell forms).

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

interface Dockerfile {
  /** ARGs before the first FROM, with their defaults. */
  globalArgs: Map<string, string>;
  stages: Stage[];
}

function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue; // a comment inside a continued instruction
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + line);
    pending = "";
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword = "", ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(" ") };
    if (instruction.keyword === "FROM") {
      const [from = "", as, name] = rest;
      stages.push({ from, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword === "ARG") {
        const [name = "", value = ""] = instruction.args.split("=");
        globalArgs.set(name, value);
      }
    } else {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

function expandArgs(text: string, args: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced: string | undefined, bare: string | undefined) => args.get(braced ?? bare ?? "") ?? "");
}

/** An exec-form (JSON array) argument list. */
function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string")) throw new Error(`not an exec-form list: ${args}`);
  return parsed;
}

/** ENV lines: `KEY=value KEY2=value2` (values without spaces, as ours are). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const instruction of stage.instructions.filter((entry) => entry.keyword === "ENV")) {
    for (const pair of instruction.args.split(/\s+/).filter((item) => item !== "")) {
      const equals = pair.indexOf("=");
      if (equals <= 0) throw new Error(`ENV in the legacy "KEY value" form: ${instruction.args}`);
      env[pair.slice(0, equals)] = pair.slice(equals + 1);
    }
  }
  return env;
}

const dockerfileText = readFileSync(join(repoRoot, "relay/Dockerfile"), "utf8");
const dockerfile = parseDockerfile(dockerfileText);
const finalStage = dockerfile.stages[dockerfile.stages.length - 1]!;
const buildStage = dockerfile.stages[0]!;
const only = (stage: Stage, keyword: string) => stage.instructions.filter((entry) => entry.keyword === keyword);

/** The Node version scripts/test-relay-on-lts.sh pins. */
function parityNodeVersion(): string {
  const match = /^NODE_LTS_VERSION=(\d+\.\d+\.\d+)$/m.exec(readFileSync(join(repoRoot, "scripts/test-relay-on-lts.sh"), "utf8"));
  if (match === null) throw new Error("scripts/test-relay-on-lts.sh has no NODE_LTS_VERSION=x.y.z line");
  return match[1]!;
}

describe("relay/Dockerfile", () => {
  it("is multi-stage, on the Node LTS the relay's tests also run under", () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    expect(buildStage.name).toBe("build");
    const version = parityNodeVersion();
    for (const stage of dockerfile.stages) {
      const image = expandArgs(stage.from, dockerfile.globalArgs);
      expect(image, stage.from).toMatch(/^node:\d+\.\d+\.\d+-[a-z]+-slim$/);
      expect(image.slice("node:".length).split("-")[0], `${stage.from}: the image's Node is the parity run's`).toBe(version);
    }
    // An LTS line has an even major version.
    expect(Number(version.split(".")[0]) % 2).toBe(0);
  });

  it("runs as a user that is not root, with a HEALTHCHECK and an exec-form ENTRYPOINT", () => {
    const users = only(finalStage, "USER").map((entry) => entry.args.trim());
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1]!;
    expect(user.split(":")[0]).not.toMatch(/^(root|0)$/);
    const healthchecks = only(finalStage, "HEALTHCHECK");
    expect(healthchecks).toHaveLength(1);
    const check = /^(.*?)\bCMD\s+(\[.*\])$/.exec(healthchecks[0]!.args);
    expect(check, healthchecks[0]!.args).not.toBeNull();
    expect(check![1]).toMatch(/--timeout=\d+s/);
    expect(execForm(check![2]!)).toEqual(["node", "/app/healthcheck.mjs"]);
    const entrypoints = only(finalStage, "ENTRYPOINT");
    expect(entrypoints).toHaveLength(1);
    expect(execForm(entrypoints[0]!.args)[0]).toBe("node");
    // The final stage installs nothing and builds nothing: it only copies the build stage's output.
    expect(only(finalStage, "RUN")).toEqual([]);
  });

  it("copies into the final stage exactly what the build stage's build script makes", () => {
    const runs = only(buildStage, "RUN").map((entry) => entry.args);
    const build = runs.map((args) => /^node scripts\/build-relay\.mjs (\/\S+)$/.exec(args)).find((match) => match !== null);
    expect(build, "the build stage runs node scripts/build-relay.mjs OUTDIR").toBeDefined();
    // The batched UDP addon is built first, strictly (no --if-possible), so the bundle carries it.
    const addonBuild = runs.indexOf("node scripts/build-native-udp.mjs");
    expect(addonBuild, "the build stage runs node scripts/build-native-udp.mjs").toBeGreaterThanOrEqual(0);
    expect(addonBuild).toBeLessThan(runs.findIndex((args) => args.startsWith("node scripts/build-relay.mjs")));
    const copies = only(finalStage, "COPY");
    expect(copies.map((entry) => entry.args)).toEqual([`--from=build ${build![1]}/ /app/`]);
    expect(only(finalStage, "WORKDIR").map((entry) => entry.args)).toEqual(["/app"]);
    // Everything the build stage copies from the context exists and is let through the ignore file.
    const ignore = readFileSync(join(repoRoot, "relay/Dockerfile.dockerignore"), "utf8");
    expect(ignore).toMatch(/^\*\*$/m);
    for (const entry of only(buildStage, "COPY")) {
      const sources = entry.args.split(/\s+/).slice(0, -1);
      for (const source of sources) {
        expect(existsSync(join(repoRoot, source)), source).toBe(true);
        const pattern = source.endsWith("/") ? `!${source}**` : `!${source}`;
        expect(ignore.split("\n"), `${pattern} in relay/Dockerfile.dockerignore`).toContain(pattern);
      }
    }
  });

  it("sets how Node runs the relay on one ENV line, which the benchmark starts its relay with as well", () => {
    const env = envOf(finalStage);
    expect(env["MALLOC_ARENA_MAX"]).toMatch(/^\d+$/);
    expect(env["NODE_OPTIONS"]).toMatch(/^--v8-pool-size=\d+$/);
    expect(imageRuntimeEnv()).toEqual({ MALLOC_ARENA_MAX: env["MALLOC_ARENA_MAX"], NODE_OPTIONS: env["NODE_OPTIONS"] });
  });

  it("and deploy/compose.yaml runs it with host networking and time to drain", () => {
    const compose = readFileSync(join(repoRoot, "deploy/compose.yaml"), "utf8");
    expect(compose).toMatch(/^\s+network_mode: host$/m);
    expect(compose).toMatch(/^\s+dockerfile: relay\/Dockerfile$/m);
    const drain = Number(/RELAY_DRAIN_TIMEOUT: (\d+)/.exec(compose)?.[1]);
    const grace = Number(/stop_grace_period: (\d+)s/.exec(compose)?.[1]);
    expect(drain).toBeGreaterThan(0);
    expect(grace).toBeGreaterThan(drain);
    const min = Number(/RELAY_MIN_PORT: (\d+)/.exec(compose)?.[1]);
    const max = Number(/RELAY_MAX_PORT: (\d+)/.exec(compose)?.[1]);
    expect(max - min + 1).toBeGreaterThan(0);
    expect(max - min + 1).toBeLessThanOrEqual(2_000);
  });

  // Only under scripts/test-relay-on-lts.sh (reported as skipped elsewhere): the suite really runs on the pinned binary.
  const expected = process.env.RELAYKIT_EXPECT_NODE_VERSION;
  it.runIf(expected !== undefined)("runs under the pinned LTS binary when the parity script runs the suite", () => {
    expect(process.version).toBe(expected);
    expect(expected).toBe(`v${parityNodeVersion()}`);
    expect(typeof process.release.lts).toBe("string");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("the image's artifact, run as its ENTRYPOINT runs it", () => {
  let root = "";
  /** Maps an absolute path inside the image to the temporary root. */
  const inImage = (path: string) => (isAbsolute(path) ? join(root, path) : path);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "relaykit-image-"));
    const build = /^node scripts\/build-relay\.mjs (\/\S+)$/.exec(only(buildStage, "RUN").find((entry) => entry.args.startsWith("node scripts/build-relay.mjs"))!.args)!;
    const outDir = inImage(build[1]!);
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ["scripts/build-relay.mjs", outDir], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
      const timer = setTimeout(() => child.kill("SIGKILL"), BUILD_TIMEOUT_MS);
      child.once("error", reject);
      child.once("close", (exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
    expect(code).toBe(0);
    // COPY --from=build /out/ /app/
    const [from, to] = only(finalStage, "COPY")[0]!.args.replace("--from=build ", "").split(" ");
    mkdirSync(inImage(to!), { recursive: true });
    cpSync(inImage(from!), inImage(to!), { recursive: true });
  }, BUILD_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    await stopAllProcesses();
    if (root !== "") rmSync(root, { recursive: true, force: true });
  }, 30_000);

  it("holds only the production files, and loads nothing but Node's own modules", () => {
    expect(readdirSync(inImage("/app")).sort()).toEqual(["healthcheck.mjs", "native", "package.json", "relay.mjs"]);
    expect(readdirSync(inImage("/app/native/build"))).toEqual(["udp-batch.node"]);
    expect(JSON.parse(readFileSync(inImage("/app/package.json"), "utf8"))).toMatchObject({ type: "module", private: true });
    // Everything is bundled: the only modules the files load are Node's own.
    for (const file of ["relay.mjs", "healthcheck.mjs"]) {
      const code = readFileSync(inImage(`/app/${file}`), "utf8");
      const specifiers = [...code.matchAll(/\bfrom\s*"([^"]+)"|\brequire\("([^"]+)"\)|\bimport\("([^"]+)"\)/g)].map((match) => match[1] ?? match[2] ?? match[3] ?? "");
      expect(specifiers.length, file).toBeGreaterThan(0);
      const foreign = specifiers.filter((specifier) => !isBuiltin(specifier));
      expect(foreign, `${file} loads modules that are not Node's own`).toEqual([]);
    }
  });

  it("serves an Allocate, /readyz, /metrics and its HEALTHCHECK, drains on SIGTERM, and logs no secret", async () => {
    const imageEnv = envOf(finalStage);
    // The Docker secret the image expects, at the same path under the temporary root.
    const secretPath = inImage(imageEnv.RELAY_STATIC_AUTH_SECRET_FILE!);
    mkdirSync(join(secretPath, ".."), { recursive: true });
    writeFileSync(secretPath, `${SECRET}\n`, { mode: 0o400 });
    const metricsPort = await freePort();
    const env = cleanEnv({
      ...imageEnv,
      RELAY_STATIC_AUTH_SECRET_FILE: secretPath,
      // What an operator sets for this host (here: loopback, and ports of this test's own).
      RELAY_LISTENING_IP: "127.0.0.1",
      RELAY_LISTENING_PORT: "0",
      RELAY_MIN_PORT: "42800",
      RELAY_MAX_PORT: "42849",
      RELAY_PROMETHEUS_PORT: String(metricsPort),
    });
    const [command, ...args] = execForm(only(finalStage, "ENTRYPOINT")[0]!.args);
    expect(command).toBe("node");
    const relay = spawnNode(args.map(inImage), env, inImage("/app"));
    const listening = await waitForListening(relay);
    expect(listening.metrics).toEqual({ address: "127.0.0.1", port: metricsPort });
    // The bundle finds the addon beside it and carries UDP on it.
    expect(listening.udpIo).toBe("native");

    const healthcheck = async () => {
      const [checkCommand, ...checkArgs] = execForm(/CMD\s+(\[.*\])$/.exec(only(finalStage, "HEALTHCHECK")[0]!.args)![1]!);
      expect(checkCommand).toBe("node");
      const check = spawnNode(checkArgs.map(inImage), env, inImage("/app"));
      expect(await waitUntil(() => check.exit() !== undefined, 10_000), check.report()).toBe(true);
      return check.exit()!.code;
    };
    expect(await healthcheck()).toBe(0);
    expect((await httpGet(metricsPort, "/readyz")).status).toBe(200);

    const credential = await mint("image-user");
    const client = await TurnTestClient.open(portOf(listening, "udp"));
    try {
      const relayed = await allocateOk(client, credential);
      expect(relayed.address).toBe("127.0.0.1");
      const samples = parsePrometheus((await httpGet(metricsPort, "/metrics")).body);
      expect(sampleValue(samples, "relay_allocations_active", { transport: "udp" })).toBe(1);

      // The image drains (RELAY_DRAIN_TIMEOUT): not ready, still alive, until the allocation ends.
      process.kill(relay.pid, "SIGTERM");
      await waitForEvent(relay, "stopping", 5_000);
      expect((await httpGet(metricsPort, "/readyz")).status).toBe(503);
      expect(await healthcheck()).toBe(0);
      expect((await deleteAllocation(client, credential)).messageClass).toBe(StunClass.SuccessResponse);
    } finally {
      client.close();
    }
    expect(await waitUntil(() => relay.exit() !== undefined, 10_000), relay.report()).toBe(true);
    expect(relay.exit()).toEqual({ code: 0, signal: null });
    // With the relay gone, the HEALTHCHECK fails.
    expect(await healthcheck()).toBe(1);
    expect(relay.stderr()).toBe("");
    const output = relay.stdout() + relay.stderr();
    expect(output.includes(SECRET), "the secret appears in the output").toBe(false);
    expect(output.includes(credential.password), "the password appears in the output").toBe(false);
  }, 60_000);
});
