/**
 * Fleet webhooks in real workerd: relay-draining when a heartbeat turns a relay draining, relay-lost
 * when a ready relay's control channel ends (once; not when a newer connection of the same relay id
 * replaces it, not for a draining relay). Relays are real control WebSockets (../fleet-relay.ts); the
 * receiver is the project's (test/node/webhook-receiver.ts).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { LIVE_WITHIN_MS } from "../../../shared/fleet/protocol.js";
import type { WebhookEventOf } from "../../../shared/webhooks/events.js";
import { TestRelay, fleetStub, liveRelay, resetFleet, waitFor } from "../fleet-relay.js";
import { accepted, expectSigned, received, summary, waitForRequests } from "./hooks.js";

let relayCounter = 0;
function freshRelayId(prefix: string): string {
  relayCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${relayCounter}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const about = (relayId: string) => `"relayId":"${relayId}"`;

async function relayEvents(relayId: string, count: number) {
  return accepted(await waitForRequests((ok) => ok.length >= count, [about(relayId)]));
}

describe("fleet webhooks", () => {
  beforeEach(resetFleet);

  it("relay-draining once, on the heartbeat that turns the relay draining; no relay-lost when it then goes", async () => {
    const id = freshRelayId("drain");
    const relay = await liveRelay(id);
    relay.heartbeat({ state: "draining" });
    const events = await relayEvents(id, 1);
    expect(events.map(summary)).toEqual(["relay-draining"]);
    expect(events[0]!.data).toEqual({ relayId: id });
    expect(events[0]!.room).toBeUndefined();
    relay.heartbeat({ state: "draining" });
    await waitFor(async () => (await fleetStub().operatorView()).relays.find((r) => r.id === id)?.state === "draining");
    relay.close();
    await sleep(500);
    const all = await received(about(id));
    expect(accepted(all).map(summary)).toEqual(["relay-draining"]);
    await expectSigned(all);
  });

  it("relay-lost once when a ready relay's channel closes, with its last heartbeat", async () => {
    const id = freshRelayId("lost");
    const relay = await liveRelay(id);
    const lastHeartbeatAt = (await fleetStub().snapshot()).relays.find((r) => r.id === id)!.lastHeartbeatAt!;
    relay.close();
    const events = await relayEvents(id, 1);
    expect(events.map(summary)).toEqual(["relay-lost channel-closed"]);
    expect((events[0] as WebhookEventOf<"relay-lost">).data).toEqual({ relayId: id, reason: "channel-closed", lastHeartbeatAt: new Date(lastHeartbeatAt).toISOString() });
    await sleep(500);
    const all = await received(about(id));
    expect(all).toHaveLength(1);
    await expectSigned(all);
  });

  it("no relay-lost when a newer connection of the same relay id replaces the old; one when that one goes", async () => {
    const id = freshRelayId("replaced");
    const first = await liveRelay(id);
    const second = await TestRelay.register(id);
    await first.waitClosed();
    second.heartbeat();
    await sleep(500);
    expect(await received(about(id))).toEqual([]);
    second.close();
    const events = await relayEvents(id, 1);
    expect(events.map(summary)).toEqual(["relay-lost channel-closed"]);
    await sleep(300);
    expect(await received(about(id))).toHaveLength(1);
  });

  it("relay-lost (silent) once when a ready relay's heartbeats stop with its channel open; not again when the channel then closes; a heartbeat ends the loss", async () => {
    const id = freshRelayId("silent");
    const relay = await liveRelay(id);
    // The relay's last heartbeat, made older than LIVE_WITHIN_MS: as if it had gone quiet that long.
    const silentSince = Date.now() - LIVE_WITHIN_MS - 1_000;
    await runInDurableObject(fleetStub(), (_instance, state) => {
      state.storage.sql.exec("UPDATE relays SET last_heartbeat_at = ? WHERE id = ?", silentSince, id);
    });
    expect(await runDurableObjectAlarm(fleetStub())).toBe(true);
    const events = await relayEvents(id, 1);
    expect(events.map(summary)).toEqual(["relay-lost silent"]);
    expect((events[0] as WebhookEventOf<"relay-lost">).data).toEqual({ relayId: id, reason: "silent", lastHeartbeatAt: new Date(silentSince).toISOString() });
    // Said once: another alarm, and the channel closing later, add nothing.
    await runDurableObjectAlarm(fleetStub());
    relay.close();
    await sleep(500);
    expect(accepted(await received(about(id))).map(summary)).toEqual(["relay-lost silent"]);
    // Back: a new registration and heartbeat end the loss, and a later loss is said again.
    const back = await liveRelay(id);
    back.close();
    expect((await relayEvents(id, 2)).map(summary)).toEqual(["relay-lost silent", "relay-lost channel-closed"]);
  });

  it("nothing for a connection that never registered", async () => {
    const id = freshRelayId("unregistered");
    const relay = await TestRelay.connect(id);
    relay.close();
    await sleep(500);
    expect(await received(about(id))).toEqual([]);
  });
});
