/**
 * What the NAT lab's test files share (test/e2e/nat-lab.test.ts, test/e2e/nat-lab-turn.test.ts): a case
 * run in a namespace of its own, and the expectations every case's summary is held to. The cases are
 * split over two files so the end-to-end group runs them two at a time.
 */
import { expect } from "vitest";
import { netnsSuiteUnavailable, runInNetns, type NetnsRunResult } from "../../node/netns.js";
import { run } from "../../node/processes.js";
import { LAB_CASES, type LabCaseName, type LabCaseSummary, type PeerSummary } from "./cases.js";
import { HOME_NAMES, LAB, type HomeName } from "./topology.js";

/** How long a call that should work may take to come up and echo everything (it takes ~1 s here). */
export const CALL_TIMEOUT_MS = 30_000;
/** How long a call that must not work is given to (not) connect: many times what a working one needs. */
export const NEGATIVE_WINDOW_MS = 8_000;
/** The whole case (lab, preconditions, wrangler dev, call) inside its namespace; lab-case.ts gives up at 170 s. */
export const CASE_TIMEOUT_MS = 180_000;

/**
 * lab-case.ts runs under PID 1 (`sh`, which reaps orphans) of a fresh PID namespace: when the case ends
 * or is killed, the kernel ends everything it started, detached process groups included.
 */
function labScript(): string {
  return `unshare --pid --fork --kill-child --mount-proc sh -c '"$0" --import tsx test/e2e/nat/lab-case.ts "$@"; exit $?' "${process.execPath}" "$@"`;
}

function describeRun(result: NetnsRunResult): string {
  return `exit ${result.code} signal ${result.signal} timedOut ${result.timedOut} after ${result.elapsedMs} ms\nstdout (last 6000):\n${result.stdout.slice(-6_000)}\nstderr (last 3000):\n${result.stderr.slice(-3_000)}`;
}

export async function runLabCase(name: LabCaseName, peerTimeoutMs: number): Promise<{ summary: LabCaseSummary; context: string }> {
  const result = await runInNetns(labScript(), [name, "--peer-timeout-ms", String(peerTimeoutMs)], CASE_TIMEOUT_MS);
  const context = describeRun(result);
  expect(result.timedOut, context).toBe(false);
  const line = result.stdout.trim().split("\n").filter((candidate) => candidate.startsWith("{")).at(-1);
  if (line === undefined) throw new Error(`lab-case.ts printed no JSON summary: ${context}`);
  const summary = JSON.parse(line) as LabCaseSummary;
  expect(summary.ok, `the lab itself failed: ${summary.error}\n${context}`).toBe(true);
  expect(result.code, context).toBe(0);
  const durations = Object.entries(summary.durationsMs).map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(1)} s`).join(", ");
  console.log(`nat-lab ${name} (${summary.title}): ${durations}`);
  return { summary, context };
}

export function peer(summary: LabCaseSummary, home: HomeName): PeerSummary {
  const found = summary.peers[home];
  if (found === undefined) throw new Error(`no summary from ${home}: ${JSON.stringify(summary.peers)}`);
  return found;
}

/** The lab is what it claims to be: NAT kind by observed mapping, homes unreachable from each other. */
export function expectPreconditions(summary: LabCaseSummary): void {
  const { preconditions } = summary;
  const text = JSON.stringify(preconditions);
  for (const home of HOME_NAMES) {
    const { routerWan } = LAB.homes[home];
    // One socket, two destinations: both answered, both saw the home's router.
    const mapping = preconditions.mapping[home]?.report;
    expect(mapping, `${home} mapping probe: ${text}`).toBeDefined();
    const [first, second] = mapping!.mapped;
    expect(first?.address, text).toBe(routerWan);
    expect(second?.address, text).toBe(routerWan);
    if (summary.shape[home] === "symmetric") {
      expect(first?.port, `${home} is behind a symmetric NAT: a new public port per destination: ${text}`).not.toBe(second?.port);
    } else {
      expect(first?.port, `${home} is behind a cone NAT: one public port for every destination: ${text}`).toBe(second?.port);
      expect(first?.port, `${home}'s cone NAT keeps the source port: ${text}`).toBe(mapping!.localPort);
    }
    // The other home's LAN address is unreachable, and so is the other router unsolicited…
    expect(preconditions.otherLan[home]?.report?.mapped[0]?.error, `${home} must not reach the other LAN: ${text}`).toMatch(/no answer/);
    expect(preconditions.otherRouterUnsolicited[home]?.report?.mapped[0]?.error, `${home}'s unsolicited packet must be dropped: ${text}`).toMatch(/no answer/);
    // …although the responder there works: the home's own router reaches it.
    expect(preconditions.ownLanFromRouter[home]?.report?.mapped[0]?.address, `${home}'s responder answers its router: ${text}`).toBe(LAB.homes[home].routerLan);
  }
}

