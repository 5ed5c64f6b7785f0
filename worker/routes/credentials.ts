/**
 * TURN credentials for apps: `GET /v1/ice-servers` (an RTCIceServer list) and
 * `GET /v1/turn-credentials` (the TURN REST draft's shape). Both mint one short-lived credential
 * with the shared secret the relays know, for the relays worker/fleet/relay-choice.ts picks (or
 * TURN_URLS); nothing is stored.
 *
 * `POST /v1/turn-credentials/:username/revoke` (API key only, the shape Cloudflare's TURN service
 * uses): the fleet revokes that username on every relay until it expires (worker/fleet/fleet-object.ts).
 */
import { Hono, type Context } from "hono";
import { cors } from "hono/cors";
import { isValidRoomName, isValidUserId, ROOM_NAME_RULE, USER_ID_RULE } from "../../shared/ids.js";
import { DEFAULT_CLOCK_SKEW_SECONDS, TurnCredentialError, checkTurnUsername, nowSeconds, type TurnCredential } from "../../shared/turn/credentials.js";
import { turnRestResponse } from "../../shared/turn/ice-servers.js";
import { roomMemberUser } from "../../shared/turn/turn-user.js";
import { bannedMessage } from "../room/moderation.js";
import { identifyCaller, type Caller } from "../auth/caller.js";
import { ISSUE_RATE_LIMIT_PERIOD_SECONDS, allowIssuance } from "../auth/issuance-limit.js";
import { readAccessConfig, readFleetConfig, readRoomConfig, readTurnConfig } from "../config.js";
import { NO_RELAY_RETRY_AFTER_SECONDS, callerLocation, chooseRelays, iceServersFor, turnUrisFor, type RelayChoice } from "../fleet/relay-choice.js";
import { FLEET_OBJECT_NAME } from "../fleet/fleet-object.js";
import type { Env } from "../env.js";
import { httpError } from "../http-error.js";

export const credentials = new Hono<{ Bindings: Env }>();

credentials.use(
  "/v1/*",
  cors({
    origin: (origin, c: Context<{ Bindings: Env }>) => (readAccessConfig(c.env).allowedOrigins.includes(origin) ? origin : null),
    allowMethods: ["GET", "OPTIONS"],
    allowHeaders: ["Authorization", "X-Relaykit-Location"],
    maxAge: 600,
  }),
);

type Issued = { credential: TurnCredential; choice: Exclude<RelayChoice, { kind: "none" }> };

/**
 * The TURN user a caller gets: a join token's `<room>/<sub>`; for an API key or under AUTH_MODE=open,
 * `room` and `peer` together (a room member), or `user`, or else a random plain user.
 */
function turnUserFor(c: Context<{ Bindings: Env }>, caller: Caller): string | Response {
  const user = c.req.query("user");
  const room = c.req.query("room");
  const peer = c.req.query("peer");
  if (caller.kind === "join-token") {
    if (user !== undefined || room !== undefined || peer !== undefined) {
      return httpError(c, 400, "bad-request", "user, room and peer are set by your join token (its room and sub); only API-key callers may choose them");
    }
    return roomMemberUser(caller.room, caller.userId);
  }
  if (room !== undefined || peer !== undefined) {
    if (room === undefined || peer === undefined || user !== undefined) {
      return httpError(c, 400, "bad-request", "pass room and peer together (a room member's credential), or user alone, not both");
    }
    if (!isValidRoomName(room)) return httpError(c, 400, "bad-request", `room must be ${ROOM_NAME_RULE}`);
    if (!isValidUserId(peer)) return httpError(c, 400, "bad-request", `peer must be ${USER_ID_RULE}`);
    return roomMemberUser(room, peer);
  }
  if (user !== undefined && !isValidUserId(user)) return httpError(c, 400, "bad-request", `user must be ${USER_ID_RULE}`);
  return user ?? crypto.randomUUID();
}

