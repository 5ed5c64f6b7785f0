/**
 * Helpers for the operations tests: the relay as a real process (through tsx, or the built bundle
 * as the container runs it), its JSON log lines, its metrics and health listener over HTTP, and the
 * TURN steps the tests repeat. Every process is started detached (its own process group) and ended
 * by `stopAllProcesses` by PID; every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import type { TurnCredential } from "../../../shared/turn/credentials.js";
import { encodeLifetime, encodeRequestedTransport, encodeXorAddress, TRANSPORT_PROTOCOL_UDP, type TransportAddress } from "../../../relay/stun/attributes.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import type { StunMessage } from "../../../relay/stun/message.js";
import { repoRoot, signalGroup, sleep } from "../../node/processes.js";
import { relayEntryArgs } from "../../node/relay-command.js";
import { errorCodeOf, REALM, SECRET, xorAddressOf, type TurnTestClient } from "../turn-client.js";

export const STOP_TIMEOUT_MS = 10_000;

export type LogLine = Record<string, unknown>;

export interface RelayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Code and signal once the process exited (its pipes drained); undefined while it runs. */
  exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The JSON lines of stdout, parsed. */
  events(): LogLine[];
  /** stdout, stderr and the exit, for failure messages. */
  report(): string;
}

const running: RelayProcess[] = [];

