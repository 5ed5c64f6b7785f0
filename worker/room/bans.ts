/**
 * Who may not join the room, and until when: bans set by the admin API's kick (`banSeconds`), kept in
 * the room's SQLite storage beside the roster so they outlive eviction. A ban names a peer id, which
 * is the join token's `sub`: the same subject cannot rejoin until the ban ends.
 *
 * Bounded: at most MAX_BANS_PER_ROOM rows; expired rows are pruned by the room's alarm (the sweep is
 * scheduled for the earliest end) and before every new ban.
 */
import { MAX_BANS_PER_ROOM } from "../config.js";

export interface Ban {
  peerId: string;
  /** Milliseconds since the epoch when the ban ends. */
  until: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS bans (
    peer_id TEXT PRIMARY KEY,
    until INTEGER NOT NULL
  );
`;

export type BanResult = { ok: true } | { ok: false; inForce: number };

export class Bans {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
  }

  /** When the ban on `peerId` ends, or null when it may join at `now`. */
  bannedUntil(peerId: string, now: number): number | null {
    const rows = this.sql.exec<{ until: number }>("SELECT until FROM bans WHERE peer_id = ? AND until > ?", peerId, now).toArray();
    return rows.length > 0 ? rows[0]!.until : null;
  }

  /**
   * Bans `peerId` until `until`. A ban already on the peer is replaced (the operator's latest word
   * counts, shorter or longer). Refused when MAX_BANS_PER_ROOM other bans are in force.
   */
  ban(peerId: string, until: number, now: number): BanResult {
    this.prune(now);
    const others = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM bans WHERE peer_id != ?", peerId).one().n;
    if (others >= MAX_BANS_PER_ROOM) return { ok: false, inForce: others };
    this.sql.exec("INSERT INTO bans (peer_id, until) VALUES (?, ?) ON CONFLICT (peer_id) DO UPDATE SET until = excluded.until", peerId, until);
    return { ok: true };
  }

  /** Bans in force at `now`, soonest to end first. */
  list(now: number): Ban[] {
    return this.sql
      .exec<{ peer_id: string; until: number }>("SELECT peer_id, until FROM bans WHERE until > ? ORDER BY until, peer_id", now)
      .toArray()
      .map((row) => ({ peerId: row.peer_id, until: row.until }));
  }

  /** Forgets bans that have ended. */
  prune(now: number): void {
    this.sql.exec("DELETE FROM bans WHERE until <= ?", now);
  }

  /** The earliest end among stored bans (ended ones not yet pruned included), or null when there are none. */
  earliestEnd(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT min(until) AS t FROM bans").one().t;
  }
}
