/**
 * Handing out the fleet's relays, in real workerd: order by distance and load (the caller's location
 * from the dev/test header), exclusion of stale, draining and full relays, the fallbacks (TURN_URLS,
 * 503 no-relay-available), room-scoped usernames, and the per-isolate cache.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { LIVE_WITHIN_MS, type GeoLocation } from "../../shared/fleet/protocol.js";
import { TurnKeyring, checkTurnUsername } from "../../shared/turn/credentials.js";
import type { IceServersResponse, TurnRestResponse } from "../../shared/turn/ice-servers.js";
import type { Env } from "../../worker/env.js";
import { SNAPSHOT_MAX_AGE_MS, fleetSnapshots } from "../../worker/fleet/snapshot-cache.js";
import { PLACES, fleetStub, liveRelay, registerMessage, waitFor } from "./fleet-relay.js";
import { TestPeer, fetchWorker, freshRoom } from "./peer.js";

const TURN_SECRET = "fleet-test-turn-secret"; // vitest.config.ts, worker-fleet project
const FALLBACK_URLS = "turn:fallback.example:3478?transport=udp";

function at(place: GeoLocation): Record<string, string> {
  return { "X-Relaykit-Location": `${place.lat},${place.lon}` };
}

async function iceServers(headers: Record<string, string> = {}, vars?: Partial<Env>): Promise<Response> {
  fleetSnapshots.clear(); // each call sees the fleet as it is now; the cache has its own test below
  return fetchWorker("http://relaykit.test/v1/ice-servers", { headers }, vars);
}

async function relayOrder(headers: Record<string, string>, vars?: Partial<Env>): Promise<string[]> {
  const response = await iceServers(headers, vars);
  expect(response.status).toBe(200);
  const body = (await response.json()) as IceServersResponse;
  return body.iceServers.filter((server) => server.username !== undefined).map((server) => hostOf(server.urls));
}

/** The relay id from the test relays' URLs (turn:<id>.relays.test:...). */
function hostOf(urls: string | string[]): string {
  const first = Array.isArray(urls) ? urls[0]! : urls;
  return /^turns?:([^.:]+)/.exec(first)![1]!;
}

