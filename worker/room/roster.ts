/**
 * Who is in the room, kept in the object's SQLite storage: the source of truth that outlives
 * eviction. A peer row exists from join until the peer leaves for good (explicit leave, or its
 * resume grace period ran out). While it is connected, `conn_id` names its current connection;
 * while it is away, `away_since` says since when, and signals for it wait in `pending_signals`.
 *
 * The SQL API is synchronous, so the room never yields between reading and writing the roster and
 * frames are handled strictly in arrival order.
 *
 * Every frame looks up its sender and its recipient, so peer rows read once are kept in memory
 * until a write touches them (every write goes through this class, so the copy is never stale). The
 * copy goes with the object when it is evicted; SQLite stays the source of truth.
 */
import type { PeerInfo, PeerMeta } from "../../shared/signaling/protocol.js";

export interface PeerRecord {
  id: string;
  meta: PeerMeta;
  resumeToken: string;
  /** The current connection, or null while the peer is away. */
  connId: string | null;
  /** Milliseconds since the epoch when the peer dropped, or null while connected. */
  awaySince: number | null;
  /**
   * Milliseconds since the epoch when the peer joined (a resume keeps it); null only for peers that
   * joined before the room kept join times (see `migrate`).
   */
  joinedAt: number | null;
}

type PeerRow = {
  id: string;
  meta: string;
  resume_token: string;
  conn_id: string | null;
  away_since: number | null;
  joined_at: number | null;
};

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS peers (
    id TEXT PRIMARY KEY,
    meta TEXT NOT NULL,
    resume_token TEXT NOT NULL UNIQUE,
    conn_id TEXT,
    away_since INTEGER,
    joined_at INTEGER
  );
  CREATE TABLE IF NOT EXISTS pending_signals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    peer_id TEXT NOT NULL,
    frame TEXT NOT NULL,
    queued_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS pending_signals_by_peer ON pending_signals (peer_id, seq);
