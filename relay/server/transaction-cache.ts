/**
 * Answers to recent authenticated requests, so a retransmitted request over UDP gets the same
 * answer instead of being executed twice (RFC 8489 §6.3.1): a second Allocate must not make a
 * second allocation, a second Refresh with LIFETIME 0 must not answer 437. Bounded in size and age.
 */
export const TRANSACTION_CACHE_TTL_MS = 40_000;
export const TRANSACTION_CACHE_MAX_ENTRIES = 20_000;

type Entry = { response: Buffer | null; storedAt: number };

export class TransactionCache {
  /** Insertion order is age order, so the oldest entries are the first to go. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = TRANSACTION_CACHE_TTL_MS,
    private readonly maxEntries = TRANSACTION_CACHE_MAX_ENTRIES,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached answer, "pending" while the first copy is still being handled, or undefined. */
  lookup(key: string, now: number): Buffer | "pending" | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined || now - entry.storedAt > this.ttlMs) return undefined;
    return entry.response ?? "pending";
  }

  markPending(key: string, now: number): void {
    this.put(key, { response: null, storedAt: now });
  }

  store(key: string, response: Buffer, now: number): void {
    this.put(key, { response, storedAt: now });
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Drops entries older than the TTL. */
  prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (now - entry.storedAt <= this.ttlMs) break;
      this.entries.delete(key);
    }
  }

  private put(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
}
