// The room's usage store on a real room object's SQLite: cumulative figures kept field by field as
// the larger value, summed over relay processes, and bounded by folding the oldest rows into one line
// that still counts in the totals.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_USAGE_ROWS, RoomUsageStore, type MemberUsage } from "../../../worker/room/usage.js";
import { freshRoom } from "../peer.js";

function withStore(check: (store: RoomUsageStore, room: string) => void): Promise<void> {
  const room = freshRoom("usage-store");
  const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
  return runInDurableObject(stub, (_instance, state) => check(new RoomUsageStore(state.storage.sql), room));
}

const member = (peerId: string, bytesToPeers: number, bytesToClient: number, allocationMs: number): MemberUsage => ({ peerId, bytesToPeers, bytesToClient, allocationMs });

describe("RoomUsageStore", () => {
  it("counts a row as changed only when a figure grew", () =>
    withStore((store) => {
      expect(store.record("r1", "boot-a", [member("ann", 10, 20, 30)], 1_000)).toBe(1);
      expect(store.record("r1", "boot-a", [member("ann", 10, 20, 30)], 2_000)).toBe(0);
      expect(store.record("r1", "boot-a", [member("ann", 9, 19, 29)], 3_000)).toBe(0);
      expect(store.record("r1", "boot-a", [member("ann", 10, 21, 30)], 4_000)).toBe(1);
      expect(store.total()).toEqual({ bytesToPeers: 10, bytesToClient: 21, allocationSeconds: 0.03 });
    }));

  it(`keeps at most ${MAX_USAGE_ROWS} rows, folding the oldest into totals that stay exact`, () =>
    withStore((store, room) => {
      const rows = MAX_USAGE_ROWS + 5;
      let expectedBytes = 0;
      // One report per row, each later than the one before: the first five are the oldest.
      for (let i = 0; i < rows; i++) {
        store.record("r1", "boot-a", [member(`p${i}`, i + 1, 1, 1000)], 1_000 + i);
        expectedBytes += i + 1;
      }
      const view = store.view(room);
      expect(view.peers).toHaveLength(MAX_USAGE_ROWS);
      expect(view.foldedPeers).toBe(5);
      expect(view.peers.some((peer) => ["p0", "p1", "p2", "p3", "p4"].includes(peer.peerId))).toBe(false);
      expect(view.peers.some((peer) => peer.peerId === "p5")).toBe(true);
      expect(view.total).toEqual({ bytesToPeers: expectedBytes, bytesToClient: rows, allocationSeconds: rows });
    }));
});
