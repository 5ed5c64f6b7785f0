/**
 * Moderation reaches the relay, end to end (issue 15's proof): a local fleet (`npm start -- --relays 2`
 * with join tokens and webhooks to a local receiver), two headless Chromium pages in a relay-only
 * call, in a fresh loopback-only network namespace. The admin API kicks bob with a ban, then closes
 * the room:
 * - bob's allocations are gone from the relay within 2 s (its own allocation-end log lines, reason
 *   `revoked`), no new one is made for him, and his page receives no more media;
 * - alice's page stops listing bob; bob's token is refused (`banned`, 4004) while the ban holds;
 * - the room's usage (GET /v1/rooms/:room/usage) matches what the relay counted within 1 %;
 * - the webhook receiver got the room's events, each signed (verified with shared/webhooks), in order.
 * The script test/e2e/browser/moderation-call.ts reports; the assertions here decide.
 */
import { describe, expect, it } from "vitest";
import type { KickResult, RoomClosedResult, RoomUsage } from "../../shared/signaling/protocol.js";
import { netnsGate, runBrowserScript, type ScriptSummary } from "./browser/netns-run.js";
import type { DemoSnapshot } from "./browser/pages.js";
import { verifyWebhook } from "../../shared/webhooks/signature.js";
import type { WebhookEvent, WebhookEventOf } from "../../shared/webhooks/events.js";
import type { RecordedRequest } from "../recorded-webhook.js";

interface ModerationSummary extends ScriptSummary {
  room?: string;
  kick?: { status: number; body: KickResult };
  goneAfterMs?: { bobAllocations: number | null; bobOnAlicePage: number | null };
  bobAllocationsBeforeKick?: number;
  bobAllocationsLiveAtKick?: number;
  bobAllocationsAfterKick?: number;
  bobAllocationEnds?: { reason: string; bytesToPeers: number; bytesToClient: number }[];
  bobPage?: { framesDecodedThen: number | null; framesDecoded2sLater: number | null; snapshot: DemoSnapshot };
  rejoin?: { frame: { type?: string; code?: string } | null; close: { code: number; reason: string } | null };
  close?: { status: number; body: RoomClosedResult };
  relayCounted?: { bytesToPeers: number; bytesToClient: number };
  usage?: RoomUsage;
  webhooks?: RecordedRequest[];
  webhookSecret?: string;
}

const PROCESS_TIMEOUT_MS = 170_000;
const REVOKED_WITHIN_MS = 2_000;
const USAGE_TOLERANCE = 0.01;

function within(actual: number, expected: number, tolerance: number): boolean {
  return expected > 0 && Math.abs(actual - expected) <= expected * tolerance;
}

const unavailable = await netnsGate("moderation end to end");

describe.skipIf(unavailable !== null)("moderation reaches the relay (npm start -- --relays 2, Chromium, loopback-only network namespace)", () => {
  it("a kick revokes the peer's relay within 2 s, the ban holds, usage matches the relay, webhooks arrive signed and in order", async () => {
    const { summary, details } = await runBrowserScript<ModerationSummary>("moderation-call.ts", [`--timeout-ms=${PROCESS_TIMEOUT_MS - 20_000}`], PROCESS_TIMEOUT_MS);
    expect(summary.ok, details).toBe(true);

    // The kick and the relay.
    expect(summary.kick, details).toMatchObject({ status: 200, body: { kicked: "bob" } });
    expect(summary.bobAllocationsLiveAtKick, details).toBeGreaterThan(0);
    expect(summary.goneAfterMs?.bobAllocations, details).not.toBeNull();
    expect(summary.goneAfterMs!.bobAllocations!, details).toBeLessThanOrEqual(REVOKED_WITHIN_MS);
    expect(summary.bobAllocationEnds?.map((end) => end.reason), details).toEqual(Array(summary.bobAllocationsLiveAtKick).fill("revoked"));
    expect(summary.bobAllocationsAfterKick, details).toBe(0);
    // Bob's media stops: his page has no call left (or decodes nothing more).
    const bobPage = summary.bobPage!;
    expect(bobPage.framesDecoded2sLater === null || bobPage.framesDecoded2sLater === bobPage.framesDecodedThen, details).toBe(true);
    expect(bobPage.snapshot.roomState, details).toBe("closed");

    // Alice sees bob leave; bob's token is refused while banned.
    expect(summary.goneAfterMs?.bobOnAlicePage, details).not.toBeNull();
    expect(summary.rejoin?.frame, details).toMatchObject({ type: "error", code: "banned" });
    expect(summary.rejoin?.close?.code, details).toBe(4004);
    expect(summary.close, details).toMatchObject({ status: 200, body: { peers: 1 } });

    // Usage: what the Worker stored against what the relay's own counters saw.
    const counted = summary.relayCounted!;
    const total = summary.usage?.total;
    expect(counted.bytesToPeers, details).toBeGreaterThan(10_000);
    expect(within(total?.bytesToPeers ?? 0, counted.bytesToPeers, USAGE_TOLERANCE), `usage ${JSON.stringify(total)} against the relay's ${JSON.stringify(counted)}`).toBe(true);
    expect(within(total?.bytesToClient ?? 0, counted.bytesToClient, USAGE_TOLERANCE), `usage ${JSON.stringify(total)} against the relay's ${JSON.stringify(counted)}`).toBe(true);
    expect(summary.usage?.peers.map((peer) => peer.peerId).sort(), details).toEqual(["alice", "bob"]);

    // Webhooks: every request verifies under the Worker's secret, and the room's events come in order.
    const hooks = (summary.webhooks ?? []).filter((hook) => hook.status < 300);
    const events: WebhookEvent[] = [];
    for (const hook of hooks) {
      const verified = await verifyWebhook({ body: hook.body, signature: hook.headers["relaykit-signature"], secrets: summary.webhookSecret!, nowSeconds: Math.floor(hook.receivedAt / 1000) });
      expect(verified, hook.body).toMatchObject({ ok: true });
      if (verified.ok) events.push(verified.event);
    }
    const told = events.map((event) => [event.type, "peerId" in event.data ? event.data.peerId : null, "reason" in event.data ? event.data.reason : null]);
    expect(told, JSON.stringify(hooks.map((hook) => hook.body))).toEqual([
      ["room-started", null, null],
      ["peer-joined", "alice", null],
      ["peer-joined", "bob", null],
      ["peer-left", "bob", "kicked"],
      ["peer-left", "alice", "room-closed"],
      ["room-finished", null, null],
    ]);
    const finished = events[5] as WebhookEventOf<"room-finished">;
    expect(within(finished.data.usage.bytesToPeers, counted.bytesToPeers, USAGE_TOLERANCE), `room-finished usage ${JSON.stringify(finished.data.usage)}`).toBe(true);
  }, PROCESS_TIMEOUT_MS + 5_000);
});
