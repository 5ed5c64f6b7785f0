/**
 * The Worker's bindings and variables. Numbers arrive as strings from secrets and `.dev.vars`, and
 * as numbers from wrangler.toml `[vars]`; worker/config.ts reads and checks them.
 */
import type { SignalingRoom } from "./room/signaling-room.js";

type Setting = string | number | undefined;

export interface Env {
  /** One Durable Object per room, addressed by `idFromName(room)`. */
  ROOMS: DurableObjectNamespace<SignalingRoom>;
  /** HS256 secret for join tokens. Unset: rooms are open and peer ids random (development only). */
  JOIN_SECRET?: string;
  ROOM_CAPACITY?: Setting;
  MAX_FRAME_BYTES?: Setting;
  MAX_META_BYTES?: Setting;
  PEER_IDLE_TIMEOUT_SECONDS?: Setting;
  RESUME_GRACE_SECONDS?: Setting;
  RESUME_QUEUE_LIMIT?: Setting;
  RATE_LIMIT_BURST?: Setting;
  RATE_LIMIT_PER_SECOND?: Setting;
  ABUSE_STRIKE_LIMIT?: Setting;

  /** Comma-separated TURN shared secrets (a secret): the first signs, all are accepted by the relays. */
  TURN_SECRETS?: string;
  /** Comma-separated `turn:` / `turns:` URLs handed to clients. */
  TURN_URLS?: string;
  /** Comma-separated `stun:` URLs; unset or empty: derived from the `turn:` URLs. */
  STUN_URLS?: string;
  TURN_TTL?: Setting;
  TURN_MAX_TTL?: Setting;
  /** Comma-separated API keys for app backends (a secret). */
  API_KEYS?: string;
  /** `open`: credentials for anyone, no key or token (local development only). */
  AUTH_MODE?: string;
  /** Comma-separated origins allowed to call the credential endpoints from a browser. */
  ALLOWED_ORIGINS?: string;
  /** Workers rate-limiting binding for credential issuance, per caller. */
  ISSUE_RATE_LIMITER?: RateLimit;
  /** The built pages in dist/web/ (wrangler.toml `[assets]`); the room page is served through it. */
  ASSETS: Fetcher;
}
