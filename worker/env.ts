/**
 * The Worker's bindings and variables. Numbers arrive as strings from secrets and `.dev.vars`, and
 * as numbers from wrangler.toml `[vars]`; worker/config.ts reads and checks them.
 */
import type { FleetObject } from "./fleet/fleet-object.js";
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
  /** The relay fleet: one Durable Object, `idFromName("fleet")` (worker/fleet/fleet-object.ts). */
  FLEET: DurableObjectNamespace<FleetObject>;
  /**
   * Comma-separated fleet keys (a secret, each at least 32 characters): relays sign their fleet tokens
   * with one; all are accepted, for rotation. Unset: no relay may register and TURN_URLS is used.
   */
  FLEET_KEYS?: string;
  /** How many relays (nearest first) go into one answer: 1-10, default 2. */
  FLEET_PICK?: Setting;
  /** Most relay ids the fleet keeps: 1-1000, default 100. A new relay past it is refused (4408). */
  FLEET_MAX_RELAYS?: Setting;
  /** "lat,lon": where callers are when Cloudflare does not say (local workerd has no request.cf location). */
  FLEET_DEFAULT_LOCATION?: string;
  /** "on": the caller's location may come from the X-Relaykit-Location header. Development and tests only. */
  FLEET_LOCATION_HEADER?: string;
  /**
   * Where webhooks go (worker/webhooks/): an https:// URL, or http:// to loopback (127.0.0.0/8, [::1],
   * localhost) for development. Unset: no webhooks, nothing recorded.
   */
  WEBHOOK_URL?: string;
  /** Comma-separated webhook signing secrets (a secret, each at least 32 characters); the first is current, every one signs. */
  WEBHOOK_SECRET?: string;
  /** Tests only: the first retry delay in ms (default 1000), so a test sees every attempt in seconds. Never set it in production. */
  WEBHOOK_TEST_RETRY_BASE_MS?: Setting;
  /** Tests only: how long an empty room waits before room-finished, in ms (default ROOM_FINISH_DELAY_MS). Never set it in production. */
  WEBHOOK_TEST_ROOM_FINISH_DELAY_MS?: Setting;
  /** The built pages in dist/web/ (wrangler.toml `[assets]`); the room page is served through it. */
  ASSETS: Fetcher;
}
