/**
 * Worker settings: read from the environment (wrangler.toml `[vars]`, `.dev.vars`, `wrangler secret put`),
 * checked once, with every default named here. A bad value fails the request with a message that
 * names the variable, rather than running with a limit nobody chose.
 */
import { DEFAULT_TURN_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS, TurnKeyring } from "../shared/turn/credentials.js";
import { isStunUrl, isTurnUrl, stunUrlsFromTurnUrls } from "../shared/turn/ice-servers.js";
import { isGeoLocation, type GeoLocation } from "../shared/fleet/protocol.js";
import { readFleetKeys } from "../shared/fleet/token.js";
import type { Env } from "./env.js";

export interface RoomConfig {
  /** ROOM_CAPACITY: peers per room, including dropped peers still inside their resume grace period. */
  capacity: number;
  /** MAX_FRAME_BYTES: a larger frame closes the connection with 1009. */
  maxFrameBytes: number;
  /** MAX_META_BYTES: the largest `meta` object, as JSON text. */
  maxMetaBytes: number;
  /** PEER_IDLE_TIMEOUT_SECONDS: a connection with no frame and no ping for this long is closed as stale. */
  idleTimeoutMs: number;
  /** RESUME_GRACE_SECONDS: how long a dropped peer keeps its id and queue before the others see it leave. */
  resumeGraceMs: number;
  /** RESUME_QUEUE_LIMIT: signals kept for a dropped peer; more are refused with queue-full. */
  resumeQueueLimit: number;
  /** RATE_LIMIT_BURST: frames a connection may send at once (ICE candidates come in bursts). */
  rateBurst: number;
  /** RATE_LIMIT_PER_SECOND: frames per second a connection may sustain. */
  ratePerSecond: number;
  /** ABUSE_STRIKE_LIMIT: bad or rate-limited frames tolerated (one forgiven per second) before closing with 1008. */
  strikeLimit: number;
}

export const ROOM_DEFAULTS: RoomConfig = {
  capacity: 16,
  maxFrameBytes: 64 * 1024,
  maxMetaBytes: 2 * 1024,
  idleTimeoutMs: 60_000,
  resumeGraceMs: 30_000,
  resumeQueueLimit: 64,
  rateBurst: 100,
  ratePerSecond: 25,
  strikeLimit: 20,
};

/** Strikes forgiven per second: a client that errs now and then is never closed. */
export const STRIKES_FORGIVEN_PER_SECOND = 1;

export class ConfigError extends Error {
  override name = "ConfigError";
}

interface NumberRule {
  variable: keyof Env;
  min: number;
  max: number;
  integer: boolean;
}

function readNumber(env: Env, rule: NumberRule, fallback: number): number {
  const raw = env[rule.variable];
  if (raw === undefined || raw === "") return fallback;
  const value = typeof raw === "number" ? raw : Number(String(raw).trim());
  const kind = rule.integer ? "a whole number" : "a number";
  if (!Number.isFinite(value) || (rule.integer && !Number.isInteger(value)) || value < rule.min || value > rule.max) {
    throw new ConfigError(
      `${rule.variable} is ${JSON.stringify(raw)}; it must be ${kind} from ${rule.min} to ${rule.max}. Fix it in wrangler.toml [vars] or .dev.vars.`,
    );
  }
  return value;
}