describe("with no relay registered", () => {
  it("hands out TURN_URLS as before", async () => {
    const body = (await (await iceServers({}, { TURN_URLS: FALLBACK_URLS })).json()) as IceServersResponse;
    expect(body.iceServers).toEqual([
      { urls: ["stun:fallback.example:3478"] },
      { urls: [FALLBACK_URLS], username: expect.any(String), credential: expect.any(String) },
    ]);
  });

  it("answers 503 no-relay-available with Retry-After when there is no TURN_URLS either", async () => {
    const response = await iceServers();
    expect(response.status).toBe(503);
    expect(response.headers.get("Retry-After")).toBe("5");
    expect(((await response.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "no-relay-available", message: expect.stringMatching(/no relay is registered.*TURN_URLS/) });
  });
});

describe("with relays registered", () => {
  it("gives a STUN entry and one TURN entry per picked relay, all with one working credential", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par", { location: PLACES.paris });
    const body = (await (await iceServers(at(PLACES.frankfurt))).json()) as IceServersResponse;
    expect(body.iceServers).toHaveLength(3);
    expect(body.iceServers[0]).toEqual({ urls: ["stun:fra.relays.test:3478", "stun:par.relays.test:3478"] });
    expect(body.iceServers[1]!.urls).toEqual(registerMessage("fra").urls);
    expect(body.iceServers[2]!.urls).toEqual(registerMessage("par").urls);
    expect(body.iceServers[1]!.username).toBe(body.iceServers[2]!.username);
    const { username, credential } = body.iceServers[1]!;
    expect((await new TurnKeyring([TURN_SECRET]).verify(username!, credential!)).ok).toBe(true);
  });

  it("orders by distance from the caller and takes FLEET_PICK (default 2)", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par", { location: PLACES.paris });
    await liveRelay("nyc", { location: PLACES.newYork });
    await liveRelay("nowhere");
    expect(await relayOrder(at(PLACES.frankfurt))).toEqual(["fra", "par"]);
    expect(await relayOrder(at(PLACES.newYork))).toEqual(["nyc", "par"]);
    expect(await relayOrder(at(PLACES.paris), { FLEET_PICK: "4" })).toEqual(["par", "fra", "nyc", "nowhere"]);
    expect(await relayOrder(at(PLACES.paris), { FLEET_PICK: "1" })).toEqual(["par"]);
  });

  it("breaks a tie (within 50 km) by load", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt, capacity: { allocations: 100, bps: 0 } }, { allocations: 60 });
    await liveRelay("wie", { location: PLACES.wiesbaden, capacity: { allocations: 100, bps: 0 } }, { allocations: 10 });
    await liveRelay("par", { location: PLACES.paris });
    expect(await relayOrder(at(PLACES.frankfurt), { FLEET_PICK: "3" })).toEqual(["wie", "fra", "par"]);
  });

  it("takes the location from FLEET_DEFAULT_LOCATION when there is none, and ignores the header unless FLEET_LOCATION_HEADER=on", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("nyc", { location: PLACES.newYork });
    const newYork = `${PLACES.newYork.lat},${PLACES.newYork.lon}`;
    expect(await relayOrder({}, { FLEET_DEFAULT_LOCATION: newYork, FLEET_PICK: "1" })).toEqual(["nyc"]);
    expect(await relayOrder(at(PLACES.frankfurt), { FLEET_DEFAULT_LOCATION: newYork, FLEET_PICK: "1" })).toEqual(["fra"]);
    expect(await relayOrder(at(PLACES.frankfurt), { FLEET_DEFAULT_LOCATION: newYork, FLEET_LOCATION_HEADER: "off", FLEET_PICK: "1" })).toEqual(["nyc"]);
  });

  it("leaves out stale, draining and full relays", async () => {
    await liveRelay("near-stale", { location: PLACES.frankfurt });
    await liveRelay("near-drain", { location: PLACES.frankfurt }, { state: "draining" });
    await liveRelay("near-full", { location: PLACES.frankfurt, capacity: { allocations: 5, bps: 0 } }, { allocations: 5 });
    await liveRelay("near-busy", { location: PLACES.frankfurt, capacity: { allocations: 0, bps: 1000 } }, { bpsIn: 700, bpsOut: 300 });
    await liveRelay("far", { location: PLACES.newYork });
    await runInDurableObject(fleetStub(), (_instance, state) => {
      state.storage.sql.exec("UPDATE relays SET last_heartbeat_at = ? WHERE id = 'near-stale'", Date.now() - LIVE_WITHIN_MS - 1000);
    });
    expect(await relayOrder(at(PLACES.frankfurt), { FLEET_PICK: "10" })).toEqual(["far"]);
  });

  it("falls back to TURN_URLS when none is eligible, else answers 503 no-relay-available", async () => {
    await liveRelay("drain", { location: PLACES.frankfurt }, { state: "draining" });
    const fallback = (await (await iceServers({}, { TURN_URLS: FALLBACK_URLS })).json()) as IceServersResponse;
    expect(fallback.iceServers[1]!.urls).toEqual([FALLBACK_URLS]);
    const none = await iceServers();
    expect(none.status).toBe(503);
    expect(none.headers.get("Retry-After")).toBe("5");
    expect(((await none.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "no-relay-available", message: expect.stringMatching(/live, ready and below capacity/) });
  });

  it("answers /v1/turn-credentials with the picked relays' URLs in order", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par", { location: PLACES.paris });
    fleetSnapshots.clear();
    const body = (await (await fetchWorker("http://relaykit.test/v1/turn-credentials?room=standup&peer=erin", { headers: at(PLACES.paris) })).json()) as TurnRestResponse;
    expect(body.uris).toEqual([...registerMessage("par").urls, ...registerMessage("fra").urls]);
    expect(checkTurnUsername(body.username)).toMatchObject({ ok: true, user: { kind: "room-member", room: "standup", peerId: "erin" } });
  });
});

