/**
 * mintIceServers (shared/turn/mint-ice-servers.ts), what @relaykit/server gives app backends for
 * API-key style use: the same credential and the same answer as the Worker's /v1/ice-servers, and
 * options it cannot honour refused with a message that says what to change.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_TURN_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS, TurnCredentialError, TurnKeyring } from "../../shared/turn/credentials.js";
import { iceServersResponse } from "../../shared/turn/ice-servers.js";
import { mintIceServers } from "../../shared/turn/mint-ice-servers.js";
import { roomMemberUser } from "../../shared/turn/turn-user.js";

const NOW = 1_800_000_000;
const TURN_URLS = ["turn:relay.example.com:3478?transport=udp", "turns:relay.example.com:5349?transport=tcp"];

describe("mintIceServers", () => {
  it("answers as the Worker does: the turn: hosts as stun:, then one TURN entry whose credential the relays accept", async () => {
    const ice = await mintIceServers({ secrets: "new-secret,old-secret", user: "user-1", turnUrls: TURN_URLS, ttlSeconds: 600, now: NOW });
    const credential = await new TurnKeyring(["new-secret"]).mint("user-1", 600, NOW);
    expect(ice).toEqual(iceServersResponse(credential, TURN_URLS, ["stun:relay.example.com:3478"]));
    expect(ice.expiresAt).toBe(new Date((NOW + 600) * 1000).toISOString());
    // A relay that knows both secrets (during a rotation) accepts it; one with only the old secret does not.
    const turn = ice.iceServers[1]!;
    const verified = await new TurnKeyring(["old-secret", "new-secret"]).verify(turn.username!, turn.credential!, { now: NOW });
    expect(verified).toMatchObject({ ok: true, userId: "user-1" });
    expect(await new TurnKeyring(["old-secret"]).verify(turn.username!, turn.credential!, { now: NOW })).toMatchObject({ ok: false, reason: "wrong-password" });
  });

  it("defaults to a random user and a day's lifetime, and takes a room member and STUN URLs of its own", async () => {
    const random = await mintIceServers({ secrets: ["s"], turnUrls: TURN_URLS, now: NOW });
    expect(random.ttl).toBe(DEFAULT_TURN_TTL_SECONDS);
    expect(random.iceServers[1]!.username).toMatch(new RegExp(`^${NOW + DEFAULT_TURN_TTL_SECONDS}:[0-9a-f-]{36}$`));
    const member = await mintIceServers({ secrets: ["s"], user: roomMemberUser("standup", "alice"), turnUrls: TURN_URLS, stunUrls: [], now: NOW });
    expect(member.iceServers).toHaveLength(1);
    expect(member.iceServers[0]!.username).toBe(`${NOW + DEFAULT_TURN_TTL_SECONDS}:standup/alice`);
  });

  it("refuses what would not work, saying what to change", async () => {
    const cases: [Parameters<typeof mintIceServers>[0], RegExp][] = [
      [{ secrets: "s", turnUrls: [] }, /at least one TURN URL/],
      [{ secrets: "s", turnUrls: ["stun:relay.example.com"] }, /must start with turn: or turns:/],
      [{ secrets: "s", turnUrls: TURN_URLS, stunUrls: ["turn:x"] }, /must start with stun: or stuns:/],
      [{ secrets: "s", turnUrls: TURN_URLS, ttlSeconds: MAX_CREDENTIAL_TTL_SECONDS + 1 }, /longer than relays accept/],
      [{ secrets: "s", turnUrls: TURN_URLS, ttlSeconds: 0 }, /positive whole number/],
      [{ secrets: "s", turnUrls: TURN_URLS, user: "has:colon" }, /is not allowed/],
      [{ secrets: " , ", turnUrls: TURN_URLS }, /at least one non-empty secret/],
    ];
    for (const [options, message] of cases) {
      const error = await mintIceServers(options).then(() => null, (caught: unknown) => caught);
      expect(error, JSON.stringify(options)).toBeInstanceOf(TurnCredentialError);
      expect((error as Error).message).toMatch(message);
    }
  });
});
