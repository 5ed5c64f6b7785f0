/**
 * Exact usage, the Worker's side, in real workerd: a relay's heartbeat carries cumulative figures
 * per room member (shared/fleet/protocol.ts `UsageReport`); the fleet object stores them in each
 * room's object and answers `usage-ack` once all stored them; `GET /v1/rooms/:room/usage` (API key)
 * shows them per peer and in total, and the room view shows the totals. Reports that arrive twice,
 * late or out of order change nothing; relays and relay restarts add up.
 */
import { describe, expect, it } from "vitest";
import { FLEET_LIMITS, type FleetMessage, type UsageEntry } from "../../shared/fleet/protocol.js";
import type { RoomUsage, RoomView } from "../../shared/signaling/protocol.js";
import type { Env } from "../../worker/env.js";
import { TestRelay, heartbeatMessage, liveRelay } from "./fleet-relay.js";
import { fetchWorker, freshRoom } from "./peer.js";

const API_KEY = "fleet-usage-test-key";
const vars: Partial<Env> = { API_KEYS: API_KEY };

function adminGet(path: string, authorization: string | null = `Bearer ${API_KEY}`): Promise<Response> {
  return fetchWorker(`http://relaykit.test${path}`, { headers: authorization === null ? {} : { Authorization: authorization } }, vars);
}

async function usageOf(room: string): Promise<RoomUsage> {
  const response = await adminGet(`/v1/rooms/${room}/usage`);
  expect(response.status).toBe(200);
  expect(response.headers.get("Cache-Control")).toBe("no-store");
  return response.json();
}

function entry(room: string, peerId: string, bytesToPeers: number, bytesToClient: number, allocationMs: number): UsageEntry {
  return { room, peerId, bytesToPeers, bytesToClient, allocationMs };
}

/** Sends a heartbeat carrying a usage report and returns the fleet's next message. */
async function report(relay: TestRelay, boot: string, seq: number, entries: UsageEntry[]): Promise<FleetMessage> {
  relay.heartbeat({ usage: { boot, seq, entries } });
  return relay.next();
}

