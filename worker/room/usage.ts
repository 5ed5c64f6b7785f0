/**
 * The room's relay usage, kept in its SQLite storage: what the relays reported for the room's
 * members (shared/fleet/protocol.ts `UsageEntry`), forwarded by the fleet object.
 *
 * Relays report cumulative figures per (relay, boot, peer): counted from the relay process's start
 * and never going down. So a row holds the latest figures of one relay process for one peer, and a
 * report is stored by taking the larger of the stored and the reported value, field by field: a
 * report that arrives twice, late or out of order changes nothing, and the sum over rows is exactly
 * what the relays relayed up to their latest reports.
 *
 * Bounded: at most MAX_USAGE_ROWS rows. Past it, the rows updated longest ago are folded into one
 * line (`usage_folded`), counted in the totals but no longer per peer. A folded row's relay process
 * had acknowledged those figures long before (it resends only unacknowledged ones, every 5 s), so
 * folding cannot count a report twice unless a relay held an unacknowledged report for longer than
 * the oldest row's age.
 */
import type { PeerUsage, RoomUsage, UsageFigures } from "../../shared/signaling/protocol.js";

/** Rows kept per room: one per (relay process, peer). Far above any real room; a bound against a churning one. */
export const MAX_USAGE_ROWS = 10_000;

