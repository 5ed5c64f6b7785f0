/**
 * Who is asking for TURN credentials: an app backend with an API key, a browser with a room's join
 * token, or anyone when AUTH_MODE=open. Decided from the request alone; no state.
 */
import { verifyJoinToken } from "../../shared/signaling/join-token.js";
import { constantTimeEqual } from "../../shared/turn/credentials.js";
import type { AccessConfig } from "../config.js";

export type Caller =
  /** An app backend; it may name the TURN user with `?user=`. */
  | { kind: "api-key"; rateKey: string }
  /** A room member; the TURN user is `<room>/<sub>` from its token (shared/turn/turn-user.ts). */
  | { kind: "join-token"; room: string; userId: string; rateKey: string }
  /** Anyone, in development. */
  | { kind: "open"; rateKey: string };

export type CallerCheck = { ok: true; caller: Caller } | { ok: false; status: 401 | 503; code: string; message: string };

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The issuance budget's key for a room member: the token's room and subject, whether it asks the API
 * or joins the room (worker/routes/rooms.ts), so both spend the same budget.
 */
export function joinTokenRateKey(room: string, sub: string): string {
  return `sub:${room}/${sub}`;
}

/** The issuance budget's key for an anonymous caller (AUTH_MODE=open): its address as Cloudflare saw it. */
export function clientAddressRateKey(request: Request): string {
  return `ip:${request.headers.get("CF-Connecting-IP") ?? "local"}`;
}

export async function identifyCaller(request: Request, access: AccessConfig, maxMetaBytes: number): Promise<CallerCheck> {
  const authorization = request.headers.get("Authorization");
  if (authorization === null) {
    if (access.open) return { ok: true, caller: { kind: "open", rateKey: clientAddressRateKey(request) } };
    if (access.apiKeys.length === 0 && access.joinSecret === null) {
      return {
        ok: false,
        status: 503,
        code: "auth-not-configured",
        message: "no API_KEYS and no JOIN_SECRET are configured, so nobody may get credentials: set one with `wrangler secret put`, or AUTH_MODE=open for local development",
      };
    }
    return { ok: false, status: 401, code: "unauthorized", message: "send Authorization: Bearer <API key or join token>" };
  }

  const bearer = BEARER.exec(authorization)?.[1];
  if (bearer === undefined) {
    return { ok: false, status: 401, code: "unauthorized", message: "the Authorization header must be: Bearer <API key or join token>" };
  }
  // Every key is compared, so the time taken does not tell which one (if any) matched.
  let keyIndex = -1;
  access.apiKeys.forEach((key, index) => {
    if (constantTimeEqual(key, bearer)) keyIndex = index;
  });
  if (keyIndex >= 0) return { ok: true, caller: { kind: "api-key", rateKey: `key:${keyIndex}` } };

  if (access.joinSecret !== null && bearer.split(".").length === 3) {
    const checked = await verifyJoinToken(bearer, access.joinSecret, null, maxMetaBytes);
    if (!checked.ok) return { ok: false, status: 401, code: "unauthorized", message: checked.message };
    const { room, sub } = checked.claims;
    return { ok: true, caller: { kind: "join-token", room, userId: sub, rateKey: joinTokenRateKey(room, sub) } };
  }
  return { ok: false, status: 401, code: "unauthorized", message: "the bearer token is neither a configured API key nor a valid join token" };
}
