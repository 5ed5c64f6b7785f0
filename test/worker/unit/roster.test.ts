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
      roster.add({ id: "a", meta: { name: "Ann" }, resumeToken: "t1", connId: "c1", joinedAt: 500 });
      expect(roster.get("a")).toMatchObject({ connId: "c1", awaySince: null, meta: { name: "Ann" }, joinedAt: 500 });

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
      roster.add({ id: "b", meta: {}, resumeToken: "t", connId: "new", joinedAt: 1 });
      expect(roster.get("b")?.connId).toBe("new");
      expect(roster.markAway("b", "old", 5)).toBe(false);
      expect(roster.get("b")).toMatchObject({ connId: "new", awaySince: null });
    }));

  it("sees a peer added after a miss for its id", () =>
    withRoster((roster) => {
      expect(roster.get("late")).toBeNull();
      roster.add({ id: "late", meta: {}, resumeToken: "t", connId: "c", joinedAt: 1 });
      expect(roster.get("late")?.connId).toBe("c");
    }));
});

describe("Roster on a room created before join times were kept", () => {
  it("adds the joined_at column once; old peers read with no join time, new ones with theirs", async () => {
    const stub = env.ROOMS.get(env.ROOMS.idFromName(freshRoom("roster-old")));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      // The table as the first release made it, with one peer in it.
      sql.exec("DROP TABLE peers");
      sql.exec("CREATE TABLE peers (id TEXT PRIMARY KEY, meta TEXT NOT NULL, resume_token TEXT NOT NULL UNIQUE, conn_id TEXT, away_since INTEGER)");
      sql.exec("INSERT INTO peers (id, meta, resume_token, conn_id, away_since) VALUES ('old', '{}', 'told', 'c0', NULL)");

      const roster = new Roster(sql);
      expect(roster.get("old")).toMatchObject({ id: "old", connId: "c0", joinedAt: null });
      roster.add({ id: "new", meta: {}, resumeToken: "tnew", connId: "c1", joinedAt: 42 });
      expect(new Roster(sql).records().map((peer) => [peer.id, peer.joinedAt])).toEqual([["old", null], ["new", 42]]);
    });
  });
});