/** Everything both endpoints share: configuration, caller, user, lifetime, relays, rate limit, minting. */
async function issue(c: Context<{ Bindings: Env }>): Promise<Issued | Response> {
  const turn = readTurnConfig(c.env);
  if (turn === null) {
    return httpError(c, 503, "turn-not-configured", "this Worker has no TURN relay configured: set the TURN_SECRETS secret, and TURN_URLS or FLEET_KEYS (a relay fleet)");
  }
  const identified = await identifyCaller(c.req.raw, readAccessConfig(c.env), readRoomConfig(c.env).maxMetaBytes);
  if (!identified.ok) return httpError(c, identified.status, identified.code, identified.message);
  const caller = identified.caller;

  const userId = turnUserFor(c, caller);
  if (userId instanceof Response) return userId;
  if (caller.kind === "join-token") {
    // A banned member keeps a valid join token; the room's ban must hold for the relay too.
    const bannedUntil = await c.env.ROOMS.get(c.env.ROOMS.idFromName(caller.room)).bannedUntil(caller.userId);
    if (bannedUntil !== null) return httpError(c, 403, "banned", bannedMessage(bannedUntil));
  }

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

  // Relays before the budget: a caller refused for want of a relay has spent nothing.
  const fleet = readFleetConfig(c.env);
  const choice = await chooseRelays(c.env, turn, fleet, callerLocation(c.req.raw, fleet));
  if (choice.kind === "none") {
    c.header("Retry-After", String(NO_RELAY_RETRY_AFTER_SECONDS));
    return httpError(c, 503, "no-relay-available", choice.message);
  }

  if (!(await allowIssuance(c.env.ISSUE_RATE_LIMITER, caller.rateKey))) {
    c.header("Retry-After", String(ISSUE_RATE_LIMIT_PERIOD_SECONDS));
    return httpError(c, 429, "rate-limited", `too many credential requests from this caller; retry after ${ISSUE_RATE_LIMIT_PERIOD_SECONDS} s`);
  }

  try {
    return { credential: await turn.keyring.mint(userId, ttl), choice };
  } catch (error) {
    if (error instanceof TurnCredentialError) return httpError(c, 400, "bad-request", error.message);
    throw error;
  }
}

credentials.get("/v1/ice-servers", async (c) => {
  const issued = await issue(c);
  if (issued instanceof Response) return issued;
  c.header("Cache-Control", "no-store");
  return c.json(iceServersFor(issued.choice, issued.credential));
});

credentials.get("/v1/turn-credentials", async (c) => {
  const issued = await issue(c);
  if (issued instanceof Response) return issued;
  c.header("Cache-Control", "no-store");
  return c.json(turnRestResponse(issued.credential, turnUrisFor(issued.choice)));
});

/** The rate-limit key prefix of revocations: their own budget in ISSUE_RATE_LIMITER, apart from issuance. */
export const REVOKE_RATE_KEY_PREFIX = "revoke:";

/** What a revocation answers: the username, and until when relays refuse it (unix seconds). */
export interface RevokeResponse {
  revoked: string;
  until: number;
}

credentials.post("/v1/turn-credentials/:username/revoke", async (c) => {
  // API keys only: a join token is a room member's, and open mode is anyone's.
  const identified = await identifyCaller(c.req.raw, { ...readAccessConfig(c.env), open: false }, readRoomConfig(c.env).maxMetaBytes);
  if (!identified.ok) return httpError(c, identified.status, identified.code, identified.message);
  if (identified.caller.kind !== "api-key") return httpError(c, 403, "forbidden", "revoking a TURN credential needs an API key (Authorization: Bearer <API key>), not a join token");
  if (readFleetConfig(c.env) === null) {
    return httpError(c, 503, "fleet-not-configured", "this Worker has no FLEET_KEYS, so it cannot reach relays to revoke anything: run `wrangler secret put FLEET_KEYS` and register the relays (--fleet-url)");
  }
  if (!(await allowIssuance(c.env.ISSUE_RATE_LIMITER, `${REVOKE_RATE_KEY_PREFIX}${identified.caller.rateKey}`))) {
    c.header("Retry-After", String(ISSUE_RATE_LIMIT_PERIOD_SECONDS));
    return httpError(c, 429, "rate-limited", `too many revocations from this API key; retry after ${ISSUE_RATE_LIMIT_PERIOD_SECONDS} s`);
  }

  const username = c.req.param("username");
  const checked = checkTurnUsername(username, { acceptExpired: true });
  if (!checked.ok) {
    return httpError(c, 400, "bad-request", `${checked.message}; URL-encode it in the path (':' as %3A, '/' as %2F)`);
  }
  // Relays accept a credential up to the clock skew past its expiry: revoked until then.
  const until = checked.expiresAt + DEFAULT_CLOCK_SKEW_SECONDS;
  c.header("Cache-Control", "no-store");
  // Expired already: no relay takes it any more, so there is nothing to revoke.
  if (until < nowSeconds()) return c.json({ revoked: username, until } satisfies RevokeResponse);

  const result = await c.env.FLEET.get(c.env.FLEET.idFromName(FLEET_OBJECT_NAME)).revoke({ username, until });
  if (!result.ok) return httpError(c, result.code === "revocations-full" ? 503 : 400, result.code, result.message);
  return c.json({ revoked: username, until } satisfies RevokeResponse);
});
