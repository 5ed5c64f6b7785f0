/**
 * The server side of STUN's long-term credential mechanism (RFC 8489 §9.2.4) for TURN REST credentials
 * (shared/turn/credentials.ts): the username says when it expires and for whom, the password is recomputed from
 * it under each configured secret, and nothing is asked of the Worker that issued it.
 *
 * Order of checks, as in §9.2.4:
 *   no MESSAGE-INTEGRITY(-SHA256)                       → 401, answer with REALM and a fresh NONCE (`challenge`)
 *   USERNAME, REALM or NONCE missing or not valid text  → 400
 *   NONCE stale, or not ours for this client address    → 438, answer with REALM and a fresh NONCE
 *   REALM not ours; username malformed, expired or
 *   further ahead than any issued one                   → 401
 *   PASSWORD-ALGORITHM other than MD5, or malformed     → 400
 *   MESSAGE-INTEGRITY(-SHA256) wrong under every secret → 401
 *
 * Keys that verified are cached per username (a bounded Map, oldest use evicted first), so the Refresh,
 * CreatePermission and ChannelBind requests of a live allocation cost two HMACs per secret rather than
 * a Web Crypto round trip and an MD5 as well. Usernames are only ever Map keys, never property names, so
 * `__proto__`, `constructor` or `toString` are just strings that fail the username check.
 */
import { type ExpiryPolicy, type TurnKeyring, DEFAULT_CLOCK_SKEW_SECONDS, MAX_CREDENTIAL_TTL_SECONDS, checkTurnUsername } from "../../shared/turn/credentials.js";
import { encodeText, readText } from "../stun/attributes.js";
import { AttributeType } from "../stun/constants.js";
import { PasswordAlgorithm, longTermKey, verifyMessageIntegrity, verifyMessageIntegritySha256 } from "../stun/integrity.js";
import { type StunAttributeRef, type StunMessage, findAttribute } from "../stun/message.js";
import type { NonceIssuer } from "./nonce.js";
import { RecencyMap } from "../collections/recency-map.js";

/** How many usernames' keys are kept by default: one entry is a few dozen bytes per secret. */
export const DEFAULT_KEY_CACHE_SIZE = 10_000;

export interface LongTermAuthenticatorOptions {
  /** The secrets TURN REST passwords are computed under; every one is tried. */
  readonly keyring: TurnKeyring;
  /** Our REALM: sent in challenges, required in requests, part of the key. Fewer than 128 characters. */
  readonly realm: string;
  readonly nonces: NonceIssuer;
  /** Defaults to shared/turn's DEFAULT_CLOCK_SKEW_SECONDS (30). */
  readonly clockSkewSeconds?: number;
  /** Defaults to shared/turn's MAX_CREDENTIAL_TTL_SECONDS (48 h). */
  readonly maxTtlSeconds?: number;
  /** Usernames whose derived keys are cached; 0 turns the cache off. Defaults to DEFAULT_KEY_CACHE_SIZE. */
  readonly keyCacheSize?: number;
}

export interface AuthSuccess {
  readonly ok: true;
  readonly username: string;
  readonly userId: string;
  /** Unix seconds, from the username. */
  readonly expiresAt: number;
  /**
   * The long-term key that verified the request: sign the response with it. Shared with the key cache
   * and with every allocation of this username (never written to): a copy per request was a 16-byte
   * slice of Node's 8 KiB buffer pool kept by each allocation, which kept whole pool slabs alive
   * (4.4 MB at 10,000 idle allocations).
   */
  readonly key: Buffer;
  /** Which integrity attribute was checked; RFC 8489 §9.2.4 has the response carry the same one. */
  readonly integrity: "message-integrity" | "message-integrity-sha256";
}

/**
 * Why a credential was refused, for metrics (a small fixed set: never the username):
 * no-credentials is the first, unsigned request of every client's dance, not an attack.
 */
export type AuthFailureKind =
  | "no-credentials"
  | "bad-request"
  | "stale-nonce"
  | "wrong-realm"
  | "expired"
  | "bad-username"
  | "bad-integrity"
  | "internal-error";

export interface AuthFailure {
  readonly ok: false;
  readonly kind: AuthFailureKind;
  /** 400 Bad Request, 401 Unauthenticated, 438 Stale Nonce. For 401 and 438 answer with `challenge()`'s REALM and NONCE. */
  readonly code: 400 | 401 | 438;
  /** Short ASCII text (under 128 characters, no client-supplied content), fit for the ERROR-CODE reason phrase. */
  readonly reason: string;
}

