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
import type { StunMessage } from "../stun/message.js";
import { RecencyMap } from "../collections/recency-map.js";

export const TRANSACTION_CACHE_TTL_MS = 40_000;
export const TRANSACTION_CACHE_MAX_ENTRIES = 20_000;

/**
 * `response` is the answer's bytes as a latin1 string: one string is about a quarter of the memory of
 * a Buffer that small (its ArrayBuffer, backing store and their bookkeeping), and an answer stays
 * cached 40 s while resends are rare. (An Allocate that made an allocation leaves none: the
 * allocation answers its copies, RelayServer.handleRequest.)
 */
type Entry = {
  /** The request's digest; null: what the transaction made has ended (`markEnded`), and every copy is dropped. */
  readonly request: string | null;
  response: string | null;
  storedAt: number;
};

/** The cache's key for a transaction of the client at `linkKey` (ClientLink.key). */
export function transactionKey(linkKey: string, transactionIdHex: string): string {
  return `${linkKey}/${transactionIdHex}`;
}

/** What a lookup finds for a request. */
export type CachedAnswer =
  /** The first copy is still being handled: drop this one, the answer is on its way. */
  | "pending"
  /** The client had its answer and what the request made has ended since: drop this late copy. */
  | "ended"
  /** The transaction id is known but the request differs from the first: not a retransmission. */
  | "mismatch"
  /** The answer to resend. */
  | Buffer
  /** Nothing cached: handle the request. */
  | undefined;

/**
 * Text that stands for a request's bytes. A signed request already carries a keyed digest of
 * everything before it, its MESSAGE-INTEGRITY(-SHA256) (only FINGERPRINT, a checksum of the same
 * bytes, may follow): its value and the request's length are the digest, with no hashing here.
 * Only requests that verified ever get an answer stored, and a forged request that copies a
 * genuine one's integrity value gets at most that answer again, sent (rate-limited) to the 5-tuple
 * that already had it. Anything unsigned (it never gets an answer stored) is hashed with SHA-256.
 */
export function requestDigest(request: StunMessage): string {
  const integrity = request.messageIntegrity ?? request.messageIntegritySha256;
  if (integrity === undefined) return createHash("sha256").update(request.buffer).digest("base64");
  return `${request.buffer.length}:${request.buffer.toString("latin1", integrity.offset, integrity.offset + integrity.length)}`;
}

export class TransactionCache {
  /** Oldest stored first, so the oldest entries are the first to go. */
  private readonly entries: RecencyMap<string, Entry>;

  constructor(
    private readonly ttlMs = TRANSACTION_CACHE_TTL_MS,
    maxEntries = TRANSACTION_CACHE_MAX_ENTRIES,
  ) {
    this.entries = new RecencyMap(maxEntries);
  }

  get size(): number {
    return this.entries.size;
  }

  /** What is cached for `key` and this request's `digest` (see `CachedAnswer`). */
  lookup(key: string, digest: string, now: number): CachedAnswer {
    const entry = this.entries.get(key);
    if (entry === undefined || now - entry.storedAt > this.ttlMs) return undefined;
    if (entry.request === null) return "ended";
    if (entry.request !== digest) return "mismatch";
    return entry.response === null ? "pending" : Buffer.from(entry.response, "latin1");
  }

  markPending(key: string, digest: string, now: number): void {
    this.entries.set(key, { request: digest, response: null, storedAt: now });
  }

  /** Stores the answer for the request `markPending` registered under `key`. */
  store(key: string, response: Buffer, now: number): void {
    const pending = this.entries.get(key);
    if (pending === undefined) return;
    pending.response = response.toString("latin1");
    pending.storedAt = now;
    this.entries.touch(key);
  }

  /**
   * What the request under `key`, made at `since`, created has ended (an allocation, deleted): a copy
   * of the request still in flight is dropped rather than handled anew, until `since` is older than
   * the TTL, as long as a retransmission may come.
   */
  markEnded(key: string, since: number, now: number): void {
    if (now - since > this.ttlMs) return;
    this.entries.set(key, { request: null, response: null, storedAt: since });
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  /** Drops entries older than the TTL. */
  prune(now: number): void {
    for (let oldest = this.entries.oldest(); oldest !== undefined && now - oldest[1].storedAt > this.ttlMs; oldest = this.entries.oldest()) {
      this.entries.shift();
    }
  }
}
