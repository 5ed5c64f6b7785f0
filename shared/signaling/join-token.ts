/**
 * Join tokens: an HS256 JWT that an app's backend signs with `JOIN_SECRET` to let one user into one
 * room. The Worker verifies it before accepting the WebSocket; app backends mint it with
 * `mintJoinToken` (Web Crypto only, so it runs in Node, Workers and Deno alike).
 *
 * Claims: `room` (must equal the room joined), `sub` (becomes the peer id), `exp` (required),
 * optional `meta` (the peer's initial metadata), and the usual optional `nbf` / `iat`.
 */
import { sign, verify } from "hono/jwt";
import { USER_ID_RULE, isValidUserId } from "../ids.js";
import type { PeerMeta } from "./protocol.js";
import { checkMeta } from "./validate.js";

/** A join token's claims: the room, the peer id (`sub`), the expiry, and optional initial metadata. */
export interface JoinTokenClaims {
  room: string;
  sub: string;
  exp: number;
  meta?: PeerMeta;
}


export type JoinTokenCheck = { ok: true; claims: JoinTokenClaims } | { ok: false; message: string };

export interface MintJoinTokenOptions {
  room: string;
  /** The peer id this user gets in the room. */
  sub: string;
  /** Lifetime of the token (not of the session: a joined peer stays). Default 300 s. */
  ttlSeconds?: number;
  meta?: PeerMeta;
  /** For tests and clocks you control: "now" in Unix seconds. */
  now?: number;
}

/**
 * Signs a join token (HS256) for one user in one room with the Worker's JOIN_SECRET; the Worker checks
 * it before accepting the WebSocket. Throws when `sub` is not a valid peer id.
 */
export async function mintJoinToken(secret: string, options: MintJoinTokenOptions): Promise<string> {
  if (!isValidUserId(options.sub)) {
    throw new Error(`sub ${JSON.stringify(options.sub)} is not a valid peer id: use ${USER_ID_RULE}`);
  }
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    room: options.room,
    sub: options.sub,
    iat: now,
    exp: now + (options.ttlSeconds ?? 300),
  };
  if (options.meta !== undefined) claims.meta = options.meta;
  return sign(claims as Parameters<typeof sign>[0], secret, "HS256");
}

/** Why hono's verifier refused a token, in words a developer can act on. */
function describeJwtError(error: unknown): string {
  const name = error instanceof Error ? error.name : "";
  switch (name) {
    case "JwtTokenExpired":
      return "the join token has expired; ask the app's backend for a new one";
    case "JwtTokenNotBefore":
      return "the join token is not valid yet (nbf is in the future)";
    case "JwtTokenIssuedAt":
      return "the join token was issued in the future (iat); check the backend's clock";
    case "JwtTokenSignatureMismatched":
      return "the join token's signature does not match: it was not signed with this Worker's JOIN_SECRET";
    case "JwtAlgorithmMismatch":
    case "JwtHeaderInvalid":
      return "the join token must be a JWT signed with HS256";
    default:
      return "the join token is not a well-formed JWT";
  }
}

/**
 * Verifies signature, time claims and the room (any room when `room` is null, as for the TURN
 * credentials a room's member may fetch); returns the claims or a reason. Never throws.
 */
export async function verifyJoinToken(
  token: string,
  secret: string,
  room: string | null,
  maxMetaBytes: number,
): Promise<JoinTokenCheck> {
  let payload: Record<string, unknown>;
  try {
    payload = (await verify(token, secret, "HS256")) as Record<string, unknown>;
  } catch (error) {
    return { ok: false, message: describeJwtError(error) };
  }
  if (typeof payload.exp !== "number") return { ok: false, message: "the join token needs an exp claim" };
  if (typeof payload.room !== "string" || (room !== null && payload.room !== room)) {
    return { ok: false, message: `the join token is for another room, not ${JSON.stringify(room)}` };
  }
  if (typeof payload.sub !== "string" || !isValidUserId(payload.sub)) {
    return { ok: false, message: `the join token's sub must be a peer id: ${USER_ID_RULE}` };
  }
  const claims: JoinTokenClaims = { room: payload.room, sub: payload.sub, exp: payload.exp };
  if (payload.meta !== undefined) {
    const meta = checkMeta(payload.meta, maxMetaBytes);
    if (!meta.ok) return { ok: false, message: `the join token's meta claim: ${meta.message}` };
    claims.meta = meta.meta;
  }
  return { ok: true, claims };
}
