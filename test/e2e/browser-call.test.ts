/**
 * Two headless Chromium pages on the demo room page (`/r/<room>?relay=1`, fake camera) call each
 * other through the local Worker and our relay, relay-only, with the Worker handing out TURN over UDP
 * only, TCP only, and TLS only (`turns:`); and a call kept up across several allocation refreshes
 * (the relay's maximum allocation lifetime cut to 10 s, so Chromium refreshes every ~5 s).
 *
 * Each case runs test/e2e/browser/demo-call.ts inside a fresh loopback-only network namespace, so
 * Chromium reaches nothing but the Worker and the relay on 127.0.0.1. The script waits for the call
 * and reports what the pages (their `window.relaykitDemo.snapshot()`) and the relay (its allocation
 * log) saw; the assertions here decide.
 */
import { describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript, type ScriptSummary } from "./browser/netns-run.js";
import type { DemoPeer, PeerConnectionEvent } from "./browser/pages.js";
import { leftConnectedAfterUp, statesOf } from "./browser/pages.js";

interface RelayLine {
  event: string;
  client?: string;
  reason?: string;
  seconds?: number;
  ageSeconds?: number;
  packetsToPeers?: number;
  packetsToClient?: number;
}

interface DemoCallSummary extends ScriptSummary {
  transport?: string;
  turnUrls?: string[];
  callUpAfterMs?: number;
  framesDecoded?: { before: Record<string, number>; after: Record<string, number> };
  chat?: { sent: Record<string, string>; received: Record<string, string[]> };
  final?: Record<string, DemoPeer | null>;
  errorsShown?: Record<string, string | null>;
  peerConnectionLog?: Record<string, PeerConnectionEvent[]>;
  allocationsWhileUp?: RelayLine[];
  allocationsAfterClose?: RelayLine[];
  holdMs?: number;
  watched?: { atMs: number; a: { state: string; frames: number } | null; b: { state: string; frames: number } | null }[];
  framesAtEndOfHold?: { windowMs: number | null; before: Record<string, number | null>; after: Record<string, number | null> };
  pageErrors?: string[];
  aJoined?: { relayOnly: boolean; localMedia: string };
  bJoined?: { relayOnly: boolean; localMedia: string };
}

const SCRIPT = "demo-call.ts";
const CALL_TIMEOUT_MS = 60_000;
const PROCESS_TIMEOUT_MS = 90_000;
/** The refresh case: allocations of 10 s (the relay's floor), a call held for 30 s. */
const SHORT_LIFETIME_S = 10;
const HOLD_MS = 30_000;
const REFRESH_TIMEOUT_MS = 100_000;
/** The credential case: the Worker's TURN credentials live 15 s; the client refreshes at about 12 s. */
const SHORT_TTL_S = 15;

const SIDES = ["a", "b"] as const;

/** What every relay-only call must show, whatever the transport. */
function expectRelayOnlyCall(summary: DemoCallSummary, transport: "udp" | "tcp" | "tls", details: string): void {
  expect(summary.ok, details).toBe(true);
  // The Worker handed out exactly one TURN URL, of this transport.
  expect(summary.turnUrls, details).toHaveLength(1);
  expect(summary.turnUrls![0], details).toMatch(transport === "tls" ? /^turns:.*\?transport=tcp$/ : new RegExp(`^turn:.*\\?transport=${transport}$`));
  // `?relay=1` switched both pages to relay-only, and both joined with the fake camera.
  expect(summary.aJoined, details).toMatchObject({ relayOnly: true, localMedia: "camera" });
  expect(summary.bJoined, details).toMatchObject({ relayOnly: true, localMedia: "camera" });
  for (const side of SIDES) {
    const peer = summary.final?.[side];
    expect(peer, `${side} sees the other peer\n${details}`).toBeTruthy();
    expect(peer!.connectionState).toBe("connected");
    expect(peer!.pair, `${side}'s selected pair`).toEqual({ local: "relay", remote: "relay", protocol: "udp", relayProtocol: transport });
    expect(peer!.chatState).toBe("open");
    // Video decoded, and still coming: more frames after a 2 s window than before it.
    expect(summary.framesDecoded!.before[side]!, `${side} frames`).toBeGreaterThan(0);
    expect(summary.framesDecoded!.after[side]!, `${side} frames keep rising`).toBeGreaterThan(summary.framesDecoded!.before[side]!);
    expect(summary.errorsShown?.[side] ?? null, `${side} shows no error`).toBeNull();
  }
  // Each chat line arrived on the other page.
  expect(summary.chat!.received["b"]).toContain(summary.chat!.sent["a"]);
  expect(summary.chat!.received["a"]).toContain(summary.chat!.sent["b"]);
  // The relay saw both pages reach it over this transport (the log's client is "<transport>:ip:port"),
  // and nothing else.
  const starts = (summary.allocationsWhileUp ?? []).filter((line) => line.event === "allocation-start");
  expect(starts.length, details).toBeGreaterThanOrEqual(2);
  for (const start of starts) expect(start.client, JSON.stringify(starts)).toMatch(new RegExp(`^${transport}:127\\.0\\.0\\.1:\\d+@127\\.0\\.0\\.1:\\d+$`));
}

