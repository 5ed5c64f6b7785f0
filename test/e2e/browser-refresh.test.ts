/**
 * Calls held across refreshes, on the demo room page (two headless Chromium pages, relay-only over
 * UDP, test/e2e/browser/demo-call.ts in a fresh loopback-only network namespace):
 * - allocation refreshes: the relay's maximum allocation lifetime cut to 10 s (Chromium refreshes
 *   every ~5 s), the call held 24 s, and it never leaves "connected";
 * - credential refreshes: TURN credentials of 15 s under --strict-expiry, so the pages must fetch
 *   fresh ones and restart ICE before the old allocations die.
 * A file of its own so it runs beside browser-call.test.ts (e2e files run two at a time).
 */
import { describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript } from "./browser/netns-run.js";
import { leftConnectedAfterUp, statesOf } from "./browser/pages.js";
import { HOLD_MS, REFRESH_TIMEOUT_MS, SCRIPT, SHORT_LIFETIME_S, SHORT_TTL_S, SIDES, TWICE_REFRESHED_LIFETIMES, callAllocations, expectRelayOnlyCall, type DemoCallSummary } from "./browser/demo-call-checks.js";

const unavailable = await netnsGate("calls on the demo page across refreshes");

describe.skipIf(unavailable !== null)("Chromium ↔ Chromium on the demo page, held across refreshes (loopback-only network namespace)", () => {
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
    // that is not refreshed within its lifetime (and logs reason "expired"), so one that is 2.2
    // lifetimes old was refreshed at least twice. The carriers are the allocations whose end, when the
    // pages closed, shows packets both ways; Chromium may also leave an unused allocation behind
    // (one per unbundled transport before the answer), which simply expires.
    const carriers = callAllocations(summary);
    expect(carriers.length, JSON.stringify(summary.allocationsAfterClose)).toBe(2);
    const whileUp = summary.allocationsWhileUp ?? [];
    for (const carrier of carriers) {
      expect(carrier.reason, JSON.stringify(carrier)).toBe("deleted by the client");
      expect(carrier.seconds!, JSON.stringify(carrier)).toBeGreaterThanOrEqual(TWICE_REFRESHED_LIFETIMES * SHORT_LIFETIME_S);
      // Read while the call was still up: started long enough before, and not ended.
      const start = whileUp.find((line) => line.event === "allocation-start" && line.client === carrier.client);
      expect(start?.ageSeconds, JSON.stringify(whileUp)).toBeGreaterThanOrEqual(TWICE_REFRESHED_LIFETIMES * SHORT_LIFETIME_S);
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
