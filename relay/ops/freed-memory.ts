/**
 * When to give freed C heap back to the system. A burst of allocations (or of their ends) leaves
 * glibc's heap with pages it freed and keeps for reuse: only the heap's top goes back on its own, so
 * a relay that served 10,000 allocations once holds their memory for good. Once a burst has settled,
 * the relay asks for those pages to go back (malloc_trim through the UDP addon, about 1-2 ms): about
 * 5 MB of a relay with 10,000 idle allocations (issue 16). A relay under steady churn is never
 * trimmed, since it reuses what it frees.
 */

/** Allocations opened or ended since the last trim before another is worth it. */
export const TRIM_AFTER_CHANGES = 1_000;
/**
 * The least time between two trims: a trim costs 1-2 ms, so at most ~0.1 % of a core, and only
 * while bursts keep settling. Short enough that a burst right after another one's trim (a relay
 * that just warmed up, then took 10,000 allocations) is trimmed a second or two after it settles.
 */
export const TRIM_MIN_INTERVAL_MS = 2_000;

export class FreedMemoryReturn {
  private changes = 0;
  private changesAtLastTick = 0;
  private lastTrimAt = Number.NEGATIVE_INFINITY;

  constructor(
    /** Gives the freed pages back (trimFreedNativeMemory). */
    private readonly trim: () => unknown,
    private readonly afterChanges = TRIM_AFTER_CHANGES,
    private readonly minIntervalMs = TRIM_MIN_INTERVAL_MS,
  ) {}

  /** An allocation was opened or ended. */
  changed(): void {
    this.changes++;
  }

  /**
   * Called at a steady pace (the relay's sweep, each second): trims when enough changed since the
   * last trim, nothing changed since the previous tick (the burst has settled), and the last trim is
   * long enough ago. True when it trimmed.
   */
  tick(now: number): boolean {
    const settled = this.changes === this.changesAtLastTick;
    this.changesAtLastTick = this.changes;
    if (!settled || this.changes < this.afterChanges || now - this.lastTrimAt < this.minIntervalMs) return false;
    this.trim();
    this.lastTrimAt = now;
    this.changes = 0;
    this.changesAtLastTick = 0;
    return true;
  }
}
