/**
 * One case of the NAT lab, start to finish: build the lab (topology.ts), check it is what it claims to
 * be (preconditions) while the Worker and the relay start in `pub` (test/e2e/stack.ts), run one
 * werift peer in each home (home-peer.ts), and print one JSON line (`LabCaseSummary`) with everything
 * observed.
 * It judges nothing itself: nat-lab.test.ts asserts on the summary.
 *
 *   node --import tsx test/e2e/nat/lab-case.ts <case> [--peer-timeout-ms N]
 *
 * It must run under PID 1 (a `sh`) of a fresh PID namespace, inside fresh network and mount namespaces
 * (the test runs it through runInNetns and `unshare --pid --fork --kill-child --mount-proc`): when this
 * process ends, however it ends, the namespace's PID 1 exits and the kernel kills everything the case
 * started, detached process groups (wrangler, workerd, the relay, the peers) included.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { repoRoot, signalGroup, sleep } from "../../node/processes.js";
import { startStack, type Stack } from "../stack.js";
import { LAB_CASES, type LabCase, type LabCaseName, type LabCaseSummary, type MapReport, type PeerSummary, type ProbeResult } from "./cases.js";
import { HOME_NAMES, LAB, buildLab, otherHome, readCounters, resetCounters, routerRules, type HomeName } from "./topology.js";

const REFLECTOR_PORTS = [3479, 3480];
const WORKER_PORT = 8787;
const PROBE_TIMEOUT_MS = 2_500;
const REFLECTOR_READY_TIMEOUT_MS = 15_000;
/** Every helper process gets this much on top of its own bound before it is killed. */
const PROCESS_GRACE_MS = 15_000;
const OVERALL_TIMEOUT_MS = 170_000;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<Finished>;
}

