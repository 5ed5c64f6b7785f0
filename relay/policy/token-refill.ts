/**
 * The refill rule shared by the relay's token buckets (per-source answers, bandwidth): tokens earned
 * since the last reading, capped, with the clock's odd readings made harmless.
 */

/** A bucket's state: plain numbers, so the data path keeps it without allocating. */
export interface TokenState {
  /** Tokens available at `lastMs` (fractional between refills). */
  tokens: number;
  /** The clock reading `tokens` was brought up to date at; -Infinity: not yet (the bucket starts full). */
  lastMs: number;
}

/**
 * Brings `state` up to `nowMs`. A NaN reading changes nothing; a clock that steps back earns nothing
 * and refill continues from the new reading; an infinite gap (the first reading) earns nothing either.
 */
export function refill(state: TokenState, nowMs: number, tokensPerMs: number, capacity: number): void {
  const elapsedMs = nowMs - state.lastMs;
  if (elapsedMs > 0) {
    if (elapsedMs !== Infinity) {
      const tokens = state.tokens + elapsedMs * tokensPerMs;
      state.tokens = tokens < capacity ? tokens : capacity;
    }
    state.lastMs = nowMs;
  } else if (elapsedMs < 0) {
    state.lastMs = nowMs;
  }
}
