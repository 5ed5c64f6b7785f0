/**
 * When a failed webhook is tried again: pure, so the schedule can be checked without waiting for it.
 */
import { WEBHOOK_MAX_ATTEMPTS, WEBHOOK_RETRY_MAX_DELAY_MS } from "../config.js";

/** The wait after the `attemptsMade`-th failed attempt: base, 2 x base, 4 x base… at most WEBHOOK_RETRY_MAX_DELAY_MS. */
export function retryDelayMs(attemptsMade: number, baseMs: number): number {
  const exponent = Math.max(0, attemptsMade - 1);
  return Math.min(baseMs * 2 ** Math.min(exponent, 30), WEBHOOK_RETRY_MAX_DELAY_MS);
}

/** True when an event that has failed `attemptsMade` times is given up. */
export function isLastAttempt(attemptsMade: number): boolean {
  return attemptsMade >= WEBHOOK_MAX_ATTEMPTS;
}
