/**
 * Moderation reaches the relays, in real workerd: a kick or a room close through the admin API
 * becomes a revocation the fleet object pushes at once to every connected relay (the test relay's
 * real control socket), covering the kicked member's credentials (`<room>/<peer-id>`) or the whole
 * room's, for as long as a member's credential (TURN_TTL) can live.
 */
import { describe, expect, it } from "vitest";
import type { RevokeMessage } from "../../shared/fleet/protocol.js";
import { readTurnConfig } from "../../worker/config.js";
import type { Env } from "../../worker/env.js";
import { env } from "cloudflare:workers";
import { liveRelay } from "./fleet-relay.js";
import { TestPeer, fetchWorker, freshRoom } from "./peer.js";

const API_KEY = "fleet-moderation-test-key";
const vars: Partial<Env> = { API_KEYS: API_KEY };

function adminCall(method: string, path: string): Promise<Response> {
  return fetchWorker(`http://relaykit.test${path}`, { method, headers: { Authorization: `Bearer ${API_KEY}` } }, vars);
}

describe("moderation reaches the relays", () => {
  it("pushes a kicked peer's revocation, then a closed room's, to a connected relay at once", async () => {
    const relay = await liveRelay("relay-mod");
    const room = freshRoom("mod-kick");
    const ann = await TestPeer.join(room);
    const bob = await TestPeer.join(room);
    await ann.peer.next("peer-joined");
    const ttl = readTurnConfig(env as Env)!.ttlSeconds;

    const kickedAt = Math.floor(Date.now() / 1000);
    expect((await adminCall("POST", `/v1/rooms/${room}/peers/${bob.welcome.peerId}/kick`)).status).toBe(200);
    const kick = (await relay.next()) as RevokeMessage;
    expect(kick.type).toBe("revoke");
    expect(kick.revocations).toHaveLength(1);
    expect(kick.revocations[0]).toMatchObject({ room, peerId: bob.welcome.peerId, username: null });
    // Every credential bob got before the kick (at most TURN_TTL from then), none he gets later.
    expect(kick.revocations[0]!.until).toBeGreaterThanOrEqual(kickedAt + ttl);
    expect(kick.revocations[0]!.until).toBeLessThanOrEqual(kickedAt + ttl + 2);

    expect((await adminCall("DELETE", `/v1/rooms/${room}`)).status).toBe(200);
    const close = (await relay.next()) as RevokeMessage;
    expect(close.revocations).toEqual([expect.objectContaining({ room, peerId: null, username: null })]);
    ann.peer.close();
    relay.close();
  });
});
