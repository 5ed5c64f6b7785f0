/**
 * Answers to recent authenticated requests, so a retransmitted request over UDP gets the same
 * answer instead of being executed twice (RFC 8489 §6.3.1): a second Allocate must not make a
 * second allocation, a second Refresh with LIFETIME 0 must not answer 437. Bounded in size and age.
 *
 * A retransmission is the very same request: same bytes, hence the same method and content. Each
 * entry keeps a digest of the request that made it, and only a request with that digest gets the
 * cached answer again; anything else that reuses the transaction id is no retransmission and is
 * dropped. (The server sends every resend under the per-source limit for unauthenticated answers:
 * a resend is not authenticated again, so it must not be a free reflector either.)
 */
import { createHash } from "node:crypto";

export const TRANSACTION_CACHE_TTL_MS = 40_000;
export const TRANSACTION_CACHE_MAX_ENTRIES = 20_000;

type Entry = { request: string; response: Buffer | null; storedAt: number };

/** What a lookup finds for a request. */
export type CachedAnswer =
  /** The first copy is still being handled: drop this one, the answer is on its way. */
  | "pending"
  /** The transaction id is known but the request differs from the first: not a retransmission. */
  | "mismatch"
  /** The answer to resend. */
  | Buffer
  /** Nothing cached: handle the request. */
  | undefined;

/** Text that stands for a request's bytes (SHA-256: no one can make two requests share it). */
export function requestDigest(request: Buffer): string {
  return createHash("sha256").update(request).digest("base64");
}

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

  /** What is cached for `key` and this request's `digest` (see `CachedAnswer`). */
  lookup(key: string, digest: string, now: number): CachedAnswer {
    const entry = this.entries.get(key);
    if (entry === undefined || now - entry.storedAt > this.ttlMs) return undefined;
    if (entry.request !== digest) return "mismatch";
    return entry.response ?? "pending";
  }

  markPending(key: string, digest: string, now: number): void {
    this.put(key, { request: digest, response: null, storedAt: now });
  }

  /** Stores the answer for the request `markPending` registered under `key`. */
  store(key: string, response: Buffer, now: number): void {
    const pending = this.entries.get(key);
    if (pending !== undefined) this.put(key, { request: pending.request, response, storedAt: now });
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
