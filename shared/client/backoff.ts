/**
 * Reconnect delays: exponential with jitter (a random delay between half the exponential bound and
 * the bound), so a room full of clients dropped by the same network blip does not reconnect in
 * lockstep, and no retry comes sooner than half its bound.
 */
export interface BackoffOptions {
  /** The bound for the first retry. Default 250 ms. */
  initialDelayMs?: number;
  /** The largest bound. Default 10 s. */
  maxDelayMs?: number;
}

export const DEFAULT_INITIAL_DELAY_MS = 250;
export const DEFAULT_MAX_DELAY_MS = 10_000;

/** The delay before retry number `attempt` (0 is the first retry); `random` is in [0, 1). */
export function backoffDelayMs(attempt: number, options: BackoffOptions = {}, random: number = Math.random()): number {
  const initial = options.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  // 2^attempt overflows nothing below 2^1023, but cap the exponent anyway so the product stays exact.
  const bound = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round((bound / 2) * (1 + Math.min(Math.max(random, 0), 1)));
}
