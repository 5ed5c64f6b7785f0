/**
 * Two headless Chromium pages on the demo room page (`/r/<room>?relay=1`, fake camera) call each
 * other through the local Worker and our relay, relay-only, with the Worker handing out TURN over UDP
 * only, TCP only, and TLS only (`turns:`); and the README's `npm start` with two tabs. Calls held
 * across allocation and credential refreshes are in browser-refresh.test.ts.
 *
 * Each case runs test/e2e/browser/demo-call.ts inside a fresh loopback-only network namespace, so
 * Chromium reaches nothing but the Worker and the relay on 127.0.0.1. The script waits for the call
 * and reports what the pages (their `window.relaykitDemo.snapshot()`) and the relay (its allocation
 * log) saw; the assertions here decide.
 */
import { describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript } from "./browser/netns-run.js";
import { CALL_TIMEOUT_MS, PROCESS_TIMEOUT_MS, SCRIPT, SIDES, callAllocations, expectRelayOnlyCall, type DemoCallSummary } from "./browser/demo-call-checks.js";

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
    // Room for npm start's second attempt (startLocalWorker), should the first hang.
    const { summary, details } = await runBrowserScript<DemoCallSummary>(SCRIPT, ["--npm-start", `--timeout-ms=${PROCESS_TIMEOUT_MS - 15_000}`], PROCESS_TIMEOUT_MS);
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

});
