/**
 * TURN REST credentials: the one contract between the Worker that issues them and every relay that
 * accepts them (ours, coturn's `use-auth-secret`, eturnal, STUNner), after
 * draft-uberti-behave-turn-rest-00.
 *
 *   username = "<unix expiry, seconds>:<user>"
 *   password = base64(HMAC-SHA1(secret, username))
 *
 * `<user>` is a plain user id or a room member's `<room>/<peer-id>` (./turn-user.ts).
 *
 * Web Crypto only, so the same code runs in Workers, Node and browsers. A relay never calls back:
 * it recomputes the password from the username with each secret it knows.
 */
import { USER_ID_RULE } from "../ids.js";
import { isValidTurnUser, parseTurnUser, type TurnUser } from "./turn-user.js";

/** How far a relay's clock may lag or lead the issuer's before an expiry is judged. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

/**
 * THE longest a TURN credential may live, for the issuer and every relay alike (48 h, as Cloudflare's
 * TURN service caps them): the Worker refuses a `TURN_MAX_TTL` above it, and a relay refuses any
 * username whose expiry lies further ahead (the relay's `--max-credential-ttl` may lower it, never
 * raise it). One number in one place, so the two sides cannot drift apart: a credential the Worker
 * issues is one every relay accepts.
 */
export const MAX_CREDENTIAL_TTL_SECONDS = 172_800;

/**
 * How long a credential lives when nobody asks for another lifetime: the Worker's TURN_TTL default,
 * and `mintIceServers`'s. A day, so a long call never meets an expired credential on a re-allocation.
 */
export const DEFAULT_TURN_TTL_SECONDS = 86_400;

/** A TURN REST credential: what `TurnKeyring.mint` issues. */
export interface TurnCredential {
  username: string;
  password: string;
  /** Seconds the credential is valid for from issue. */
  ttl: number;
  /** Unix seconds after which a relay refuses the credential. */
  expiresAt: number;
}

/** A credential cannot be issued as asked (a bad user id, lifetime, secret or URL); the message says what to change. */
export class TurnCredentialError extends Error {
  override name = "TurnCredentialError";
}

/** The clock in Unix seconds, as credentials count time. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const encoder = new TextEncoder();

/** HMAC-SHA1(key, message) as raw bytes. */
export async function hmacSha1(key: string | Uint8Array<ArrayBuffer>, message: string | Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const keyBytes = typeof key === "string" ? encoder.encode(key) : key;
  const cryptoKey = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  const data = typeof message === "string" ? encoder.encode(message) : message;
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, data));
}

/** The password a relay expects for `username` under `secret`. */
export async function turnPassword(secret: string, username: string): Promise<string> {
  return toBase64(await hmacSha1(secret, username));
}

/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = encoder.encode(a);
  const right = encoder.encode(b);
  let difference = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    difference |= (left[i] ?? 0) ^ (right[i] ?? 0);
  }
  return difference === 0;
}

/** What `checkTurnUsername` (and `TurnKeyring.verify`) found: the expiry and user, or why the username is refused. */
export type UsernameCheck =
  /** `userId` is the whole user part (either form); `user` says which form it is. */
  | { ok: true; expiresAt: number; userId: string; user: TurnUser }
  | { ok: false; reason: "malformed" | "expired" | "too-far-ahead"; message: string };

/** How `checkTurnUsername` judges a username's expiry. */
export interface ExpiryPolicy {
  /** Unix seconds; defaults to the clock. */
  now?: number;
  clockSkewSeconds?: number;
  /** Expiries further out than this (plus skew) are refused: nobody issued them. */
  maxTtlSeconds?: number;
  /**
   * Accept an expired username (shape and maximum TTL still checked). Relays use this for requests
   * on an allocation that already exists: like coturn, an allocation lives as long as it is
   * refreshed, unless the operator asks for strict expiry.
   */
  acceptExpired?: boolean;
}

/** Reads and judges a REST username without any secret: shape, expiry, and how far out it is. */
export function checkTurnUsername(username: string, policy: ExpiryPolicy = {}): UsernameCheck {
  const now = policy.now ?? nowSeconds();
  const skew = policy.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const maxTtl = policy.maxTtlSeconds ?? MAX_CREDENTIAL_TTL_SECONDS;
  const match = /^(\d{1,12}):(.+)$/.exec(username);
  const user = match === null ? null : parseTurnUser(match[2]!);
  if (match === null || user === null) {
    return { ok: false, reason: "malformed", message: "a TURN REST username is <unix-expiry>:<user-id> or <unix-expiry>:<room>/<peer-id>" };
  }
  const expiresAt = Number(match[1]);
  if (expiresAt + skew < now && policy.acceptExpired !== true) {
    return { ok: false, reason: "expired", message: `the credential expired at ${new Date(expiresAt * 1000).toISOString()}; fetch a new one` };
  }
  if (expiresAt - now > maxTtl + skew) {
    return { ok: false, reason: "too-far-ahead", message: `the credential's expiry is more than ${maxTtl} s away, beyond what is ever issued` };
  }
  return { ok: true, expiresAt, userId: match[2]!, user };
}

/**
 * Several shared secrets at once, for rotation: the first signs, all verify. To rotate, add the new
 * secret to the relays, then put it first at the Worker, then retire the old one everywhere.
 */
export class TurnKeyring {
  readonly secrets: readonly string[];

  constructor(secrets: readonly string[]) {
    const usable = secrets.map((s) => s.trim()).filter((s) => s.length > 0);
    if (usable.length === 0) throw new TurnCredentialError("a TURN keyring needs at least one non-empty secret");
    this.secrets = usable;
  }

  /** Parses a comma-separated list, the form secrets take in one environment variable. */
  static fromList(list: string): TurnKeyring {
    return new TurnKeyring(list.split(","));
  }

  /**
   * Issues a credential for `userId` (a plain user id, or a room member's user part from
   * `roomMemberUser`), valid for `ttlSeconds` from `now`.
   */
  async mint(userId: string, ttlSeconds: number, now = nowSeconds()): Promise<TurnCredential> {
    if (!isValidTurnUser(userId)) {
      throw new TurnCredentialError(`TURN user id ${JSON.stringify(userId.slice(0, 40))} is not allowed: use ${USER_ID_RULE}, or <room>/<peer-id>`);
    }
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new TurnCredentialError(`TURN credential ttl must be a positive whole number of seconds, not ${ttlSeconds}`);
    }
    const expiresAt = now + ttlSeconds;
    const username = `${expiresAt}:${userId}`;
    return { username, password: await turnPassword(this.secrets[0]!, username), ttl: ttlSeconds, expiresAt };
  }

  /** The password under each secret: what a relay tries when checking MESSAGE-INTEGRITY. */
  async passwords(username: string): Promise<string[]> {
    return Promise.all(this.secrets.map((secret) => turnPassword(secret, username)));
  }

  /** Checks a username/password pair: shape, expiry, then the password under every secret. */
  async verify(username: string, password: string, policy: ExpiryPolicy = {}): Promise<UsernameCheck | { ok: false; reason: "wrong-password"; message: string }> {
    const checked = checkTurnUsername(username, policy);
    if (!checked.ok) return checked;
    let matched = false;
    // Every secret is tried, so the time taken does not tell which one matched.
    for (const candidate of await this.passwords(username)) matched = constantTimeEqual(candidate, password) || matched;
    return matched ? checked : { ok: false, reason: "wrong-password", message: "the password does not match the username under any configured secret" };
  }
}