`;

function toRecord(row: PeerRow): PeerRecord {
  return {
    id: row.id,
    meta: JSON.parse(row.meta) as PeerMeta,
    resumeToken: row.resume_token,
    connId: row.conn_id,
    awaySince: row.away_since,
    joinedAt: row.joined_at,
  };
}

/**
 * Rooms created before join times were kept have a `peers` table without `joined_at` (CREATE TABLE IF
 * NOT EXISTS leaves it as it is): the column is added once, and their peers show no join time.
 */
function migrate(sql: SqlStorage): void {
  const columns = sql.exec("SELECT * FROM peers LIMIT 0").columnNames;
  if (!columns.includes("joined_at")) sql.exec("ALTER TABLE peers ADD COLUMN joined_at INTEGER");
}

export class Roster {
  /**
   * Peer rows by id as last read; an entry is dropped by any write to its row. Misses are not kept,
   * so frames naming made-up peers cannot grow it: it holds at most the room's peers.
   */
  private readonly rows = new Map<string, Readonly<PeerRecord>>();

  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
    migrate(sql);
  }

  private one(query: string, ...bindings: SqlStorageValue[]): PeerRecord | null {
    const rows = this.sql.exec<PeerRow>(query, ...bindings).toArray();
    return rows.length > 0 ? toRecord(rows[0]!) : null;
  }

  get(peerId: string): Readonly<PeerRecord> | null {
    const cached = this.rows.get(peerId);
    if (cached !== undefined) return cached;
    const record = this.one("SELECT * FROM peers WHERE id = ?", peerId);
    if (record !== null) this.rows.set(peerId, record);
    return record;
  }

  byResumeToken(token: string): PeerRecord | null {
    return this.one("SELECT * FROM peers WHERE resume_token = ?", token);
  }

  count(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM peers").one().n;
  }

  /** Everyone in join order, as the welcome frame lists them. */
  list(): PeerInfo[] {
    return this.sql
      .exec<PeerRow>("SELECT * FROM peers ORDER BY rowid")
      .toArray()
      .map((row) => ({ id: row.id, meta: JSON.parse(row.meta) as PeerMeta }));
  }

  /** Everyone with what the admin API shows, in join order. */
  records(): PeerRecord[] {
    return this.sql.exec<PeerRow>("SELECT * FROM peers ORDER BY rowid").toArray().map(toRecord);
  }

  add(peer: { id: string; meta: PeerMeta; resumeToken: string; connId: string; joinedAt: number }): void {
    this.rows.delete(peer.id);
    this.sql.exec(
      "INSERT INTO peers (id, meta, resume_token, conn_id, away_since, joined_at) VALUES (?, ?, ?, ?, NULL, ?)",
      peer.id,
      JSON.stringify(peer.meta),
      peer.resumeToken,
      peer.connId,
      peer.joinedAt,
    );
  }

  /** A peer is back (resume, or a new connection with the same token subject). */
  reconnect(peerId: string, connId: string, resumeToken: string): void {
    this.rows.delete(peerId);
    this.sql.exec(
      "UPDATE peers SET conn_id = ?, resume_token = ?, away_since = NULL WHERE id = ?",
      connId,
      resumeToken,
      peerId,
    );
  }

  /** Marks the peer away if `connId` is still its current connection; true if it was. */
  markAway(peerId: string, connId: string, now: number): boolean {
    this.rows.delete(peerId);
    const cursor = this.sql.exec(
      "UPDATE peers SET conn_id = NULL, away_since = ? WHERE id = ? AND conn_id = ?",
      now,
      peerId,
      connId,
    );
    return cursor.rowsWritten > 0;
  }

  setMeta(peerId: string, meta: PeerMeta): void {
    this.rows.delete(peerId);
    this.sql.exec("UPDATE peers SET meta = ? WHERE id = ?", JSON.stringify(meta), peerId);
  }

  /** Forgets the peer and anything queued for it. */
  remove(peerId: string): void {
    this.rows.delete(peerId);
    this.sql.exec("DELETE FROM pending_signals WHERE peer_id = ?", peerId);
    this.sql.exec("DELETE FROM peers WHERE id = ?", peerId);
  }

  /** Forgets everyone and everything queued (the room was closed); returns how many peers there were. */
  clear(): number {
    const peers = this.count();
    this.rows.clear();
    this.sql.exec("DELETE FROM pending_signals");
    this.sql.exec("DELETE FROM peers");
    return peers;
  }

  /** Peers that dropped at or before `cutoff`: their grace period is over. */
  awaySinceAtOrBefore(cutoff: number): string[] {
    return this.sql
      .exec<{ id: string }>("SELECT id FROM peers WHERE away_since IS NOT NULL AND away_since <= ? ORDER BY rowid", cutoff)
      .toArray()
      .map((row) => row.id);
  }

  /** The earliest drop time among away peers, or null when nobody is away. */
  earliestAway(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT min(away_since) AS t FROM peers").one().t;
  }

  pendingCount(peerId: string): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pending_signals WHERE peer_id = ?", peerId).one().n;
  }

  enqueue(peerId: string, frame: string, now: number): void {
    this.sql.exec("INSERT INTO pending_signals (peer_id, frame, queued_at) VALUES (?, ?, ?)", peerId, frame, now);
  }

  /** Removes and returns the peer's queued frames in the order they were sent, dropping any older than `notBefore`. */
  takePending(peerId: string, notBefore: number): string[] {
    const frames = this.sql
      .exec<{ frame: string }>(
        "SELECT frame FROM pending_signals WHERE peer_id = ? AND queued_at >= ? ORDER BY seq",
        peerId,
        notBefore,
      )
      .toArray()
      .map((row) => row.frame);
    this.sql.exec("DELETE FROM pending_signals WHERE peer_id = ?", peerId);
    return frames;
  }
}
