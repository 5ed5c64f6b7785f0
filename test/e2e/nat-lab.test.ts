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
 * Cases 2 and 3 are in nat-lab-turn.test.ts (the end-to-end group runs two files at a time); the
 * helpers and expectations both use are in test/e2e/nat/lab-expectations.ts.
 *
 * Each case builds its own lab (test/e2e/nat/topology.ts) inside a fresh network, mount and PID
 * namespace (runInNetns, then `unshare --pid`), so every namespace, mount and process of the lab goes
 * away with it, and runs test/e2e/nat/lab-case.ts there, which prints one JSON summary; the assertions
 * are all here. Where namespaces cannot be made the suite fails in CI and is skipped, with the
 * reason, elsewhere.
 */
import { describe, expect, it } from "vitest";
import { LAB_CASES } from "./nat/cases.js";
import {
  allocationEnds,
  allocationStarts,
  CALL_TIMEOUT_MS,
  CASE_TIMEOUT_MS,
  expectEchoCall,
  expectPreconditions,
  labUnavailable,
  NEGATIVE_WINDOW_MS,
  peer,
  runLabCase,
} from "./nat/lab-expectations.js";
import { HOME_NAMES, LAB } from "./nat/topology.js";

const unavailable = await labUnavailable();

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