/** The environment without any RELAY_* variable a developer may have set: each test sets its own. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith("RELAY_")) env[name] = value;
  return { ...env, ...extra };
}

/** Runs `node ...args` detached, in `cwd`, collecting its output. */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv, cwd = repoRoot): RelayProcess {
  const child = spawn(process.execPath, args, { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"], env });
  let stdout = "";
  let stderr = "";
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.once("close", (code, signal) => (exited = { code, signal }));
  child.once("error", (error) => {
    stderr += `\nspawn error: ${error.message}`;
    exited = { code: null, signal: null };
  });
  const events = () =>
    stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      });
  const relay: RelayProcess = {
    child,
    pid: child.pid ?? -1,
    stdout: () => stdout,
    stderr: () => stderr,
    exit: () => exited,
    events,
    report: () => `exit: ${JSON.stringify(exited)}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
  };
  running.push(relay);
  return relay;
}

/** The relay as a process: this run's bundle, or relay/main.ts through tsx (test/node/relay-command.ts). */
export function spawnRelay(args: string[], env: NodeJS.ProcessEnv): RelayProcess {
  return spawnNode([...relayEntryArgs(), ...args], env);
}

export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** The first log line with this event, waiting for it at most `timeoutMs`; fails with the output. */
export async function waitForEvent(relay: RelayProcess, event: string, timeoutMs: number, from = 0): Promise<LogLine> {
  const find = () => relay.events().slice(from).find((line) => line.event === event);
  const found = await waitUntil(() => find() !== undefined || relay.exit() !== undefined, timeoutMs);
  const line = find();
  if (!found || line === undefined) throw new Error(`no "${event}" line within ${timeoutMs} ms\n${relay.report()}`);
  return line;
}

export interface ListeningLine {
  listeners: { transport: string; address: string; port: number }[];
  metrics?: { address: string; port: number };
  udpIo?: "native" | "dgram";
  /** Under --relay-threads (relay/cluster/primary.ts): the count and each worker's slot, PID and port slice. */
  relayThreads?: number;
  workers?: { worker: number; pid: number; relayPorts: string }[];
}

export async function waitForListening(relay: RelayProcess, timeoutMs = 30_000): Promise<ListeningLine> {
  return (await waitForEvent(relay, "listening", timeoutMs)) as unknown as ListeningLine;
}

export function portOf(listening: ListeningLine, transport: "udp" | "tcp" | "tls"): number {
  const listener = listening.listeners.find((entry) => entry.transport === transport);
  if (listener === undefined) throw new Error(`no ${transport} listener in ${JSON.stringify(listening)}`);
  return listener.port;
}

/**
 * The relay the suites start again and again: on 127.0.0.1, the test realm, the test secret from the
 * environment (RELAY_STATIC_AUTH_SECRET), peers on loopback allowed (the tests' peers are local).
 */
export interface TestRelayOptions {
  /** --min-port and --max-port: each suite keeps to a port band of its own. */
  relayPorts: readonly [number, number];
  /** --listening-port for UDP and TCP; 0 (the default) lets the kernel pick: read it back from the listening line. */
  listeningPort?: number;
  /** Serve /metrics, /livez and /readyz on this --prometheus-port (0: any free one); undefined: no metrics listener. */
  metricsPort?: number;
  /** --allow-loopback-peers; true unless a test is about starting at all. */
  loopbackPeers?: boolean;
  /** RELAY_STATIC_AUTH_SECRET; SECRET unless given, null to leave it unset (a secret file or a config file gives it). */
  secret?: string | null;
  /** Further flags, after the ones above. */
  args?: readonly string[];
  /** Further RELAY_* variables, over the secret. */
  env?: Record<string, string>;
}

/** The command line and environment `options` stand for (the rest of a developer's RELAY_* variables removed). */
function testRelayCommand(options: TestRelayOptions): { args: string[]; env: NodeJS.ProcessEnv } {
  const args = [
    "--listening-ip=127.0.0.1",
    `--listening-port=${options.listeningPort ?? 0}`,
    `--min-port=${options.relayPorts[0]}`,
    `--max-port=${options.relayPorts[1]}`,
    `--realm=${REALM}`,
    ...(options.loopbackPeers === false ? [] : ["--allow-loopback-peers"]),
    ...(options.metricsPort === undefined ? [] : ["--prometheus", `--prometheus-port=${options.metricsPort}`]),
    ...(options.args ?? []),
  ];
  const secret = options.secret === undefined ? SECRET : options.secret;
  return { args, env: cleanEnv({ ...(secret === null ? {} : { RELAY_STATIC_AUTH_SECRET: secret }), ...options.env }) };
}

/**
 * Spawns the test relay without waiting for it: for a start that is meant to fail, or for several
 * relays started together and waited for afterwards (`waitForListening`).
 */
export function spawnTestRelay(options: TestRelayOptions): RelayProcess {
  const { args, env } = testRelayCommand(options);
  return spawnRelay(args, env);
}

/** A test relay that has logged its "listening" line, with what the tests read from that line. */
export interface StartedRelay {
  readonly process: RelayProcess;
  readonly listening: ListeningLine;
  /** The UDP listener's port (the one --listening-port opens first). */
  readonly udpPort: number;
  /** The port of this transport's listener; throws when the relay has none. */
  port(transport: "udp" | "tcp" | "tls"): number;
  /** The metrics listener's port; throws when the relay was started without `metricsPort`. */
  readonly metricsPort: number;
  /** The worker processes' PIDs by slot under --relay-threads; empty for a single-process relay. */
  readonly workerPids: number[];
}

/** Spawns the test relay and waits (at most `timeoutMs`) for its "listening" line; fails with its output. */
export async function startRelay(options: TestRelayOptions, timeoutMs = 30_000): Promise<StartedRelay> {
  const relay = spawnTestRelay(options);
  const listening = await waitForListening(relay, timeoutMs);
  return {
    process: relay,
    listening,
    udpPort: portOf(listening, "udp"),
    port: (transport) => portOf(listening, transport),
    get metricsPort(): number {
      if (listening.metrics === undefined) throw new Error(`no metrics listener in ${JSON.stringify(listening)}`);
      return listening.metrics.port;
    },
    workerPids: (listening.workers ?? []).map((worker) => worker.pid),
  };
}

/** Ends a process group: SIGTERM, a bounded wait, then SIGKILL. */
export async function stopProcess(relay: RelayProcess): Promise<void> {
  if (relay.pid > 0 && signalGroup(relay.pid, "SIGTERM")) {
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (signalGroup(relay.pid, 0) && Date.now() < deadline) await sleep(50);
    signalGroup(relay.pid, "SIGKILL"); // a no-op when SIGTERM was enough
  }
  relay.child.stdout?.destroy();
  relay.child.stderr?.destroy();
}

export async function stopAllProcesses(): Promise<void> {
  await Promise.all(running.splice(0).map(stopProcess));
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A GET on 127.0.0.1:`port`; rejects after `timeoutMs`. */
export function httpGet(port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 3_000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers, timeout: timeoutMs }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body, headers: response.headers }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${path} on port ${port}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** One sample of Prometheus text: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of one series; undefined when it is not there. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))?.value;
}

// ---------------------------------------------------------------------------------------------------------------
// TURN steps.

/** Allocate (UDP relaying, optional lifetime); returns the answer. */
export function allocate(client: TurnTestClient, credential: TurnCredential, lifetimeSeconds?: number): Promise<StunMessage> {
  return client.request(
    StunMethod.Allocate,
    [encodeRequestedTransport(TRANSPORT_PROTOCOL_UDP), ...(lifetimeSeconds === undefined ? [] : [encodeLifetime(lifetimeSeconds)])],
    credential,
  );
}

/** Allocate and expect success; returns the relayed address. */
export async function allocateOk(client: TurnTestClient, credential: TurnCredential): Promise<TransportAddress> {
  const answer = await allocate(client, credential);
  if (answer.messageClass !== StunClass.SuccessResponse) throw new Error(`Allocate failed with ${errorCodeOf(answer)}`);
  const relayed = xorAddressOf(answer);
  if (relayed === undefined) throw new Error("Allocate answered without XOR-RELAYED-ADDRESS");
  return relayed;
}

export async function createPermission(client: TurnTestClient, credential: TurnCredential, peer: TransportAddress): Promise<StunMessage> {
  return client.request(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, peer, Buffer.alloc(12))], credential);
}

/** Refresh with LIFETIME 0: the client deletes its allocation. */
export function deleteAllocation(client: TurnTestClient, credential: TurnCredential): Promise<StunMessage> {
  return client.request(StunMethod.Refresh, [encodeLifetime(0)], credential);
}
