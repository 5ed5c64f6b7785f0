/**
 * The NAT lab: two homes, each behind a NAT router of its own, a small "internet" with our Worker and
 * relay in `pub`, and one werift peer per home joining one room through the client library
 * (RoomClient + Mesh). It shows what the relay is for, with controls:
 *
 * 1. STUN only between two symmetric NATs never connects, although both homes learned a public address
 *    and sent checks to each other (the routers dropped them): the control.
 * 2. TURN over UDP and 3. TURN over TCP connect the same homes relay-only, every message echoed.
 * 4. Credentials the relay cannot verify never connect, and the relay never allocates.
 * 5. Behind cone NATs, with STUN and TURN and all candidates, the call goes direct: the selected pair is
 *    not a relay pair and the relay carries none of the data.
 *
 * Each case builds its own lab (test/e2e/nat/topology.ts) inside a fresh network, mount and PID
 * namespace (runInNetns, then `unshare --pid`), so every namespace, mount and process of the lab goes
 * away with it, and runs test/e2e/nat/lab-case.ts there, which prints one JSON summary; the assertions
 * are all here. Where namespaces cannot be made the suite fails in CI and is skipped, with the
 * reason, elsewhere.
 */
import { describe, expect, it } from "vitest";
import { netnsSuiteUnavailable, runInNetns, type NetnsRunResult } from "../node/netns.js";
import { run } from "../node/processes.js";
import { LAB_CASES, type LabCaseName, type LabCaseSummary, type PeerSummary } from "./nat/cases.js";
import { HOME_NAMES, LAB, type HomeName } from "./nat/topology.js";

/** How long a call that should work may take to come up and echo everything (it takes ~1 s here). */
const CALL_TIMEOUT_MS = 30_000;
/** How long a call that must not work is given to (not) connect: many times what a working one needs. */
const NEGATIVE_WINDOW_MS = 15_000;
/** The whole case (lab, preconditions, wrangler dev, call) inside its namespace; lab-case.ts gives up at 170 s. */
const CASE_TIMEOUT_MS = 180_000;

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

