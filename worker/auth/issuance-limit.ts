/**
 * The credential issuance limit (wrangler.toml `[[ratelimits]] ISSUE_RATE_LIMITER`, 50 per 10 s per
 * caller). Every TURN credential the Worker mints spends one unit of its caller's budget, whether it
 * goes out from `/v1/ice-servers`, `/v1/turn-credentials` or a room's welcome frame: joining and
 * rejoining a room is no way around the API's limit.
 */

/** The period of ISSUE_RATE_LIMITER in wrangler.toml: a refused caller may retry after it. */
export const ISSUE_RATE_LIMIT_PERIOD_SECONDS = 10;

/** Spends one issuance for `rateKey`; false when the caller's budget is spent. No binding: no limit. */
export async function allowIssuance(limiter: RateLimit | undefined, rateKey: string): Promise<boolean> {
  if (limiter === undefined) return true;
  return (await limiter.limit({ key: rateKey })).success;
}
