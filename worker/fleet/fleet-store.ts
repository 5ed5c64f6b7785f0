/**
 * What the fleet object knows, in its SQLite storage: the source of truth that outlives eviction.
 *
 * - `relays`: one row per relay id, from its first `register` until it has not been heard from for
 *   FORGET_RELAY_AFTER_MS. `conn_id` names its current control connection (null while it has none);
 *   `lost_at` is set when a ready relay was found lost (channel gone, or silent), so it is said once,
 *   and cleared by its next register or heartbeat.
 * - `relay_rooms`: the rooms of each relay's last heartbeat, replaced on every heartbeat.
 * - `used_tokens`: every fleet token's one-time id until its expiry (plus clock skew) has passed.
 * - `refusals`: connections refused, counted by reason, for the operator view.
 * - `revocations`: credentials revoked (a room, a room's peer, or one TURN username), each until the
 *   credentials it covers expire; at most FLEET_LIMITS.maxRevocations, pruned by the alarm.
 *
 * Every query is bound; nothing is built by string interpolation.
 */
import type { GeoLocation, HeartbeatMessage, RegisterMessage, RelayState, Revocation } from "../../shared/fleet/protocol.js";
import type { FleetRelay } from "./selection.js";

/** A relay not heard from (no register, no heartbeat) for this long is forgotten. */
export const FORGET_RELAY_AFTER_MS = 60 * 60 * 1000;
/**
 * Token ids remembered at once. A token is only remembered after its signature checks out, so only a
 * fleet key holder can fill this; at FLEET_MAX_RELAYS relays reconnecting every few seconds within a
 * token's lifetime, it is far more than enough. Past it, connections are refused until ids expire.
 */
export const MAX_REMEMBERED_TOKENS = 20_000;

