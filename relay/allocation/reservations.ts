/**
 * Port reservations (RFC 8656 §7.2): an Allocate with EVEN-PORT's R bit gets an even port P, and P+1 is
 * held, bound, under a random RESERVATION-TOKEN until an Allocate carrying that token takes it (from
 * any client 5-tuple, once) or it expires. This table is the bookkeeping only: the server binds and
 * closes the sockets, and passes the time in, so expiry is tested without waiting 30 s.
 *
 * Bounds: one reservation per allocation (made when the allocation is); at most one per (even, odd)
 * port pair, so never more than half the port range; and with --user-quota, at most that many per user.
 */
import { randomBytes } from "node:crypto";
import { LiveCounts } from "../policy/live-counts.js";
import { RESERVATION_TOKEN_LENGTH } from "../stun/attributes.js";
import type { RelayUdpSocket } from "../transport/udp-socket.js";

/** How long a reserved port is held: RFC 8656 §7.2 asks for at least 30 s; holding it longer only keeps a port idle. */
export const RESERVATION_LIFETIME_MS = 30_000;

/** What the relay holds for a reservation: the bound socket of P+1, and where it is. */
export interface ReservedPort {
  readonly socket: RelayUdpSocket;
  readonly relayIp: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface ReservationLimits {
  /** Milliseconds a reservation is held (RESERVATION_LIFETIME_MS in the relay). */
  readonly lifetimeMs: number;
  /** Reservations one user may hold at once; 0: no per-user limit (--user-quota). */
  readonly perUser: number;
  /** Every token's first byte, when set (a worker's slot: relay/cluster/seat.ts); the rest stays random. */
  readonly tokenFirstByte?: number;
}

interface Entry<T> {
  readonly token: Buffer;
  readonly held: T;
  readonly userId: string;
  readonly maker: object;
  readonly expiresAt: number;
}

export class ReservationTable<T = ReservedPort> {
  /** Token (hex) → reservation. */
  private readonly byToken = new Map<string, Entry<T>>();
  /** The allocation that made a reservation → it, so a retransmitted Allocate gets the same token. */
  private readonly byMaker = new WeakMap<object, Entry<T>>();
  private readonly perUser = new LiveCounts();

  constructor(private readonly limits: ReservationLimits) {}

  get size(): number {
    return this.byToken.size;
  }

  /** Whether `userId` may make one more reservation (--user-quota). */
  hasRoomFor(userId: string): boolean {
    return this.limits.perUser === 0 || this.perUser.get(userId) < this.limits.perUser;
  }

  /** Holds `held` for `lifetimeMs` from `now` under a new random token, which it returns. */
  add(held: T, userId: string, maker: object, now: number): Buffer {
    let token: Buffer;
    // 64 random bits: a collision is next to impossible, but a token must never name two ports.
    do {
      token = randomBytes(RESERVATION_TOKEN_LENGTH);
      if (this.limits.tokenFirstByte !== undefined) token[0] = this.limits.tokenFirstByte;
    } while (this.byToken.has(token.toString("hex")));
    const entry: Entry<T> = { token, held, userId, maker, expiresAt: now + this.limits.lifetimeMs };
    this.byToken.set(token.toString("hex"), entry);
    this.byMaker.set(maker, entry);
    this.perUser.add(userId);
    return token;
  }

  /**
   * Honours a token: removes its reservation and hands over what it held, or undefined when the token
   * is unknown, already used or expired. An expired one stays for `sweep`, which releases it.
   */
  take(token: Buffer, now: number): T | undefined {
    const entry = this.byToken.get(token.toString("hex"));
    if (entry === undefined || entry.expiresAt <= now) return undefined;
    this.remove(entry);
    return entry.held;
  }

  /** The token of the reservation `maker` made, while it is still held. */
  tokenMadeBy(maker: object, now: number): Buffer | undefined {
    const entry = this.byMaker.get(maker);
    return entry !== undefined && entry.expiresAt > now && this.byToken.get(entry.token.toString("hex")) === entry ? entry.token : undefined;
  }

  /** Removes the reservations that have run out and returns what they held, for the caller to release. */
  sweep(now: number): T[] {
    const expired: T[] = [];
    for (const entry of this.byToken.values()) {
      if (entry.expiresAt <= now) {
        this.remove(entry);
        expired.push(entry.held);
      }
    }
    return expired;
  }

  /** Removes every reservation (the relay stops) and returns what they held. */
  clear(): T[] {
    const all = [...this.byToken.values()];
    for (const entry of all) this.remove(entry);
    return all.map((entry) => entry.held);
  }

  private remove(entry: Entry<T>): void {
    this.byToken.delete(entry.token.toString("hex"));
    this.byMaker.delete(entry.maker);
    this.perUser.remove(entry.userId);
  }
}
