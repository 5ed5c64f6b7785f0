/**
 * The relay's revocation list (relay/allocation/revocations.ts), as plain data: what a revocation
 * covers (room, room peer, exact username; only credentials expiring by its `until`), the later
 * `until` kept for a target seen twice, the cap, and pruning once `until` has passed.
 */
import { describe, expect, it } from "vitest";
import type { Revocation } from "../../../shared/fleet/protocol.js";
import { RevocationList } from "../../../relay/allocation/revocations.js";

const NOW = 1_800_000_000;
const room = (name: string, until: number, peerId: string | null = null): Revocation => ({ room: name, peerId, username: null, until });
const user = (username: string, until: number): Revocation => ({ room: null, peerId: null, username, until });
const credential = (userId: string, expiresAt: number) => ({ username: `${expiresAt}:${userId}`, userId, credentialExpiresAt: expiresAt });

describe("RevocationList", () => {
  it("covers a room's members, a room's peer, or one username, for credentials expiring by until", () => {
    const list = new RevocationList(10, 172_830);
    expect(list.add(room("kick", NOW + 600, "bob"), NOW)).toBe("added");
    expect(list.add(room("closed", NOW + 600), NOW)).toBe("added");
    expect(list.add(user(`${NOW + 100}:carol`, NOW + 130), NOW)).toBe("added");
    expect(list.size).toBe(3);

    expect(list.covers(credential("kick/bob", NOW + 600), NOW)).toBe(true);
    expect(list.covers(credential("kick/bob", NOW + 601), NOW)).toBe(false); // issued after the revocation
    expect(list.covers(credential("kick/alice", NOW + 600), NOW)).toBe(false);
    expect(list.covers(credential("other/bob", NOW + 600), NOW)).toBe(false);
    expect(list.covers(credential("bob", NOW + 600), NOW)).toBe(false);
    expect(list.covers(credential("closed/anyone", NOW + 10), NOW)).toBe(true);
    expect(list.covers(credential("carol", NOW + 100), NOW)).toBe(true);
    expect(list.covers(credential("carol", NOW + 99), NOW)).toBe(false); // another username
    // After until, nothing is covered any more.
    expect(list.covers(credential("kick/bob", NOW + 600), NOW + 601)).toBe(false);
  });

  it("keeps the later until for a target seen twice, and ignores one already past", () => {
    const list = new RevocationList(10, 172_830);
    list.add(room("r", NOW + 100, "p"), NOW);
    expect(list.add(room("r", NOW + 50, "p"), NOW)).toBe("extended");
    expect(list.add(room("r", NOW + 200, "p"), NOW)).toBe("extended");
    expect(list.size).toBe(1);
    expect(list.covers(credential("r/p", NOW + 200), NOW)).toBe(true);
    expect(list.add(room("old", NOW - 1), NOW)).toBe("past");
    expect(list.size).toBe(1);
  });

  it("never holds an until further ahead than any credential can live", () => {
    const list = new RevocationList(10, 1_000);
    list.add(room("r", NOW + 99_999), NOW);
    expect(list.covers(credential("r/p", NOW + 1_000), NOW + 999)).toBe(true);
    expect(list.covers(credential("r/p", NOW + 900), NOW + 1_001)).toBe(false);
  });

  it("refuses past its capacity unless pruning makes room, and prunes once until has passed", () => {
    const list = new RevocationList(3, 172_830);
    list.add(room("a", NOW + 10), NOW);
    list.add(room("b", NOW + 20, "p"), NOW);
    list.add(user(`${NOW}:u`, NOW + 30), NOW);
    expect(list.add(room("d", NOW + 40), NOW)).toBe("full");
    expect(list.size).toBe(3);
    // At NOW + 11, "a" is over: pruned, and "d" fits.
    expect(list.add(room("d", NOW + 40), NOW + 11)).toBe("added");
    expect(list.size).toBe(3);
    list.prune(NOW + 31);
    expect(list.size).toBe(1);
    expect(list.covers(credential("d/x", NOW + 40), NOW + 31)).toBe(true);
    list.prune(NOW + 41);
    expect(list.size).toBe(0);
  });
});