export function expectEchoCall(summary: LabCaseSummary, context: string): void {
  const { messages } = LAB_CASES[summary.case as LabCaseName];
  for (const home of HOME_NAMES) {
    const result = peer(summary, home);
    expect(result.ok, `${home}: ${result.error}\n${context}`).toBe(true);
    // What the peer saw and the relay logged, for a call that worked but not as this specification says.
    const seen = `${home}: ${JSON.stringify(result)}\nrelay: ${JSON.stringify(summary.relayEvents)}`;
    expect(result.connectionStates, seen).toContain("connected");
    expect(result.messagesSent).toBe(messages);
    expect(result.echoesReceived).toBe(messages);
    expect(result.echoesSent).toBe(messages);
    expect(result.selectedPair?.state).toBe("succeeded");
    expect(result.clientErrors, `${home}'s room client and mesh reported errors during a call that worked`).toEqual([]);
    // The timeline a failure is read from was kept: the channel opened after an answer came or went.
    expect(result.timeline.some((entry) => / echo channel open$/.test(entry)), seen).toBe(true);
    expect(result.timeline.some((entry) => / (received answer|signaling stable)$/.test(entry)), seen).toBe(true);
  }
}

export function allocationStarts(summary: LabCaseSummary) {
  return summary.relayEvents.filter((event) => event.event === "allocation-start");
}

export function allocationEnds(summary: LabCaseSummary) {
  return summary.relayEvents.filter((event) => event.event === "allocation-end");
}

/** Relay-only through symmetric NATs: relay pairs both ways, one allocation per home from its router, data through it. */
export function expectRelayedCall(summary: LabCaseSummary, transport: "udp" | "tcp", context: string): void {
  expectEchoCall(summary, context);
  for (const home of HOME_NAMES) {
    const result = peer(summary, home);
    expect(result.usedUrls.every((url) => url.startsWith("turn:") && url.endsWith(`transport=${transport}`)), JSON.stringify(result.usedUrls)).toBe(true);
    expect(result.selectedPair?.local.type).toBe("relay");
    expect(result.selectedPair?.remote.type).toBe("relay");
    expect(result.selectedPair?.local.address).toBe(LAB.pub);
    expect(new Set(result.localCandidates.map((candidate) => candidate.type))).toEqual(new Set(["relay"]));
  }
  const clients = allocationStarts(summary).map((event) => String(event["client"]));
  expect(clients.map((client) => client.split(":").slice(0, 2).join(":")).sort()).toEqual(HOME_NAMES.map((home) => `${transport}:${LAB.homes[home].routerWan}`).sort());
  const ends = allocationEnds(summary);
  expect(ends, JSON.stringify(summary.relayEvents)).toHaveLength(2);
  for (const end of ends) {
    expect(end["packetsToPeers"]).toBeGreaterThan(0);
    expect(end["packetsToClient"]).toBeGreaterThan(0);
  }
  // Nothing went straight from one home to the other: everything crossed the relay.
  for (const home of HOME_NAMES) {
    expect(summary.counters?.routers[home]["to-other-home"], JSON.stringify(summary.counters)).toBe(0);
    expect(summary.counters?.routers[home]["from-other-home-forwarded"], JSON.stringify(summary.counters)).toBe(0);
  }
}

/** Why the lab cannot run here (null: it can); CI fails instead of skipping (netnsSuiteUnavailable). */
export const labUnavailable = () => netnsSuiteUnavailable("the NAT lab", async () => {
  const iptables = await run("iptables", ["--version"], 10_000).catch((error: unknown) => ({ code: -1, stderr: String(error) }));
  return iptables.code === 0 ? null : `iptables is needed for the NAT lab (Debian: apt-get install iptables): ${iptables.stderr.trim()}`;
});

