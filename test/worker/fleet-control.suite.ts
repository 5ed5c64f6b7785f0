/**
 * The fleet's control channel in real workerd: registration, refusals (close code, reason, counted),
 * one connection per relay id, message limits, FLEET_MAX_RELAYS, and the operator view.
 */
import { runInDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { FLEET_CLOSE_CODES, FLEET_LIMITS, HEARTBEAT_INTERVAL_MS } from "../../shared/fleet/protocol.js";
import { mintFleetToken } from "../../shared/fleet/token.js";
import { REGISTER_WITHIN_MS, type FleetConnection } from "../../worker/fleet/fleet-connection.js";
import { FORGET_RELAY_AFTER_MS } from "../../worker/fleet/fleet-store.js";
import type { FleetView } from "../../shared/fleet/view.js";
import { FLEET_URL, PLACES, TestRelay, fleetKey, fleetStub, heartbeatMessage, liveRelay, registerMessage, waitFor } from "./fleet-relay.js";
import { fetchWorker } from "./peer.js";

async function refusals(): Promise<FleetView["refusals"]> {
  return (await fleetStub().operatorView()).refusals;
}

describe("registration", () => {
  it("answers register with registered and keeps the relay's registration", async () => {
    const relay = await TestRelay.connect("relay-a");
    expect(relay.response.headers.get("Sec-WebSocket-Protocol")).toBe("relaykit-fleet.v1");
    relay.send(registerMessage("relay-a", { region: "eu-central", location: PLACES.frankfurt, capacity: { allocations: 1000, bps: 1e9 } }));
    expect(await relay.next()).toEqual({ type: "registered", relayId: "relay-a", heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS });
    relay.heartbeat({ allocations: 3, bpsIn: 1000, bpsOut: 2000, rooms: [{ room: "standup", allocations: 3 }] });
    await waitFor(async () => (await fleetStub().operatorView()).relays[0]?.allocations === 3);
    const [view] = (await fleetStub().operatorView()).relays;
    expect(view).toMatchObject({
      id: "relay-a",
      state: "ready",
      connected: true,
      live: true,
      region: "eu-central",
      location: PLACES.frankfurt,
      capacity: { allocations: 1000, bps: 1e9 },
      allocations: 3,
      bpsIn: 1000,
      bpsOut: 2000,
      rooms: [{ room: "standup", allocations: 3 }],
    });
    relay.close();
  });

  it("replaces the rooms on every heartbeat", async () => {
    const relay = await liveRelay("relay-rooms", {}, { rooms: [{ room: "a", allocations: 1 }, { room: "b", allocations: 2 }] });
    relay.heartbeat({ rooms: [{ room: "c", allocations: 4 }], roomsOmitted: 7 });
    await waitFor(async () => (await fleetStub().operatorView()).relays[0]?.rooms.length === 1);
    expect((await fleetStub().operatorView()).relays[0]).toMatchObject({ rooms: [{ room: "c", allocations: 4 }], roomsOmitted: 7 });
  });

  it("marks a relay disconnected when its connection ends, and keeps it", async () => {
    const relay = await liveRelay("relay-gone");
    relay.close();
    await waitFor(async () => (await fleetStub().operatorView()).relays[0]?.connected === false);
    expect((await fleetStub().operatorView()).relays[0]).toMatchObject({ id: "relay-gone", live: true });
  });

  it("keeps one connection per relay id: a newer one closes the older with replaced", async () => {
    const first = await TestRelay.register("relay-twice");
    const second = await TestRelay.register("relay-twice");
    expect(await first.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.replaced });
    second.heartbeat();
    await waitFor(async () => (await fleetStub().operatorView()).relays[0]?.lastHeartbeatAt !== null);
    expect((await fleetStub().operatorView()).relays[0]?.connected).toBe(true);
  });

  it("forgets a relay not heard from for an hour, in the alarm", async () => {
    await liveRelay("relay-old");
    await runInDurableObject(fleetStub(), (_instance, state) => {
      state.storage.sql.exec("UPDATE relays SET last_heard_at = ?", Date.now() - FORGET_RELAY_AFTER_MS - 1000);
    });
    await runDurableObjectAlarm(fleetStub());
    expect((await fleetStub().operatorView()).relays).toEqual([]);
  });
});

describe("bounded connections", () => {
  it("closes a connection that does not register in time, in the alarm", async () => {
    const relay = await TestRelay.connect("relay-mute");
    await runInDurableObject(fleetStub(), (_instance, state) => {
      for (const ws of state.getWebSockets()) {
        const conn = ws.deserializeAttachment() as FleetConnection;
        ws.serializeAttachment({ ...conn, acceptedAt: conn.acceptedAt - REGISTER_WITHIN_MS - 1 });
      }
    });
    await runDurableObjectAlarm(fleetStub());
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.protocolViolation, reason: expect.stringMatching(/no register within 30 s/) });
  });
});