export const REFUSAL_REASONS = [
  "missing-token",
  "bad-token",
  "expired-token",
  "replayed-token",
  "too-many-tokens",
  "fleet-full",
  "wrong-relay-id",
  "protocol-violation",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** One relay as the operator view shows it. */
export interface RelayRecord extends FleetRelay {
  region: string;
  version: string;
  cpuPercent: number;
  eventLoopDelayMs: number;
  registeredAt: number;
  lastHeardAt: number;
  roomsOmitted: number;
}

type RelayRow = {
  id: string;
  conn_id: string | null;
  urls: string;
  region: string;
  lat: number | null;
  lon: number | null;
  version: string;
  cap_allocations: number;
  cap_bps: number;
  registered_at: number;
  state: string;
  allocations: number;
  bps_in: number;
  bps_out: number;
  cpu_percent: number;
  event_loop_delay_ms: number;
  rooms_omitted: number;
  last_heartbeat_at: number | null;
  last_heard_at: number;
};

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS relays (
    id TEXT PRIMARY KEY,
    conn_id TEXT,
    urls TEXT NOT NULL,
    region TEXT NOT NULL,
    lat REAL,
    lon REAL,
    version TEXT NOT NULL,
    cap_allocations INTEGER NOT NULL,
    cap_bps REAL NOT NULL,
    registered_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    allocations INTEGER NOT NULL DEFAULT 0,
    bps_in REAL NOT NULL DEFAULT 0,
    bps_out REAL NOT NULL DEFAULT 0,
    cpu_percent REAL NOT NULL DEFAULT 0,
    event_loop_delay_ms REAL NOT NULL DEFAULT 0,
    rooms_omitted INTEGER NOT NULL DEFAULT 0,
    last_heartbeat_at INTEGER,
    last_heard_at INTEGER NOT NULL,
    lost_at INTEGER
  );
  CREATE TABLE IF NOT EXISTS relay_rooms (
    relay_id TEXT NOT NULL,
    room TEXT NOT NULL,
    allocations INTEGER NOT NULL,
    PRIMARY KEY (relay_id, room)
  );
  CREATE TABLE IF NOT EXISTS used_tokens (
    nonce TEXT PRIMARY KEY,
    forget_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS used_tokens_by_expiry ON used_tokens (forget_at);
  CREATE TABLE IF NOT EXISTS refusals (
    reason TEXT PRIMARY KEY,
    count INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS revocations (
    target TEXT PRIMARY KEY,
    room TEXT,
    peer_id TEXT,
    username TEXT,
    until INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS revocations_by_until ON revocations (until);
`;

/** One key per target, so revoking the same credentials twice keeps one row (the later `until`). */
function revocationTarget(revocation: Revocation): string {
  return JSON.stringify([revocation.room, revocation.peerId, revocation.username]);
}

function toRecord(row: RelayRow): RelayRecord {
  const location: GeoLocation | null = row.lat === null || row.lon === null ? null : { lat: row.lat, lon: row.lon };
  return {
    id: row.id,
    urls: JSON.parse(row.urls) as string[],
    location,
    capacity: { allocations: row.cap_allocations, bps: row.cap_bps },
    state: row.state as RelayState,
    lastHeartbeatAt: row.last_heartbeat_at,
    allocations: row.allocations,
    bpsIn: row.bps_in,
    bpsOut: row.bps_out,
    region: row.region,
    version: row.version,
    connected: row.conn_id !== null,
    cpuPercent: row.cpu_percent,
    eventLoopDelayMs: row.event_loop_delay_ms,
    registeredAt: row.registered_at,
    lastHeardAt: row.last_heard_at,
    roomsOmitted: row.rooms_omitted,
  };
}

export class FleetStore {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
    // Fleets stored before relays could be found lost lack the column.
    const columns = sql.exec<{ name: string }>("SELECT name FROM pragma_table_info('relays')").toArray();
    if (!columns.some((column) => column.name === "lost_at")) sql.exec("ALTER TABLE relays ADD COLUMN lost_at INTEGER");
  }

  // Relays ------------------------------------------------------------------------------------

  relays(): RelayRecord[] {
    return this.sql.exec<RelayRow>("SELECT * FROM relays ORDER BY id").toArray().map(toRecord);
  }

  relay(id: string): RelayRecord | null {
    const rows = this.sql.exec<RelayRow>("SELECT * FROM relays WHERE id = ?", id).toArray();
    return rows.length > 0 ? toRecord(rows[0]!) : null;
  }

  relayCount(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM relays").one().n;
  }

  /** A relay's registration: a new row, or the new figures of a known relay (its last heartbeat stays). */
  register(message: RegisterMessage, connId: string, now: number): void {
    const { relayId, urls, region, location, version, capacity } = message;
    this.sql.exec(
      `INSERT INTO relays (id, conn_id, urls, region, lat, lon, version, cap_allocations, cap_bps, registered_at, state, last_heard_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', ?)
       ON CONFLICT (id) DO UPDATE SET conn_id = excluded.conn_id, urls = excluded.urls, region = excluded.region,
         lat = excluded.lat, lon = excluded.lon, version = excluded.version, cap_allocations = excluded.cap_allocations,
         cap_bps = excluded.cap_bps, registered_at = excluded.registered_at, last_heard_at = excluded.last_heard_at, lost_at = NULL`,
      relayId,
      connId,
      JSON.stringify(urls),
      region,
      location?.lat ?? null,
      location?.lon ?? null,
      version,
      capacity.allocations,
      capacity.bps,
      now,
      now,
    );
  }

  /** Records a heartbeat and replaces the relay's rooms; returns the state it had before. */
  heartbeat(relayId: string, message: HeartbeatMessage, now: number): RelayState | null {
    const before = this.sql.exec<{ state: string }>("SELECT state FROM relays WHERE id = ?", relayId).toArray()[0];
    if (before === undefined) return null;
    this.sql.exec(
      `UPDATE relays SET state = ?, allocations = ?, bps_in = ?, bps_out = ?, cpu_percent = ?, event_loop_delay_ms = ?,
         rooms_omitted = ?, last_heartbeat_at = ?, last_heard_at = ?, lost_at = NULL WHERE id = ?`,
      message.state,
      message.allocations,
      message.bpsIn,
      message.bpsOut,
      message.cpuPercent,
      message.eventLoopDelayMs,
      message.roomsOmitted,
      now,
      now,
      relayId,
    );
    this.sql.exec("DELETE FROM relay_rooms WHERE relay_id = ?", relayId);
    // The parser caps the list at FLEET_LIMITS.maxRooms; a room listed twice keeps its last count.
    for (const { room, allocations } of message.rooms) {
      this.sql.exec("INSERT OR REPLACE INTO relay_rooms (relay_id, room, allocations) VALUES (?, ?, ?)", relayId, room, allocations);
    }
    return before.state as RelayState;
  }

  /**
   * The connection `connId` of `relayId` ended: it stays known (and may stay live) without one.
   * Returns true when that was the relay's current connection (the row changed), false otherwise.
   */
  disconnected(relayId: string, connId: string): boolean {
    return this.sql.exec("UPDATE relays SET conn_id = NULL WHERE id = ? AND conn_id = ?", relayId, connId).rowsWritten > 0;
  }

  /**
   * Marks a ready relay lost, once: true when this call marked it (it was ready and not marked yet),
   * false for a draining relay or one already marked since its last register or heartbeat.
   */
  markLost(relayId: string, now: number): boolean {
    return this.sql.exec("UPDATE relays SET lost_at = ? WHERE id = ? AND state = 'ready' AND lost_at IS NULL", now, relayId).rowsWritten > 0;
  }

  /** Ready relays not yet marked lost whose last heartbeat is at or before `cutoff`. */
  silentSince(cutoff: number): { id: string; lastHeartbeatAt: number }[] {
    return this.sql
      .exec<{ id: string; last_heartbeat_at: number }>(
        "SELECT id, last_heartbeat_at FROM relays WHERE state = 'ready' AND lost_at IS NULL AND last_heartbeat_at IS NOT NULL AND last_heartbeat_at <= ? ORDER BY id",
        cutoff,
      )
      .toArray()
      .map((row) => ({ id: row.id, lastHeartbeatAt: row.last_heartbeat_at }));
  }

  /** The oldest last heartbeat among ready relays not marked lost: when the next one may fall silent. */
  earliestUnmarkedHeartbeat(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT min(last_heartbeat_at) AS t FROM relays WHERE state = 'ready' AND lost_at IS NULL").one().t;
  }

  roomsOf(relayId: string): { room: string; allocations: number }[] {
    return this.sql
      .exec<{ room: string; allocations: number }>("SELECT room, allocations FROM relay_rooms WHERE relay_id = ? ORDER BY allocations DESC, room", relayId)
      .toArray();
  }

  /** Forgets relays not heard from since `cutoff`; returns their ids. */
  forgetSilentSince(cutoff: number): string[] {
    const ids = this.sql.exec<{ id: string }>("SELECT id FROM relays WHERE last_heard_at <= ?", cutoff).toArray().map((row) => row.id);
    for (const id of ids) {
      this.sql.exec("DELETE FROM relay_rooms WHERE relay_id = ?", id);
      this.sql.exec("DELETE FROM relays WHERE id = ?", id);
    }
    return ids;
  }

  earliestHeard(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT min(last_heard_at) AS t FROM relays").one().t;
  }

  // Tokens ------------------------------------------------------------------------------------

  /** Remembers a token id until `forgetAt`; false when it was seen before. */
  useToken(nonce: string, forgetAt: number): boolean {
    const cursor = this.sql.exec("INSERT OR IGNORE INTO used_tokens (nonce, forget_at) VALUES (?, ?)", nonce, forgetAt);
    return cursor.rowsWritten > 0;
  }

  rememberedTokens(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM used_tokens").one().n;
  }

  forgetTokensDueBy(now: number): void {
    this.sql.exec("DELETE FROM used_tokens WHERE forget_at <= ?", now);
  }

  earliestTokenExpiry(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT min(forget_at) AS t FROM used_tokens").one().t;
  }

  // Refusals ----------------------------------------------------------------------------------

  countRefusal(reason: RefusalReason): void {
    this.sql.exec("INSERT INTO refusals (reason, count) VALUES (?, 1) ON CONFLICT (reason) DO UPDATE SET count = count + 1", reason);
  }

  refusals(): Partial<Record<RefusalReason, number>> {
    const counts: Partial<Record<RefusalReason, number>> = {};
    for (const row of this.sql.exec<{ reason: string; count: number }>("SELECT reason, count FROM refusals ORDER BY reason").toArray()) {
      counts[row.reason as RefusalReason] = row.count;
    }
    return counts;
  }

  // Revocations -------------------------------------------------------------------------------

  /**
   * Keeps a revocation until its `until` (unix seconds): a new row, or the later `until` of the same
   * target. False when it is a new target and FLEET_LIMITS-many live ones are kept already.
   */
  addRevocation(revocation: Revocation, maxRevocations: number): boolean {
    const target = revocationTarget(revocation);
    const known = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM revocations WHERE target = ?", target).one().n > 0;
    if (!known && this.revocationCount() >= maxRevocations) return false;
    this.sql.exec(
      `INSERT INTO revocations (target, room, peer_id, username, until) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (target) DO UPDATE SET until = max(until, excluded.until)`,
      target,
      revocation.room,
      revocation.peerId,
      revocation.username,
      revocation.until,
    );
    return true;
  }

  /** Every revocation still in force at `nowSeconds`, soonest to end first. */
  liveRevocations(nowSeconds: number): Revocation[] {
    return this.sql
      .exec<{ room: string | null; peer_id: string | null; username: string | null; until: number }>(
        "SELECT room, peer_id, username, until FROM revocations WHERE until >= ? ORDER BY until, target",
        nowSeconds,
      )
      .toArray()
      .map((row) => ({ room: row.room, peerId: row.peer_id, username: row.username, until: row.until }));
  }

  revocationCount(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM revocations").one().n;
  }

  /** Forgets the revocations whose `until` lies before `nowSeconds`: the credentials they cover have expired. */
  forgetRevocationsBefore(nowSeconds: number): void {
    this.sql.exec("DELETE FROM revocations WHERE until < ?", nowSeconds);
  }

  /** The earliest `until` kept (unix seconds), or null. */
  earliestRevocationEnd(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT min(until) AS t FROM revocations").one().t;
  }
}