describe("usage reports", () => {
  it("stores each room's members in that room and acknowledges the report once all are stored", async () => {
    const relay = await liveRelay("relay-usage-1");
    const [a, b] = [freshRoom("usage-a"), freshRoom("usage-b")];
    const ack = await report(relay, "boot-one-0001", 1, [entry(a, "ann", 1000, 2500, 4000), entry(b, "cat", 7, 9, 1500), entry(a, "bob", 3000, 100, 4200)]);
    expect(ack).toEqual({ type: "usage-ack", boot: "boot-one-0001", seq: 1 });

    const usage = await usageOf(a);
    expect(usage.room).toBe(a);
    // Most bytes first.
    expect(usage.peers.map(({ peerId, bytesToPeers, bytesToClient, allocationSeconds }) => ({ peerId, bytesToPeers, bytesToClient, allocationSeconds }))).toEqual([
      { peerId: "ann", bytesToPeers: 1000, bytesToClient: 2500, allocationSeconds: 4 },
      { peerId: "bob", bytesToPeers: 3000, bytesToClient: 100, allocationSeconds: 4.2 },
    ]);
    expect(usage.total).toEqual({ bytesToPeers: 4000, bytesToClient: 2600, allocationSeconds: 8.2 });
    expect(usage.foldedPeers).toBe(0);
    expect(Date.parse(usage.updatedAt!)).toBeGreaterThan(Date.now() - 10_000);
    expect((await usageOf(b)).total).toEqual({ bytesToPeers: 7, bytesToClient: 9, allocationSeconds: 1.5 });

    // The room view carries the totals.
    const view = (await (await adminGet(`/v1/rooms/${a}`)).json()) as RoomView;
    expect(view.usage).toEqual({ bytesToPeers: 4000, bytesToClient: 2600, allocationSeconds: 8.2 });
    relay.close();
  });

  it("keeps the latest figures when reports repeat or arrive out of order", async () => {
    const relay = await liveRelay("relay-usage-2");
    const room = freshRoom("usage-order");
    expect(await report(relay, "boot-two-0001", 2, [entry(room, "ann", 5000, 6000, 9000)])).toMatchObject({ type: "usage-ack", seq: 2 });
    // An older report, late: acknowledged (it is stored, as far as it goes), and changes nothing.
    expect(await report(relay, "boot-two-0001", 1, [entry(room, "ann", 4000, 6500, 5000)])).toMatchObject({ type: "usage-ack", seq: 1 });
    // The same report again.
    expect(await report(relay, "boot-two-0001", 2, [entry(room, "ann", 5000, 6000, 9000)])).toMatchObject({ type: "usage-ack", seq: 2 });
    const usage = await usageOf(room);
    // Field by field the larger: cumulative figures never go down.
    expect(usage.total).toEqual({ bytesToPeers: 5000, bytesToClient: 6500, allocationSeconds: 9 });
    relay.close();
  });

  it("adds up what different relays, and one relay's successive processes, relayed for a peer", async () => {
    const first = await liveRelay("relay-usage-3a");
    const second = await liveRelay("relay-usage-3b");
    const room = freshRoom("usage-sum");
    expect(await report(first, "boot-3a-00001", 1, [entry(room, "ann", 100, 200, 1000)])).toMatchObject({ type: "usage-ack" });
    expect(await report(second, "boot-3b-00001", 1, [entry(room, "ann", 10, 20, 500)])).toMatchObject({ type: "usage-ack" });
    // relay-3a restarted: its counters start again from zero under a new boot id.
    expect(await report(first, "boot-3a-00002", 1, [entry(room, "ann", 1, 2, 250)])).toMatchObject({ type: "usage-ack" });
    const usage = await usageOf(room);
    expect(usage.peers).toHaveLength(1);
    expect(usage.total).toEqual({ bytesToPeers: 111, bytesToClient: 222, allocationSeconds: 1.75 });
    first.close();
    second.close();
  });

  it("acknowledges an empty report, and a heartbeat without one is answered with nothing", async () => {
    const relay = await liveRelay("relay-usage-4");
    expect(await report(relay, "boot-four-001", 1, [])).toEqual({ type: "usage-ack", boot: "boot-four-001", seq: 1 });
    relay.heartbeat(heartbeatMessage());
    await expect(relay.next(500)).rejects.toThrow(/no message/);
    relay.close();
  });

  it("refuses a malformed report whole: nothing of it is stored or acknowledged", async () => {
    const room = freshRoom("usage-bad");
    const tooMany = Array.from({ length: FLEET_LIMITS.maxUsageEntries + 1 }, (_, i) => entry(room, `p${i}`, 1, 1, 1));
    const cases: [unknown, RegExp][] = [
      [{ boot: "boot-five-001", seq: 1, entries: tooMany }, /at most 200 entries/],
      [{ boot: "boot-five-001", seq: 1, entries: [entry(room, "ann", -1, 0, 0)] }, /whole numbers from 0/],
      [{ boot: "boot-five-001", seq: 1, entries: [entry(room, "bad/peer", 1, 0, 0)] }, /valid names/],
      [{ boot: "short", seq: 1, entries: [] }, /boot must be/],
      [{ boot: "boot-five-001", seq: 0, entries: [] }, /seq must be/],
    ];
    for (const [i, [usage, message]] of cases.entries()) {
      // A relay per case: the fleet's message rate limit allows a burst of 5.
      const relay = await liveRelay(`relay-usage-5-${i}`);
      relay.send({ ...heartbeatMessage(), usage });
      const answer = await relay.next();
      expect(answer).toMatchObject({ type: "error", code: "bad-message" });
      expect((answer as { message: string }).message).toMatch(message);
      relay.close();
    }
    expect((await usageOf(room)).total).toEqual({ bytesToPeers: 0, bytesToClient: 0, allocationSeconds: 0 });
  });
});

describe("GET /v1/rooms/:room/usage", () => {
  it("answers a room no relay reported with zeros", async () => {
    const usage = await usageOf(freshRoom("usage-none"));
    expect(usage).toMatchObject({ total: { bytesToPeers: 0, bytesToClient: 0, allocationSeconds: 0 }, peers: [], foldedPeers: 0, updatedAt: null });
  });

  it("needs the API key and a valid room name", async () => {
    const room = freshRoom("usage-auth");
    expect((await adminGet(`/v1/rooms/${room}/usage`, null)).status).toBe(401);
    const wrongKey = await adminGet(`/v1/rooms/${room}/usage`, "Bearer not-the-key");
    expect(wrongKey.status).toBe(401);
    expect(await wrongKey.json()).toMatchObject({ error: { code: "unauthorized", message: expect.any(String) } });
    expect((await adminGet(`/v1/rooms/bad%20room/usage`)).status).toBe(400);
  });
});