export function readRoomConfig(env: Env): RoomConfig {
  const d = ROOM_DEFAULTS;
  return {
    capacity: readNumber(env, { variable: "ROOM_CAPACITY", min: 1, max: 256, integer: true }, d.capacity),
    maxFrameBytes: readNumber(env, { variable: "MAX_FRAME_BYTES", min: 1024, max: 1024 * 1024, integer: true }, d.maxFrameBytes),
    maxMetaBytes: readNumber(env, { variable: "MAX_META_BYTES", min: 2, max: 8 * 1024, integer: true }, d.maxMetaBytes),
    idleTimeoutMs:
      1000 * readNumber(env, { variable: "PEER_IDLE_TIMEOUT_SECONDS", min: 1, max: 3600, integer: false }, d.idleTimeoutMs / 1000),
    resumeGraceMs:
      1000 * readNumber(env, { variable: "RESUME_GRACE_SECONDS", min: 0, max: 3600, integer: false }, d.resumeGraceMs / 1000),
    resumeQueueLimit: readNumber(env, { variable: "RESUME_QUEUE_LIMIT", min: 0, max: 1000, integer: true }, d.resumeQueueLimit),
    rateBurst: readNumber(env, { variable: "RATE_LIMIT_BURST", min: 1, max: 10_000, integer: true }, d.rateBurst),
    ratePerSecond: readNumber(env, { variable: "RATE_LIMIT_PER_SECOND", min: 0.1, max: 10_000, integer: false }, d.ratePerSecond),
    strikeLimit: readNumber(env, { variable: "ABUSE_STRIKE_LIMIT", min: 1, max: 10_000, integer: true }, d.strikeLimit),
  };
}

// -----------------------------------------------------------------------------------------------
// TURN credentials

export interface TurnConfig {
  /** TURN_SECRETS */
  keyring: TurnKeyring;
  /** TURN_URLS; may be empty when FLEET_KEYS is set (the fleet's relays are handed out instead). */
  turnUrls: string[];
  /** STUN_URLS, or the `turn:` hosts as `stun:` URLs */
  stunUrls: string[];
  /**
   * TURN_TTL: lifetime of a credential when the caller does not ask for one, and the most a room
   * member (join token), an anonymous caller (AUTH_MODE=open) or a welcome frame ever gets.
   */
  ttlSeconds: number;
  /**
   * TURN_MAX_TTL: the longest lifetime an app backend (API key) may ask for with `?ttl=`. At most
   * MAX_CREDENTIAL_TTL_SECONDS, the maximum every relay enforces.
   */
  maxTtlSeconds: number;
}

/** TURN_TTL's default; the number lives in shared/turn/credentials.ts, which app backends mint with too. */
export { DEFAULT_TURN_TTL_SECONDS };
/** As short as `?ttl=` would allow in practice: below a minute only makes sense in tests of refresh. */
export const MIN_TURN_TTL_SECONDS = 10;

/** Splits a comma-separated setting; empty entries are dropped. */
export function readList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((item) => item.trim()).filter((item) => item.length > 0);
}

/**
 * A TURN_MAX_TTL above the shared maximum would issue credentials that every relay refuses (ours
 * checks MAX_CREDENTIAL_TTL_SECONDS, or its lower `--max-credential-ttl`): a call would fail at the
 * relay, long after the mistake. Refused here with what to do instead.
 */
function checkMaxTtlWithinRelayLimit(raw: Env["TURN_MAX_TTL"]): void {
  if (raw === undefined || raw === "") return;
  const value = typeof raw === "number" ? raw : Number(String(raw).trim());
  if (Number.isFinite(value) && value > MAX_CREDENTIAL_TTL_SECONDS) {
    throw new ConfigError(
      `TURN_MAX_TTL is ${JSON.stringify(raw)}, longer than relays accept: a relaykit relay refuses credentials that live longer than ${MAX_CREDENTIAL_TTL_SECONDS} s (48 h), or than its --max-credential-ttl if that is lower. Lower TURN_MAX_TTL to ${MAX_CREDENTIAL_TTL_SECONDS} or less (no more than the relays' --max-credential-ttl) in wrangler.toml [vars] or .dev.vars.`,
    );
  }
}

/**
 * The TURN settings, or null when TURN is not configured (no secrets, and no URLs or fleet). With
 * FLEET_KEYS set, TURN_URLS is optional: registered relays bring their own URLs, and TURN_URLS is
 * only the fallback for when none is registered or none is eligible.
 */
