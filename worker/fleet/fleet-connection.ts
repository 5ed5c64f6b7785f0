/**
 * What the fleet object remembers about one relay's control connection, kept in the socket's
 * attachment so it survives eviction (a few dozen bytes, far under the 16 KiB cap).
 */
import { FLEET_LIMITS } from "../../shared/fleet/protocol.js";
import { fullBucket, takeToken, type TokenBucket } from "../room/token-bucket.js";

/** Bad or rate-limited messages a connection may send before it is closed with `protocolViolation`... */
export const FLEET_STRIKE_LIMIT = 3;
/** ...one of them forgiven every 20 s, so a relay that errs now and then is never closed. */
export const FLEET_STRIKES_FORGIVEN_PER_SECOND = 1 / 20;

/** A connection that has not registered this long after it was accepted is closed by the alarm. */
export const REGISTER_WITHIN_MS = 30_000;

export interface FleetConnection {
  /** The relay id the token named. */
  relayId: string;
  /** When the connection was accepted (milliseconds since the epoch). */
  acceptedAt: number;
  /** Which of the relay's connections this is: the relays table names the current one. */
  connId: string;
  /** True once `register` was accepted. */
  registered: boolean;
  /** Messages it may still send right now (FLEET_LIMITS.messageBurst, FLEET_LIMITS.messagesPerSecond). */
  rate: TokenBucket;
  /** Strikes still tolerated. */
  patience: TokenBucket;
}

export function newFleetConnection(relayId: string, connId: string, now: number): FleetConnection {
  return { relayId, acceptedAt: now, connId, registered: false, rate: fullBucket(FLEET_LIMITS.messageBurst, now), patience: fullBucket(FLEET_STRIKE_LIMIT, now) };
}

export function readFleetConnection(ws: WebSocket): FleetConnection | null {
  return (ws.deserializeAttachment() as FleetConnection | null) ?? null;
}

export function writeFleetConnection(ws: WebSocket, conn: FleetConnection): void {
  ws.serializeAttachment(conn);
}

/** Spends one message of the rate limit; false when the message must be refused. */
export function spendMessage(conn: FleetConnection, now: number): boolean {
  const result = takeToken(conn.rate, now, FLEET_LIMITS.messageBurst, FLEET_LIMITS.messagesPerSecond);
  conn.rate = result.bucket;
  return result.allowed;
}

/** Records a strike; false when patience has run out. */
export function spendStrike(conn: FleetConnection, now: number): boolean {
  const result = takeToken(conn.patience, now, FLEET_STRIKE_LIMIT, FLEET_STRIKES_FORGIVEN_PER_SECOND);
  conn.patience = result.bucket;
  return result.allowed;
}
