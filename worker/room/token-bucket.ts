/**
 * A token bucket as plain data, so it can live in a WebSocket attachment and survive hibernation.
 * Pure: the caller passes the clock and stores the returned bucket.
 */
export interface TokenBucket {
  /** Tokens left at `at`. */
  tokens: number;
  /** Milliseconds since the epoch when `tokens` was last computed. */
  at: number;
}

export function fullBucket(capacity: number, now: number): TokenBucket {
  return { tokens: capacity, at: now };
}

/** Refills for the time elapsed, then takes one token if there is one. */
export function takeToken(
  bucket: TokenBucket,
  now: number,
  capacity: number,
  refillPerSecond: number,
): { allowed: boolean; bucket: TokenBucket } {
  const elapsedSeconds = Math.max(0, now - bucket.at) / 1000;
  const tokens = Math.min(capacity, bucket.tokens + elapsedSeconds * refillPerSecond);
  if (tokens >= 1) return { allowed: true, bucket: { tokens: tokens - 1, at: now } };
  return { allowed: false, bucket: { tokens, at: now } };
}
