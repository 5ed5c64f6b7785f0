/**
 * The whole stack for an end-to-end test: our relay (as `relay/main.ts`, the way operators run it)
 * and the Worker (`wrangler dev`, local workerd) sharing one fresh TURN secret, started in the
 * current network namespace or, with `netnsExec`, inside a named one. Meant to run inside the
 * isolated namespace a test made (test/node/netns.ts): nothing here talks beyond the given host.
 *
 * Both processes run detached in process groups of their own and `stop()` ends each group by its
 * PID. Every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quietWrangler, repoRoot, signalGroup, sleep } from "../node/processes.js";
import { relayEntryArgs } from "../node/relay-command.js";
import { unwatchedWranglerConfigArgs } from "../node/wrangler-config.js";

export type TurnTransport = "udp" | "tcp" | "tls";

export interface StackOptions {
  /** The address both services bind to and advertise. Default 127.0.0.1. */
  host?: string;
  /** Ports; default: any free one (relay: chosen by the relay, Worker: 8787 + a random offset). */
  workerPort?: number;
  relayPort?: number;
  tlsPort?: number;
  /** The TURN URLs the Worker hands out, in this order. Default udp and tcp. */
  turnTransports?: TurnTransport[];
  /** `--max-allocate-lifetime` for the relay (clients refresh at half of a short one). */
  maxAllocateLifetime?: number;
  /** The Worker's TURN_TTL: how long issued credentials live. */
  turnTtlSeconds?: number;
  /** Give the relay a different secret from the Worker's (the negative control). */
  relaySecretMismatch?: boolean;
  /** More relay flags, e.g. `--allowed-peer-ip=198.51.100.0/24`. */
  relayArgs?: string[];
  /** Prefix both commands, e.g. `["ip", "netns", "exec", "pub"]`. */
  netnsExec?: string[];
  /** More Worker variables (`--var NAME:value`). */
  workerVars?: Record<string, string>;
}

/** One JSON line the relay logged (allocation-start, allocation-end, listening…). */
export interface RelayLogLine {
  event: string;
  [field: string]: unknown;
}

export interface Stack {
  /** http://host:port of the Worker: pages, /v1/ice-servers, and ws rooms under /v1/rooms/. */
  workerUrl: string;
  relay: { host: string; udpPort?: number; tcpPort?: number; tlsPort?: number };
  /** The TURN URLs the Worker hands out. */
  turnUrls: string[];
  /** What the relay logged so far, parsed. */
  relayEvents(): RelayLogLine[];
  /** Everything both printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

const RELAY_START_TIMEOUT_MS = 20_000;
const WORKER_START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: () => string | undefined;
}

function startDetached(prefix: string[], command: string, args: string[], env: Record<string, string>): Started {
  const [file, ...rest] = [...prefix, command, ...args];
  const child = spawn(file!, rest, { cwd: repoRoot, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let output = "";
  let exited: string | undefined;
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.once("exit", (code, signal) => (exited = `exited (code ${code}, signal ${signal})`));
  return { child, output: () => output, exited: () => exited };
}

async function stopGroup(started: Started): Promise<void> {
  const pid = started.child.pid;
  if (pid === undefined) return;
  if (!signalGroup(pid, "SIGTERM")) return;
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(100);
  signalGroup(pid, "SIGKILL");
  started.child.stdout?.destroy();
  started.child.stderr?.destroy();
}

/**
 * The relay's log once `enough` holds for it, or as it stands after `timeoutMs`: the relay writes a
 * line that follows another within 25 ms a little later (relay/ops/log.ts), and this process reads
 * the pipe only when its own loop gets to it, so a line may trail the event it reports.
 */
export async function relayEventsOnce(stack: Pick<Stack, "relayEvents">, enough: (events: RelayLogLine[]) => boolean, timeoutMs: number): Promise<RelayLogLine[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = stack.relayEvents();
    if (enough(events) || Date.now() >= deadline) return events;
    await sleep(50);
  }
}

/** The relay's JSON log lines in `text` (anything else in it is skipped). */
export function parseRelayLog(text: string): RelayLogLine[] {
  const lines: RelayLogLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const parsed = JSON.parse(line) as RelayLogLine;
      if (typeof parsed.event === "string") lines.push(parsed);
    } catch {
      // a partial line still being written
    }
  }
  return lines;
}

