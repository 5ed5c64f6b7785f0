// The roster keeps the rows it has read in memory: every write must show in the next read, in the
// same instance, exactly as a fresh read from SQLite would.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Roster } from "../../../worker/room/roster.js";
import { freshRoom } from "../peer.js";

/** Runs `check` with a roster on a fresh room's real SQLite, and a second roster that reads SQLite afresh. */
function withRoster(check: (roster: Roster, fresh: () => Roster) => void): Promise<void> {
  const stub = env.ROOMS.get(env.ROOMS.idFromName(freshRoom("roster")));
  return runInDurableObject(stub, (_instance, state) => check(new Roster(state.storage.sql), () => new Roster(state.storage.sql)));
}

describe("Roster's in-memory copy of peer rows", () => {
  it("shows every write in the next read, as SQLite has it", () =>
    withRoster((roster, fresh) => {
      roster.add({ id: "a", meta: { name: "Ann" }, resumeToken: "t1", connId: "c1" });
      expect(roster.get("a")).toMatchObject({ connId: "c1", awaySince: null, meta: { name: "Ann" } });

      expect(roster.markAway("a", "c1", 1_000)).toBe(true);
      expect(roster.get("a")).toMatchObject({ connId: null, awaySince: 1_000 });

      roster.reconnect("a", "c2", "t2");
      expect(roster.get("a")).toMatchObject({ connId: "c2", awaySince: null, resumeToken: "t2" });

      roster.setMeta("a", { name: "Anne" });
      expect(roster.get("a")?.meta).toEqual({ name: "Anne" });
      expect(roster.get("a")).toEqual(fresh().get("a"));

      roster.remove("a");
      expect(roster.get("a")).toBeNull();
      expect(fresh().get("a")).toBeNull();
    }));

  it("leaves a stale connection's markAway without effect, and reads the peer as still connected", () =>
    withRoster((roster) => {
      roster.add({ id: "b", meta: {}, resumeToken: "t", connId: "new" });
      expect(roster.get("b")?.connId).toBe("new");
      expect(roster.markAway("b", "old", 5)).toBe(false);
      expect(roster.get("b")).toMatchObject({ connId: "new", awaySince: null });
    }));

  it("sees a peer added after a miss for its id", () =>
    withRoster((roster) => {
      expect(roster.get("late")).toBeNull();
      roster.add({ id: "late", meta: {}, resumeToken: "t", connId: "c" });
      expect(roster.get("late")?.connId).toBe("c");
    }));
});