export function readTurnConfig(env: Env): TurnConfig | null {
  const secrets = readList(env.TURN_SECRETS);
  const turnUrls = readList(env.TURN_URLS);
  const fleet = readList(env.FLEET_KEYS).length > 0;
  if (secrets.length === 0 && turnUrls.length === 0) return null;
  if (secrets.length === 0) throw new ConfigError("TURN_URLS is set but TURN_SECRETS is not: run `wrangler secret put TURN_SECRETS` with the relay's shared secret");
  if (turnUrls.length === 0 && !fleet) throw new ConfigError("TURN_SECRETS is set but TURN_URLS is not: list the relay's turn:/turns: URLs, comma-separated (or set FLEET_KEYS and let relays register)");
  const badTurn = turnUrls.find((url) => !isTurnUrl(url));
  if (badTurn !== undefined) throw new ConfigError(`TURN_URLS has ${JSON.stringify(badTurn)}; each entry must start with turn: or turns:`);
  const explicitStun = readList(env.STUN_URLS);
  const stunUrls = explicitStun.length > 0 ? explicitStun : stunUrlsFromTurnUrls(turnUrls);
  const badStun = stunUrls.find((url) => !isStunUrl(url));
  if (badStun !== undefined) throw new ConfigError(`STUN_URLS has ${JSON.stringify(badStun)}; each entry must start with stun: or stuns:`);
  checkMaxTtlWithinRelayLimit(env.TURN_MAX_TTL);
  const maxTtlSeconds = readNumber(env, { variable: "TURN_MAX_TTL", min: 60, max: MAX_CREDENTIAL_TTL_SECONDS, integer: true }, MAX_CREDENTIAL_TTL_SECONDS);
  const ttlSeconds = readNumber(env, { variable: "TURN_TTL", min: MIN_TURN_TTL_SECONDS, max: maxTtlSeconds, integer: true }, Math.min(DEFAULT_TURN_TTL_SECONDS, maxTtlSeconds));
  return { keyring: new TurnKeyring(secrets), turnUrls, stunUrls, ttlSeconds, maxTtlSeconds };
}

// -----------------------------------------------------------------------------------------------
// Who may ask for credentials

export interface AccessConfig {
  /** API_KEYS: app backends present one as `Authorization: Bearer <key>`. */
  apiKeys: string[];
  /** JOIN_SECRET: browsers present a room's join token as `Authorization: Bearer <jwt>`. */
  joinSecret: string | null;
  /** AUTH_MODE=open: anyone may ask, without a key or token. */
  open: boolean;
  /** ALLOWED_ORIGINS: browser origins allowed by CORS. */
  allowedOrigins: string[];
}

export function readAccessConfig(env: Env): AccessConfig {
  const mode = (env.AUTH_MODE ?? "").trim();
  if (mode !== "" && mode !== "open") {
    throw new ConfigError(`AUTH_MODE is ${JSON.stringify(mode)}; it is either unset (keys and tokens required) or "open" (development only)`);
  }
  return {
    apiKeys: readList(env.API_KEYS),
    joinSecret: env.JOIN_SECRET ? env.JOIN_SECRET : null,
    open: mode === "open",
    allowedOrigins: readList(env.ALLOWED_ORIGINS),
  };
}

/**
 * Why this Worker refuses open rooms (rooms without join tokens), or null when it may run them.
 *
 * Without JOIN_SECRET anyone may join any room under any id. That is the point of a local demo, and
 * a hole in production. A Worker with a relay secret (TURN_SECRETS) or app backends (API_KEYS) is
 * taken for production: there open rooms need AUTH_MODE=open, said on purpose. A Worker with none of
 * these (a fresh clone, `wrangler dev`) runs open rooms as before.
 */
export function openRoomsRefusal(env: Env): string | null {
  if (env.JOIN_SECRET) return null;
  const access = readAccessConfig(env);
  if (access.open) return null;
  const set = [readList(env.TURN_SECRETS).length > 0 && "TURN_SECRETS", access.apiKeys.length > 0 && "API_KEYS"].filter((name) => name !== false);
  if (set.length === 0) return null;
  return `this Worker has ${set.join(" and ")} but no JOIN_SECRET, so its rooms would be open to anyone under any peer id; it refuses them. Set JOIN_SECRET (\`wrangler secret put JOIN_SECRET\`) and join with tokens, or set AUTH_MODE=open to run open rooms on purpose (development only)`;
}

// -----------------------------------------------------------------------------------------------
// The relay fleet

