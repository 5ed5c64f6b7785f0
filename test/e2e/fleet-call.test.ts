/**
 * A call survives the end of its relay, in a local fleet (`npm start -- --relays 2`) with two
 * headless Chromium pages on the demo room, relay-only:
 * - drained (SIGTERM): the room pushes servers without the draining relay, the pages restart ICE,
 *   and both selected pairs are on relay-2 within 5 s; no connection ever reaches "failed"; every
 *   chat line sent during the move arrives; relay-1 exits on its own once its calls have left, long
 *   before its 60 s drain timeout; the fleet page shows relay-1 out and relay-2 ready;
 * - killed (SIGKILL, no warning): the pages notice the dead path, fetch fresh servers (the fleet no
 *   longer hands out relay-1) and restart ICE: the call is back on relay-2 within 20 s, and no chat
 *   line is lost.
 * Each case runs test/e2e/browser/fleet-call.ts in a fresh loopback-only network namespace; the
 * script reports what the pages and the processes did, and the assertions here decide.
 */
import { describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript, type ScriptSummary } from "./browser/netns-run.js";
import type { DemoPeer, PeerConnectionEvent } from "./browser/pages.js";

interface FleetCallSummary extends ScriptSummary {
  movedAfterMs?: Record<string, number>;
  chat?: { sent: Record<string, number>; lost: Record<string, string[]> };
  relay1ExitedAfterMs?: number | null;
  relay2Alive?: boolean;
  peerConnectionLog?: Record<string, PeerConnectionEvent[]>;
  final?: Record<string, DemoPeer | null>;
  fleetPage?: { rows: { relay: string; state: string; region: string }[]; status: string | null };
}

const SCRIPT = "fleet-call.ts";
const PROCESS_TIMEOUT_MS = 150_000;
const DRAIN_MOVE_BOUND_MS = 5_000;
const KILL_MOVE_BOUND_MS = 20_000;
/** start-local.mjs gives fleet relays --drain-timeout=60; "well before" is half of it. */
const DRAINED_EXIT_BOUND_MS = 30_000;

/** The connection states each page's connection went through after it was first connected. */
function statesAfterUp(log: PeerConnectionEvent[]): string[] {
  const states = log.filter((event) => event.kind === "connection").map((event) => event.state);
  const first = states.indexOf("connected");
  return first === -1 ? [] : states.slice(first);
}

function expectCallMoved(summary: FleetCallSummary, boundMs: number, details: string): void {
  expect(summary.ok, details).toBe(true);
  for (const side of ["a", "b"]) {
    expect(summary.movedAfterMs?.[side], `${side} on relay-2\n${details}`).toBeLessThanOrEqual(boundMs);
    expect(summary.final?.[side]?.connectionState, details).toBe("connected");
    expect(summary.final?.[side]?.pair, details).toMatchObject({ local: "relay", remote: "relay" });
    // Every chat line sent while the call moved arrived on the other page (the channel is reliable:
    // a line lost would mean the association broke).
    expect(summary.chat?.sent[side], details).toBeGreaterThan(10);
    expect(summary.chat?.lost[side], `${side}'s lost chat lines\n${details}`).toEqual([]);
  }
  expect(summary.relay2Alive, details).toBe(true);
}

const unavailable = await netnsGate("a call across the end of its relay");

describe.skipIf(unavailable !== null)("a fleet call outlives its relay (npm start -- --relays 2, Chromium, loopback-only network namespace)", () => {
  it(`drain (SIGTERM): the call moves to relay-2 within ${DRAIN_MOVE_BOUND_MS / 1000} s, never fails, and relay-1 exits on its own`, async () => {
    const { summary, details } = await runBrowserScript<FleetCallSummary>(SCRIPT, ["--mode=drain", `--timeout-ms=${PROCESS_TIMEOUT_MS - 20_000}`], PROCESS_TIMEOUT_MS);
    expectCallMoved(summary, DRAIN_MOVE_BOUND_MS, details);
    for (const side of ["a", "b"]) {
      const states = statesAfterUp(summary.peerConnectionLog?.[side] ?? []);
      expect(states, `${side}'s connection states after it was up`).not.toContain("failed");
    }
    expect(summary.relay1ExitedAfterMs, details).not.toBeNull();
    expect(summary.relay1ExitedAfterMs!, details).toBeLessThan(DRAINED_EXIT_BOUND_MS);
    // The operator's page, given the API key, shows relay-2 ready and relay-1 no longer handed out.
    const rows = summary.fleetPage?.rows ?? [];
    expect(rows.find((row) => row.relay === "relay-2"), details).toMatchObject({ state: "ready", region: "local" });
    expect(["draining", "lost"], details).toContain(rows.find((row) => row.relay === "relay-1")?.state);
  }, PROCESS_TIMEOUT_MS + 5_000);

  it(`kill -9: the call recovers on relay-2 within ${KILL_MOVE_BOUND_MS / 1000} s`, async () => {
    const { summary, details } = await runBrowserScript<FleetCallSummary>(SCRIPT, ["--mode=kill", `--timeout-ms=${PROCESS_TIMEOUT_MS - 20_000}`], PROCESS_TIMEOUT_MS);
    expectCallMoved(summary, KILL_MOVE_BOUND_MS, details);
  }, PROCESS_TIMEOUT_MS + 5_000);
});
