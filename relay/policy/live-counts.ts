/**
 * How many live things (allocations, connections, port reservations) each key holds, for the
 * quotas: per user, per source address. A key that holds nothing is not kept, so the map is never
 * larger than what is live.
 */
export class LiveCounts {
  private readonly counts = new Map<string, number>();

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.counts.set(key, this.get(key) + 1);
  }

  /** Every key holding something, with its count: a view, not a copy. */
  entries(): ReadonlyMap<string, number> {
    return this.counts;
  }

  remove(key: string): void {
    const left = this.get(key) - 1;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }
}