describe("hibernation", () => {
  it("keeps a relay's connection and registration across the fleet object's eviction", async () => {
    const relay = await liveRelay("relay-sleepy");
    const EVICTED = Symbol("marked before the wait");
    await runInDurableObject(fleetStub(), (instance) => {
      (instance as unknown as Record<symbol, boolean>)[EVICTED] = true;
    });
    // Quiet for longer than the ~10 s idle eviction (a real relay sends a heartbeat every 5 s).
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    expect(await runInDurableObject(fleetStub(), (instance) => (instance as unknown as Record<symbol, boolean>)[EVICTED] === true)).toBe(false);
    relay.heartbeat({ allocations: 9 });
    await waitFor(async () => (await fleetStub().operatorView()).relays[0]?.allocations === 9);
    expect(relay.messages).toEqual([{ type: "registered", relayId: "relay-sleepy", heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS }]);
    expect(relay.closedWith).toBeNull();
  }, 30_000);
});

describe("refusals: close code, a reason to act on, and a count", () => {
  it("refuses a connection without a token", async () => {
    const relay = await TestRelay.connect("relay-x", { authorization: null });
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.badToken, reason: expect.stringMatching(/Authorization: Bearer/) });
    expect(await refusals()).toEqual({ "missing-token": 1 });
  });

  it("refuses a forged token (another key)", async () => {
    const relay = await TestRelay.connect("relay-x", { token: { key: "some-other-key-that-is-long-enough-0123456789" } });
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.badToken, reason: expect.stringMatching(/FLEET_KEYS/) });
    expect(await refusals()).toEqual({ "bad-token": 1 });
  });

  it("refuses a token that is not a JWT", async () => {
    const relay = await TestRelay.connect("relay-x", { authorization: "Bearer not-a-token" });
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.badToken });
    expect(await refusals()).toEqual({ "bad-token": 1 });
  });

  it("refuses an expired token", async () => {
    const relay = await TestRelay.connect("relay-x", { token: { now: Math.floor(Date.now() / 1000) - 600 } });
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.tokenExpired, reason: expect.stringMatching(/expired.*clock/) });
    expect(await refusals()).toEqual({ "expired-token": 1 });
  });

  it("refuses a replayed token", async () => {
    const token = await mintFleetToken(fleetKey(), "relay-x");
    const first = await TestRelay.connect("relay-x", { authorization: `Bearer ${token}` });
    const replay = await TestRelay.connect("relay-x", { authorization: `Bearer ${token}` });
    expect(await replay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.tokenReplayed, reason: expect.stringMatching(/used before/) });
    expect(first.closedWith).toBeNull();
    expect(await refusals()).toEqual({ "replayed-token": 1 });
  });

  it("refuses a register naming another relay id than the token", async () => {
    const relay = await TestRelay.connect("relay-x");
    relay.send(registerMessage("relay-y"));
    expect(await relay.next()).toMatchObject({ type: "error", code: "out-of-order" });
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.protocolViolation, reason: expect.stringMatching(/relay-y.*relay-x/) });
    expect(await refusals()).toEqual({ "wrong-relay-id": 1 });
    expect((await fleetStub().operatorView()).relays).toEqual([]);
  });

  it("answers 400 to an upgrade without the fleet subprotocol", async () => {
    const response = await fetchWorker(FLEET_URL, { headers: { Upgrade: "websocket", Authorization: `Bearer ${await mintFleetToken(fleetKey(), "r")}` } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("bad-subprotocol");
  });

  it("refuses every relay with notConfigured when the Worker has no FLEET_KEYS", async () => {
    const token = await mintFleetToken(fleetKey(), "relay-x");
    const response = await fetchWorker(FLEET_URL, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "relaykit-fleet.v1", Authorization: `Bearer ${token}` } }, { FLEET_KEYS: "" });
    expect(response.status).toBe(101);
    const ws = response.webSocket!;
    const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
    ws.accept();
    expect((await closed).code).toBe(FLEET_CLOSE_CODES.notConfigured);
  });

  it("answers a config error naming FLEET_KEYS when a key is too short", async () => {
    const response = await fetchWorker(FLEET_URL, { headers: { Authorization: "Bearer k" } }, { FLEET_KEYS: "short", API_KEYS: "k" });
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "bad-config", message: expect.stringMatching(/^FLEET_KEYS: .*32/) });
  });
});

