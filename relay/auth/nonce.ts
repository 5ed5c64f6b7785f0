/**
 * Stateless NONCE values for the long-term credential mechanism (RFC 8489 §9.2). A nonce carries its own issue
 * time and an HMAC over (time, client transport address) under a per-process secret, so checking one needs no
 * table: a flood of unauthenticated requests, each answered 401 with a fresh nonce, costs the relay no memory
 * (node-turn stores every nonce with a one-hour timer and grows by hundreds of MB under such a flood).
 *
 * A nonce is bound to the client's transport address, so one seen on the wire cannot be used from elsewhere.
 * Within its lifetime it can be reused from the same address, as the RFC allows; MESSAGE-INTEGRITY still
 * covers each request's transaction id.
 *
 * Wire form: `<issue time, ms since the epoch, 12 lowercase hex digits>.<first 16 bytes of the HMAC, base64url>`,
 * 35 ASCII characters from [0-9a-f.A-Za-z_-], so it fits NONCE (< 128 characters) with nothing to quote.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** The secret must be at least this long; `newNonceSecret()` makes a 32-byte one. */
export const MIN_NONCE_SECRET_BYTES = 16;
/** coturn's default (`stale-nonce=600`): a client re-authenticates with a fresh nonce every 10 minutes at most. */
export const DEFAULT_NONCE_LIFETIME_SECONDS = 600;
/**
 * A nonce stamped up to this far in the future still counts, so a small backwards step of the wall clock does
 * not fail every client at once; further than that, the nonce is stale and the client simply gets a new one.
 */
export const NONCE_CLOCK_STEP_TOLERANCE_MS = 5_000;

/** Bytes of HMAC-SHA256 kept in the nonce: 128 bits, far beyond what guessing over the network can reach. */
const MAC_BYTES = 16;
const TIME_HEX_DIGITS = 12;
/** Issue times are written as 12 hex digits, enough for milliseconds until the year 10889. */
const MAX_TIME_MS = 16 ** TIME_HEX_DIGITS - 1;
const NONCE_PATTERN = /^([0-9a-f]{12})\.([A-Za-z0-9_-]{22})$/;
/** Domain separation, in case the secret is ever used for anything else. */
const MAC_CONTEXT = "relay-nonce-v1\n";

export type NonceCheck = "valid" | "stale" | "invalid";

export interface NonceIssuerOptions {
  /** Random per process, at least 16 bytes (see `newNonceSecret`). Copied: later changes to the array have no effect. */
  readonly secret: Uint8Array;
  /** How long a nonce stays valid after issue. */
  readonly lifetimeSeconds: number;
}

/** A fresh random secret for a `NonceIssuer`. A restart makes new ones, which only means clients see one 438. */
export function newNonceSecret(): Buffer {
  return randomBytes(32);
}

/**
 * Issues and checks nonces. Holds only its secret and lifetime, and is frozen: no call adds state to it.
 */
export class NonceIssuer {
  private readonly secret: Buffer;
  private readonly lifetimeMs: number;

  /** Throws RangeError on a short secret or a lifetime that is not a positive number: both come from our own configuration. */
  constructor(options: NonceIssuerOptions) {
    if (options.secret.length < MIN_NONCE_SECRET_BYTES) {
      throw new RangeError(`the nonce secret must be at least ${MIN_NONCE_SECRET_BYTES} random bytes, got ${options.secret.length}; use newNonceSecret()`);
    }
    if (!Number.isFinite(options.lifetimeSeconds) || options.lifetimeSeconds <= 0) {
      throw new RangeError(`the nonce lifetime must be a positive number of seconds, got ${options.lifetimeSeconds}`);
    }
    this.secret = Buffer.from(options.secret);
    this.lifetimeMs = Math.round(options.lifetimeSeconds * 1000);
    Object.freeze(this);
  }

  /**
   * A nonce for the client at `clientKey` (its transport address, e.g. "udp:1.2.3.4:5678"), stamped `nowMs`.
   * Throws RangeError if `nowMs` is not a time from 1970 to 10889, which only our own code could pass.
   */
  issue(clientKey: string, nowMs: number): string {
    const issuedMs = Math.floor(nowMs);
    if (!Number.isFinite(issuedMs) || issuedMs < 0 || issuedMs > MAX_TIME_MS) {
      throw new RangeError(`cannot stamp a nonce with time ${nowMs}; pass milliseconds since the epoch`);
    }
    const time = issuedMs.toString(16).padStart(TIME_HEX_DIGITS, "0");
    return `${time}.${this.mac(time, clientKey).toString("base64url")}`;
  }

  /**
   * "valid" if this issuer made `nonce` for `clientKey` no longer than the lifetime before `nowMs`; "stale" if it
   * made it for `clientKey` but too long ago (or too far ahead, after a clock step); "invalid" for anything
   * else: another client's nonce, another process's, an altered or made-up one. Never throws.
   */
  check(nonce: string, clientKey: string, nowMs: number): NonceCheck {
    if (typeof nonce !== "string" || typeof clientKey !== "string") return "invalid";
    const match = NONCE_PATTERN.exec(nonce);
    if (match === null) return "invalid";
    const time = match[1]!;
    const received = Buffer.from(match[2]!, "utf8");
    const expected = Buffer.from(this.mac(time, clientKey).toString("base64url"), "utf8");
    // The pattern fixes the received length at 22, the same as the expected one; check anyway, timingSafeEqual throws otherwise.
    if (received.length !== expected.length || !timingSafeEqual(received, expected)) return "invalid";
    const age = nowMs - Number.parseInt(time, 16);
    // NaN (a nonsense nowMs) fails both comparisons and lands on "stale": the client is asked to retry.
    return age <= this.lifetimeMs && age >= -NONCE_CLOCK_STEP_TOLERANCE_MS ? "valid" : "stale";
  }

  private mac(time: string, clientKey: string): Buffer {
    return createHmac("sha256", this.secret).update(MAC_CONTEXT).update(time).update(clientKey, "utf8").digest().subarray(0, MAC_BYTES);
  }
}
