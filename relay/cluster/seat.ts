/**
 * A worker process's seat in a relay with several (`--relay-threads N`, docs/design/relay-workers.md):
 * its slot number, its slice of the relay port range, and the UDP listener sockets it inherited
 * from the primary. The primary sends it in the worker's `start` message (relay/cluster/messages.ts).
 */
import type { Admission } from "./admission-ledger.js";

/** One UDP listener: its address, its port, and the worker's member of its SO_REUSEPORT group as an inherited fd. */
export interface SeatUdpListener {
  ip: string;
  port: number;
  fd: number;
}

export interface WorkerSeat {
  /** 0 .. N-1; a restarted worker takes the slot (and the sockets) of the one it replaces. */
  slot: number;
  /** This worker's relay ports: a slice of --min-port..--max-port no other worker opens. */
  minPort: number;
  maxPort: number;
  /** The UDP listeners, one per listening IP (none with --no-udp). */
  udp: SeatUdpListener[];
  /** The TCP port per listening IP: the UDP port when UDP is on, else --listening-port. */
  streamPorts: Record<string, number>;
  /**
   * The key of the relay's nonces (hex), the same in every worker: a client's nonce stays good on a
   * restarted worker, which then answers its next request at once instead of with 438 Stale Nonce.
   */
  nonceSecret: string;
}

/** A reserved port one worker lends another: the RESERVATION-TOKEN's Allocate reached the borrower. */
export interface LentPort {
  /** The lender's slot, which keeps the port out of its pool until it is given back. */
  lender: number;
  relayIp: string;
  port: number;
  family: 4 | 6;
}

/**
 * The primary as a worker sees it. The cross-worker quotas: the worker asks before an allocation is
 * made and gives the hold back when the allocation ends. And port reservations (EVEN-PORT with the R
 * bit): a token's Allocate may reach another worker than the one holding the port (the kernel picks
 * the worker by the client's 4-tuple, and the token's client is another one), so that worker
 * borrows the port through the primary and gives it back when done.
 */
export interface PrimaryLink {
  /** Null when the primary did not answer in time: the allocation is refused (508), nothing is held. */
  admit(user: string, address: string): Promise<Admission | null>;
  release(hold: number): void;
  /** The port reserved under `token` by another worker, now closed there and lent to this one; null when no worker holds it. */
  borrowReserved(token: Buffer): Promise<LentPort | null>;
  /** Gives a borrowed port back to its lender (its socket here is closed). */
  giveBack(lent: Pick<LentPort, "lender" | "port">): void;
  /**
   * Counts one more TCP/TLS connection from `address` against --max-connections-per-ip over all
   * workers: its hold, "refused" when the source holds the most already, null when the primary did
   * not answer in time (the connection is then counted by this worker alone).
   */
  admitConnection(address: string): Promise<number | "refused" | null>;
  releaseConnection(hold: number): void;
  /** One more port reservation for `user` (--user-quota bounds them over all workers); null: no answer in time. */
  admitReservation(user: string): Promise<Admission | null>;
  releaseReservation(hold: number): void;
}

/** A reservation token's first byte names the worker slot holding it, so a borrower's claim goes straight there. */
export function slotOfToken(token: Buffer): number {
  return token[0]!;
}

export class SeatError extends Error {
  override name = "SeatError";
}

/**
 * Splits `min..max` into `slices` contiguous ranges of near-equal size, each starting on an even port
 * and holding at least 2 ports, so an EVEN-PORT pair (P even, P+1) never straddles two workers.
 * Throws when the range is too small for that.
 */
export function splitPortRange(min: number, max: number, slices: number): { minPort: number; maxPort: number }[] {
  const first = min % 2 === 0 ? min : min + 1;
  const pairs = Math.floor((max - first + 1) / 2);
  if (!Number.isInteger(slices) || slices < 1 || pairs < slices) {
    throw new SeatError(
      `the relay port range ${min}-${max} is too small for ${slices} worker processes: each needs at least one even-odd pair of ports; widen --min-port..--max-port or lower --relay-threads`,
    );
  }
  const ranges: { minPort: number; maxPort: number }[] = [];
  let start = first;
  for (let slot = 0; slot < slices; slot++) {
    const share = Math.floor(pairs / slices) + (slot < pairs % slices ? 1 : 0);
    const end = start + 2 * share - 1;
    // The first slice also takes an odd --min-port, the last whatever is past the last pair.
    ranges.push({ minPort: slot === 0 ? min : start, maxPort: slot === slices - 1 ? max : end });
    start = end + 1;
  }
  return ranges;
}