/** Starts `node --import tsx <script> …` in a lab namespace, in a process group of its own. */
function startInNamespace(namespace: string, script: string, args: string[]): Started {
  const child = spawn("ip", ["netns", "exec", namespace, process.execPath, "--import", "tsx", script, ...args], {
    cwd: repoRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Finished>((resolve) => {
    child.once("error", (error) => resolve({ code: null, signal: null, stdout, stderr: `${stderr}\n${error.message}` }));
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

function stopProcess(started: Started): void {
  if (started.child.pid !== undefined) signalGroup(started.child.pid, "SIGKILL");
}

/** Runs a helper to completion, killed after `timeoutMs`. */
async function runInNamespace(namespace: string, script: string, args: string[], timeoutMs: number): Promise<Finished> {
  const started = startInNamespace(namespace, script, args);
  const timer = setTimeout(() => stopProcess(started), timeoutMs);
  const finished = await started.done;
  clearTimeout(timer);
  stopProcess(started); // anything it left in its group
  return finished;
}

function lastJsonLine<T>(text: string): T | undefined {
  const line = text.trim().split("\n").filter((candidate) => candidate.startsWith("{")).at(-1);
  if (line === undefined) return undefined;
  try {
    return JSON.parse(line) as T;
  } catch {
    return undefined;
  }
}

async function startReflector(namespace: string, address: string, maxMs: number): Promise<Started> {
  const args = ["serve", "--address", address, ...REFLECTOR_PORTS.flatMap((port) => ["--port", String(port)]), "--max-ms", String(maxMs)];
  const reflector = startInNamespace(namespace, "test/e2e/nat/stun-probe.ts", args);
  const deadline = Date.now() + REFLECTOR_READY_TIMEOUT_MS;
  while (!reflector.stdout().includes('"event":"ready"')) {
    if (reflector.child.exitCode !== null || Date.now() > deadline) {
      stopProcess(reflector);
      throw new Error(`the STUN reflector in ${namespace} did not start: ${reflector.stdout()} ${reflector.stderr()}`);
    }
    await sleep(50);
  }
  return reflector;
}

async function probe(from: string, servers: string[]): Promise<ProbeResult> {
  const args = ["map", ...servers.flatMap((server) => ["--server", server]), "--timeout-ms", String(PROBE_TIMEOUT_MS)];
  const finished = await runInNamespace(from, "test/e2e/nat/stun-probe.ts", args, PROBE_TIMEOUT_MS + PROCESS_GRACE_MS);
  const report = lastJsonLine<MapReport & { error?: string }>(finished.stdout);
  if (report === undefined || report.error !== undefined) return { from, error: report?.error ?? `no report (exit ${finished.code}): ${finished.stderr.trim()}` };
  return { from, report };
}

async function checkPreconditions(): Promise<LabCaseSummary["preconditions"]> {
  const reflectorLifetimeMs = PROBE_TIMEOUT_MS + PROCESS_GRACE_MS * 2;
  const reflectors = await Promise.all([
    startReflector("pub", LAB.pub, reflectorLifetimeMs),
    ...HOME_NAMES.map((home) => startReflector(LAB.homes[home].namespace, LAB.homes[home].address, reflectorLifetimeMs)),
  ]);
  try {
    const byHome = async (makeProbe: (home: HomeName) => Promise<ProbeResult>): Promise<Partial<Record<HomeName, ProbeResult>>> => {
      const results = await Promise.all(HOME_NAMES.map(makeProbe));
      return Object.fromEntries(HOME_NAMES.map((home, index) => [home, results[index]]));
    };
    const [port] = REFLECTOR_PORTS as [number, number];
    const [mapping, otherLan, otherRouterUnsolicited, ownLanFromRouter] = await Promise.all([
      byHome((home) => probe(LAB.homes[home].namespace, REFLECTOR_PORTS.map((p) => `${LAB.pub}:${p}`))),
      byHome((home) => probe(LAB.homes[home].namespace, [`${LAB.homes[otherHome(home)].address}:${port}`])),
      byHome((home) => probe(LAB.homes[home].namespace, [`${LAB.homes[otherHome(home)].routerWan}:${port}`])),
      byHome((home) => probe(LAB.homes[home].router, [`${LAB.homes[home].address}:${port}`])),
    ]);
    return { mapping, otherLan, otherRouterUnsolicited, ownLanFromRouter };
  } finally {
    reflectors.forEach(stopProcess);
  }
}

async function runPeers(stack: Stack, labCase: LabCase, caseName: string, peerTimeoutMs: number): Promise<LabCaseSummary["peers"]> {
  const room = `nat-lab-${caseName}`;
  const runs = HOME_NAMES.map((home) => {
    const args = [
      "--name", home,
      "--expect-address", LAB.homes[home].address,
      "--server", stack.workerUrl,
      "--room", room,
      "--servers", labCase.servers,
      "--policy", labCase.policy,
      "--timeout-ms", String(peerTimeoutMs),
      "--messages", String(labCase.messages),
      "--message-bytes", String(labCase.messageBytes),
    ];
    return runInNamespace(LAB.homes[home].namespace, "test/e2e/nat/home-peer.ts", args, peerTimeoutMs + PROCESS_GRACE_MS);
  });
  const finished = await Promise.all(runs);
  const peers: LabCaseSummary["peers"] = {};
  HOME_NAMES.forEach((home, index) => {
    const result = finished[index]!;
    const summary = lastJsonLine<PeerSummary>(result.stdout);
    const exit = `code ${result.code} signal ${result.signal}`;
    const stderr = result.stderr.trim().slice(-2_000);
    peers[home] = summary === undefined ? ({ ok: false, error: `no summary from ${home}`, exit, stderr } as PeerSummary & { exit: string; stderr: string }) : { ...summary, exit, ...(stderr ? { stderr } : {}) };
  });
  return peers;
}

/** Fills `summary` as it goes, so a failure still reports everything observed until then. */
async function main(summary: LabCaseSummary): Promise<void> {
  const [caseName, ...rest] = process.argv.slice(2);
  if (caseName === undefined || !(caseName in LAB_CASES)) throw new Error(`usage: lab-case.ts <${Object.keys(LAB_CASES).join("|")}> [--peer-timeout-ms N]`);
  const labCase: LabCase = LAB_CASES[caseName as LabCaseName];
  let peerTimeoutMs = 30_000;
  if (rest[0] === "--peer-timeout-ms") peerTimeoutMs = Number(rest[1]);
  if (!Number.isInteger(peerTimeoutMs) || peerTimeoutMs <= 0) throw new Error("--peer-timeout-ms must be a positive integer");
  // The child of PID 1 of a fresh PID namespace (the `sh` the test starts there): see the header.
  if (process.ppid !== 1) throw new Error("lab-case.ts must run under PID 1 of its own PID namespace (run it through test/e2e/nat-lab.test.ts)");

  const durationsMs = summary.durationsMs;
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const begin = Date.now();
    try {
      return await work();
    } finally {
      durationsMs[name] = Date.now() - begin;
    }
  };
  summary.case = caseName;
  summary.title = labCase.title;
  summary.shape = labCase.shape;
  const begin = Date.now();
  await timed("build", async () => buildLab(labCase.shape));
  summary.routerRules = { nat1: routerRules("nat1"), nat2: routerRules("nat2") };
  // The checks and the stack's start side by side: half the checks wait out a probe's timeout for
  // the answer that must not come, and the stack (in pub, behind no router) needs nothing from them.
  const [checked, started] = await Promise.allSettled([
    timed("preconditions", checkPreconditions),
    timed("stackStart", () =>
      startStack({
        host: LAB.pub,
        netnsExec: ["ip", "netns", "exec", "pub"],
        workerPort: WORKER_PORT,
        relayPort: LAB.relayPort,
        turnTransports: labCase.turnTransports,
        relaySecretMismatch: labCase.relaySecretMismatch,
        // The lab's internet is TEST-NET-2, which a public relay refuses as a peer by default.
        relayArgs: [`--allowed-peer-ip=${LAB.publicCidr}`],
      }),
    ),
  ]);
  if (checked.status === "rejected") {
    if (started.status === "fulfilled") await started.value.stop();
    throw checked.reason;
  }
  if (started.status === "rejected") throw started.reason;
  summary.preconditions = checked.value;
  const stack = started.value;
  // From here on the counters see only the call.
  resetCounters();

  try {
    summary.turnUrls = stack.turnUrls;
    summary.peers = await timed("call", () => runPeers(stack, labCase, caseName, peerTimeoutMs));
    summary.counters = readCounters();
  } finally {
    await timed("stackStop", () => stack.stop());
    summary.relayEvents = stack.relayEvents().filter((line) => line.event !== "listening");
    summary.stackOutputTail = stack.output().slice(-3_000);
  }
  durationsMs["total"] = Date.now() - begin;
  summary.ok = true;
}

const summary: LabCaseSummary = {
  case: "?",
  title: "?",
  ok: false,
  durationsMs: {},
  shape: { home1: "symmetric", home2: "symmetric" },
  routerRules: {},
  preconditions: { mapping: {}, otherLan: {}, otherRouterUnsolicited: {}, ownLanFromRouter: {} },
  turnUrls: [],
  peers: {},
  relayEvents: [],
};

function report(error?: string): never {
  process.stdout.write(`${JSON.stringify({ ...summary, ...(error === undefined ? {} : { ok: false, error }) })}\n`);
  process.exit(error === undefined ? 0 : 1);
}

const overall = setTimeout(() => report(`the lab case did not finish within ${OVERALL_TIMEOUT_MS} ms`), OVERALL_TIMEOUT_MS);
main(summary).then(
  () => {
    clearTimeout(overall);
    report();
  },
  (error: unknown) => {
    clearTimeout(overall);
    report(error instanceof Error ? (error.stack ?? error.message) : String(error));
  },
);
