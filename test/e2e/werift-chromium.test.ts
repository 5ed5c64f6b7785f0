/**
 * werift (Node) and Chromium (the demo page) call each other relay-only through the local Worker and
 * our relay, once with werift's offer starting the call and once with Chromium's: the chat channel
 * works both ways and werift receives the page's fake camera as RTP.
 *
 * Each case runs test/e2e/browser/werift-chromium-call.ts inside a fresh loopback-only network
 * namespace; that script explains how each direction is brought about, and reports what werift sent
 * and received so the direction is checked, not assumed.
 */
import { describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript, type ScriptSummary } from "./browser/netns-run.js";
import type { DemoPeer, PeerConnectionEvent } from "./browser/pages.js";

interface WeriftChromiumSummary extends ScriptSummary {
  first?: string;
  pagePeerId?: string;
  weriftPeerId?: string;
  callUpAfterMs?: number;
  chat?: { sent: { chromium: string; werift: string }; received: { chromium: string[]; werift: string[] } };
  weriftPair?: { local: string; remote: string; pairState: string; localTypes: string[] };
  pagePeer?: DemoPeer | null;
  videoPackets?: number;
  weriftSignalingStates?: string[];
  weriftConnectionStates?: string[];
  descriptions?: { direction: "sent" | "received"; type: string; at: number }[];
  firstAnsweredOffer?: "werift" | "chromium" | null;
  pagePeerConnectionLog?: PeerConnectionEvent[];
  relayClients?: string[];
}

const SCRIPT = "werift-chromium-call.ts";
const CALL_TIMEOUT_MS = 60_000;
const PROCESS_TIMEOUT_MS = 90_000;

const unavailable = await netnsGate("werift ↔ Chromium");

describe.skipIf(unavailable !== null)("werift ↔ Chromium on the demo page, relay-only (loopback-only network namespace)", () => {
  for (const first of ["werift", "chromium"] as const) {
    it(`${first}'s offer starts the call: connected relay-only, chat both ways, werift receives the camera's RTP`, async () => {
      const { summary, details } = await runBrowserScript<WeriftChromiumSummary>(SCRIPT, [`--first=${first}`, `--timeout-ms=${CALL_TIMEOUT_MS}`], PROCESS_TIMEOUT_MS);
      expect(summary.ok, details).toBe(true);

      // The direction, from what werift actually sent and received.
      expect(summary.firstAnsweredOffer, details).toBe(first);
      const descriptions = summary.descriptions ?? [];
      if (first === "werift") {
        // werift was in the room first, so it offered first and the page (the newcomer) answered:
        // werift's first description was an offer, and nothing reached it before that offer.
        expect(descriptions[0], details).toMatchObject({ direction: "sent", type: "offer" });
        expect(summary.weriftSignalingStates?.[0], details).toBe("have-local-offer");
        // The page applied werift's offer: its first connection went to have-remote-offer.
        const pageSignaling = (summary.pagePeerConnectionLog ?? []).filter((event) => event.kind === "signaling").map((event) => event.state);
        expect(pageSignaling, details).toContain("have-remote-offer");
      } else {
        // The page was in the room first and offered; werift (the newcomer) answered.
        expect(descriptions[0], details).toMatchObject({ direction: "received", type: "offer" });
        const firstSent = descriptions.find((event) => event.direction === "sent");
        expect(firstSent?.type, details).toBe("answer");
        expect(summary.weriftSignalingStates?.[0], details).toBe("have-remote-offer");
        const pageSignaling = (summary.pagePeerConnectionLog ?? []).filter((event) => event.kind === "signaling").map((event) => event.state);
        expect(pageSignaling[0], details).toBe("have-local-offer");
      }

      // Connected relay-only, seen from both ends.
      expect(summary.weriftConnectionStates, details).toContain("connected");
      expect(summary.weriftPair, details).toMatchObject({ local: "relay", remote: "relay", pairState: "succeeded" });
      expect(summary.weriftPair!.localTypes).toEqual(["relay"]);
      expect(summary.pagePeer, details).toMatchObject({ connectionState: "connected", chatState: "open", pair: { local: "relay", remote: "relay" } });
      // Chat both ways.
      expect(summary.chat!.received.werift).toContain(summary.chat!.sent.chromium);
      expect(summary.chat!.received.chromium).toContain(summary.chat!.sent.werift);
      // werift got the page's camera: a video track and its RTP.
      expect(summary.videoPackets!, details).toBeGreaterThanOrEqual(50);
      // Both reached the relay over UDP, one allocation each at least.
      expect(summary.relayClients!.length, details).toBeGreaterThanOrEqual(2);
      for (const client of summary.relayClients!) expect(client).toMatch(/^udp:127\.0\.0\.1:\d+@127\.0\.0\.1:\d+$/);
    }, PROCESS_TIMEOUT_MS + 5_000);
  }
});
