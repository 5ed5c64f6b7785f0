/**
 * Drain notices, in real workerd: a relay's draining heartbeat reaches the rooms of its last report
 * (and only those), whose peers get an `ice-servers` frame without the draining relay, with a fresh
 * credential for `<room>/<peer-id>`, nearest that peer first.
 */
import { describe, expect, it } from "vitest";
import type { GeoLocation } from "../../shared/fleet/protocol.js";
import { TurnKeyring, checkTurnUsername } from "../../shared/turn/credentials.js";
import { fleetSnapshots } from "../../worker/fleet/snapshot-cache.js";
import { PLACES, fleetStub, liveRelay, waitFor } from "./fleet-relay.js";
import { TestPeer, freshRoom, type Joined } from "./peer.js";

const TURN_SECRET = "fleet-test-turn-secret"; // vitest.config.ts, worker-fleet project

function at(place: GeoLocation): Record<string, string> {
  return { "X-Relaykit-Location": `${place.lat},${place.lon}` };
}

function hostsOf(iceServers: { urls: string | string[]; username?: string }[]): string[] {
  return iceServers.filter((s) => s.username !== undefined).map((s) => /^turns?:([^.:]+)/.exec(Array.isArray(s.urls) ? s.urls[0]! : s.urls)![1]!);
}

async function join(room: string, place: GeoLocation): Promise<Joined> {
  fleetSnapshots.clear();
  return TestPeer.join(room, { headers: at(place) });
}

describe("a draining relay", () => {
  it("tells only the rooms it reported, with servers that leave it out, nearest each peer", async () => {
    const fra = await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par", { location: PLACES.paris });
    await liveRelay("nyc", { location: PLACES.newYork });
    const [reported, other] = [freshRoom("drain-reported"), freshRoom("drain-other")];
    const inFrankfurt = await join(reported, PLACES.frankfurt);
    const inNewYork = await join(reported, PLACES.newYork);
    await inFrankfurt.peer.next("peer-joined");
    const bystander = await join(other, PLACES.frankfurt);
    expect(hostsOf(inFrankfurt.welcome.iceServers!)).toEqual(["fra", "par"]);

    fra.heartbeat({ allocations: 2, rooms: [{ room: reported, allocations: 2 }] });
    fra.heartbeat({ state: "draining", allocations: 2, rooms: [{ room: reported, allocations: 2 }] });

    const notice = await inFrankfurt.peer.next("ice-servers");
    expect(notice.reason).toBe("relay-draining");
    expect(hostsOf(notice.iceServers)).toEqual(["par", "nyc"]);
    expect(notice.iceServers[0]).toEqual({ urls: ["stun:par.relays.test:3478", "stun:nyc.relays.test:3478"] });
    const { username, credential } = notice.iceServers[1]!;
    expect(checkTurnUsername(username!)).toMatchObject({ ok: true, user: { kind: "room-member", room: reported, peerId: inFrankfurt.welcome.peerId } });
    expect((await new TurnKeyring([TURN_SECRET]).verify(username!, credential!)).ok).toBe(true);
    expect(Date.parse(notice.expiresAt)).toBeGreaterThan(Date.now() + 3600_000);

    const far = await inNewYork.peer.next("ice-servers");
    expect(hostsOf(far.iceServers)).toEqual(["nyc", "par"]);
    expect(checkTurnUsername(far.iceServers[1]!.username!)).toMatchObject({ ok: true, user: { room: reported, peerId: inNewYork.welcome.peerId } });

    await bystander.peer.expectSilence(500);
    for (const joined of [inFrankfurt, inNewYork, bystander]) joined.peer.close();
  });

  it("tells a room once, on the heartbeat that turns it draining", async () => {
    const fra = await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par", { location: PLACES.paris });
    const room = freshRoom("drain-once");
    const joined = await join(room, PLACES.frankfurt);
    fra.heartbeat({ state: "draining", rooms: [{ room, allocations: 1 }] });
    await joined.peer.next("ice-servers");
    fra.heartbeat({ state: "draining", rooms: [{ room, allocations: 1 }] });
    await waitFor(async () => (await fleetStub().operatorView()).relays.find((r) => r.id === "fra")?.state === "draining");
    await joined.peer.expectSilence(500);
    joined.peer.close();
  });

  it("sends nothing when no other relay is eligible", async () => {
    const fra = await liveRelay("fra", { location: PLACES.frankfurt });
    await liveRelay("par-drain", { location: PLACES.paris }, { state: "draining" });
    const room = freshRoom("drain-alone");
    const joined = await join(room, PLACES.frankfurt);
    expect(hostsOf(joined.welcome.iceServers!)).toEqual(["fra"]);
    fra.heartbeat({ state: "draining", rooms: [{ room, allocations: 1 }] });
    await waitFor(async () => (await fleetStub().operatorView()).relays.find((r) => r.id === "fra")?.state === "draining");
    await joined.peer.expectSilence(500);
    joined.peer.close();
  });
});