export type AuthResult = AuthSuccess | AuthFailure;

export interface AuthenticateOptions {
  /** Let an expired (but otherwise valid) credential through: for requests on an existing allocation. */
  readonly acceptExpiredCredential?: boolean;
}

export interface Challenge {
  readonly realm: string;
  readonly nonce: string;
}

function fail(kind: AuthFailureKind, code: 400 | 401 | 438, reason: string): AuthFailure {
  return { ok: false, kind, code, reason };
}

export class LongTermAuthenticator {
  private keyring: TurnKeyring;
  private readonly realm: string;
  private readonly nonces: NonceIssuer;
  private readonly policy: Required<Pick<ExpiryPolicy, "clockSkewSeconds" | "maxTtlSeconds">>;
  private readonly keyCacheSize: number;
  /** username → one long-term key per secret, in keyring order (least recently used first). Only usernames that verified get in. */
  private readonly keyCache: RecencyMap<string, readonly Buffer[]>;

  /** Throws RangeError on a realm that cannot be sent or a bad cache size: both come from our own configuration. */
  constructor(options: LongTermAuthenticatorOptions) {
    encodeText(AttributeType.Realm, options.realm);
    if (options.realm.length === 0) throw new RangeError("the realm must not be empty");
    const keyCacheSize = options.keyCacheSize ?? DEFAULT_KEY_CACHE_SIZE;
    if (!Number.isInteger(keyCacheSize) || keyCacheSize < 0) {
      throw new RangeError(`keyCacheSize must be a whole number from 0 up, got ${keyCacheSize}`);
    }
    this.keyring = options.keyring;
    this.realm = options.realm;
    this.nonces = options.nonces;
    this.policy = {
      clockSkewSeconds: options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS,
      maxTtlSeconds: options.maxTtlSeconds ?? MAX_CREDENTIAL_TTL_SECONDS,
    };
    this.keyCacheSize = keyCacheSize;
    this.keyCache = new RecencyMap(keyCacheSize);
  }

  /** How many secrets credentials are checked against. */
  get secretCount(): number {
    return this.keyring.secrets.length;
  }

  /**
   * Checks credentials against new secrets from now on (SIGHUP after a secret rotation). Cached keys
   * were derived from the old secrets, so they go; live allocations keep the key they were made with.
   */
  replaceKeyring(keyring: TurnKeyring): void {
    this.keyring = keyring;
    this.keyCache.clear();
  }

  /** How many usernames have cached keys (at most `keyCacheSize`). */
  get cachedKeyCount(): number {
    return this.keyCache.size;
  }

  /** REALM and a fresh NONCE for a 401 or 438 response to `clientKey`. Keeps no state. */
  challenge(clientKey: string, nowMs: number): Challenge {
    return { realm: this.realm, nonce: this.nonces.issue(clientKey, nowMs) };
  }

  /**
   * Judges a request from `clientKey` (the transport address its nonce was issued to) at `nowMs`.
   * Never throws; never rejects.
   */
  async authenticate(message: StunMessage, clientKey: string, nowMs: number, options: AuthenticateOptions = {}): Promise<AuthResult> {
    try {
      return await this.check(message, clientKey, nowMs, options);
    } catch {
      // Nothing above should throw; if something does, fail closed and let the client retry.
      return fail("internal-error", 401, "Unauthenticated: the credentials could not be checked");
    }
  }