describe("the welcome", () => {
  it("carries the picked relays and a <room>/<peer-id> credential", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("nyc", { location: PLACES.newYork });
    fleetSnapshots.clear();
    const room = freshRoom("fleet-welcome");
    const { peer, welcome } = await TestPeer.join(room, { headers: at(PLACES.newYork) });
    expect(welcome.iceServers!.slice(1).map((server) => hostOf(server.urls))).toEqual(["nyc", "fra"]);
    const username = welcome.iceServers![1]!.username!;
    expect(checkTurnUsername(username)).toMatchObject({ ok: true, user: { kind: "room-member", room, peerId: welcome.peerId } });
    peer.close();
  });

  it("says no-relay-available when relays are registered but none is eligible and there is no TURN_URLS", async () => {
    await liveRelay("drain", {}, { state: "draining" });
    fleetSnapshots.clear();
    const { peer, welcome } = await TestPeer.join(freshRoom("fleet-withheld"));
    expect(welcome.iceServers).toBeUndefined();
    expect(welcome.iceServersWithheld).toMatchObject({ code: "no-relay-available", retryAfterMs: 5000 });
    peer.close();
  });

  it("names the id a resuming peer keeps in an open room, not the random id the edge expected", async () => {
    const vars = { TURN_URLS: FALLBACK_URLS };
    const room = freshRoom("fleet-resume");
    const first = await TestPeer.join(room, { vars });
    first.peer.close();
    await first.peer.waitClosed();
    const { SIGNALING_SUBPROTOCOL, resumeSubprotocol } = await import("../../shared/signaling/protocol.js");
    const again = await TestPeer.join(room, { vars, headers: { "Sec-WebSocket-Protocol": `${SIGNALING_SUBPROTOCOL}, ${resumeSubprotocol(first.welcome.resumeToken)}` } });
    expect(again.welcome.resumed).toBe(true);
    expect(again.welcome.peerId).toBe(first.welcome.peerId);
    const { username, credential } = again.welcome.iceServers![1]!;
    expect(checkTurnUsername(username!)).toMatchObject({ ok: true, user: { kind: "room-member", room, peerId: first.welcome.peerId } });
    expect((await new TurnKeyring([TURN_SECRET]).verify(username!, credential!)).ok).toBe(true);
    again.peer.close();
  });
});

/** A fresh API key per use: the issuance limit (50 per 10 s per caller) must not be what a cache test measures. */
let keyCounter = 0;
function apiCaller(): { vars: Partial<Env>; headers: Record<string, string> } {
  const key = `cache-key-${Date.now()}-${++keyCounter}`;
  return { vars: { API_KEYS: key }, headers: { Authorization: `Bearer ${key}` } };
}

describe("the per-isolate cache", () => {
  it("asks the fleet object at most once per 750 ms, however many requests come", async () => {
    await liveRelay("fra", { location: PLACES.frankfurt });
    await runInDurableObject(fleetStub(), (instance) => {
      instance.snapshotCalls = 0;
    });
    fleetSnapshots.clear();
    const { vars, headers } = apiCaller();
    const started = Date.now();
    const statuses: number[] = [];
    // Concurrent requests share one call in flight; later ones are answered from the cache.
    for (let batch = 0; batch < 6 && Date.now() - started < SNAPSHOT_MAX_AGE_MS - 250; batch++) {
      const answers = await Promise.all(Array.from({ length: 5 }, () => fetchWorker("http://relaykit.test/v1/ice-servers", { headers: { ...headers, ...at(PLACES.paris) } }, vars)));
      statuses.push(...answers.map((r) => r.status));
    }
    expect(statuses.length).toBeGreaterThanOrEqual(10);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(await runInDurableObject(fleetStub(), (instance) => instance.snapshotCalls)).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, SNAPSHOT_MAX_AGE_MS + 50));
    expect((await fetchWorker("http://relaykit.test/v1/ice-servers", { headers: { ...headers, ...at(PLACES.paris) } }, vars)).status).toBe(200);
    expect(await runInDurableObject(fleetStub(), (instance) => instance.snapshotCalls)).toBe(2);
  });

  it("stops handing out a relay within 1 s of its draining heartbeat", async () => {
    const fra = await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par", { location: PLACES.paris });
    fleetSnapshots.clear();
    const { vars, headers } = apiCaller();
    const order = async () =>
      ((await (await fetchWorker("http://relaykit.test/v1/ice-servers", { headers: { ...headers, ...at(PLACES.frankfurt) } }, vars)).json()) as IceServersResponse).iceServers
        .slice(1)
        .map((server) => hostOf(server.urls));
    expect(await order()).toEqual(["fra", "par"]); // now cached
    const drainedAt = Date.now();
    fra.heartbeat({ state: "draining" });
    // Polled 20 times a second at most: the caller's issuance budget is 50 per 10 s.
    await waitFor(async () => !(await order()).includes("fra"), 2000, 50);
    expect(Date.now() - drainedAt).toBeLessThan(1000);
    expect(await order()).toEqual(["par"]);
  });
});