export interface FleetConfig {
  /** FLEET_KEYS: every key verifies a relay's fleet token (rotation). */
  keys: string[];
  /** FLEET_PICK: relays per answer, nearest first. */
  pick: number;
  /** FLEET_MAX_RELAYS: relay ids the fleet keeps; a new one past it is refused. */
  maxRelays: number;
  /** FLEET_DEFAULT_LOCATION: the caller's location when neither the header nor request.cf gives one. */
  defaultLocation: GeoLocation | null;
  /** FLEET_LOCATION_HEADER=on: read X-Relaykit-Location (development and tests only: any client can set it). */
  locationHeader: boolean;
}

export const FLEET_DEFAULTS = { pick: 2, maxRelays: 100 } as const;

/** Reads "lat,lon" in degrees; null when it is not that. */
export function parseLocation(text: string): GeoLocation | null {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
  if (match === null) return null;
  const location = { lat: Number(match[1]), lon: Number(match[2]) };
  return isGeoLocation(location) ? location : null;
}

/** The fleet settings, or null when FLEET_KEYS is not set (no relay may register). */
export function readFleetConfig(env: Env): FleetConfig | null {
  if (readList(env.FLEET_KEYS).length === 0) return null;
  let keys: string[];
  try {
    keys = readFleetKeys(env.FLEET_KEYS ?? "");
  } catch (error) {
    throw new ConfigError(`FLEET_KEYS: ${(error as Error).message}. Set it again with \`wrangler secret put FLEET_KEYS\` (comma-separated for rotation).`);
  }
  const rawLocation = (env.FLEET_DEFAULT_LOCATION ?? "").trim();
  const defaultLocation = rawLocation === "" ? null : parseLocation(rawLocation);
  if (rawLocation !== "" && defaultLocation === null) {
    throw new ConfigError(`FLEET_DEFAULT_LOCATION is ${JSON.stringify(rawLocation)}; it must be "<latitude>,<longitude>" in degrees (-90..90, -180..180), e.g. "50.11,8.68", or unset. Fix it in wrangler.toml [vars] or .dev.vars.`);
  }
  const header = (env.FLEET_LOCATION_HEADER ?? "").trim();
  if (header !== "" && header !== "on" && header !== "off") {
    throw new ConfigError(`FLEET_LOCATION_HEADER is ${JSON.stringify(header)}; it is "on" (development and tests only) or "off"/unset.`);
  }
  return {
    keys,
    pick: readNumber(env, { variable: "FLEET_PICK", min: 1, max: 10, integer: true }, FLEET_DEFAULTS.pick),
    maxRelays: readNumber(env, { variable: "FLEET_MAX_RELAYS", min: 1, max: 1000, integer: true }, FLEET_DEFAULTS.maxRelays),
    defaultLocation,
    locationHeader: header === "on",
  };
}

// -----------------------------------------------------------------------------------------------
// Moderation (the admin API, worker/routes/admin.ts)

/** The longest ban a kick may carry (`banSeconds`): 7 days. */
export const MAX_BAN_SECONDS = 7 * 24 * 3600;
/** Bans in force a room keeps at most; a further ban is refused (409) until some end. */
export const MAX_BANS_PER_ROOM = 1000;
/** The largest request body the admin API reads (the kick's `{"banSeconds": N}`); larger is 413. */
export const MAX_ADMIN_BODY_BYTES = 1024;
/**
 * How long a kick, ban or room close waits for the revocation hook (worker/fleet/revocation-hook.ts)
 * before answering anyway: a slow or failing fleet never fails the moderation itself.
 */
export const REVOCATION_HOOK_TIMEOUT_MS = 2_000;

// -----------------------------------------------------------------------------------------------
// Webhooks (worker/webhooks/)

/** A webhook secret's shortest length: an HMAC-SHA256 key guessable in less is no signature. */
export const MIN_WEBHOOK_SECRET_LENGTH = 32;
/** The first retry waits this long; each further one twice as long as the one before… */
export const WEBHOOK_RETRY_BASE_MS = 1_000;
/** …up to this. */
export const WEBHOOK_RETRY_MAX_DELAY_MS = 5 * 60_000;
/**
 * Attempts per event, the first included; after the last failed one the event is dropped (logged and
 * counted). With the defaults the attempts span about 8.5 minutes (1 + 2 + … + 256 s between them).
 */
