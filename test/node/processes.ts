/**
 * Processes the Node suites start: `npm start` (the local Worker in workerd) on a free port, and
 * short commands run to completion. Every wait is bounded and everything started is stopped by PID.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { unwatchedWranglerConfigPath } from "./wrangler-config.js";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

const STARTUP_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 200;
const STOP_TIMEOUT_MS = 5_000;

/** Keeps wrangler offline and quiet. */
export const quietWrangler = {
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_HIDE_BANNER: "true",
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Settles as `promise` does, or rejects after `ms` with a message naming what did not happen. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Where freePort() looks: below Linux's ephemeral range (32768-60999), so the kernel never hands one of
 * these ports to an outgoing connection or a socket bound to port 0 between the check and the server's
 * own bind, or while wrangler restarts workerd on it after its start-up rebuild; and clear of every band
 * the suites and the benches give relays' ports (the bench's 10000-21999, which bench-smoke runs beside
 * the suites; 20000-32767 and above), and of X11's 6000-6063. A port some local service holds is skipped.
 */
export const FREE_PORT_BAND = { first: 6_100, last: 7_999 } as const;
const FREE_PORT_TRIES = 50;

/** Whether `port` can be bound on 127.0.0.1 right now, over TCP (and over UDP too when asked). */
async function canBind(port: number, udpToo: boolean): Promise<boolean> {
  const tcpFree = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
  if (!tcpFree || !udpToo) return tcpFree;
  return new Promise<boolean>((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => resolve(false));
    socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
  });
}

async function freePortInBand(udpToo: boolean): Promise<number> {
  const size = FREE_PORT_BAND.last - FREE_PORT_BAND.first + 1;
  for (let attempt = 0; attempt < FREE_PORT_TRIES; attempt++) {
    const port = FREE_PORT_BAND.first + Math.floor(Math.random() * size);
    if (await canBind(port, udpToo)) return port;
  }
  throw new Error(`no port of ${FREE_PORT_BAND.first}-${FREE_PORT_BAND.last} was free on 127.0.0.1 after ${FREE_PORT_TRIES} tries: is something holding that band?`);
}

/** A port nothing listens on right now on 127.0.0.1 (TCP), picked at random in FREE_PORT_BAND. */
export function freePort(): Promise<number> {
  return freePortInBand(false);
}

/** A port free on 127.0.0.1 for both TCP and UDP, for servers that listen on both (coturn, the relay). */
export function freeTcpAndUdpPort(): Promise<number> {
  return freePortInBand(true);
}

/** Sends `signal` to the process group led by `pid`; false when no process of the group is left. */
export function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the whole group is gone
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How `run` starts a command. */
export interface RunOptions {
  /** Default: the repository's root. */
  cwd?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /**
   * Run in a process group of its own and end the whole group at the timeout: for a command that
   * starts servers of its own (a bench, npm), whose children must not outlive it.
   */
  group?: boolean;
}

/** Runs a command to completion, killed after `timeoutMs` (stderr then says so). */
export function run(command: string, args: string[], timeoutMs: number, options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      detached: options.group ?? false,
      env: { ...process.env, ...options.env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      if (options.group !== true || child.pid === undefined) return void child.kill("SIGKILL");
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }, timeoutMs);
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

export interface LocalWorker {
  port: number;
  /** The relay `npm start` runs beside the Worker (UDP and TCP). */
  relayPort: number;
  /** The status and body of the first answer to a plain GET on a room (426 when all is well). */
  firstResponse: { status: number; body: string };
  /** Everything `npm start` printed so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface LocalWorkerOptions {
  /** `npm start -- --relays N` (N > 1): a local fleet on relayPort, relayPort + 1, ... */
  relays?: number;
  /** More environment for npm start (it passes JOIN_SECRET, WEBHOOK_URL and WEBHOOK_SECRET to the Worker). */
  env?: Record<string, string>;
}

/**
 * A start that has not answered within this long is stopped and made once more, on fresh ports:
 * `wrangler dev` starts in 3-10 s here even on a loaded machine, yet once (CI, both cores busy) it
 * sat silent for a minute. The retry is logged with what the first attempt printed.
 */
const STARTUP_ATTEMPT_MS = STARTUP_TIMEOUT_MS / 2;

/**
 * Runs `npm start -- --port <free port> --relay-port <free port>` as the README does (Worker and
 * relay) and waits until the Worker answers: at most STARTUP_TIMEOUT_MS over two attempts.
 * Detached, so wrangler and the workerd it starts share a process group that `stop` ends as one.
 */
export async function startLocalWorker(options: LocalWorkerOptions = {}): Promise<LocalWorker> {
  try {
    return await startLocalWorkerOnce(options, STARTUP_ATTEMPT_MS);
  } catch (error) {
    if (!(error instanceof StartupTimeout || error instanceof PortTaken)) throw error;
    process.stderr.write(`startLocalWorker: ${error.message}\nstartLocalWorker: trying once more on fresh ports\n`);
    return startLocalWorkerOnce(options, STARTUP_ATTEMPT_MS);
  }
}

class StartupTimeout extends Error {}
/**
 * A port picked free was taken before npm start bound it. Rare since ports come from FREE_PORT_BAND
 * (before, from the ephemeral range, where a relay test's relay ports once took one in CI); another
 * suite picking the same port at the same moment still can.
 */
class PortTaken extends Error {}

async function startLocalWorkerOnce(options: LocalWorkerOptions, timeoutMs: number): Promise<LocalWorker> {
  const port = await freePort();
  const relayPort = await freeTcpAndUdpPort();
  const fleetArgs = options.relays !== undefined && options.relays > 1 ? ["--relays", String(options.relays)] : [];
  // Storage of its own: stacks started at once (e2e files run two at a time, some start two) must not
  // share wrangler's .wrangler/state, whose SQLite files then lock each other out (SQLITE_BUSY).
  const state = mkdtempSync(join(tmpdir(), "relaykit-local-state-"));
  const child = spawn("npm", ["start", "--", "--port", String(port), "--relay-port", String(relayPort), "--persist-to", state, ...fleetArgs, "--wrangler-config", unwatchedWranglerConfigPath()], {
    cwd: repoRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...quietWrangler, ...options.env },
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = `exited early (code ${code}, signal ${signal})`));

  const stopGroup = async () => {
    const pid = child.pid;
    if (pid === undefined) return;
    // Drop our ends of the pipes so a lingering child cannot keep this process busy.
    child.stdout?.destroy();
    child.stderr?.destroy();
    if (!signalGroup(pid, "SIGTERM")) return;
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(100);
    signalGroup(pid, "SIGKILL"); // a no-op when SIGTERM was enough
  };
  const stop = async () => {
    await stopGroup();
    rmSync(state, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}/v1/rooms/x`;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (exited !== undefined) {
        const Failure = /EADDRINUSE|Address already in use/.test(output) ? PortTaken : Error;
        throw new Failure(`npm start ${exited}. Output:\n${output}`);
      }
      if (Date.now() > deadline) throw new StartupTimeout(`npm start did not answer ${url} within ${timeoutMs} ms. Output:\n${output}`);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        return { port, relayPort, firstResponse: { status: res.status, body: await res.text() }, output: () => output, stop };
      } catch {
        await sleep(POLL_INTERVAL_MS); // not listening yet
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
}

/** How long a suite may take to start and stop the local Worker. */
export const LOCAL_WORKER_HOOK_TIMEOUT_MS = STARTUP_TIMEOUT_MS + 10_000;
