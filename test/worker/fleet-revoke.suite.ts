/**
 * Revocations in the fleet object, in real workerd: `revoke()` stores one until its `until`, pushes it
 * at once to every registered relay (the test relay's real control socket), replays every live one to
 * a relay right after its `register` (before `registered`), forgets them in the alarm once `until` has
 * passed, and refuses past FLEET_LIMITS.maxRevocations.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { FLEET_LIMITS, type Revocation, type RevokeMessage } from "../../shared/fleet/protocol.js";
import { MAX_CREDENTIAL_TTL_SECONDS } from "../../shared/turn/credentials.js";
import { TestRelay, fleetStub, liveRelay, registerMessage } from "./fleet-relay.js";

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function stored(): Promise<Revocation[]> {
  return runInDurableObject(fleetStub(), (_instance, state) =>
    state.storage.sql
      .exec<{ room: string | null; peer_id: string | null; username: string | null; until: number }>("SELECT room, peer_id, username, until FROM revocations ORDER BY target")
      .toArray()
      .map((row) => ({ room: row.room, peerId: row.peer_id, username: row.username, until: row.until })),
  );
}

describe("revoke()", () => {
  it("stores a revocation and pushes it at once to every registered relay", async () => {
    const a = await liveRelay("relay-a");
    const b = await liveRelay("relay-b");
    const until = nowSeconds() + 600;
    const result = await fleetStub().revoke({ room: "standup", peerId: "bob", until });
    expect(result).toEqual({ ok: true, revocation: { room: "standup", peerId: "bob", username: null, until }, stored: true, relays: 2 });
    const pushed: RevokeMessage = { type: "revoke", revocations: [{ room: "standup", peerId: "bob", username: null, until }] };
    expect(await a.next()).toEqual(pushed);
    expect(await b.next()).toEqual(pushed);
    expect(await stored()).toEqual([{ room: "standup", peerId: "bob", username: null, until }]);

    // A whole room, and one username; the same target again keeps one row with the later until.
    const username = `${until}:carol`;
    expect((await fleetStub().revoke({ room: "standup", until })).ok).toBe(true);
    expect((await fleetStub().revoke({ username, until: until + 30 })).ok).toBe(true);
    expect((await fleetStub().revoke({ room: "standup", peerId: "bob", until: until + 60 })).ok).toBe(true);
    expect((await fleetStub().revoke({ room: "standup", peerId: "bob", until: until - 60 })).ok).toBe(true);
    expect(await stored()).toEqual([
      { room: "standup", peerId: "bob", username: null, until: until + 60 },
      { room: "standup", peerId: null, username: null, until },
      { room: null, peerId: null, username, until: until + 30 },
    ]);
    for (let i = 0; i < 4; i++) expect((await a.next()).type).toBe("revoke");
    a.close();
    b.close();
  });

  it("does not send to a connection that has not registered", async () => {
    const unregistered = await TestRelay.connect("relay-new");
    const result = await fleetStub().revoke({ room: "r1", until: nowSeconds() + 60 });
    expect(result).toMatchObject({ ok: true, relays: 0 });
    // The first message it gets is the replay that comes with its register.
    unregistered.send(registerMessage("relay-new"));
    expect(await unregistered.next()).toMatchObject({ type: "revoke", revocations: [{ room: "r1" }] });
    expect(await unregistered.next()).toMatchObject({ type: "registered" });
  });

  it("refuses bad revocations with what is wrong, and stores nothing", async () => {
    const now = nowSeconds();
    const cases = [
      { room: "bad room!", until: now + 60 },
      { room: "r", peerId: "has:colon", until: now + 60 },
      { username: "not-a-username", until: now + 60 },
      { username: `${now + 60}:alice`, room: "r", until: now + 60 },
      { room: "r", until: 1.5 },
      { room: "r", until: now + MAX_CREDENTIAL_TTL_SECONDS + 31 },
      {} as { until: number },
    ];
    for (const request of cases) {
      const result = await fleetStub().revoke(request);
      expect(result, JSON.stringify(request)).toMatchObject({ ok: false, code: "bad-revocation", message: expect.any(String) });
    }
    expect(await stored()).toEqual([]);
  });

  it("takes a revocation whose until has passed as done: nothing stored or sent", async () => {
    const relay = await liveRelay("relay-past");
    const result = await fleetStub().revoke({ room: "old", until: nowSeconds() - 5 });
    expect(result).toMatchObject({ ok: true, stored: false, relays: 0 });
    expect(await stored()).toEqual([]);
    await expect(relay.next(300)).rejects.toThrow(/no message/);
  });
});

describe("replay", () => {
  it("replays every live revocation to a relay right after its register, before registered, in bounded messages", async () => {
    const until = nowSeconds() + 300;
    const count = FLEET_LIMITS.maxRevocationsPerMessage + 5;
    await runInDurableObject(fleetStub(), (_instance, state) => {
      for (let i = 0; i < count; i++) {
        state.storage.sql.exec("INSERT INTO revocations (target, room, peer_id, username, until) VALUES (?, ?, ?, NULL, ?)", `t${i}`, `room-${i}`, null, until + i);
      }
      // Expired, not yet pruned: not replayed.
      state.storage.sql.exec("INSERT INTO revocations (target, room, peer_id, username, until) VALUES ('old', 'gone', NULL, NULL, ?)", nowSeconds() - 10);
    });
    const relay = await TestRelay.connect("relay-late");
    relay.send(registerMessage("relay-late"));
    const first = await relay.next();
    const second = await relay.next();
    expect(first.type).toBe("revoke");
    expect(second.type).toBe("revoke");
    const replayed = [...(first as RevokeMessage).revocations, ...(second as RevokeMessage).revocations];
    expect((first as RevokeMessage).revocations).toHaveLength(FLEET_LIMITS.maxRevocationsPerMessage);
    expect(replayed).toHaveLength(count);
    expect(new Set(replayed.map((r) => r.room)).size).toBe(count);
    expect(replayed.some((r) => r.room === "gone")).toBe(false);
    expect(await relay.next()).toMatchObject({ type: "registered", relayId: "relay-late" });
    relay.close();
  });

  it("replays after a reconnect too (a new register on a new connection)", async () => {
    const first = await liveRelay("relay-back");
    await fleetStub().revoke({ room: "kicked-room", peerId: "mallory", until: nowSeconds() + 120 });
    expect((await first.next()).type).toBe("revoke");
    first.close();
    const again = await TestRelay.connect("relay-back");
    again.send(registerMessage("relay-back"));
    expect(await again.next()).toMatchObject({ type: "revoke", revocations: [{ room: "kicked-room", peerId: "mallory" }] });
    expect(await again.next()).toMatchObject({ type: "registered" });
  });
});

describe("bounds", () => {
  it("forgets revocations in the alarm once their until has passed, and sets the alarm for it", async () => {
    const now = nowSeconds();
    await fleetStub().revoke({ room: "soon", until: now + 100 });
    const alarm = await runInDurableObject(fleetStub(), (_instance, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeLessThanOrEqual((now + 101) * 1000);
    await runInDurableObject(fleetStub(), (_instance, state) => {
      state.storage.sql.exec("UPDATE revocations SET until = ?", nowSeconds() - 1);
    });
    await fleetStub().revoke({ room: "later", until: now + 3_600 });
    await runDurableObjectAlarm(fleetStub());
    expect((await stored()).map((r) => r.room)).toEqual(["later"]);
  });

  it(`refuses a new revocation past ${FLEET_LIMITS.maxRevocations} live ones, loudly, after pruning expired ones`, async () => {
    const until = nowSeconds() + 600;
    await runInDurableObject(fleetStub(), (_instance, state) => {
      for (let i = 0; i < FLEET_LIMITS.maxRevocations - 1; i++) {
        state.storage.sql.exec("INSERT INTO revocations (target, room, peer_id, username, until) VALUES (?, ?, NULL, NULL, ?)", `t${i}`, `r${i}`, until);
      }
      state.storage.sql.exec("INSERT INTO revocations (target, room, peer_id, username, until) VALUES ('expired', 'x', NULL, NULL, ?)", nowSeconds() - 10);
    });
    // Full, but one is expired: pruned, and the new one fits.
    expect(await fleetStub().revoke({ room: "fits", until })).toMatchObject({ ok: true, stored: true });
    const refused = await fleetStub().revoke({ room: "too-many", until });
    expect(refused).toMatchObject({ ok: false, code: "revocations-full", message: expect.stringContaining(String(FLEET_LIMITS.maxRevocations)) });
    // A target already kept still takes a later until.
    expect(await fleetStub().revoke({ room: "fits", until: until + 10 })).toMatchObject({ ok: true, stored: true });
    const count = await runInDurableObject(fleetStub(), (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM revocations").one().n);
    expect(count).toBe(FLEET_LIMITS.maxRevocations);
  });
});
