/**
 * Room webhooks in real workerd, POSTed to a real receiver on loopback (test/node/webhook-receiver.ts):
 * room-started, peer-joined, peer-left (left, timeout, kicked, room-closed), room-finished with usage,
 * in order per room, each signed; retries with backoff, and giving up. Peers are real WebSockets
 * holding join tokens (../peer.ts). This project (vitest.config.ts `worker-webhooks`): resume grace 1 s,
 * room finish delay 1.5 s and a first retry after 10 ms (test-only settings).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { mintJoinToken } from "../../../shared/signaling/join-token.js";
import type { PeerMeta } from "../../../shared/signaling/protocol.js";
import type { WebhookEventOf } from "../../../shared/webhooks/events.js";
import { WEBHOOK_MAX_ATTEMPTS, WEBHOOK_RETRY_BASE_MS, WEBHOOK_RETRY_MAX_DELAY_MS, readWebhookConfig } from "../../../worker/config.js";
import type { Env } from "../../../worker/env.js";
import { retryDelayMs } from "../../../worker/webhooks/retry.js";
import { TestPeer, fetchWorker, freshRoom, resuming, type Joined } from "../peer.js";
import { expectSigned, failNext, received, roomEvents, summary, waitForRequests, accepted } from "./hooks.js";

const JOIN_SECRET = "webhook-test-join-secret";
const API_KEY = "webhook-test-api-key-0123456789";
const vars: Partial<Env> = { JOIN_SECRET, API_KEYS: API_KEY };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function join(room: string, sub: string, meta?: PeerMeta): Promise<Joined> {
  const token = await mintJoinToken(JOIN_SECRET, { room, sub, ...(meta && { meta }) });
  return TestPeer.join(room, { query: { token }, vars });
}

function admin(method: string, path: string, body?: string): Promise<Response> {
  return fetchWorker(`http://relaykit.test${path}`, { method, headers: { Authorization: `Bearer ${API_KEY}` }, ...(body !== undefined && { body }) }, vars);
}

const roomStub = (room: string) => env.ROOMS.get(env.ROOMS.idFromName(room));
const at = `"room":"`;

describe("room webhooks", () => {
  it("tells a room's life in order: started, joins, each kind of leave, finished with usage; every request signed", async () => {
    const room = freshRoom("life");
    const before = Date.now();
    const ann = await join(room, "ann", { name: "Ann" });
    const bob = await join(room, "bob");
    await join(room, "carol");
    await ann.peer.next("peer-joined");
    await ann.peer.next("peer-joined");
    bob.peer.send({ type: "leave" });
    await ann.peer.next("peer-left");
    expect((await admin("POST", `/v1/rooms/${room}/peers/carol/kick`)).status).toBe(200);
    await ann.peer.next("peer-left");
    // The relays' usage for the room, as the fleet forwards it: room-finished carries the total.
    await roomStub(room).recordUsage("relay-1", "boot-1", [{ peerId: "ann", bytesToPeers: 1200, bytesToClient: 3400, allocationMs: 5500 }]);
    ann.peer.close(1000, "network drop");

    // ann's grace (1 s) runs out: timeout; then the room stays empty for 1.5 s: finished.
    const events = await roomEvents(room, 8);
    expect(events.map(summary)).toEqual([
      "room-started",
      "peer-joined ann",
      "peer-joined bob",
      "peer-joined carol",
      "peer-left bob left",
      "peer-left carol kicked",
      "peer-left ann timeout",
      "room-finished",
    ]);
    expect(events.every((event) => event.room === room)).toBe(true);
    expect(new Set(events.map((event) => event.id)).size).toBe(8);
    expect(events[1]!.data).toEqual({ peerId: "ann", meta: { name: "Ann" } });
    const started = events[0] as WebhookEventOf<"room-started">;
    const finished = events[7] as WebhookEventOf<"room-finished">;
    expect(finished.data.usage).toEqual({ bytesToPeers: 1200, bytesToClient: 3400, allocationSeconds: 5.5 });
    expect(finished.data.startedAt).toBe(started.data.startedAt);
    expect(Date.parse(started.data.startedAt)).toBeGreaterThanOrEqual(before - 1);
    // Finished no sooner than the finish delay after the last peer left.
    const lastLeft = Date.parse(events[6]!.createdAt);
    expect(Date.parse(finished.data.finishedAt) - lastLeft).toBeGreaterThanOrEqual(1_500);
    for (let i = 1; i < events.length; i++) expect(Date.parse(events[i]!.createdAt)).toBeGreaterThanOrEqual(Date.parse(events[i - 1]!.createdAt));

    const requests = await received(`${at}${room}"`);
    expect(requests).toHaveLength(8);
    await expectSigned(requests);
    // Nothing more: room-finished comes once.
    await sleep(1_800);
    expect(await received(`${at}${room}"`)).toHaveLength(8);
  });

  it("closing the room: peer-left room-closed for everyone, then room-finished once", async () => {
    const room = freshRoom("closed");
    const ann = await join(room, "ann");
    await join(room, "bob");
    await ann.peer.next("peer-joined");
    expect((await admin("DELETE", `/v1/rooms/${room}`)).status).toBe(200);
    const events = await roomEvents(room, 6);
    expect(events.map(summary)).toEqual(["room-started", "peer-joined ann", "peer-joined bob", "peer-left ann room-closed", "peer-left bob room-closed", "room-finished"]);
    await expectSigned(await received(`${at}${room}"`));
  });

  it("room-finished carries the usage of its own session, not of the room's earlier ones", async () => {
    const room = freshRoom("sessions");
    const first = await join(room, "ann");
    await roomStub(room).recordUsage("relay-1", "boot-1", [{ peerId: "ann", bytesToPeers: 1000, bytesToClient: 2000, allocationMs: 3000 }]);
    first.peer.send({ type: "leave" });
    await roomEvents(room, 4);
    // A second session of the same room: the relay reports more for ann (cumulative), and a new relay process.
    const second = await join(room, "ann");
    await roomStub(room).recordUsage("relay-1", "boot-1", [{ peerId: "ann", bytesToPeers: 1500, bytesToClient: 2000, allocationMs: 4000 }]);
    await roomStub(room).recordUsage("relay-1", "boot-2", [{ peerId: "ann", bytesToPeers: 10, bytesToClient: 20, allocationMs: 250 }]);
    second.peer.send({ type: "leave" });
    const events = await roomEvents(room, 8);
    expect(events.map(summary)).toEqual(["room-started", "peer-joined ann", "peer-left ann left", "room-finished", "room-started", "peer-joined ann", "peer-left ann left", "room-finished"]);
    expect((events[3] as WebhookEventOf<"room-finished">).data.usage).toEqual({ bytesToPeers: 1000, bytesToClient: 2000, allocationSeconds: 3 });
    expect((events[7] as WebhookEventOf<"room-finished">).data.usage).toEqual({ bytesToPeers: 510, bytesToClient: 20, allocationSeconds: 1.25 });
  });

  it("a resume is not a join, and a peer that leaves and rejoins within the finish delay continues the room", async () => {
    const room = freshRoom("resume");
    const ann = await join(room, "ann");
    ann.peer.close(1000, "network drop");
    await sleep(200);
    const back = await TestPeer.join(room, resuming(ann.welcome.resumeToken, { query: { token: await mintJoinToken(JOIN_SECRET, { room, sub: "ann" }) }, vars }));
    expect(back.welcome.resumed).toBe(true);
    back.peer.send({ type: "leave" });
    await back.peer.closed;
    await sleep(300);
    // Within the finish delay (1.5 s): the same room goes on, no second room-started.
    const again = await join(room, "ann");
    again.peer.send({ type: "leave" });
    const events = await roomEvents(room, 6);
    expect(events.map(summary)).toEqual(["room-started", "peer-joined ann", "peer-left ann left", "peer-joined ann", "peer-left ann left", "room-finished"]);
    await sleep(1_800);
    expect(accepted(await received(`${at}${room}"`)).map(summary)).toEqual(events.map(summary));
  });

  it("retries a failed POST with backoff: the same event id until it is accepted, and the next event only after it", async () => {
    const room = freshRoom("retry");
    await failNext(2, `${at}${room}"`, `"type":"room-started"`);
    const ann = await join(room, "ann");
    const all = await waitForRequests((ok) => ok.length >= 2, [`${at}${room}"`]);
    const firstId = JSON.parse(all[0]!.body).id as string;
    expect(all.slice(0, 4).map((r) => [r.status, JSON.parse(r.body).type, JSON.parse(r.body).id === firstId])).toEqual([
      [500, "room-started", true],
      [500, "room-started", true],
      [200, "room-started", true],
      [200, "peer-joined", false],
    ]);
    // Backoff: 10 ms, then 20 ms (this project's first retry; doubling).
    expect(all[1]!.receivedAt - all[0]!.receivedAt).toBeGreaterThanOrEqual(10);
    expect(all[2]!.receivedAt - all[1]!.receivedAt).toBeGreaterThanOrEqual(20);
    // Each attempt is signed afresh and verifies.
    await expectSigned(all);
    ann.peer.close();
  });

  it(`gives up after ${WEBHOOK_MAX_ATTEMPTS} attempts, counts it, and goes on with the next event`, async () => {
    const room = freshRoom("giveup");
    await failNext(1_000, `${at}${room}"`, `"type":"room-started"`);
    const ann = await join(room, "ann");
    const all = await waitForRequests((ok) => ok.some((r) => JSON.parse(r.body).type === "peer-joined"), [`${at}${room}"`], 15_000);
    const started = all.filter((r) => JSON.parse(r.body).type === "room-started");
    expect(started).toHaveLength(WEBHOOK_MAX_ATTEMPTS);
    expect(started.every((r) => r.status === 500)).toBe(true);
    expect(new Set(started.map((r) => JSON.parse(r.body).id)).size).toBe(1);
    // The next event came after the last attempt of the one given up.
    expect(all.at(-1)!.receivedAt).toBeGreaterThanOrEqual(started.at(-1)!.receivedAt);
    await sleep(300);
    expect((await received(`${at}${room}"`, `"type":"room-started"`)).length).toBe(WEBHOOK_MAX_ATTEMPTS);
    const counters = await runInDurableObject(roomStub(room), (_instance, state) =>
      Object.fromEntries(state.storage.sql.exec<{ name: string; n: number }>("SELECT name, n FROM webhook_counters").toArray().map((row) => [row.name, row.n])),
    );
    expect(counters).toMatchObject({ givenUp: 1, failedAttempts: WEBHOOK_MAX_ATTEMPTS, delivered: 1 });
    ann.peer.close();
  });
});

describe("webhook settings and schedule", () => {
  const secret = "s".repeat(32);
  it("no settings: no webhooks; half or bad settings: an error saying what to fix", () => {
    expect(readWebhookConfig({} as Env)).toBeNull();
    expect(readWebhookConfig({ WEBHOOK_URL: "", WEBHOOK_SECRET: " " } as Env)).toBeNull();
    expect(() => readWebhookConfig({ WEBHOOK_URL: "https://app.example/hook" } as Env)).toThrow(/WEBHOOK_SECRET is not.*wrangler secret put WEBHOOK_SECRET/);
    expect(() => readWebhookConfig({ WEBHOOK_SECRET: secret } as Env)).toThrow(/WEBHOOK_URL is not/);
    expect(() => readWebhookConfig({ WEBHOOK_URL: "https://app.example/hook", WEBHOOK_SECRET: `${secret},short` } as Env)).toThrow(/entry 2 is 5 characters; each must be at least 32/);
    expect(() => readWebhookConfig({ WEBHOOK_URL: "app.example/hook", WEBHOOK_SECRET: secret } as Env)).toThrow(/not a URL/);
    for (const url of ["http://app.example/hook", "http://10.0.0.1/hook", "ftp://127.0.0.1/hook", "http://128.0.0.1/"]) {
      expect(() => readWebhookConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: secret } as Env), url).toThrow(/must be https:\/\//);
    }
    for (const url of ["https://app.example/hook", "http://127.0.0.1:8080/hook", "http://127.1.2.3/hook", "http://[::1]:9/hook", "http://localhost/hook"]) {
      expect(readWebhookConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: `${secret}, ${"t".repeat(40)}` } as Env)?.secrets, url).toEqual([secret, "t".repeat(40)]);
    }
  });

  it("backs off from 1 s, doubling, capped at 5 minutes", () => {
    expect([1, 2, 3, 4, 9].map((n) => retryDelayMs(n, WEBHOOK_RETRY_BASE_MS))).toEqual([1_000, 2_000, 4_000, 8_000, 256_000]);
    expect(retryDelayMs(12, WEBHOOK_RETRY_BASE_MS)).toBe(WEBHOOK_RETRY_MAX_DELAY_MS);
    expect(retryDelayMs(1_000, WEBHOOK_RETRY_BASE_MS)).toBe(WEBHOOK_RETRY_MAX_DELAY_MS);
  });
});
