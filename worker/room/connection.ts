/**
 * What the room remembers about one WebSocket, kept in its attachment so that it survives the
 * object's eviction (fields of the object do not). Small by design: the runtime caps it at 16 KiB.
 */
import type { GeoLocation } from "../../shared/fleet/protocol.js";
import type { RoomConfig } from "../config.js";
import { STRIKES_FORGIVEN_PER_SECOND } from "../config.js";
import { fullBucket, takeToken, type TokenBucket } from "./token-bucket.js";

export interface Connection {
  peerId: string;
  /** Which of the peer's connections this is: the roster names the current one. */
  connId: string;
  /** When the last frame reached the room (pings answered by the runtime are tracked by the runtime). */
  lastFrameAt: number;
  /** Frames the connection may still send right now. */
  rate: TokenBucket;
  /** Bad or rate-limited frames still tolerated before the connection is closed. */
  patience: TokenBucket;
  /** The room's name, for the TURN user of credentials the room mints (drain notices). */
  room?: string;
  /** Where the peer was when it joined, as the edge saw it: drain notices pick relays near it. */
  location?: GeoLocation | null;
}

/** Where a connection belongs: its room's name and the peer's location, from the join intent. */
export interface Placement {
  room?: string;
  location?: GeoLocation | null;
}

export function newConnection(peerId: string, connId: string, now: number, config: RoomConfig, placement: Placement = {}): Connection {
  return {
    peerId,
    connId,
    lastFrameAt: now,
    rate: fullBucket(config.rateBurst, now),
    patience: fullBucket(config.strikeLimit, now),
    ...(placement.room !== undefined && { room: placement.room }),
    ...(placement.location !== undefined && { location: placement.location }),
  };
}

/**
 * Attachments this instance has already read or written, by socket. Deserializing the attachment on
 * every frame was a large share of the room's time per frame. The runtime hands the room the same
 * WebSocket object for a socket for as long as the instance lives, and a new one after an eviction, so
 * an entry here is never older than the attachment. It may be newer: the room changes the object in
 * place and persists it with `writeConnection`, except on the paths that close the socket anyway.
 */
const known = new WeakMap<WebSocket, Connection>();

export function readConnection(ws: WebSocket): Connection | null {
  const cached = known.get(ws);
  if (cached !== undefined) return cached;
  const stored = (ws.deserializeAttachment() as Connection | null) ?? null;
  if (stored !== null) known.set(ws, stored);
  return stored;
}

/** Persists the connection in its attachment (it survives eviction there) and keeps it at hand. */
export function writeConnection(ws: WebSocket, conn: Connection): void {
  ws.serializeAttachment(conn);
  known.set(ws, conn);
}

/** Spends one frame of the rate limit; false when the frame must be dropped. */
export function spendRate(conn: Connection, now: number, config: RoomConfig): boolean {
  const result = takeToken(conn.rate, now, config.rateBurst, config.ratePerSecond);
  conn.rate = result.bucket;
  return result.allowed;
}

/** Records a bad or rate-limited frame; false when patience has run out and the connection must close. */
export function spendPatience(conn: Connection, now: number, config: RoomConfig): boolean {
  const result = takeToken(conn.patience, now, config.strikeLimit, STRIKES_FORGIVEN_PER_SECOND);
  conn.patience = result.bucket;
  return result.allowed;
}

/** The last sign of life: a frame the room saw, or a ping the runtime answered while the room slept. */
export function lastActivity(conn: Connection, autoResponseAt: Date | null): number {
  return Math.max(conn.lastFrameAt, autoResponseAt?.getTime() ?? 0);
}