async function runLabCase(name: LabCaseName, peerTimeoutMs: number): Promise<{ summary: LabCaseSummary; context: string }> {
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

function peer(summary: LabCaseSummary, home: HomeName): PeerSummary {
  const found = summary.peers[home];
  if (found === undefined) throw new Error(`no summary from ${home}: ${JSON.stringify(summary.peers)}`);
  return found;
}

/** The lab is what it claims to be: NAT kind by observed mapping, homes unreachable from each other. */
function expectPreconditions(summary: LabCaseSummary): void {
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

function expectEchoCall(summary: LabCaseSummary, context: string): void {
  const { messages } = LAB_CASES[summary.case as LabCaseName];
  for (const home of HOME_NAMES) {
    const result = peer(summary, home);
    expect(result.ok, `${home}: ${result.error}\n${context}`).toBe(true);
    expect(result.connectionStates).toContain("connected");
    expect(result.messagesSent).toBe(messages);
    expect(result.echoesReceived).toBe(messages);
    expect(result.echoesSent).toBe(messages);
    expect(result.selectedPair?.state).toBe("succeeded");
    expect(result.clientErrors, `${home}'s room client and mesh reported errors during a call that worked`).toEqual([]);
  }
}

function allocationStarts(summary: LabCaseSummary) {
  return summary.relayEvents.filter((event) => event.event === "allocation-start");
}

function allocationEnds(summary: LabCaseSummary) {
  return summary.relayEvents.filter((event) => event.event === "allocation-end");
}

/** Relay-only through symmetric NATs: relay pairs both ways, one allocation per home from its router, data through it. */
function expectRelayedCall(summary: LabCaseSummary, transport: "udp" | "tcp", context: string): void {
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

const unavailable = await netnsSuiteUnavailable("the NAT lab", async () => {
  const iptables = await run("iptables", ["--version"], 10_000).catch((error: unknown) => ({ code: -1, stderr: String(error) }));
  return iptables.code === 0 ? null : `iptables is needed for the NAT lab (Debian: apt-get install iptables): ${iptables.stderr.trim()}`;
});

describe.skipIf(unavailable !== null)("NAT lab (ip netns + iptables, inside a namespace of its own)", () => {
  it("STUN only between two symmetric NATs never connects, although both homes learned their public address", async () => {
    const { summary, context } = await runLabCase("stun-only", NEGATIVE_WINDOW_MS);
    expectPreconditions(summary);
    for (const home of HOME_NAMES) {
      const result = peer(summary, home);
      expect(result.usedUrls, context).toEqual([`stun:${LAB.pub}:${LAB.relayPort}`]);
      // STUN worked: each home gathered a server-reflexive candidate on its router's address and got the other's.
      const srflx = result.localCandidates.filter((candidate) => candidate.type === "srflx");
      expect(srflx.length, JSON.stringify(result.localCandidates)).toBeGreaterThan(0);
      expect(srflx.every((candidate) => candidate.address === LAB.homes[home].routerWan)).toBe(true);
      expect(result.remoteCandidates.some((candidate) => candidate.type === "srflx")).toBe(true);
      // ICE did not: no connection, no channel, no echo within the window.
      expect(result.ok).toBe(false);
      expect(result.error).toMatch(/echo channel opening did not happen/);
      expect(result.connectionStates).not.toContain("connected");
      expect(result.channelOpenAfterMs).toBeUndefined();
      expect(result.selectedPair).toBeUndefined();
      expect(result.pairStates["succeeded"]).toBeUndefined();
      expect(result.echoesReceived).toBe(0);
      // Each home sent checks to the other's public address; the other router dropped every one.
      const counters = summary.counters?.routers[home];
      expect(counters?.["to-other-home"], JSON.stringify(summary.counters)).toBeGreaterThan(0);
      expect(counters?.["from-other-home-forwarded"], JSON.stringify(summary.counters)).toBe(0);
      expect(counters?.["from-other-home-unsolicited"], JSON.stringify(summary.counters)).toBeGreaterThan(0);
    }
    expect(summary.counters?.pub["relay-udp-in"]).toBeGreaterThan(0); // the STUN requests
    expect(allocationStarts(summary)).toEqual([]);
  }, CASE_TIMEOUT_MS + 10_000);

  it("TURN over UDP connects the same two homes relay-only and every message is echoed", async () => {
    const { summary, context } = await runLabCase("turn-udp", CALL_TIMEOUT_MS);
    expectPreconditions(summary);
    expectRelayedCall(summary, "udp", context);
    expect(summary.counters?.pub["relay-udp-in"]).toBeGreaterThan(0);
  }, CASE_TIMEOUT_MS + 10_000);

  it("TURN over TCP connects the same two homes relay-only, the relay sees TCP clients", async () => {
    const { summary, context } = await runLabCase("turn-tcp", CALL_TIMEOUT_MS);
    expectPreconditions(summary);
    expectRelayedCall(summary, "tcp", context);
    expect(summary.counters?.pub["relay-tcp-in"]).toBeGreaterThan(0);
    expect(summary.counters?.pub["relay-udp-in"], "no UDP to the relay's port: TURN ran over TCP only").toBe(0);
  }, CASE_TIMEOUT_MS + 10_000);

  it("credentials signed with a secret the relay does not have never connect, and the relay never allocates", async () => {
    const { summary, context } = await runLabCase("wrong-secret", NEGATIVE_WINDOW_MS);
    expectPreconditions(summary);
    for (const home of HOME_NAMES) {
      const result = peer(summary, home);
      expect(result.usedUrls, context).toEqual([`turn:${LAB.pub}:${LAB.relayPort}?transport=udp`]);
      expect(result.ok).toBe(false);
      expect(result.connectionStates).not.toContain("connected");
      expect(result.localCandidates.filter((candidate) => candidate.type === "relay")).toEqual([]);
      expect(result.echoesReceived).toBe(0);
    }
    // The homes reached the relay and it answered (401s), yet it allocated nothing.
    expect(summary.counters?.pub["relay-udp-in"], JSON.stringify(summary.counters)).toBeGreaterThan(0);
    expect(summary.counters?.pub["relay-udp-out"], JSON.stringify(summary.counters)).toBeGreaterThan(0);
    expect(allocationStarts(summary), JSON.stringify(summary.relayEvents)).toEqual([]);
  }, CASE_TIMEOUT_MS + 10_000);

  it("behind two cone NATs, with STUN and TURN and all candidates, the call goes direct and the relay carries no data", async () => {
    const { summary, context } = await runLabCase("cone-direct", CALL_TIMEOUT_MS);
    expectPreconditions(summary);
    expectEchoCall(summary, context);
    const { messages, messageBytes } = LAB_CASES["cone-direct"];
    for (const home of HOME_NAMES) {
      const result = peer(summary, home);
      // TURN was on offer and in use for gathering, so going direct was ICE's choice.
      expect(result.usedUrls.some((url) => url.startsWith("turn:")), JSON.stringify(result.usedUrls)).toBe(true);
      expect(result.localCandidates.some((candidate) => candidate.type === "relay"), JSON.stringify(result.localCandidates)).toBe(true);
      expect(result.selectedPair?.local.type, JSON.stringify(result.selectedPair)).not.toBe("relay");
      expect(result.selectedPair?.remote.type, JSON.stringify(result.selectedPair)).not.toBe("relay");
      // The path really is the other home's router: its public address is the remote end.
      expect(result.selectedPair?.remote.address).toBe(LAB.homes[home === "home1" ? "home2" : "home1"].routerWan);
      // Every ping and every echo (2 × messages each way, plus SCTP acks) came straight from the other home.
      expect(summary.counters?.routers[home]["from-other-home-forwarded"], JSON.stringify(summary.counters)).toBeGreaterThanOrEqual(2 * messages);
    }
    // The relay allocated (ICE gathered relay candidates) but carried at most a few checks: far fewer
    // packets than the data channel exchanged, and a sliver of its bytes.
    const starts = allocationStarts(summary);
    const ends = allocationEnds(summary);
    expect(ends, JSON.stringify(summary.relayEvents)).toHaveLength(starts.length);
    const relayedPackets = ends.reduce((sum, end) => sum + Number(end["packetsToPeers"]) + Number(end["packetsToClient"]), 0);
    const relayedBytes = ends.reduce((sum, end) => sum + Number(end["bytesToPeers"]) + Number(end["bytesToClient"]), 0);
    expect(relayedPackets, JSON.stringify(ends)).toBeLessThan(messages / 4);
    expect(relayedBytes, JSON.stringify(ends)).toBeLessThan(messages * messageBytes * 0.05);
  }, CASE_TIMEOUT_MS + 10_000);
});
