/**
 * The local stack as a newcomer runs it: `npm start` (wrangler dev --local) on a free port, then
 * `node scripts/signal-demo.mjs` against it. Proves the README's quick start works end to end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const STARTUP_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 200;
const DEMO_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

const quietWrangler = {
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_HIDE_BANNER: "true",
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A port nothing listens on right now: bind port 0 on 127.0.0.1, read the port, release it. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not read the bound port"))));
    });
  });
}

/** Sends `signal` to the process group led by `pid`; false when no process of the group is left. */
function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the whole group is gone
  }
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killing it after `timeoutMs`. */
function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe("local stack: npm start + scripts/signal-demo.mjs", () => {
  let port = 0;
  let wrangler: ChildProcess | undefined;
  let wranglerOutput = "";
  let firstResponse: { status: number; body: string } | undefined;

  beforeAll(async () => {
    port = await freePort();
    // Detached: wrangler and the workerd it starts share a new process group, killed as one in afterAll.
    wrangler = spawn("npm", ["start", "--", "--port", String(port)], {
      cwd: repoRoot,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...quietWrangler },
    });
    wrangler.stdout?.on("data", (chunk: Buffer) => (wranglerOutput += chunk.toString()));
    wrangler.stderr?.on("data", (chunk: Buffer) => (wranglerOutput += chunk.toString()));
    let exited: string | undefined;
    wrangler.once("exit", (code, signal) => (exited = `exited early (code ${code}, signal ${signal})`));

    const url = `http://127.0.0.1:${port}/v1/rooms/x`;
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (firstResponse === undefined) {
      if (exited !== undefined) throw new Error(`npm start ${exited}. Output:\n${wranglerOutput}`);
      if (Date.now() > deadline) {
        throw new Error(`npm start did not answer ${url} within ${STARTUP_TIMEOUT_MS} ms. Output:\n${wranglerOutput}`);
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        firstResponse = { status: res.status, body: await res.text() };
      } catch {
        await sleep(POLL_INTERVAL_MS); // not listening yet
      }
    }
  }, STARTUP_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    const pid = wrangler?.pid;
    if (pid === undefined) return;
    // Drop our ends of the pipes so a lingering child cannot keep this process busy.
    wrangler?.stdout?.destroy();
    wrangler?.stderr?.destroy();
    if (!signalGroup(pid, "SIGTERM")) return;
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(100);
    signalGroup(pid, "SIGKILL"); // a no-op when SIGTERM was enough
  }, STOP_TIMEOUT_MS + 5_000);

  it("answers a plain GET on a room with 426 upgrade-required", () => {
    expect(firstResponse?.status, wranglerOutput).toBe(426);
    const body: unknown = JSON.parse(firstResponse?.body ?? "null");
    expect(body).toMatchObject({ error: { code: "upgrade-required", message: expect.any(String) } });
  });

  it("relays a signal between two peers in the demo script", async () => {
    const room = `local-stack-${process.pid}-${Date.now()}`;
    const demo = await run(
      process.execPath,
      ["scripts/signal-demo.mjs", `ws://127.0.0.1:${port}`, room],
      DEMO_TIMEOUT_MS,
    );
    const report = `signal-demo exit ${demo.code} (signal ${demo.signal})\nstdout:\n${demo.stdout}\nstderr:\n${demo.stderr}\nwrangler:\n${wranglerOutput}`;

    expect(demo.code, report).toBe(0);
    const peerA = /^A welcome: peerId=(\S+)$/m.exec(demo.stdout)?.[1];
    expect(peerA, report).toBeDefined();
    expect(demo.stdout, report).toContain(`B received signal from ${peerA}:`);
    expect(demo.stdout, report).toContain('"kind":"offer"');
  });
});