/** Allocations that ended with more than 100 packets relayed each way: the ones the call used. */
function callAllocations(summary: DemoCallSummary): RelayLine[] {
  return (summary.allocationsAfterClose ?? []).filter(
    (line) => line.event === "allocation-end" && (line.packetsToPeers ?? 0) > 100 && (line.packetsToClient ?? 0) > 100,
  );
}

const unavailable = await netnsGate("Chromium ↔ Chromium on the demo page");

describe.skipIf(unavailable !== null)("Chromium ↔ Chromium on the demo page, relay-only (loopback-only network namespace)", () => {
  for (const transport of ["udp", "tcp", "tls"] as const) {
    const label = transport === "tls" ? "TURN/TLS (turns:)" : `TURN/${transport.toUpperCase()}`;
    it(`two pages call each other over ${label}: relay pair, video decoded, chat both ways`, async () => {
      const { summary, details } = await runBrowserScript<DemoCallSummary>(SCRIPT, [`--transport=${transport}`, `--timeout-ms=${CALL_TIMEOUT_MS}`], PROCESS_TIMEOUT_MS);
      expectRelayOnlyCall(summary, transport, details);
      // Media really crossed the relay: when the pages closed, one allocation per page had carried
      // packets both ways.
      expect(callAllocations(summary).length, JSON.stringify(summary.allocationsAfterClose)).toBe(2);
    }, PROCESS_TIMEOUT_MS + 5_000);
  }

  it("`npm start`, then two tabs on a room link: a newcomer's call, video and chat both ways", async () => {
    const { summary, details } = await runBrowserScript<DemoCallSummary>(SCRIPT, ["--npm-start", `--timeout-ms=${CALL_TIMEOUT_MS}`], PROCESS_TIMEOUT_MS);
    expect(summary.ok, details).toBe(true);
    // The README's first command hands out TURN over UDP and TCP on the local relay.
    expect(summary.turnUrls, details).toHaveLength(2);
    expect(summary.aJoined, details).toMatchObject({ relayOnly: false, localMedia: "camera" });
    expect(summary.bJoined, details).toMatchObject({ relayOnly: false, localMedia: "camera" });
    for (const side of SIDES) {
      const peer = summary.final?.[side];
      expect(peer, `${side} sees the other peer\n${details}`).toBeTruthy();
      expect(peer!.connectionState).toBe("connected");
      expect(peer!.pair, `${side}'s selected pair`).not.toBeNull();
      expect(peer!.chatState).toBe("open");
      expect(summary.framesDecoded!.after[side]!, `${side} frames keep rising`).toBeGreaterThan(summary.framesDecoded!.before[side]!);
      expect(summary.errorsShown?.[side] ?? null, `${side} shows no error`).toBeNull();
    }
    expect(summary.chat!.received["b"]).toContain(summary.chat!.sent["a"]);
    expect(summary.chat!.received["a"]).toContain(summary.chat!.sent["b"]);
  }, PROCESS_TIMEOUT_MS + 5_000);

  it(`a call stays up across allocation refreshes (relay lifetime ${SHORT_LIFETIME_S} s, call held ${HOLD_MS / 1000} s)`, async () => {
    const { summary, details } = await runBrowserScript<DemoCallSummary>(
      SCRIPT,
      ["--transport=udp", `--max-allocate-lifetime=${SHORT_LIFETIME_S}`, `--hold-ms=${HOLD_MS}`, `--timeout-ms=${REFRESH_TIMEOUT_MS - 15_000}`],
      REFRESH_TIMEOUT_MS,
    );
    expectRelayOnlyCall(summary, "udp", details);
    expect(summary.holdMs!, details).toBeGreaterThanOrEqual(HOLD_MS);

    // Still decoding video at the very end of the hold.
    const end = summary.framesAtEndOfHold!;
    expect(end.windowMs, details).not.toBeNull();
    for (const side of SIDES) expect(end.after[side]!, `${side} frames at the end of the hold`).toBeGreaterThan(end.before[side]!);

    // No page's connection ever left "connected" once it got there (every state change was recorded).
    for (const side of SIDES) {
      const log = summary.peerConnectionLog?.[side] ?? [];
      const pcs = [...new Set(log.map((event) => event.pc))];
      expect(pcs.length, `${side} created one peer connection: ${JSON.stringify(log)}`).toBe(1);
      const states = statesOf(log, pcs[0]!, "connection");
      expect(states, side).toContain("connected");
      expect(leftConnectedAfterUp(states), `${side}'s connection states: ${states.join(" → ")}`).toBe(false);
    }
    for (const sample of summary.watched ?? []) {
      expect(sample.a?.state, JSON.stringify(sample)).toBe("connected");
      expect(sample.b?.state, JSON.stringify(sample)).toBe("connected");
    }

    // The allocations that carried the call lived through the hold. The relay ends an allocation
    // that is not refreshed within its lifetime (and logs reason "expired"), so one that is 2.5
    // lifetimes old was refreshed at least twice. The carriers are the allocations whose end, when the
    // pages closed, shows packets both ways; Chromium may also leave an unused allocation behind
    // (one per unbundled transport before the answer), which simply expires.
    const carriers = callAllocations(summary);
    expect(carriers.length, JSON.stringify(summary.allocationsAfterClose)).toBe(2);
    const whileUp = summary.allocationsWhileUp ?? [];
    for (const carrier of carriers) {
      expect(carrier.reason, JSON.stringify(carrier)).toBe("deleted by the client");
      expect(carrier.seconds!, JSON.stringify(carrier)).toBeGreaterThanOrEqual(2.5 * SHORT_LIFETIME_S);
      // Read while the call was still up: started long enough before, and not ended.
      const start = whileUp.find((line) => line.event === "allocation-start" && line.client === carrier.client);
      expect(start?.ageSeconds, JSON.stringify(whileUp)).toBeGreaterThanOrEqual(2.5 * SHORT_LIFETIME_S);
      expect(whileUp.filter((line) => line.event === "allocation-end" && line.client === carrier.client)).toEqual([]);
    }
  }, REFRESH_TIMEOUT_MS + 5_000);

  it(`a call outlives its TURN credentials (TTL ${SHORT_TTL_S} s, relay --strict-expiry, call held ${HOLD_MS / 1000} s): the pages fetch fresh ones and restart ICE`, async () => {
    const { summary, details } = await runBrowserScript<DemoCallSummary>(
      SCRIPT,
      ["--transport=udp", `--max-allocate-lifetime=${SHORT_LIFETIME_S}`, `--turn-ttl=${SHORT_TTL_S}`, "--strict-expiry", `--hold-ms=${HOLD_MS}`, `--timeout-ms=${REFRESH_TIMEOUT_MS - 15_000}`],
      REFRESH_TIMEOUT_MS,
    );
    expectRelayOnlyCall(summary, "udp", details);
    // Still decoding video at the very end of the hold, long after the first credentials expired
    // (and with them every allocation made with them: under --strict-expiry the relay ends those).
    const end = summary.framesAtEndOfHold!;
    expect(end.windowMs, details).not.toBeNull();
    for (const side of SIDES) expect(end.after[side]!, `${side} frames at the end of the hold`).toBeGreaterThan(end.before[side]!);
    // The restarts happened while the call was up, before the old credentials died: no connection
    // ever left "connected" (without them the call drops when the first allocations expire).
    for (const side of SIDES) {
      const log = summary.peerConnectionLog?.[side] ?? [];
      const states = statesOf(log, log[0]?.pc ?? -1, "connection");
      expect(leftConnectedAfterUp(states), `${side}'s connection states: ${states.join(" → ")}`).toBe(false);
    }
    for (const sample of summary.watched ?? []) {
      expect(sample.a?.state, JSON.stringify(sample)).toBe("connected");
      expect(sample.b?.state, JSON.stringify(sample)).toBe("connected");
    }
    // New allocations were made with the fresh credentials (an ICE restart gathers anew), and the
    // ones carrying the call at the end were made well after the first credentials were issued.
    const whileUp = summary.allocationsWhileUp ?? [];
    const starts = whileUp.filter((line) => line.event === "allocation-start");
    expect(starts.length, JSON.stringify(whileUp)).toBeGreaterThanOrEqual(4);
    // Those still up when the pages closed (deleted by the client, not expired) carried the call to the end.
    const carriers = callAllocations(summary).filter((line) => line.reason === "deleted by the client");
    expect(carriers.length, JSON.stringify(summary.allocationsAfterClose)).toBeGreaterThanOrEqual(1);
    // Under --strict-expiry the first allocations ended when their credential did.
    expect(callAllocations(summary).filter((line) => line.reason === "credential expired").length, JSON.stringify(summary.allocationsAfterClose)).toBeGreaterThanOrEqual(1);
    const oldest = Math.max(...starts.map((line) => line.ageSeconds ?? 0));
    for (const carrier of carriers) {
      // The latest start from that address: Chromium may reuse a local port for a later allocation.
      const start = whileUp.findLast((line) => line.event === "allocation-start" && line.client === carrier.client);
      expect(start, JSON.stringify(whileUp)).toBeDefined();
      expect(oldest - start!.ageSeconds!, `${carrier.client} started after the first refresh`).toBeGreaterThanOrEqual(0.7 * SHORT_TTL_S);
    }
  }, REFRESH_TIMEOUT_MS + 5_000);
});
