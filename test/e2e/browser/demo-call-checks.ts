/**
 * What test/e2e/browser/demo-call.ts reports, and the checks every relay-only call of it must pass:
 * shared by the call suites (browser-call.test.ts) and the refresh suites (browser-refresh.test.ts).
 */
import { expect } from "vitest";
import type { ScriptSummary } from "./netns-run.js";
import type { DemoPeer, PeerConnectionEvent } from "./pages.js";

export interface RelayLine {
  event: string;
  client?: string;
  reason?: string;
  seconds?: number;
  ageSeconds?: number;
  packetsToPeers?: number;
  packetsToClient?: number;
}

export interface DemoCallSummary extends ScriptSummary {
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

export const SCRIPT = "demo-call.ts";
export const CALL_TIMEOUT_MS = 60_000;
export const PROCESS_TIMEOUT_MS = 90_000;
/**
 * The refresh case: allocations of 10 s (the relay's floor), a call held for 24 s, long enough that
 * the allocations carrying it must have been refreshed twice (Chromium refreshes every ~5 s).
 */
export const SHORT_LIFETIME_S = 10;
export const HOLD_MS = 24_000;
/** Allocations this many lifetimes old were refreshed at least twice. */
export const TWICE_REFRESHED_LIFETIMES = 2.2;
export const REFRESH_TIMEOUT_MS = 100_000;
/** The credential case: the Worker's TURN credentials live 15 s; the client refreshes at about 12 s. */
export const SHORT_TTL_S = 15;

export const SIDES = ["a", "b"] as const;

/** What every relay-only call must show, whatever the transport. */
export function expectRelayOnlyCall(summary: DemoCallSummary, transport: "udp" | "tcp" | "tls", details: string): void {
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
export function callAllocations(summary: DemoCallSummary): RelayLine[] {
  return (summary.allocationsAfterClose ?? []).filter(
    (line) => line.event === "allocation-end" && (line.packetsToPeers ?? 0) > 100 && (line.packetsToClient ?? 0) > 100,
  );
}
