/**
 * TURN credentials for apps: `GET /v1/ice-servers` (an RTCIceServer list) and
 * `GET /v1/turn-credentials` (the TURN REST draft's shape). Both mint one short-lived credential
 * with the shared secret the relays know; nothing is stored.
 */
import { Hono, type Context } from "hono";
import { cors } from "hono/cors";
import { isValidUserId, USER_ID_RULE } from "../../shared/ids.js";
import { TurnCredentialError, type TurnCredential } from "../../shared/turn/credentials.js";
import { iceServersResponse, turnRestResponse } from "../../shared/turn/ice-servers.js";
import { identifyCaller } from "../auth/caller.js";
import { ISSUE_RATE_LIMIT_PERIOD_SECONDS, allowIssuance } from "../auth/issuance-limit.js";
import { readAccessConfig, readRoomConfig, readTurnConfig, type TurnConfig } from "../config.js";
import type { Env } from "../env.js";
import { httpError } from "../http-error.js";

export const credentials = new Hono<{ Bindings: Env }>();

credentials.use(
  "/v1/*",
  cors({
    origin: (origin, c: Context<{ Bindings: Env }>) => (readAccessConfig(c.env).allowedOrigins.includes(origin) ? origin : null),
    allowMethods: ["GET", "OPTIONS"],
    allowHeaders: ["Authorization"],
    maxAge: 600,
  }),
);

type Issued = { credential: TurnCredential; turn: TurnConfig };

/** Everything both endpoints share: configuration, caller, user, lifetime, rate limit, minting. */
async function issue(c: Context<{ Bindings: Env }>): Promise<Issued | Response> {
  const turn = readTurnConfig(c.env);
  if (turn === null) {
    return httpError(c, 503, "turn-not-configured", "this Worker has no TURN relay configured: set TURN_URLS and the TURN_SECRETS secret");
  }
  const identified = await identifyCaller(c.req.raw, readAccessConfig(c.env), readRoomConfig(c.env).maxMetaBytes);
  if (!identified.ok) return httpError(c, identified.status, identified.code, identified.message);
  const caller = identified.caller;

  const requestedUser = c.req.query("user");
  if (requestedUser !== undefined && caller.kind === "join-token") {
    return httpError(c, 400, "bad-request", "user is set by your join token's sub; only API-key callers may choose it");
  }
  if (requestedUser !== undefined && !isValidUserId(requestedUser)) {
    return httpError(c, 400, "bad-request", `user must be ${USER_ID_RULE}`);
  }
  const userId = caller.kind === "join-token" ? caller.userId : (requestedUser ?? crypto.randomUUID());

  // Only an app backend may ask for more than TURN_TTL: a room member's token (or, under
  // AUTH_MODE=open, anybody) must not turn into a credential that outlives the session by days.
  const longestTtl = caller.kind === "api-key" ? turn.maxTtlSeconds : turn.ttlSeconds;
  let ttl = turn.ttlSeconds;
  const requestedTtl = c.req.query("ttl");
  if (requestedTtl !== undefined) {
    if (!/^\d{1,9}$/.test(requestedTtl) || Number(requestedTtl) === 0) {
      return httpError(c, 400, "bad-request", `ttl must be a whole number of seconds from 1 to ${longestTtl}`);
    }
    ttl = Math.min(Number(requestedTtl), longestTtl);
  }

  if (!(await allowIssuance(c.env.ISSUE_RATE_LIMITER, caller.rateKey))) {
    c.header("Retry-After", String(ISSUE_RATE_LIMIT_PERIOD_SECONDS));
    return httpError(c, 429, "rate-limited", `too many credential requests from this caller; retry after ${ISSUE_RATE_LIMIT_PERIOD_SECONDS} s`);
  }

  try {
    return { credential: await turn.keyring.mint(userId, ttl), turn };
  } catch (error) {
    if (error instanceof TurnCredentialError) return httpError(c, 400, "bad-request", error.message);
    throw error;
  }
}

credentials.get("/v1/ice-servers", async (c) => {
  const issued = await issue(c);
  if (issued instanceof Response) return issued;
  c.header("Cache-Control", "no-store");
  return c.json(iceServersResponse(issued.credential, issued.turn.turnUrls, issued.turn.stunUrls));
});

credentials.get("/v1/turn-credentials", async (c) => {
  const issued = await issue(c);
  if (issued instanceof Response) return issued;
  c.header("Cache-Control", "no-store");
  return c.json(turnRestResponse(issued.credential, issued.turn.turnUrls));
});