export const WEBHOOK_MAX_ATTEMPTS = 10;
/** One POST may take this long (connect, send, answer); longer is a failed attempt. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Events waiting per object (a room, or the fleet); a new event past it is dropped (logged and counted). */
export const WEBHOOK_MAX_PENDING = 1_000;
/** Deliveries one run makes before handing over to the next alarm: bounds a run's length. */
export const WEBHOOK_MAX_DELIVERIES_PER_RUN = 100;
/**
 * How long a room stays empty before `room-finished`: relays report usage every 5 s and a kicked
 * peer's allocations end within 2 s, so by then the usage is complete. A peer joining meanwhile
 * continues the room (no room-finished, no second room-started).
 */
export const ROOM_FINISH_DELAY_MS = 10_000;

export interface WebhookConfig {
  /** WEBHOOK_URL */
  url: string;
  /** WEBHOOK_SECRET: the first is current; each signs (one v1 each), so apps holding any of them verify. */
  secrets: string[];
  /** WEBHOOK_TEST_RETRY_BASE_MS (tests only), else WEBHOOK_RETRY_BASE_MS. */
  retryBaseMs: number;
  /** WEBHOOK_TEST_ROOM_FINISH_DELAY_MS (tests only), else ROOM_FINISH_DELAY_MS. */
  roomFinishDelayMs: number;
}

/** Plain http:// is allowed only to these (development): anything else would send signed events in the clear. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * The webhook settings, or null when neither WEBHOOK_URL nor WEBHOOK_SECRET is set (no webhooks).
 * Throws a ConfigError saying what to fix for half a config or a bad value; the objects that emit
 * (worker/webhooks/open-outbox.ts) log it and run without webhooks, never failing a room.
 */
export function readWebhookConfig(env: Env): WebhookConfig | null {
  const rawUrl = (env.WEBHOOK_URL ?? "").trim();
  const secrets = readList(env.WEBHOOK_SECRET);
  if (rawUrl === "" && secrets.length === 0) return null;
  if (rawUrl === "") throw new ConfigError("WEBHOOK_SECRET is set but WEBHOOK_URL is not: set WEBHOOK_URL to your app's https:// endpoint in wrangler.toml [vars], or unset WEBHOOK_SECRET");
  if (secrets.length === 0) throw new ConfigError("WEBHOOK_URL is set but WEBHOOK_SECRET is not: run `wrangler secret put WEBHOOK_SECRET` with a random secret of at least 32 characters (comma-separated for rotation, current first)");
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new ConfigError(`WEBHOOK_URL is ${JSON.stringify(rawUrl)}, not a URL; give the full https:// address of your endpoint`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    throw new ConfigError(`WEBHOOK_URL is ${JSON.stringify(rawUrl)}; it must be https:// (plain http:// only to 127.0.0.1, [::1] or localhost, for development)`);
  }
  const short = secrets.findIndex((secret) => secret.length < MIN_WEBHOOK_SECRET_LENGTH);
  if (short !== -1) {
    throw new ConfigError(`WEBHOOK_SECRET entry ${short + 1} is ${secrets[short]!.length} characters; each must be at least ${MIN_WEBHOOK_SECRET_LENGTH}. Set it again with \`wrangler secret put WEBHOOK_SECRET\``);
  }
  return {
    url: url.toString(),
    secrets,
    retryBaseMs: readNumber(env, { variable: "WEBHOOK_TEST_RETRY_BASE_MS", min: 10, max: WEBHOOK_RETRY_BASE_MS, integer: true }, WEBHOOK_RETRY_BASE_MS),
    roomFinishDelayMs: readNumber(env, { variable: "WEBHOOK_TEST_ROOM_FINISH_DELAY_MS", min: 100, max: ROOM_FINISH_DELAY_MS, integer: true }, ROOM_FINISH_DELAY_MS),
  };
}
