/**
 * Fleet webhooks in real workerd: relay-draining when a heartbeat turns a relay draining, relay-lost
 * when a ready relay's control channel ends (once; not when a newer connection of the same relay id
 * replaces it, not for a draining relay). Relays are real control WebSockets (../fleet-relay.ts); the
 * receiver is the project's (test/node/webhook-receiver.ts).
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { WebhookEventOf } from "../../../shared/webhooks/events.js";
import { TestRelay, fleetStub, liveRelay, resetFleet, waitFor } from "../fleet-relay.js";
import { accepted, expectSigned, received, summary, waitForRequests } from "./hooks.js";

beforeEach(resetFleet);

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
    expect(events.map(summary)).toEqual(["relay-lost"]);
    expect((events[0] as WebhookEventOf<"relay-lost">).data).toEqual({ relayId: id, lastHeartbeatAt: new Date(lastHeartbeatAt).toISOString() });
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
    expect(events.map(summary)).toEqual(["relay-lost"]);
    await sleep(300);
    expect(await received(about(id))).toHaveLength(1);
  });

  it("nothing for a connection that never registered", async () => {
    const id = freshRelayId("unregistered");
    const relay = await TestRelay.connect(id);
    relay.close();
    await sleep(500);
    expect(await received(about(id))).toEqual([]);
  });
});
