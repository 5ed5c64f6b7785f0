/**
 * Requests that surely meet a refusal from ISSUE_RATE_LIMITER (50 per 10 s per key, wrangler.toml).
 * The limiter counts in fixed windows, so a burst that straddles a window's end gets up to 50 in each
 * window; 101 requests in quick succession overflow one of the two. (Loops of 80 passed for months
 * and then, once in CI, straddled a boundary and met no refusal.)
 */
export const ISSUE_ATTEMPTS_PAST_ANY_WINDOW = 101;