/** One reported entry, its room already known. */
export interface MemberUsage {
  peerId: string;
  bytesToPeers: number;
  bytesToClient: number;
  allocationMs: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS usage (
    relay_id TEXT NOT NULL,
    boot TEXT NOT NULL,
    peer_id TEXT NOT NULL,
    bytes_to_peers INTEGER NOT NULL,
    bytes_to_client INTEGER NOT NULL,
    allocation_ms INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (relay_id, boot, peer_id)
  );
  CREATE INDEX IF NOT EXISTS usage_by_age ON usage (updated_at);
  CREATE TABLE IF NOT EXISTS usage_folded (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rows INTEGER NOT NULL,
    peers INTEGER NOT NULL,
    bytes_to_peers INTEGER NOT NULL,
    bytes_to_client INTEGER NOT NULL,
    allocation_ms INTEGER NOT NULL
  );
`;

type Sums = { bytes_to_peers: number | null; bytes_to_client: number | null; allocation_ms: number | null };

const toFigures = (sums: Sums): UsageFigures => ({
  bytesToPeers: sums.bytes_to_peers ?? 0,
  bytesToClient: sums.bytes_to_client ?? 0,
  allocationSeconds: (sums.allocation_ms ?? 0) / 1000,
});

const iso = (ms: number): string => new Date(ms).toISOString();

export class RoomUsageStore {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
  }

  /**
   * Stores one relay process's latest figures for some of the room's members. Returns how many rows
   * changed (0 for a report already stored).
   */
  record(relayId: string, boot: string, entries: readonly MemberUsage[], now: number): number {
    let changed = 0;
    for (const entry of entries) {
      // Field by field the larger value: cumulative figures only grow, so the larger is the later.
      const cursor = this.sql.exec(
        `INSERT INTO usage (relay_id, boot, peer_id, bytes_to_peers, bytes_to_client, allocation_ms, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (relay_id, boot, peer_id) DO UPDATE SET
           bytes_to_peers = max(bytes_to_peers, excluded.bytes_to_peers),
           bytes_to_client = max(bytes_to_client, excluded.bytes_to_client),
           allocation_ms = max(allocation_ms, excluded.allocation_ms),
           updated_at = excluded.updated_at
         WHERE excluded.bytes_to_peers > bytes_to_peers
            OR excluded.bytes_to_client > bytes_to_client
            OR excluded.allocation_ms > allocation_ms`,
        relayId,
        boot,
        entry.peerId,
        entry.bytesToPeers,
        entry.bytesToClient,
        entry.allocationMs,
        now,
      );
      changed += cursor.rowsWritten > 0 ? 1 : 0;
    }
    this.fold();
    return changed;
  }

  /** The room's totals: every row and the folded line. */
  total(): UsageFigures {
    const rows = this.sql
      .exec<Sums>("SELECT sum(bytes_to_peers) AS bytes_to_peers, sum(bytes_to_client) AS bytes_to_client, sum(allocation_ms) AS allocation_ms FROM usage")
      .one();
    const folded = this.folded();
    return toFigures({
      bytes_to_peers: (rows.bytes_to_peers ?? 0) + folded.bytes_to_peers,
      bytes_to_client: (rows.bytes_to_client ?? 0) + folded.bytes_to_client,
      allocation_ms: (rows.allocation_ms ?? 0) + folded.allocation_ms,
    });
  }

  /** `GET /v1/rooms/:room/usage`: per peer (most bytes first) and in total. */
  view(room: string): RoomUsage {
    const peers: PeerUsage[] = this.sql
      .exec<Sums & { peer_id: string; updated_at: number }>(
        `SELECT peer_id, sum(bytes_to_peers) AS bytes_to_peers, sum(bytes_to_client) AS bytes_to_client,
                sum(allocation_ms) AS allocation_ms, max(updated_at) AS updated_at
           FROM usage GROUP BY peer_id
           ORDER BY sum(bytes_to_peers) + sum(bytes_to_client) DESC, peer_id`,
      )
      .toArray()
      .map((row) => ({ peerId: row.peer_id, ...toFigures(row), updatedAt: iso(row.updated_at) }));
    const latest = this.sql.exec<{ t: number | null }>("SELECT max(updated_at) AS t FROM usage").one().t;
    return { room, total: this.total(), peers, foldedPeers: this.folded().peers, updatedAt: latest === null ? null : iso(latest) };
  }

  private folded(): { rows: number; peers: number; bytes_to_peers: number; bytes_to_client: number; allocation_ms: number } {
    return (
      this.sql.exec<{ rows: number; peers: number; bytes_to_peers: number; bytes_to_client: number; allocation_ms: number }>("SELECT rows, peers, bytes_to_peers, bytes_to_client, allocation_ms FROM usage_folded").toArray()[0] ?? {
        rows: 0,
        peers: 0,
        bytes_to_peers: 0,
        bytes_to_client: 0,
        allocation_ms: 0,
      }
    );
  }

  /** Over MAX_USAGE_ROWS: the rows updated longest ago join the folded line. */
  private fold(): void {
    const count = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM usage").one().n;
    if (count <= MAX_USAGE_ROWS) return;
    const excess = count - MAX_USAGE_ROWS;
    const oldest = "SELECT relay_id, boot, peer_id FROM usage ORDER BY updated_at, relay_id, boot, peer_id LIMIT ?";
    const sums = this.sql
      .exec<Sums & { rows: number; peers: number }>(
        `SELECT count(*) AS rows, count(DISTINCT peer_id) AS peers, sum(bytes_to_peers) AS bytes_to_peers,
                sum(bytes_to_client) AS bytes_to_client, sum(allocation_ms) AS allocation_ms
           FROM usage WHERE (relay_id, boot, peer_id) IN (${oldest})`,
        excess,
      )
      .one();
    const folded = this.folded();
    this.sql.exec(
      `INSERT INTO usage_folded (id, rows, peers, bytes_to_peers, bytes_to_client, allocation_ms) VALUES (1, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET rows = excluded.rows, peers = excluded.peers, bytes_to_peers = excluded.bytes_to_peers,
         bytes_to_client = excluded.bytes_to_client, allocation_ms = excluded.allocation_ms`,
      folded.rows + sums.rows,
      folded.peers + sums.peers,
      folded.bytes_to_peers + (sums.bytes_to_peers ?? 0),
      folded.bytes_to_client + (sums.bytes_to_client ?? 0),
      folded.allocation_ms + (sums.allocation_ms ?? 0),
    );
    this.sql.exec(`DELETE FROM usage WHERE (relay_id, boot, peer_id) IN (${oldest})`, excess);
  }
}