  private async check(message: StunMessage, clientKey: string, nowMs: number, options: AuthenticateOptions): Promise<AuthResult> {
    const integrity = message.messageIntegritySha256 !== undefined ? "message-integrity-sha256" : "message-integrity";
    if (message.messageIntegritySha256 === undefined && message.messageIntegrity === undefined) {
      // The answer to an unsigned request is sent to anyone who asks: keep it short (amplification).
      return fail("no-credentials", 401, "Unauthenticated");
    }

    const username = textAttribute(message, AttributeType.Username, "USERNAME");
    if (!username.ok) return username.failure;
    const realm = textAttribute(message, AttributeType.Realm, "REALM");
    if (!realm.ok) return realm.failure;
    const nonce = textAttribute(message, AttributeType.Nonce, "NONCE");
    if (!nonce.ok) return nonce.failure;

    const nonceCheck = this.nonces.check(nonce.value, clientKey, nowMs);
    if (nonceCheck === "stale") return fail("stale-nonce", 438, "Stale Nonce: retry with the new NONCE");
    if (nonceCheck !== "valid") return fail("stale-nonce", 438, "Stale Nonce: the NONCE is not one this server gave this client; retry with the new one");

    if (realm.value !== this.realm) return fail("wrong-realm", 401, "Unauthenticated: wrong REALM; use the one in this response");

    const checked = checkTurnUsername(username.value, {
      now: Math.floor(nowMs / 1000),
      ...this.policy,
      acceptExpired: options.acceptExpiredCredential === true,
    });
    if (!checked.ok) {
      switch (checked.reason) {
        case "expired":
          return fail("expired", 401, "Unauthenticated: the TURN credential has expired; fetch a new one");
        case "too-far-ahead":
          return fail("bad-username", 401, `Unauthenticated: the TURN credential expires more than ${this.policy.maxTtlSeconds} s ahead, later than this relay accepts (max-credential-ttl)`);
        default:
          return fail("bad-username", 401, "Unauthenticated: USERNAME is not a TURN REST username (<unix-expiry>:<user-id>)");
      }
    }

    const algorithmProblem = passwordAlgorithmProblem(message);
    if (algorithmProblem !== undefined) return fail("bad-request", 400, algorithmProblem);

    const cached = this.keyCache.get(username.value);
    const keyring = this.keyring;
    const keys = cached ?? (await this.deriveKeys(keyring, username.value));
    const verify = integrity === "message-integrity-sha256" ? verifyMessageIntegritySha256 : verifyMessageIntegrity;
    let matched: Buffer | undefined;
    // Every key is tried, so the time taken does not tell which secret (if any) matched.
    for (const key of keys) {
      if (verify(message, key) && matched === undefined) matched = key;
    }
    if (matched === undefined) return fail("bad-integrity", 401, "Unauthenticated: MESSAGE-INTEGRITY does not match; check the TURN credential");

    // Keys derived from secrets a reload replaced meanwhile are not kept.
    if (keyring === this.keyring) this.remember(username.value, keys);
    return {
      ok: true,
      username: username.value,
      userId: checked.userId,
      expiresAt: checked.expiresAt,
      key: matched,
      integrity,
    };
  }

  private async deriveKeys(keyring: TurnKeyring, username: string): Promise<readonly Buffer[]> {
    const passwords = await keyring.passwords(username);
    return passwords.map((password) => longTermKey(username, this.realm, password));
  }

  /** Marks `username` as most recently used, evicting the least recently used beyond the bound. */
  private remember(username: string, keys: readonly Buffer[]): void {
    if (this.keyCacheSize === 0) return;
    this.keyCache.set(username, keys);
  }
}

type TextAttribute = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly failure: AuthFailure };

function textAttribute(message: StunMessage, type: number, name: string): TextAttribute {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) {
    const hint = type === AttributeType.Username ? " (USERHASH is not supported)" : "";
    return { ok: false, failure: fail("bad-request", 400, `Bad Request: MESSAGE-INTEGRITY without ${name}${hint}`) };
  }
  const text = readText(message, attribute);
  if (!text.ok) return { ok: false, failure: fail("bad-request", 400, `Bad Request: ${name} is not valid UTF-8 text within the RFC limits`) };
  return { ok: true, value: text.value };
}

/** PASSWORD-ALGORITHM value: 2-byte algorithm, 2-byte parameters length, parameters (RFC 8489 §14.11). */
const PASSWORD_ALGORITHM_HEADER_LENGTH = 4;

/** Why the request's PASSWORD-ALGORITHM cannot be honoured, or undefined if it is absent or MD5. */
function passwordAlgorithmProblem(message: StunMessage): string | undefined {
  const attribute: StunAttributeRef | undefined = findAttribute(message, AttributeType.PasswordAlgorithm);
  if (attribute === undefined) return undefined;
  if (attribute.length < PASSWORD_ALGORITHM_HEADER_LENGTH) return "Bad Request: PASSWORD-ALGORITHM is too short";
  const algorithm = message.buffer.readUInt16BE(attribute.offset);
  const parametersLength = message.buffer.readUInt16BE(attribute.offset + 2);
  if (PASSWORD_ALGORITHM_HEADER_LENGTH + parametersLength !== attribute.length) {
    return "Bad Request: PASSWORD-ALGORITHM parameters length does not match the attribute";
  }
  if (algorithm !== PasswordAlgorithm.Md5) {
    return `Bad Request: PASSWORD-ALGORITHM 0x${algorithm.toString(16).padStart(4, "0")} is not supported; use MD5 (0x0001) or omit it`;
  }
  return undefined;
}