/** A throwaway self-signed certificate for the relay's TLS listener. */
function selfSignedCertificate(): { dir: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-e2e-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
  return { dir, cert, key };
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const host = options.host ?? "127.0.0.1";
  const prefix = options.netnsExec ?? [];
  const transports = options.turnTransports ?? ["udp", "tcp"];
  const secret = randomBytes(32).toString("base64url");
  const relaySecret = options.relaySecretMismatch ? randomBytes(32).toString("base64url") : secret;
  const tls = transports.includes("tls") ? selfSignedCertificate() : undefined;
  // The Worker's local storage of its own: two stacks at once must not share .wrangler/state (SQLITE_BUSY).
  const state = mkdtempSync(join(tmpdir(), "relaykit-e2e-state-"));
  const started: Started[] = [];
  const stop = async () => {
    await Promise.all(started.map(stopGroup));
    if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  };

  try {
    const relayFlags = [
      `--listening-ip=${host}`,
      `--listening-port=${options.relayPort ?? 0}`,
      "--realm=relaykit.e2e",
      ...(host.startsWith("127.") ? ["--allow-loopback-peers"] : []),
      ...(options.maxAllocateLifetime !== undefined ? [`--max-allocate-lifetime=${options.maxAllocateLifetime}`] : []),
      ...(tls !== undefined ? [`--cert=${tls.cert}`, `--pkey=${tls.key}`, `--tls-listening-port=${options.tlsPort ?? 0}`] : []),
      ...(options.relayArgs ?? []),
    ];
    // One relay process: two stacks run at a time on CI's two cores (worker processes have their own
    // suite, test/relay/cluster/); `relayArgs` may still ask for --relay-threads.
    const relay = startDetached(prefix, process.execPath, [...relayEntryArgs(), ...relayFlags], { RELAY_STATIC_AUTH_SECRET: relaySecret, RELAY_RELAY_THREADS: "1" });
    started.push(relay);
    const listening = await waitFor(RELAY_START_TIMEOUT_MS, () => {
      const exited = relay.exited();
      if (exited !== undefined) throw new Error(`the relay ${exited}:\n${relay.output()}`);
      return parseRelayLog(relay.output()).find((line) => line.event === "listening");
    }, () => `the relay did not log "listening" within ${RELAY_START_TIMEOUT_MS} ms:\n${relay.output()}`);
    const listeners = (listening["listeners"] ?? []) as { transport: string; address: string; port: number }[];
    const portOf = (transport: string) => listeners.find((listener) => listener.transport === transport)?.port;
    const relayPorts = { udpPort: portOf("udp"), tcpPort: portOf("tcp"), tlsPort: portOf("tls") };

    const urlHost = host.includes(":") ? `[${host}]` : host;
    const turnUrls = transports.map((transport) => {
      const port = transport === "udp" ? relayPorts.udpPort : transport === "tcp" ? relayPorts.tcpPort : relayPorts.tlsPort;
      if (port === undefined) throw new Error(`the relay has no ${transport} listener: ${JSON.stringify(listeners)}`);
      return transport === "tls" ? `turns:${urlHost}:${port}?transport=tcp` : `turn:${urlHost}:${port}?transport=${transport}`;
    });
    // STUN is the relay's plain UDP (or TCP) listener.
    const stunPort = relayPorts.udpPort ?? relayPorts.tcpPort;
    const workerPort = options.workerPort ?? 20_000 + Math.floor(Math.random() * 20_000);
    const vars: Record<string, string> = {
      TURN_SECRETS: secret,
      TURN_URLS: turnUrls.join(","),
      STUN_URLS: stunPort === undefined ? "" : `stun:${urlHost}:${stunPort}`,
      AUTH_MODE: "open",
      ...(options.turnTtlSeconds !== undefined ? { TURN_TTL: String(options.turnTtlSeconds) } : {}),
      ...options.workerVars,
    };
    const varFlags = Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
    const worker = startDetached(
      prefix,
      process.execPath,
      ["node_modules/wrangler/bin/wrangler.js", "dev", ...unwatchedWranglerConfigArgs(), "--local", "--ip", host, "--port", String(workerPort), "--inspector-port", "0", "--persist-to", state, ...varFlags],
      quietWrangler,
    );
    started.push(worker);
    const workerUrl = `http://${urlHost}:${workerPort}`;
    await waitForAsync(WORKER_START_TIMEOUT_MS, async () => {
      const exited = worker.exited();
      if (exited !== undefined) throw new Error(`wrangler dev ${exited}:\n${worker.output()}`);
      try {
        const response = await fetch(`${workerUrl}/v1/rooms/probe`, { signal: AbortSignal.timeout(2_000) });
        await response.body?.cancel();
        return response.status === 426 ? true : undefined;
      } catch {
        return undefined;
      }
    }, () => `the Worker did not answer on ${workerUrl} within ${WORKER_START_TIMEOUT_MS} ms:\n${worker.output()}`);

    return {
      workerUrl,
      relay: { host, ...relayPorts },
      turnUrls,
      relayEvents: () => parseRelayLog(relay.output()),
      output: () => `--- relay ---\n${relay.output()}\n--- worker ---\n${worker.output()}`,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function waitFor<T>(timeoutMs: number, probe: () => T | undefined, timeoutMessage: () => string): Promise<T> {
  return waitForAsync(timeoutMs, async () => probe(), timeoutMessage);
}

async function waitForAsync<T>(timeoutMs: number, probe: () => Promise<T | undefined>, timeoutMessage: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(timeoutMessage());
    await sleep(100);
  }
}
