/**
 * The admin API, for app backends holding an API key (`Authorization: Bearer <API key>`):
 * - `GET /v1/rooms/:room` without Upgrade: who is in the room (with Upgrade it stays the WebSocket join,
 *   worker/routes/rooms.ts; a plain GET with no Authorization header at all keeps its 426 there).
 * - `GET /v1/rooms/:room/usage`: the relays' usage for the room, per peer and in total.
 * - `POST /v1/rooms/:room/peers/:peer/kick`, optional body `{"banSeconds": N}`: the peer out, 4004.
 * - `DELETE /v1/rooms/:room`: everyone out, 4005.
 * The edge checks the key, the names, the body and the rate limit; the room's object does the rest.
 * Join tokens are refused (403): a room member must not moderate its own room.
 */
import { Hono, type Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ROOM_NAME_RULE, USER_ID_RULE, isValidRoomName, isValidUserId } from "../../shared/ids.js";
import type { KickResult, RoomClosedResult, RoomUsage, RoomView } from "../../shared/signaling/protocol.js";
import { identifyCaller } from "../auth/caller.js";
import { ISSUE_RATE_LIMIT_PERIOD_SECONDS, allowIssuance } from "../auth/issuance-limit.js";
import { MAX_ADMIN_BODY_BYTES, MAX_BAN_SECONDS, readAccessConfig, readRoomConfig } from "../config.js";
import type { Env } from "../env.js";
import type { SignalingRoom } from "../room/signaling-room.js";
import { httpError } from "../http-error.js";
import { parseKickBody, readBoundedText } from "./admin-body.js";

type AdminContext = Context<{ Bindings: Env }>;

export const admin = new Hono<{ Bindings: Env }>();

/** The admin API's share of ISSUE_RATE_LIMITER: a key prefix of its own, so moderating spends no credential budget. */
export function adminRateKey(callerRateKey: string): string {
  return `admin:${callerRateKey}`;
}

/** Checks the API key and spends one unit of the caller's admin budget; a Response when refused. */
async function authorize(c: AdminContext): Promise<Response | null> {
  const access = readAccessConfig(c.env);
  if (access.apiKeys.length === 0) {
    return httpError(c, 503, "auth-not-configured", "the admin API needs an API key and this Worker has none: set API_KEYS with `wrangler secret put API_KEYS`");
  }
  if (c.req.header("Authorization") === undefined) {
    return httpError(c, 401, "unauthorized", "the admin API needs Authorization: Bearer <API key>");
  }
  const identified = await identifyCaller(c.req.raw, access, readRoomConfig(c.env).maxMetaBytes);
  if (!identified.ok) return httpError(c, identified.status, identified.code, identified.message);
  if (identified.caller.kind !== "api-key") {
    return httpError(c, 403, "forbidden", "the admin API takes an API key, not a join token: call it from your app backend");
  }
  if (!(await allowIssuance(c.env.ISSUE_RATE_LIMITER, adminRateKey(identified.caller.rateKey)))) {
    c.header("Retry-After", String(ISSUE_RATE_LIMIT_PERIOD_SECONDS));
    return httpError(c, 429, "rate-limited", `too many admin requests with this API key; retry after ${ISSUE_RATE_LIMIT_PERIOD_SECONDS} s`);
  }
  return null;
}

/** The room object's moderation methods, called over RPC. */
type RoomModeration = Pick<SignalingRoom, "view" | "usageView" | "kick" | "closeRoom">;

/**
 * The room's stub, seen as its moderation methods: the stub's own type maps every result through
 * the runtime's serializable-type check, which recurses without end over PeerMeta (a JSON value).
 * The results are plain JSON objects, which RPC carries as they are.
 */
function roomStub(c: AdminContext, room: string): RoomModeration {
  return c.env.ROOMS.get(c.env.ROOMS.idFromName(room)) as unknown as RoomModeration;
}

function badRoom(c: AdminContext): Response {
  return httpError(c, 400, "bad-room", `room names are ${ROOM_NAME_RULE}`);
}

/** Nothing the admin API answers may be kept by a cache: it is who is in a room right now. Errors included. */
function noStore(c: AdminContext): void {
  c.header("Cache-Control", "no-store");
}

admin.get("/v1/rooms/:room", async (c, next) => {
  // The WebSocket join, and the 426 a bare GET has always had, are the rooms route's.
  if (c.req.header("Upgrade")?.toLowerCase() === "websocket" || c.req.header("Authorization") === undefined) return next();
  noStore(c);
  const room = c.req.param("room");
  if (!isValidRoomName(room)) return badRoom(c);
  const refused = await authorize(c);
  if (refused !== null) return refused;
  const view: RoomView = await roomStub(c, room).view(room);
  return c.json(view);
});

admin.get("/v1/rooms/:room/usage", async (c) => {
  noStore(c);
  const room = c.req.param("room");
  if (!isValidRoomName(room)) return badRoom(c);
  const refused = await authorize(c);
  if (refused !== null) return refused;
  const usage: RoomUsage = await roomStub(c, room).usageView(room);
  return c.json(usage);
});

admin.post("/v1/rooms/:room/peers/:peer/kick", async (c) => {
  noStore(c);
  const room = c.req.param("room");
  const peer = c.req.param("peer");
  if (!isValidRoomName(room)) return badRoom(c);
  if (!isValidUserId(peer)) return httpError(c, 400, "bad-peer", `peer ids are ${USER_ID_RULE}`);
  const refused = await authorize(c);
  if (refused !== null) return refused;

  const text = await readBoundedText(c.req.raw, MAX_ADMIN_BODY_BYTES);
  if (text === null) {
    return httpError(c, 413, "too-large", `the body is over ${MAX_ADMIN_BODY_BYTES} bytes; send at most {"banSeconds": N}`);
  }
  const body = parseKickBody(text, MAX_BAN_SECONDS);
  if (!body.ok) return httpError(c, 400, "bad-request", body.message);
  if (body.banSeconds > 0 && !c.env.JOIN_SECRET) {
    return httpError(c, 400, "bad-request", "a ban names the join token's sub, and this Worker has no JOIN_SECRET: peer ids are random per join, so a ban would keep nobody out. Kick without banSeconds, or set JOIN_SECRET and join with tokens");
  }

  const outcome = await roomStub(c, room).kick(room, peer, body.banSeconds);
  if (!outcome.ok) {
    const status: ContentfulStatusCode = outcome.code === "peer-not-found" ? 404 : 409;
    return httpError(c, status, outcome.code, outcome.message);
  }
  const result: KickResult = outcome.result;
  return c.json(result);
});

admin.delete("/v1/rooms/:room", async (c) => {
  noStore(c);
  const room = c.req.param("room");
  if (!isValidRoomName(room)) return badRoom(c);
  const refused = await authorize(c);
  if (refused !== null) return refused;
  const closed: RoomClosedResult = await roomStub(c, room).closeRoom(room);
  return c.json(closed);
});
