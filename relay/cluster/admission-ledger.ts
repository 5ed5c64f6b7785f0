/**
 * The primary's count of every allocation its worker processes hold (issue 17,
 * docs/design/relay-workers.md): a worker asks before it allocates, and says when an allocation
 * ends; the primary answers from these counts alone, so the quotas hold across workers exactly (N
 * allocations allowed, the N+1th refused, whichever worker it reaches).
 *
 * Each admission is a hold, numbered, in the worker slot that asked. A worker that dies gives back
 * every hold of its slot at once (its allocations ended with it). Releasing a hold twice, or one
 * that is not known, changes nothing: the counts never go below what is held.
 */
import { LiveCounts } from "../policy/live-counts.js";
import { quotaRefusal, type AllocationQuotas, type QuotaRefusal } from "../policy/allocation-quotas.js";
import { sourceOf } from "../policy/source-address.js";

interface Hold {
  slot: number;
  user: string;
  source: string;
}

export type Admission = { ok: true; hold: number } | { ok: false; refusal: QuotaRefusal };

export class AdmissionLedger {
  private readonly holds = new Map<number, Hold>();
  private readonly perUser = new LiveCounts();
  private readonly perSource = new LiveCounts();
  private nextHold = 1;

  constructor(private readonly quotas: AllocationQuotas) {}

  /** Allocations held in all. */
  get total(): number {
    return this.holds.size;
  }

  /** Admits one more allocation for `user` from client address `address`, held by worker `slot`, if the quotas allow it. */
  admit(slot: number, user: string, address: string): Admission {
    const source = sourceOf(address);
    const refusal = quotaRefusal(this.quotas, { user: this.perUser.get(user), source: this.perSource.get(source), total: this.holds.size });
    if (refusal !== null) return { ok: false, refusal };
    const hold = this.nextHold++;
    this.holds.set(hold, { slot, user, source });
    this.perUser.add(user);
    this.perSource.add(source);
    return { ok: true, hold };
  }

  /** Gives back one hold (its allocation ended); false when it was not held. */
  release(hold: number): boolean {
    const held = this.holds.get(hold);
    if (held === undefined) return false;
    this.holds.delete(hold);
    this.perUser.remove(held.user);
    this.perSource.remove(held.source);
    return true;
  }

  /** Gives back every hold of worker `slot` (it died); how many there were. */
  releaseSlot(slot: number): number {
    let released = 0;
    for (const [hold, held] of this.holds) {
      if (held.slot === slot && this.release(hold)) released++;
    }
    return released;
  }

  /** Allocations held by one user, by one client source, and by one worker slot (for tests and metrics). */
  heldByUser(user: string): number {
    return this.perUser.get(user);
  }

  heldBySource(address: string): number {
    return this.perSource.get(sourceOf(address));
  }

  heldBySlot(slot: number): number {
    let count = 0;
    for (const held of this.holds.values()) if (held.slot === slot) count++;
    return count;
  }
}
