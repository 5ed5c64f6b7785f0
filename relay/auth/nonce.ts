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
 * Issuing stays stateless (the 401 path is open to spoofed floods). Checking remembers, per client address, the
 * last nonce whose MAC verified for it (a bounded map, oldest entry out first), so the CreatePermission,
 * ChannelBind and Refresh requests that follow an Allocate with the same nonce cost a string comparison and the
 * time check instead of an HMAC each. Only a nonce this issuer made for that very address gets in, so a hit
 * proves exactly what the MAC would; a spoofed flood of made-up nonces adds nothing.
 *
 * The MAC is HMAC-SHA1 (../stun/sha1.ts, the secret's pad states prepared once), a few compressions in plain
 * TypeScript rather than a node:crypto Hmac object per 401 and per check. HMAC-SHA1 under a 256-bit random key,
 * cut to 128 bits, is still a sound MAC (no attack on HMAC-SHA1 comes near forging one); nonces never leave
 * this process's lifetime, so the algorithm is ours to pick.
 *
 * Wire form: `<issue time, ms since the epoch, 12 lowercase hex digits>.<first 16 bytes of the HMAC, base64url>`,
 * 35 ASCII characters from [0-9a-f.A-Za-z_-], so it fits NONCE (< 128 characters) with nothing to quote.
 */
import { randomBytes } from "node:crypto";
import { HmacSha1Key, hmacSha1 } from "../stun/sha1.js";
import { RecencyMap } from "../collections/recency-map.js";

/** The secret must be at least this long; `newNonceSecret()` makes a 32-byte one. */
export const MIN_NONCE_SECRET_BYTES = 16;
/** coturn's default (`stale-nonce=600`): a client re-authenticates with a fresh nonce every 10 minutes at most. */
export const DEFAULT_NONCE_LIFETIME_SECONDS = 600;
/**
 * A nonce stamped up to this far in the future still counts, so a small backwards step of the wall clock does
 * not fail every client at once; further than that, the nonce is stale and the client simply gets a new one.
 */
export const NONCE_CLOCK_STEP_TOLERANCE_MS = 5_000;

/**
 * Client addresses whose last verified nonce is remembered: one entry is an address and a 35-character nonce,
 * about 150 bytes. Past the bound the oldest entry goes; that client's next request just pays for the MAC
 * again (about 2 µs). The memo pays off in a client's burst of requests (Allocate, CreatePermission,
 * ChannelBind within a second or so), which the most recent 2,000 clients cover at thousands of new
 * allocations a second; a bound of 10,000 held ~1.2 MB more at 10,000 idle allocations for Refreshes
 * minutes apart (issue 16).
 */
export const DEFAULT_VERIFIED_NONCE_MEMO_SIZE = 2_000;

/** Bytes of HMAC-SHA1 kept in the nonce: 128 bits, far beyond what guessing over the network can reach. */
const MAC_BYTES = 16;
const TIME_HEX_DIGITS = 12;
/** Issue times are written as 12 hex digits, enough for milliseconds until the year 10889. */
const MAX_TIME_MS = 16 ** TIME_HEX_DIGITS - 1;
const NONCE_PATTERN = /^([0-9a-f]{12})\.([A-Za-z0-9_-]{22})$/;
/** Domain separation, in case the secret is ever used for anything else. */
const MAC_CONTEXT = "relay-nonce-v2\n";
/**
 * The MAC's input (context, time, client address) is written here before hashing: everything is synchronous, so
 * no other call can touch it in between. Longer inputs (no real client address is) get a buffer of their own.
 */
const macInput = Buffer.alloc(256);
const macOutput = Buffer.alloc(20);

export type NonceCheck = "valid" | "stale" | "invalid";

export interface NonceIssuerOptions {
  /** Random per process, at least 16 bytes (see `newNonceSecret`). Copied: later changes to the array have no effect. */
  readonly secret: Uint8Array;
  /** How long a nonce stays valid after issue. */
  readonly lifetimeSeconds: number;
  /** Client addresses whose last verified nonce is remembered; 0 turns the memo off. Defaults to DEFAULT_VERIFIED_NONCE_MEMO_SIZE. */
  readonly verifiedMemoSize?: number;
}

/** A fresh random secret for a `NonceIssuer`. A restart makes new ones, which only means clients see one 438. */
export function newNonceSecret(): Buffer {
  return randomBytes(32);
}

/**
 * Issues and checks nonces. Frozen; issuing adds no state, checking only updates the bounded memo of verified nonces.
 */
export class NonceIssuer {
  /** The secret, prepared for HMAC-SHA1: only its pad states are kept. */
  private readonly macKey: HmacSha1Key;
  private readonly lifetimeMs: number;
  private readonly verifiedMemoSize: number;
  /** client address → the last nonce whose MAC verified for it (least recently verified first). */
  private readonly verified: RecencyMap<string, string>;

  /** Throws RangeError on a short secret or a lifetime that is not a positive number: both come from our own configuration. */
  constructor(options: NonceIssuerOptions) {
    if (options.secret.length < MIN_NONCE_SECRET_BYTES) {
      throw new RangeError(`the nonce secret must be at least ${MIN_NONCE_SECRET_BYTES} random bytes, got ${options.secret.length}; use newNonceSecret()`);
    }
    if (!Number.isFinite(options.lifetimeSeconds) || options.lifetimeSeconds <= 0) {
      throw new RangeError(`the nonce lifetime must be a positive number of seconds, got ${options.lifetimeSeconds}`);
    }
    const verifiedMemoSize = options.verifiedMemoSize ?? DEFAULT_VERIFIED_NONCE_MEMO_SIZE;
    if (!Number.isInteger(verifiedMemoSize) || verifiedMemoSize < 0) {
      throw new RangeError(`verifiedMemoSize must be a whole number from 0 up, got ${verifiedMemoSize}`);
    }
    this.verifiedMemoSize = verifiedMemoSize;
    this.verified = new RecencyMap(verifiedMemoSize);
    // Prepared at once, so later changes to the caller's array change nothing.
    this.macKey = new HmacSha1Key(options.secret);
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
    return `${time}.${this.mac(time, clientKey)}`;
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
    const remembered = this.verified.get(clientKey);
    if (remembered === undefined || !sameText(remembered, nonce)) {
      if (!sameText(match[2]!, this.mac(time, clientKey))) return "invalid";
      this.remember(clientKey, nonce);
    }
    const age = nowMs - Number.parseInt(time, 16);
    // NaN (a nonsense nowMs) fails both comparisons and lands on "stale": the client is asked to retry.
    return age <= this.lifetimeMs && age >= -NONCE_CLOCK_STEP_TOLERANCE_MS ? "valid" : "stale";
  }

  /** How many client addresses have a remembered nonce (at most `verifiedMemoSize`). */
  get rememberedCount(): number {
    return this.verified.size;
  }

  private remember(clientKey: string, nonce: string): void {
    if (this.verifiedMemoSize === 0) return;
    this.verified.set(clientKey, nonce);
  }

  /** The MAC of (time, client address), as the nonce's 22 base64url characters. */
  private mac(time: string, clientKey: string): string {
    const text = MAC_CONTEXT + time + clientKey;
    const bytes = Buffer.byteLength(text, "utf8");
    const input = bytes <= macInput.length ? macInput : Buffer.alloc(bytes);
    const length = input.write(text, 0, "utf8");
    hmacSha1.start(this.macKey).update(input, 0, length).finishInto(macOutput);
    return macOutput.toString("base64url", 0, MAC_BYTES);
  }
}

/**
 * Equality of two nonces, or of two MACs in base64url, in time that does not depend on where they differ. Both
 * passed NONCE_PATTERN (or were made here): ASCII, fixed length.
 */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}
