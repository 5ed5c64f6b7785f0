/**
 * Byte-rate limits on the data path: `max-bps` for each allocation (both directions together) and
 * `bps-capacity` for the whole relay, as in coturn. A token bucket of bytes: it holds at most `burstBytes`,
 * refills at `bytesPerSecond`, and a packet passes only if the bucket holds its size; a packet that does not
 * fit is refused whole (the caller drops it: UDP media tolerates loss, queueing would only add latency) and
 * counted. A refused packet leaves the bucket as it was, so smaller packets behind it may still pass.
 *
 * Pure and synchronous, built for the per-packet path: the clock is passed in (milliseconds, e.g. the relay's
 * coarse clock), refill is computed from the time elapsed since the last call, every field is a number, and
 * `take` creates no object, closure or promise. A limit of 0 means none: `take` returns true without any
 * arithmetic (cheaper still: pass null to `takeBoth` and keep no bucket at all).
 *
 * Charge the application data relayed (the DATA of a Send/Data indication, the payload of ChannelData, a
 * peer's datagram), which never exceeds 65,535 bytes: that is why the default burst is at least 64 KiB, so
 * that any single packet can pass a bucket that has had time to fill.
 */

import { refill, type TokenState } from "./token-refill.js";

/** The smallest default burst: 64 KiB, larger than any one packet the relay forwards. */
export const MIN_DEFAULT_BURST_BYTES = 64 * 1024;

export class ByteBucket {
  /** Refill rate; 0: no limit. */
  readonly bytesPerSecond: number;
  /** The most bytes that may pass at once after a quiet period; the bucket's size. */
  readonly burstBytes: number;
  private readonly unlimited: boolean;
  private readonly bytesPerMs: number;
  /** Bytes that may pass now, as of the last reading. Starts full. */
  private readonly state: TokenState;
  private droppedBytes = 0;
  private droppedCount = 0;

  /**
   * @param bytesPerSecond refill rate in bytes per second; 0: no limit.
   * @param burstBytes bucket size; default one second's worth, at least `MIN_DEFAULT_BURST_BYTES`. A packet
   *   larger than the bucket is never let through.
   */
  constructor(bytesPerSecond: number, burstBytes?: number) {
    if (!(bytesPerSecond >= 0 && bytesPerSecond < Infinity)) {
      throw new RangeError(`bytesPerSecond must be a finite number >= 0 (0: no limit); got ${bytesPerSecond}`);
    }
    if (burstBytes !== undefined && !(burstBytes > 0 && burstBytes < Infinity)) {
      throw new RangeError(`burstBytes must be a finite number > 0, or left out for one second's worth; got ${burstBytes}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes ?? Math.max(bytesPerSecond, MIN_DEFAULT_BURST_BYTES);
    this.unlimited = bytesPerSecond === 0;
    this.bytesPerMs = bytesPerSecond / 1000;
    this.state = { tokens: this.burstBytes, lastMs: -Infinity };
  }

  /** Bytes refused so far (0 when unlimited). */
  get dropped(): number {
    return this.droppedBytes;
  }

  /** Packets refused so far (0 when unlimited). */
  get droppedPackets(): number {
    return this.droppedCount;
  }

  /**
   * Lets `bytes` through and charges them if the bucket holds that many now; otherwise refuses, counts the
   * packet and its bytes as dropped, and charges nothing. A size that is not a number >= 0 is refused (and
   * counted as a packet of 0 bytes). A clock reading that is NaN counts as no time passed; one earlier than the
   * last (the clock stepped back) gives no bytes and the bucket continues from the new reading.
   */
  take(bytes: number, nowMs: number): boolean {
    if (this.unlimited) return true;
    refill(this.state, nowMs, this.bytesPerMs, this.burstBytes);
    if (bytes >= 0 && this.state.tokens >= bytes) {
      this.state.tokens -= bytes;
      return true;
    }
    this.droppedCount++;
    if (bytes >= 0 && bytes < Infinity) this.droppedBytes += bytes;
    return false;
  }

  /** Whether `take(bytes, nowMs)` would let the packet through; charges and counts nothing. */
  canTake(bytes: number, nowMs: number): boolean {
    if (this.unlimited) return true;
    refill(this.state, nowMs, this.bytesPerMs, this.burstBytes);
    return bytes >= 0 && this.state.tokens >= bytes;
  }


}

/**
 * Charges a packet to an allocation's bucket [max-bps] and the relay's [bps-capacity] only if both let it
 * through: a packet the global bucket refuses costs the allocation nothing, and one the allocation refuses
 * costs the global bucket nothing. A refused packet is counted as dropped by the bucket that refused it (the
 * allocation's if both would). null stands for no limit. Allocation-free.
 */
export function takeBoth(allocationBucket: ByteBucket | null, globalBucket: ByteBucket | null, bytes: number, nowMs: number): boolean {
  if (allocationBucket === null) return globalBucket === null || globalBucket.take(bytes, nowMs);
  if (globalBucket === null) return allocationBucket.take(bytes, nowMs);
  // Refused: take() at the same reading refuses too and counts the drop against the allocation.
  if (!allocationBucket.canTake(bytes, nowMs)) return allocationBucket.take(bytes, nowMs);
  if (!globalBucket.take(bytes, nowMs)) return false;
  // Cannot refuse: canTake() just said yes at this same reading, and nothing has charged this bucket since.
  return allocationBucket.take(bytes, nowMs);
}