describe("message limits", () => {
  it("answers bad messages with an error and closes after a few strikes", async () => {
    const relay = await TestRelay.register("relay-bad");
    relay.send("not json");
    expect(await relay.next()).toMatchObject({ type: "error", code: "bad-message" });
    relay.send({ type: "heartbeat", state: "sleeping" });
    expect(await relay.next()).toMatchObject({ type: "error", code: "bad-message", message: expect.stringMatching(/state/) });
    relay.send(registerMessage("relay-bad"));
    expect(await relay.next()).toMatchObject({ type: "error", code: "out-of-order" });
    relay.send("x".repeat(FLEET_LIMITS.maxMessageBytes + 1));
    expect(await relay.next()).toMatchObject({ type: "error", code: "bad-message", message: expect.stringMatching(/bytes/) });
    expect(await relay.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.protocolViolation });
    expect(await refusals()).toEqual({ "protocol-violation": 1 });
  });

  it("refuses a heartbeat before register", async () => {
    const relay = await TestRelay.connect("relay-early");
    relay.send(heartbeatMessage());
    expect(await relay.next()).toMatchObject({ type: "error", code: "out-of-order", message: expect.stringMatching(/register/) });
  });

  it("rate-limits messages past the burst", async () => {
    const relay = await TestRelay.register("relay-fast");
    // register spent one of the burst; the rest of the burst passes, the next is refused.
    for (let i = 0; i < FLEET_LIMITS.messageBurst; i++) relay.heartbeat();
    expect(await relay.next()).toMatchObject({ type: "error", code: "rate-limited" });
    expect(relay.messages.filter((m) => m.type === "error")).toHaveLength(1);
  });
});

describe("FLEET_MAX_RELAYS", () => {
  it("refuses a new relay id past the limit with fleetFull, but not a known one", async () => {
    const max = 6; // vitest.config.ts, worker-fleet project
    for (let i = 0; i < max; i++) await TestRelay.register(`relay-${i}`);
    const extra = await TestRelay.connect("relay-extra");
    extra.send(registerMessage("relay-extra"));
    expect(await extra.waitClosed()).toMatchObject({ code: FLEET_CLOSE_CODES.fleetFull, reason: expect.stringMatching(/FLEET_MAX_RELAYS/) });
    expect(await refusals()).toEqual({ "fleet-full": 1 });
    // A known relay reconnecting is no new relay.
    await TestRelay.register("relay-0");
  });
});

describe("GET /v1/fleet (operator view)", () => {
  const apiKey = "operator-key";
  const vars = { API_KEYS: apiKey };

  it("lists every relay with state, load, location and last heartbeat for an API key", async () => {
    await liveRelay("relay-view", { location: PLACES.paris, region: "eu-west" }, { allocations: 2, cpuPercent: 12.5, eventLoopDelayMs: 3 });
    const response = await fetchWorker(FLEET_URL, { headers: { Authorization: `Bearer ${apiKey}` } }, vars);
    expect(response.status).toBe(200);
    const body = (await response.json()) as FleetView;
    expect(body.relays).toHaveLength(1);
    const relay = body.relays[0]!;
    expect(relay).toMatchObject({ id: "relay-view", state: "ready", connected: true, live: true, region: "eu-west", location: PLACES.paris, allocations: 2, cpuPercent: 12.5, eventLoopDelayMs: 3, version: "0.1.0-test" });
    expect(Date.parse(relay.lastHeartbeatAt!)).toBeGreaterThan(Date.now() - 10_000);
    expect(Date.parse(relay.registeredAt)).toBeGreaterThan(Date.now() - 10_000);
    expect(relay.urls).toEqual(registerMessage("relay-view").urls);
    expect(body.refusals).toEqual({});
  });

  it("refuses callers without an API key", async () => {
    const none = await fetchWorker(FLEET_URL, {}, vars);
    expect(none.status).toBe(401);
    const wrong = await fetchWorker(FLEET_URL, { headers: { Authorization: "Bearer nope" } }, vars);
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    // AUTH_MODE=open opens credentials to anyone, not the fleet view.
    expect((await fetchWorker(FLEET_URL, {}, { ...vars, AUTH_MODE: "open" })).status).toBe(401);
  });

  it("refuses a join token with 403", async () => {
    const { mintJoinToken } = await import("../../shared/signaling/join-token.js");
    const token = await mintJoinToken("join-secret", { room: "standup", sub: "alice" });
    const response = await fetchWorker(FLEET_URL, { headers: { Authorization: `Bearer ${token}` } }, { ...vars, JOIN_SECRET: "join-secret" });
    expect(response.status).toBe(403);
  });
});
